"""Steer a generation with a reference image: upload it, then generate with it.

Use it when the output must follow a given look: a brand colour, a product shot, a sketch. The
upload operator checks the file locally (size, type sniffed from its bytes) and returns the
reference item in the API's shape, so ``reference_media_items=upload.output`` needs no glue.
qwen-image takes one reference image (jpeg, png or webp, up to 10 MB). Uploads cost no credits.

The reference shipped here (``assets/reference_magenta.png``) is a small magenta pattern; with
the local emulator its colour shows up as the frame of the generated image, so the reference's
influence is visible at a glance. Images land in ``$RIVYA_OUTPUT_DIR/reference``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import dag

from rivya_provider.operators.generate import RivyaGenerateImageOperator
from rivya_provider.operators.upload import RivyaFileUploadOperator

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_IMAGE = os.path.join(HERE, "assets", "reference_magenta.png")
OUTPUT_DIR = os.environ.get("RIVYA_OUTPUT_DIR") or os.path.join(os.path.dirname(HERE), "output")
#: The Airflow pool of the tasks that talk to Rivya (it must exist: see docs/DEPLOYING.md).
POOL = os.environ.get("RIVYA_POOL") or "default_pool"


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["rivya", "example"],
    doc_md=__doc__,
)
def example_rivya_reference() -> None:
    upload = RivyaFileUploadOperator(
        task_id="upload_reference",
        source=REFERENCE_IMAGE,
        kind="image",
        model="qwen-image",
        pool=POOL,
        pool_slots=1,
    )
    RivyaGenerateImageOperator(
        task_id="generate_with_reference",
        prompt="A minimalist poster of a city skyline in the colours of the reference image",
        image_size="landscape_4_3",
        reference_media_items=upload.output,
        output_path=f"{OUTPUT_DIR}/reference",
        deferrable=True,
        pool=POOL,
        pool_slots=1,
    )


example_rivya_reference()
