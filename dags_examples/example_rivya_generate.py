"""Generate one image from one prompt and keep it: the flagship Rivya example (`make demo`).

Use it when a pipeline needs a single picture: a blog header, a thumbnail, a placeholder. The
operator validates the request locally, submits it once (an Airflow retry never pays twice), waits
in the triggerer rather than a worker slot (``deferrable=True``), and streams the image to
``output_path``. Its return value (XCom) is a small manifest: generation id, URLs, stored paths,
sizes, sha256 and credits, never the image bytes.

Trigger it with another prompt::

    airflow dags trigger example_rivya_generate -c '{"prompt": "a lighthouse at dawn, watercolour"}'

Images land in ``$RIVYA_OUTPUT_DIR/generate`` (default: ``output/generate`` next to this
repository's ``dags_examples`` folder). ``output_path`` takes any ``ObjectStoragePath`` URI too,
e.g. ``s3://my-bucket/images``. The connection ``rivya_default`` holds the API key.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import Param, dag

from rivya_provider.operators.generate import RivyaGenerateImageOperator

OUTPUT_DIR = os.environ.get("RIVYA_OUTPUT_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output"
)
#: The Airflow pool of the tasks that talk to Rivya (it must exist: see docs/DEPLOYING.md).
POOL = os.environ.get("RIVYA_POOL") or "default_pool"


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["rivya", "example"],
    params={
        "prompt": Param(
            "A red fox reading a newspaper in a sunlit cafe, cinematic lighting",
            type="string",
            minLength=1,
            maxLength=5000,
            description="What to draw (qwen-image: up to 5000 characters).",
        ),
    },
    doc_md=__doc__,
)
def example_rivya_generate() -> None:
    RivyaGenerateImageOperator(
        task_id="generate_image",
        prompt="{{ params.prompt }}",
        model="qwen-image",
        image_size="square_hd",
        output_format="png",
        output_path=f"{OUTPUT_DIR}/generate",
        deferrable=True,
        pool=POOL,
        pool_slots=1,
    )


example_rivya_generate()
