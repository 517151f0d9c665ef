"""[review] The catalogue review example through ``dag.test()`` against the emulator.

A 12-product catalogue is generated in one batch; the first review (answered through
``PATCH .../hitlDetails``) rejects 3 keys with a note; only those 3 are generated again, with the
note in their prompt; the second review lists exactly those 3 and approves them; all 12 are
published and the Asset event lists the 12 keys. What was sent is read from the emulator's request
log, what was stored from the folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.review import APPROVE_ALL, REJECT_ALL, review_options
from tests.examples.test_examples import HITL_ANSWERABLE_IN_DAG_TEST

DAG_ID = "example_rivya_catalogue_review"
Examples = Any  # the ``examples`` fixture (tests/examples/conftest.py)
PRODUCTS = [f"SKU-{n:02d}" for n in range(12)]
REJECTED = ["SKU-02", "SKU-07", "SKU-11"]
NOTE = "on a plain white background"


@pytest.fixture
def review(
    examples: Examples, rivya_airflow_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A 12-product catalogue file; the example's folders emptied; returns the review folder."""
    catalogue = tmp_path / "products.json"
    catalogue.write_text(
        json.dumps(
            [
                {"sku": sku, "description": f"product {sku}", "style": "soft daylight"}
                for sku in PRODUCTS
            ]
        )
    )
    monkeypatch.setenv("RIVYA_CATALOGUE", str(catalogue))
    folder = examples.output_dir / "catalogue_review"
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _creates(emulator: Any) -> list[dict[str, Any]]:
    return [r for r in emulator.requests("/api/v1/generations") if r["method"] == "POST"]


def _digests(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob("*.png"))
    }


def _asset_extras(dag_run: Any) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [
            dict(extra)
            for extra in session.scalars(
                select(AssetEvent.extra)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(
                    AssetModel.name == "rivya_catalogue_published",
                    AssetEvent.source_run_id == dag_run.run_id,
                )
            )
        ]


def test_review_rejects_three_regenerates_only_those_and_publishes_all_twelve(
    examples: Examples, rivya_airflow_conn: Any, review: Path, hitl_responder: Any
) -> None:
    if not HITL_ANSWERABLE_IN_DAG_TEST:
        _assert_review_unanswerable_in_dag_test(examples, rivya_airflow_conn, review)
        return
    candidates = review / "candidates"
    at_first_review: dict[str, Any] = {}

    def snapshot() -> None:
        at_first_review["digests"] = _digests(candidates)
        at_first_review["creates"] = len(_creates(rivya_airflow_conn))

    first = hitl_responder(
        DAG_ID,
        "review_1",
        [f"Reject {key}" for key in REJECTED],
        map_index=0,
        params_input={"note": NOTE},
        on_waiting=snapshot,
    )
    second = hitl_responder(DAG_ID, "review_2", [APPROVE_ALL], map_index=0, params_input={})
    dag = examples.dag(DAG_ID)
    with first, second:
        dag_run = dag.test()
    assert first.error is None, first.error
    assert second.error is None, second.error
    assert str(dag_run.state) == "success", examples.task_states(dag_run)

    # The first review offered every product; its body showed each one's stored image.
    assert first.options == review_options(PRODUCTS)
    assert first.hitl_body is not None
    assert first.hitl_body.count("![") == 12
    assert at_first_review["creates"] == 12

    # Exactly the 3 rejects were generated again, each with the reviewer's note.
    creates = _creates(rivya_airflow_conn)[at_first_review["creates"] :]
    assert len(creates) == 3
    noted = [g["prompt"] for g in rivya_airflow_conn.generations() if NOTE in g["prompt"]]
    assert sorted(p.split("product ")[1][:6] for p in noted) == REJECTED
    assert examples.xcom(dag_run, "regenerate_1")["generated"] == 3
    assert examples.xcom(dag_run, "regenerate_1")["reused"] == 9
    after = _digests(candidates)
    for sku in PRODUCTS:
        name = f"{sku}_0.png"
        if sku in REJECTED:
            assert after[name] != at_first_review["digests"][name], sku
        else:
            assert after[name] == at_first_review["digests"][name], sku  # untouched

    # The second review listed exactly the 3 regenerated products.
    assert second.options == [APPROVE_ALL, REJECT_ALL, *(f"Reject {key}" for key in REJECTED)]
    assert second.hitl_body is not None
    assert second.hitl_body.count("![") == 3
    for key in REJECTED:
        assert key.replace("-", "\\-") in second.hitl_body

    # All 12 approved (9 in the first round, 3 in the second) are published as stored now.
    published = review / "published"
    assert _digests(published) == after
    outcome = examples.xcom(dag_run, "publish")
    assert sorted(outcome["published"]) == PRODUCTS
    assert outcome["rejected"] == []
    assert outcome["missing"] == []
    extras = _asset_extras(dag_run)
    assert len(extras) == 1
    assert sorted(extras[0]["rivya"]["published"]) == PRODUCTS


