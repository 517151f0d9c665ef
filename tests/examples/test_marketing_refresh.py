"""The weekly marketing refresh pays only for what changed ([incremental]).

The marketing example runs with a 40-product catalogue file through ``dag.test()`` against the
emulator, run after run into the same folder: what each run sends is read from the emulator's
request log and ledger, what it stored from the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "example_rivya_marketing_refresh"
Examples = Any  # the ``examples`` fixture (tests/examples/conftest.py)


def catalogue(count: int, changed: frozenset[int] = frozenset()) -> list[dict[str, str]]:
    """``count`` products; those at the positions in ``changed`` get another description."""
    return [
        {
            "sku": f"SKU-{n:03d}",
            "name": f"Product {n}",
            "description": f"a {'striped' if n in changed else 'plain'} product number {n}",
            "style": "soft daylight",
        }
        for n in range(count)
    ]


class Refresh:
    """Runs the marketing example against one catalogue file and one output folder."""

    def __init__(self, examples: Examples, emulator: Any, tmp_path: Path) -> None:
        self.examples = examples
        self.emulator = emulator
        self.catalogue_file = tmp_path / "products.json"
        self.folder = examples.output_dir / "marketing" / "catalogue"
        shutil.rmtree(examples.output_dir / "marketing", ignore_errors=True)

    def write(self, products: list[dict[str, str]]) -> None:
        self.catalogue_file.write_text(json.dumps(products))

    def creates(self) -> int:
        return sum(
            1 for r in self.emulator.requests("/api/v1/generations") if r["method"] == "POST"
        )

    def run(self, **conf: Any) -> tuple[dict[str, Any], int, int]:
        """One DAG run; returns its summary, the creates and all requests it sent."""
        creates, requests = self.creates(), len(self.emulator.requests())
        dag_run = self.examples.dag(DAG_ID).test(run_conf=conf or None)
        assert str(dag_run.state) == "success", self.examples.task_states(dag_run)
        summary = self.examples.xcom(dag_run, "generate_product_images")
        sent = len(self.emulator.requests()) - requests
        return summary, self.creates() - creates, sent

    def index(self) -> dict[str, dict[str, Any]]:
        lines = (self.folder / "index.jsonl").read_text().splitlines()
        return {entry["key"]: entry for entry in map(json.loads, lines)}

    def image(self, sku: str) -> Path:
        return self.folder / f"{sku}_0.png"

    def digests(self) -> dict[str, str]:
        return {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.folder.glob("*.png"))
        }


@pytest.fixture
def refresh(
    examples: Examples, rivya_airflow_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Refresh:
    harness = Refresh(examples, rivya_airflow_conn, tmp_path)
    monkeypatch.setenv("RIVYA_CATALOGUE", str(harness.catalogue_file))
    monkeypatch.delenv("RIVYA_MARKETING_MAX_PRODUCTS", raising=False)
    return harness


def test_a_weekly_refresh_pays_only_for_new_changed_missing_or_damaged_products(
    refresh: Refresh,
) -> None:
    refresh.write(catalogue(40))
    summary, creates, _ = refresh.run()
    assert creates == 40
    assert len(refresh.digests()) == 40
    assert len(refresh.index()) == 40
    assert (summary["generated"], summary["reused"], summary["failed"]) == (40, 0, 0)
    assert summary["credits_spent"] == 160
    first = refresh.digests()
    first_generation = {key: e["generation_id"] for key, e in refresh.index().items()}

    # Nothing changed: no request at all, every image reused untouched.
    mtimes = {p.name: p.stat().st_mtime_ns for p in refresh.folder.glob("*.png")}
    summary, creates, sent = refresh.run()
    assert (creates, sent) == (0, 0)
    assert (summary["generated"], summary["reused"], summary["failed"]) == (0, 40, 0)
    assert summary["credits_spent"] == 0
    assert summary["credits_saved_estimate"] == 160
    assert refresh.digests() == first
    assert {p.name: p.stat().st_mtime_ns for p in refresh.folder.glob("*.png")} == mtimes
    index = refresh.index()
    assert all(entry["reused"] for entry in index.values())
    assert {key: e["generation_id"] for key, e in index.items()} == first_generation
    written = json.loads((refresh.folder / "summary.json").read_text())
    assert (written["reused"], written["credits_saved_estimate"]) == (40, 160)

    # 3 prompts change, 1 image is deleted, 1 truncated, 2 products are added: 7 creates.
    refresh.write(catalogue(42, changed=frozenset({3, 4, 5})))
    refresh.image("SKU-010").unlink()
    damaged = refresh.image("SKU-011")
    damaged.write_bytes(damaged.read_bytes()[:100])
    summary, creates, _ = refresh.run()
    assert creates == 7
    assert (summary["generated"], summary["reused"]) == (7, 35)
    regenerated = {"SKU-003", "SKU-004", "SKU-005", "SKU-010", "SKU-011", "SKU-040", "SKU-041"}
    index = refresh.index()
    assert {key for key, entry in index.items() if not entry["reused"]} == regenerated
    now = refresh.digests()
    for name, digest in first.items():
        if name.removesuffix("_0.png") not in regenerated:
            assert now[name] == digest, name
    # The damaged file is whole again (the emulator draws the same prompt the same way).
    assert now["SKU-011_0.png"] == index["SKU-011"]["images"][0]["sha256"]
    assert refresh.image("SKU-011").stat().st_size > 100
    prompts = [g["prompt"] for g in refresh.emulator.generations()][-7:]
    assert sum("striped" in prompt for prompt in prompts) == 3

    # Another size for the whole batch: every product changes.
    summary, creates, _ = refresh.run(image_size="square_hd")
    assert creates == 42
    assert (summary["generated"], summary["reused"]) == (42, 0)
    charges = refresh.emulator.charges_by_generation()
    assert len(charges) == 40 + 7 + 42  # every create paid once, and nothing else


def test_products_that_leave_the_catalogue_keep_their_images_but_leave_the_index(
    refresh: Refresh,
) -> None:
    refresh.write(catalogue(5))
    refresh.run()
    refresh.write(catalogue(3))
    summary, creates, _ = refresh.run()
    assert (creates, summary["reused"]) == (0, 3)
    assert sorted(refresh.index()) == ["SKU-000", "SKU-001", "SKU-002"]
    assert refresh.image("SKU-004").is_file()  # nothing is deleted


KILLED_RUN = """
import sys
from rivya_provider.compat import prepare_dag_test
from tests.airflow_support import import_file

