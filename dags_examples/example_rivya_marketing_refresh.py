"""Refresh a product catalogue's marketing images every week, one generation per product.

Use it for scheduled asset refreshes: a seasonal look for every product, regenerated weekly. The
catalogue (``assets/products.json``) is read when the run starts, not when the file is parsed; one
prompt per product is filled in from a template; ``.partial().expand()`` maps one generation per
product. ``max_active_tis_per_dag`` keeps at most two generations in flight, inside the API's rate
limits (a pool does the same across DAGs). Images land in a dated folder,
``$RIVYA_OUTPUT_DIR/marketing/<ds>/``, beside an ``index.json`` that maps each SKU to its image.

The last task updates the Airflow Asset ``rivya_marketing_images``: schedule a downstream DAG on
it (``schedule=[MARKETING_IMAGES]``) to publish the refreshed set as soon as it is ready.

``RIVYA_MARKETING_MAX_PRODUCTS`` (read at run time) caps how many products are refreshed.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import Asset, dag, task

from rivya_provider.operators.generate import RivyaGenerateImageOperator

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
    def build_prompts(products: list[dict[str, Any]], logical_date: Any = None) -> list[str]:
        """One prompt per product, from PROMPT_TEMPLATE and the season of the run."""
        when = logical_date or datetime.now(timezone.utc)
        season = SEASONS[when.month]
        return [PROMPT_TEMPLATE.format(season=season, **product) for product in products]

    products = load_catalogue()
    generate = RivyaGenerateImageOperator.partial(
        task_id="generate_product_image",
        image_size="landscape_4_3",
        output_path=MARKETING_DIR + "/{{ ds }}",
        deferrable=True,
        max_active_tis_per_dag=2,
    ).expand(prompt=build_prompts(products))

    @task(outlets=[MARKETING_IMAGES])
    def write_index(
        products: list[dict[str, Any]], manifests: list[dict[str, Any]], ds: str | None = None
    ) -> str:
        """Write ``index.json`` (SKU -> image) into the dated folder and update the Asset."""
        import json

        from airflow.sdk import ObjectStoragePath

        folder = ObjectStoragePath(f"file://{MARKETING_DIR}/{ds}")
        folder.mkdir(parents=True, exist_ok=True)
        entries = [
            {
                "sku": product["sku"],
                "name": product["name"],
                "generation_id": manifest["generation_id"],
                "images": [image["path"] for image in manifest["images"]],
                "credits": manifest["final_credits"],
            }
            for product, manifest in zip(products, manifests, strict=True)
        ]
        index = folder / "index.json"
        index.write_text(json.dumps({"ds": ds, "products": entries}, indent=2))
        return str(index)

    write_index(products, generate.output)


example_rivya_marketing_refresh()