def test_approve_all_skips_the_next_rounds_and_pays_nothing_more(
    examples: Examples, rivya_airflow_conn: Any, review: Path, hitl_responder: Any
) -> None:
    if not HITL_ANSWERABLE_IN_DAG_TEST:
        _assert_review_unanswerable_in_dag_test(examples, rivya_airflow_conn, review)
        return
    with hitl_responder(DAG_ID, "review_1", [APPROVE_ALL], map_index=0) as first:
        dag_run = examples.dag(DAG_ID).test()
    assert first.error is None, first.error
    states = examples.task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert len(_creates(rivya_airflow_conn)) == 12
    assert states[("regenerate_1", -1)] == "skipped"  # only_keys=[]: nothing rejected
    assert states[("decide_2", -1)] == "success"
    assert states[("review_2", -1)] == "skipped"  # mapped over nothing: no review at all
    assert sorted(examples.xcom(dag_run, "publish")["published"]) == PRODUCTS
    assert _digests(review / "published") == _digests(review / "candidates")


def test_a_reject_in_the_last_review_is_not_published(
    examples: Examples, rivya_airflow_conn: Any, review: Path, hitl_responder: Any
) -> None:
    if not HITL_ANSWERABLE_IN_DAG_TEST:
        _assert_review_unanswerable_in_dag_test(examples, rivya_airflow_conn, review)
        return
    rejected = ["SKU-03", "SKU-04"]
    first = hitl_responder(DAG_ID, "review_1", [f"Reject {k}" for k in rejected], map_index=0)
    second = hitl_responder(DAG_ID, "review_2", [REJECT_ALL], map_index=0)
    with first, second:
        dag_run = examples.dag(DAG_ID).test()
    assert first.error is None, first.error
    assert second.error is None, second.error
    assert str(dag_run.state) == "success", examples.task_states(dag_run)
    assert len(_creates(rivya_airflow_conn)) == 14  # 12, then the 2 rejects once more
    outcome = examples.xcom(dag_run, "publish")
    assert outcome["rejected"] == rejected
    assert sorted(outcome["published"]) == sorted(set(PRODUCTS) - set(rejected))
    published = _digests(review / "published")
    assert sorted(published) == sorted(f"{k}_0.png" for k in PRODUCTS if k not in rejected)
    assert sorted(_asset_extras(dag_run)[0]["rivya"]["published"]) == outcome["published"]


def _assert_review_unanswerable_in_dag_test(
    examples: Examples, emulator: Any, review: Path
) -> None:
    """Airflow 3.1/3.2: the batch is generated, stored and paid once per product; the review
    cannot be answered inside ``dag.test()`` and fails; nothing is regenerated or published
    (README: a real scheduler answers it there, as the approval e2e shows)."""
    dag_run = examples.dag(DAG_ID).test()
    states = examples.task_states(dag_run)
    assert states[("generate", -1)] == "success", states
    assert states[("review_1", 0)] == "failed", states
    assert states[("publish", -1)] != "success"
    assert len(_creates(emulator)) == 12
    assert len(_digests(review / "candidates")) == 12
    assert not (review / "published").exists()


@pytest.mark.parametrize(
    ("rounds", "reviews", "regenerates"),
    [
        ("1", ["review_1"], []),
        ("3", ["review_1", "review_2", "review_3"], ["regenerate_1", "regenerate_2"]),
    ],
)
def test_the_number_of_reviews_is_set_by_rivya_review_rounds(
    rounds: str, reviews: list[str], regenerates: list[str]
) -> None:
    """Each review but the last may send rejects back; the last one's rejects stay rejected."""
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('review_dag', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "dag = module.example_rivya_catalogue_review()\n"
        "print(json.dumps(sorted(dag.task_ids)))\n"
    )
    path = Path(__file__).resolve().parents[2] / "dags_examples" / f"{DAG_ID}.py"
    env = {**os.environ, "RIVYA_REVIEW_ROUNDS": rounds}
    listed = subprocess.run(
        [sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    task_ids = json.loads(listed.stdout.strip().splitlines()[-1])
    assert [t for t in task_ids if t.startswith("review_") and "request" not in t] == reviews
    assert [t for t in task_ids if t.startswith("regenerate_")] == regenerates
    assert f"decide_{rounds}" in task_ids
    assert "publish" in task_ids
