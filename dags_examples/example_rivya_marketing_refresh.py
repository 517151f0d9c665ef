"""Refresh a product catalogue's marketing images every week: one batch task for all products.

Use it for scheduled asset refreshes: a seasonal look for every product, regenerated weekly. The
catalogue (``assets/products.json``) is read when the run starts, not when the file is parsed; one
item per product (its SKU as the key, a prompt filled in from a template) goes to
``RivyaBatchGenerateImagesOperator``, which checks every item and the estimated cost
(``max_credits``) before anything is paid, submits each product once, waits for all of them in a
single deferral, and stores ``<SKU>_0.png`` plus an ``index.jsonl`` (one line per product) in a
dated folder, ``$RIVYA_OUTPUT_DIR/marketing/<ds>/``. One task, whatever the catalogue's size; for a
handful of prompts, ``RivyaGenerateImageOperator.partial(...).expand(prompt=...)`` does too.

The batch task updates the Airflow Asset ``rivya_marketing_images``: schedule a downstream DAG on
it (``schedule=[MARKETING_IMAGES]``) to publish the refreshed set as soon as it is ready.

``RIVYA_MARKETING_MAX_PRODUCTS`` (read at run time) caps how many products are refreshed.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import Asset, dag, task

from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOGUE = os.path.join(HERE, "assets", "products.json")
OUTPUT_DIR = os.environ.get("RIVYA_OUTPUT_DIR") or os.path.join(os.path.dirname(HERE), "output")
MARKETING_DIR = f"{OUTPUT_DIR}/marketing"

PROMPT_TEMPLATE = (
    "Marketing photo of {description}, {style}. {season} campaign, clean composition, "
    "room for a headline at the top, photorealistic."
)
SEASONS = {12: "Winter", 1: "Winter", 2: "Winter", 3: "Spring", 4: "Spring", 5: "Spring"}
SEASONS.update({6: "Summer", 7: "Summer", 8: "Summer", 9: "Autumn", 10: "Autumn", 11: "Autumn"})

#: A typo in a catalogue filter must not spend thousands of credits: 4 credits per image.
MAX_CREDITS = 4 * 500

MARKETING_IMAGES = Asset(name="rivya_marketing_images", uri=f"file://{MARKETING_DIR}")


@dag(
    schedule="@weekly",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["rivya", "example"],
    doc_md=__doc__,
)
def example_rivya_marketing_refresh() -> None:
    @task
    def load_catalogue() -> list[dict[str, Any]]:
        """Read the product catalogue at run time (never at parse time)."""
        import json

        with open(CATALOGUE, encoding="utf-8") as handle:
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

    RivyaBatchGenerateImagesOperator(
        task_id="generate_product_images",
        items=build_items(load_catalogue()),
        image_size="landscape_4_3",
        output_path=MARKETING_DIR + "/{{ ds }}",
        deferrable=True,
        max_credits=MAX_CREDITS,
        outlets=[MARKETING_IMAGES],
    )


example_rivya_marketing_refresh()
