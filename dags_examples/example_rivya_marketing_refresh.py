"""Refresh a product catalogue's marketing images every week, paying only for what changed.

Use it for scheduled asset refreshes: a seasonal look for every product, refreshed weekly. The
catalogue (``assets/products.json``, or the JSON file ``RIVYA_CATALOGUE`` names) is read when the
run starts, not when the file is parsed; one item per product (its SKU as the key, a prompt
filled in from a template) goes to ``RivyaBatchGenerateImagesOperator``, which checks every item
and the estimated cost (``max_credits``) before anything is paid, and waits for all of them in a
single deferral. One task, whatever the catalogue's size.

The images live in one stable folder, ``$RIVYA_OUTPUT_DIR/marketing/catalogue/``: ``<SKU>_0.png``
per product and an ``index.jsonl`` (one line per product). With ``skip_unchanged=True`` a product
whose prompt, size and model are the same as when its image was stored, and whose image is still
there intact, is reused without any request: a week in which 5 of 2,000 products changed pays for
5 images. A new season changes every prompt, so that week regenerates the whole catalogue. Images
of products that left the catalogue are not deleted; the index lists the current products only.
Each run copies the index (not the images) to ``marketing/history/<ds>/`` as its dated record.

The batch task updates the Airflow Asset ``rivya_marketing_images``: schedule a downstream DAG on
it (``schedule=[MARKETING_IMAGES]``) to publish the refreshed set as soon as it is ready; its
event's ``extra["rivya"]`` says how many were generated and reused.

``RIVYA_MARKETING_MAX_PRODUCTS`` (read at run time) caps how many products are refreshed; the
``image_size`` param (trigger with ``{"image_size": "square_hd"}``) changes every product's size.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import Asset, Param, dag, task

from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOGUE = os.path.join(HERE, "assets", "products.json")
OUTPUT_DIR = os.environ.get("RIVYA_OUTPUT_DIR") or os.path.join(os.path.dirname(HERE), "output")
MARKETING_DIR = f"{OUTPUT_DIR}/marketing"
#: The catalogue's current images (stable, so each run sees what the last one stored).
CATALOGUE_IMAGES = f"{MARKETING_DIR}/catalogue"
#: The Airflow pool of the tasks that talk to Rivya (it must exist: see docs/DEPLOYING.md).
POOL = os.environ.get("RIVYA_POOL") or "default_pool"

PROMPT_TEMPLATE = (
    "Marketing photo of {description}, {style}. {season} campaign, clean composition, "
    "room for a headline at the top, photorealistic."
)
SEASONS = {12: "Winter", 1: "Winter", 2: "Winter", 3: "Spring", 4: "Spring", 5: "Spring"}
SEASONS.update({6: "Summer", 7: "Summer", 8: "Summer", 9: "Autumn", 10: "Autumn", 11: "Autumn"})

#: A typo in a catalogue filter must not spend thousands of credits: 4 credits per image.
MAX_CREDITS = 4 * 500
#: Submissions in flight at once; the batch holds as many pool slots (at most default_pool's 128).
MAX_CONCURRENCY = 8

MARKETING_IMAGES = Asset(name="rivya_marketing_images", uri=f"file://{CATALOGUE_IMAGES}")


@dag(
    schedule="@weekly",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["rivya", "example"],
    doc_md=__doc__,
    # A size preset (square, square_hd, portrait_4_3, ...): checked by the batch operator,
    # which names image_size and the accepted values before anything is paid.
    params={"image_size": Param("landscape_4_3", type="string")},
)
def example_rivya_marketing_refresh() -> None:
    @task
    def load_catalogue() -> list[dict[str, Any]]:
        """Read the product catalogue at run time (never at parse time)."""
        import json

        with open(os.environ.get("RIVYA_CATALOGUE") or CATALOGUE, encoding="utf-8") as handle:
            products: list[dict[str, Any]] = json.load(handle)
        limit = os.environ.get("RIVYA_MARKETING_MAX_PRODUCTS")
        return products[: int(limit)] if limit else products

    @task
    def build_items(
        products: list[dict[str, Any]], logical_date: Any = None
    ) -> list[dict[str, str]]:
        """One batch item per product: its SKU as the key, a prompt for the run's season."""
        when = logical_date or datetime.now(timezone.utc)
        season = SEASONS[when.month]
        return [
            {"key": product["sku"], "prompt": PROMPT_TEMPLATE.format(season=season, **product)}
            for product in products
        ]

    generate = RivyaBatchGenerateImagesOperator(
        task_id="generate_product_images",
        items=build_items(load_catalogue()),
        image_size="{{ params.image_size }}",
        output_path=CATALOGUE_IMAGES,
        skip_unchanged=True,
        deferrable=True,
        max_credits=MAX_CREDITS,
        max_concurrency=MAX_CONCURRENCY,
        pool=POOL,
        pool_slots=min(MAX_CONCURRENCY, 128),
        outlets=[MARKETING_IMAGES],
    )

    @task
    def archive_index(summary: dict[str, Any], ds: str | None = None) -> str:
        """The run's dated record: a copy of the index and summary (the images stay put)."""
        from airflow.sdk import ObjectStoragePath

        source = ObjectStoragePath(summary["index"])
        history = source.parent.parent / "history" / str(ds)
        history.mkdir(parents=True, exist_ok=True)
        for name in ("index.jsonl", "summary.json"):
            (history / name).write_text((source.parent / name).read_text())
        return str(history / "index.jsonl")

    archive_index(generate.output)


example_rivya_marketing_refresh()
