"""A weekly catalogue refresh with 5 % churn: full regeneration vs ``skip_unchanged``, in one run.

Run: ``.venv/bin/python bench/incremental.py [--items 1000] [--churn 0.05] [--latency 5]
[--max-concurrency 8]``

Starts the emulator (``--latency`` s per generation, enough credits) and runs
``RivyaBatchGenerateImagesOperator`` in this process (inline wait, as a worker would run it)
into one local folder, three times:

1. the first fill: every item generated and stored (not compared, it sets the folder up);
2. **full**: next week's run as it was before ``skip_unchanged``, a new DAG run that generates
   and stores every item again, with ``--churn`` of the prompts changed;
3. **incremental**: the run after it with ``skip_unchanged=True`` and another ``--churn`` of the
   prompts changed.

For runs 2 and 3 it prints the wall time, the creates and status reads the emulator answered, the
credits charged (emulator ledger) and the summary's counts, then the ratios incremental/full.
Figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rivya-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from tests.operators.test_generate_validation import FakeTaskInstance  # noqa: E402


def items(count: int, editions: dict[int, int]) -> list[dict[str, str]]:
    """The catalogue: a product in ``editions`` has the prompt of the week it last changed."""
    return [
        {
            "key": f"SKU-{n:05d}",
            "prompt": f"Product {n}, a ceramic mug on an oak table"
            + (f", week {editions[n]} edition" if n in editions else ""),
        }
        for n in range(count)
    ]


def run(
    emulator: Any, folder: Path, batch: list[dict[str, str]], run_id: str, **kwargs: Any
) -> dict[str, Any]:
    from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator

    creates = [r for r in emulator.requests("/api/v1/generations") if r["method"] == "POST"]
    reads = [r for r in emulator.requests("/api/v1/generations/") if r["method"] == "GET"]
    credits = emulator.balance()
    started = time.perf_counter()
    operator = RivyaBatchGenerateImagesOperator(
        task_id="refresh",
        items=batch,
        output_path=str(folder),
        deferrable=False,
        retries=0,
        **kwargs,
    )
    summary: dict[str, Any] = operator.execute(
        {"ti": FakeTaskInstance(run_id=run_id, dag_id="bench", task_id="refresh")}
    )  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    after_creates = [r for r in emulator.requests("/api/v1/generations") if r["method"] == "POST"]
    after_reads = [r for r in emulator.requests("/api/v1/generations/") if r["method"] == "GET"]
    return {
        "wall": wall,
        "creates": len(after_creates) - len(creates),
        "reads": len(after_reads) - len(reads),
        "credits": credits - emulator.balance(),
        "summary": summary,
    }


def show(name: str, figures: dict[str, Any]) -> None:
    summary = figures["summary"]
    print(
        f"{name:12} wall {figures['wall']:7.1f} s | creates {figures['creates']:5d} | "
        f"status reads {figures['reads']:5d} | credits charged {figures['credits']:5d} | "
        f"generated {summary['generated']}, reused {summary['reused']}, "
        f"failed {summary['failed']}, saved (estimate) {summary['credits_saved_estimate']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--churn", type=float, default=0.05)
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--max-concurrency", type=int, default=8)
    args = parser.parse_args()

    import json

    from rivya_provider.testing.emulator_process import run_emulator

    changed = max(1, round(args.items * args.churn))
    week2 = dict.fromkeys(range(changed), 2)
    week3 = week2 | dict.fromkeys(range(changed, 2 * changed), 3)
    credits = 4 * args.items * 3 + 100
    with (
        run_emulator(latency=args.latency, credits=credits) as emulator,
        tempfile.TemporaryDirectory(prefix="rivya-bench-incremental-") as tmp,
    ):
        connection = json.loads(emulator.connection_json())
        connection["extra"] = {"max_requests_per_second": 200}
        os.environ["AIRFLOW_CONN_RIVYA_DEFAULT"] = json.dumps(connection)
        folder = Path(tmp) / "catalogue"
        common = {"max_concurrency": args.max_concurrency, "poll_interval": 1.0}
        print(
            f"{args.items} items, {changed} changed per week ({args.churn:.0%}), emulator "
            f"latency {args.latency:g} s, max_concurrency {args.max_concurrency}"
        )
        fill = run(emulator, folder, items(args.items, {}), "week-1", **common)
        show("first fill", fill)
        full = run(emulator, folder, items(args.items, week2), "week-2", **common)
        show("full", full)
        incremental = run(
            emulator,
            folder,
            items(args.items, week3),
            "week-3",
            skip_unchanged=True,
            **common,
        )
        show("incremental", incremental)
        print(
            f"incremental/full: wall {incremental['wall'] / full['wall']:.3f}x, credits "
            f"{incremental['credits'] / max(1, full['credits']):.3f}x "
            f"({incremental['credits']} against {full['credits']}), creates "
            f"{incremental['creates'] / max(1, full['creates']):.3f}x"
        )


if __name__ == "__main__":
    main()