path = sys.argv[1]
dag = import_file(path, "killed_marketing").example_rivya_marketing_refresh()
prepare_dag_test(dag, path)
dag.test(run_conf={"image_size": "square_hd"})
"""


def _stored_since(folder: Path, since: float) -> int:
    """Records written as stored after ``since`` (this run's finished items)."""
    count = 0
    for record in (folder / ".rivya-stored").glob("*.json"):
        try:
            if record.stat().st_mtime >= since and json.loads(record.read_text())["status"] == (
                "succeeded"
            ):
                count += 1
        except (OSError, ValueError, KeyError):
            continue
    return count


def test_a_new_run_after_a_worker_killed_mid_store_pays_only_for_what_was_not_stored(
    refresh: Refresh, examples: Examples
) -> None:
    """A run that changed every product is SIGKILLed with about half its images stored and no
    index written; the next run (a new DAG run, not a retry) reuses what was stored intact and
    pays only for the rest."""
    refresh.write(catalogue(40))
    refresh.run()
    # Slow the downloads so the kill lands while the batch stores.
    refresh.emulator.inject_fault("/media/generations/", action="delay", delay=0.4, count=200)
    started = time.time()
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(examples.dags_folder / f"{DAG_ID}.py")],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 180
        while _stored_since(refresh.folder, started) < 16:
            assert worker.poll() is None, "the run ended before it was killed"
            assert time.time() < deadline, "the run stored nothing in time"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    refresh.emulator.clear_faults()
    stored = _stored_since(refresh.folder, started)
    assert 16 <= stored < 40, stored
    index = refresh.index()
    assert all(entry["status"] == "succeeded" for entry in index.values())  # the first run's
    for entry in index.values():  # the index never names a file that is not there
        assert Path(entry["images"][0]["path"].removeprefix("file://")).is_file()

    charged = set(refresh.emulator.charges_by_generation())
    summary, creates, _ = refresh.run(image_size="square_hd")
    assert creates == 40 - stored
    assert (summary["reused"], summary["generated"]) == (stored, 40 - stored)
    assert len(set(refresh.emulator.charges_by_generation()) - charged) == 40 - stored
    for entry in refresh.index().values():
        assert Path(entry["images"][0]["path"].removeprefix("file://")).is_file()
