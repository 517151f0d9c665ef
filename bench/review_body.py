"""How many thumbnails one human-in-the-loop review body holds (``rivya_provider.review``).

Run: ``.venv/bin/python bench/review_body.py [--sample 12]``

Generates ``--sample`` images with the batch operator against the emulator (inline wait, one local
folder), then builds review bodies of N thumbnails from those index lines, N = 12 ... 960, twice:
with the stored copies served from a CDN address (``output_url``) and with Rivya's result URLs
(signed). For each it prints the body's bytes, the bytes per thumbnail, whether it fits the
``hitl_detail.body`` column on every metadata database Airflow supports (``TEXT``: 65,535 bytes
on MySQL; unbounded on PostgreSQL and SQLite), and the page weight: the image bytes a reviewer's
browser downloads on opening the Required Actions page (Markdown images load eagerly, at full
size; the emulator's PNGs, real photographs weigh more). Figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rivya-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from tests.operators.test_generate_validation import FakeTaskInstance  # noqa: E402

MYSQL_TEXT = 65_535
CDN = "https://cdn.example.com/catalogue_review/candidates"


def sample_lines(count: int, folder: Path) -> list[dict[str, Any]]:
    """``count`` real index lines: a batch run against the emulator into ``folder``."""
    from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator

    items = [
        {"key": f"SKU-{n:05d}", "prompt": f"Product photo of product {n}, soft daylight"}
        for n in range(count)
    ]
    operator = RivyaBatchGenerateImagesOperator(
        task_id="generate", items=items, output_path=str(folder), deferrable=False, retries=0
    )
    operator.execute({"ti": FakeTaskInstance(run_id="bench")})  # type: ignore[arg-type]
    return [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()]


def body_for(lines: list[dict[str, Any]], count: int, served: bool) -> tuple[str, int]:
    """A body of ``count`` thumbnails (the sample repeated under new keys) and its page weight."""
    from rivya_provider.review import review_body

    chosen = []
    for n in range(count):
        line = dict(lines[n % len(lines)])
        line["key"] = f"SKU-{n:05d}"
        chosen.append(line)

    def image_url(line: dict[str, Any]) -> str:
        if served:  # as the example serves them: versioned by content
            return f"{CDN}/{line['key']}_0.png?v={line['images'][0]['sha256'][:16]}"
        return str(line["images"][0]["url"])

    heading = f"**Review 1 of 2: {count} image(s).** Tick *Reject* for each image to make again."
    body = review_body(chosen, image_url, heading=heading, limit=count)
    weight = sum(int(line["images"][0]["size_bytes"]) for line in chosen)
    return body, weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=12)
    args = parser.parse_args()
    from rivya_provider.testing.emulator_process import run_emulator

    with run_emulator(latency=0.0) as emulator, tempfile.TemporaryDirectory() as tmp:
        os.environ["AIRFLOW_CONN_RIVYA_DEFAULT"] = emulator.connection_json()
        lines = sample_lines(args.sample, Path(tmp))
    sizes = [int(line["images"][0]["size_bytes"]) for line in lines]
    print(f"sample: {len(lines)} emulator PNGs, median {statistics.median(sizes):,.0f} B each")
    for served in (True, False):
        fits = max(n for n in range(1, 2000) if len(body_for(lines, n, served)[0]) <= MYSQL_TEXT)
        print(f"{'served' if served else 'Rivya'} URLs: at most {fits} thumbnails fit MySQL's TEXT")
    print(
        f"{'thumbnails':>10} {'URLs':>7} {'body B':>9} {'B/thumb':>8} {'MySQL':>6} {'page MB':>8}"
    )
    for served in (True, False):
        for count in (12, 30, 60, 120, 240, 480, 960):
            body, weight = body_for(lines, count, served)
            size = len(body.encode())
            print(
                f"{count:>10} {'served' if served else 'Rivya':>7} {size:>9,} "
                f"{size / count:>8.0f} {'fits' if size <= MYSQL_TEXT else 'OVER':>6} "
                f"{weight / 1e6:>8.1f}"
            )


if __name__ == "__main__":
    main()
