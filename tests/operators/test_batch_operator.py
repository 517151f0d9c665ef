"""[batch] RivyaBatchGenerateImagesOperator through ``dag.test()`` against the emulator."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.compat import AirflowFailException
from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator
from tests.operators.conftest import DagHarness
from tests.operators.test_generate_validation import FakeTaskInstance
from tests.operators.test_reupload_keys import _has_task_state_store

FAIL = "[[fail]]"  # the emulator fails a generation whose prompt holds it


def _items(count: int, failing: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"key": f"sku-{n:02d}", "prompt": f"product {n}" + (f" {FAIL}" if n in failing else "")}
        for n in range(count)
    ]


def _source(items: Any, out: Path, **kwargs: Any) -> str:
    arguments = "".join(f"        {name}={value!r},\n" for name, value in kwargs.items())
    return f"""
from __future__ import annotations
import datetime
from airflow.sdk import DAG
from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator

with DAG(dag_id="rivya_batch", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    RivyaBatchGenerateImagesOperator(
        task_id="batch",
        items={items!r},
        output_path={str(out)!r},
        poll_interval=0.2,
        retries=0,
{arguments}    )
"""


def _index(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def _creates(emulator: Any) -> list[dict[str, Any]]:
    return [r for r in emulator.requests("/api/v1/generations") if r["method"] == "POST"]


def _charges(emulator: Any) -> list[str]:
    return [e["generation_id"] for e in emulator.ledger()["entries"] if e["type"] == "charge"]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "inline"])
def test_a_batch_of_40_with_two_failures_stores_38_images_by_key_and_indexes_all(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path, deferrable: bool
) -> None:
    out = tmp_path / "out"
    _, run = dag_harness.run(
        _source(_items(40, failing=(7, 23)), out, deferrable=deferrable, max_failed_fraction=0.05)
    )
    assert run.state == "success"
    summary = dag_harness.xcom(run, "batch")
    assert summary["by_status"] == {"failed": 2, "succeeded": 38}
    assert summary["credits_spent"] == 38 * 4
    assert len(json.dumps(summary)) < 16 * 1024
    index = _index(out)
    assert [line["key"] for line in index] == [f"sku-{n:02d}" for n in range(40)]
    failed = {line["key"]: line["error"]["code"] for line in index if line["status"] == "failed"}
    assert failed == {"sku-07": "generation_failed", "sku-23": "generation_failed"}
    stored = sorted(p.name for p in out.glob("*.png"))
    assert stored == [f"sku-{n:02d}_0.png" for n in range(40) if n not in (7, 23)]
    succeeded = [line for line in index if line["status"] == "succeeded"]
    assert all(line["images"][0]["path"].endswith(f"/{line['key']}_0.png") for line in succeeded)
    charges = _charges(rivya_airflow_conn)
    assert sorted(charges) == sorted(line["generation_id"] for line in succeeded)  # once each
    # The two that failed were submitted once more in the same try (they fail for good here),
    # each under the next key of its series: 42 generations, nothing paid twice. Creates: 42
    # with Airflow 3.3's task state store (the record says the generation failed); 44 before it
    # (the failed one's key is replayed first, a request that costs nothing).
    creates = _creates(rivya_airflow_conn)
    assert len(creates) == (42 if _has_task_state_store() else 44)
    generations = rivya_airflow_conn.generations()
    assert len(generations) == 42
    retried = [g for g in generations if g["prompt"].startswith(("product 7 ", "product 23 "))]
    assert len(retried) == 4
    assert len({g["idempotency_key"] for g in retried}) == 4
    failed_ids = {line["generation_id"] for line in index if line["status"] == "failed"}
    assert failed_ids <= {g["id"] for g in retried}
    # Each generation's trace id names the Airflow task and the item (as the single operator's).
    traces = {g["prompt"]: g["client_request_id"] for g in rivya_airflow_conn.generations()}
    assert traces["product 5"].startswith("airflow:rivya_batch/")
    assert traces["product 5"].endswith("/sku-05")
    assert len(set(traces.values())) == 40


def test_failures_over_the_allowed_share_fail_the_task_after_storing_every_success(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _, run = dag_harness.run(_source(_items(6, failing=(2,)), out, deferrable=True))
    assert run.state == "failed"
    assert len(list(out.glob("*.png"))) == 5  # nothing paid for is lost by a failing batch
    assert [line["status"] for line in _index(out)].count("succeeded") == 5


def test_an_estimate_over_max_credits_creates_nothing(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    operator = RivyaBatchGenerateImagesOperator(
        task_id="batch", items=_items(40), output_path=str(tmp_path), max_credits=100
    )
    with pytest.raises(AirflowFailException, match=r"40 x 4 = 160 credits.*cap of 100"):
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert _creates(rivya_airflow_conn) == []
    assert rivya_airflow_conn.ledger()["entries"] == []


def test_check_balance_with_a_low_balance_creates_nothing(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    rivya_airflow_conn.configure(credits=50)
    operator = RivyaBatchGenerateImagesOperator(
        task_id="batch", items=_items(20), output_path=str(tmp_path), check_balance=True
    )
    with pytest.raises(AirflowFailException, match="balance of 50 credits"):
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert _creates(rivya_airflow_conn) == []


BAD_ITEMS: list[tuple[str, Any, str]] = [
    (
        "unknown-size",
        [*_items(3), {"key": "sku-x", "prompt": "p", "image_size": "huge"}],
        "items[3] (key 'sku-x').params.image_size",
    ),
    ("no-prompt", [{"key": "sku-a"}], "items[0] (key 'sku-a').prompt"),
    ("prompt-too-long", [{"key": "sku-a", "prompt": "x" * 5001}], "items[0] (key 'sku-a').prompt"),
    ("duplicate-key", [*_items(2), {"key": "sku-00", "prompt": "p"}], "items[2].key"),
    ("bad-key", [{"key": "sku 1", "prompt": "p"}], "items[0].key"),
    ("typo-field", [{"key": "a", "promt": "p"}], "items[0]: unknown field(s) promt"),
    ("not-a-dict", ["a prompt"], "items[0]"),
    ("items-number", 42, "items:"),
    ("items-missing-file", "/nonexistent/items.jsonl", "items:"),
    ("bad-params", [{"key": "a", "prompt": "p", "model_params": "x"}], "model_params"),
    (
        "bad-reference",
        [
            {
                "key": "a",
                "prompt": "p",
                "reference_media_items": [{"url": "ftp://x/a.png", "kind": "image"}],
            }
        ],
        "items[0] (key 'a')",
    ),
]


@pytest.mark.parametrize(
    ("items", "named"), [c[1:] for c in BAD_ITEMS], ids=[c[0] for c in BAD_ITEMS]
)
def test_a_bad_item_is_named_by_key_and_field_before_any_request(
    rivya_airflow_conn: Any, tmp_path: Path, items: Any, named: str
) -> None:
    operator = RivyaBatchGenerateImagesOperator(
        task_id="batch", items=items, output_path=str(tmp_path)
    )
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert named in str(raised.value)
    assert rivya_airflow_conn.requests() == []  # not even the catalogue
    assert rivya_airflow_conn.ledger()["entries"] == []


def test_items_from_a_json_lines_file(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    items_file = tmp_path / "items.jsonl"
    lines = [json.dumps(item) for item in _items(3)]
    items_file.write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")
    out = tmp_path / "out"
    _, run = dag_harness.run(
        _source(str(items_file), out, deferrable=True, image_size="landscape_4_3")
    )
    assert run.state == "success"
    assert sorted(p.name for p in out.glob("*.png")) == [
        "sku-00_0.png",
        "sku-01_0.png",
        "sku-02_0.png",
    ]


def test_a_retry_after_a_crash_between_submit_and_defer_charges_nothing_new(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed-once"
    out = tmp_path / "out"
    source = f"""
from __future__ import annotations
import datetime
from pathlib import Path
from airflow.sdk import DAG
from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator


class CrashOnce(RivyaBatchGenerateImagesOperator):
    def _wait(self, round_state, *args):
        marker = Path({str(marker)!r})
        if not marker.exists():
            marker.write_text(",".join(g for g in round_state["ids"] if g))
            raise RuntimeError("simulated worker crash after the submissions")
        return super()._wait(round_state, *args)


with DAG(dag_id="rivya_batch_rt", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    CrashOnce(
        task_id="batch",
        items={_items(10)!r},
        output_path={str(out)!r},
        deferrable=True,
        poll_interval=0.2,
        retries=1,
        retry_delay=datetime.timedelta(seconds=0),
    )
"""
    _, run = dag_harness.run(source)
    assert run.state == "success"
    first_ids = marker.read_text().split(",")
    index = _index(out)
    assert [line["generation_id"] for line in index] == first_ids  # the retry reattached
    assert sorted(_charges(rivya_airflow_conn)) == sorted(first_ids)
    reserves = [e for e in rivya_airflow_conn.ledger()["entries"] if e["type"] == "reserve"]
    assert len(reserves) == 10


def test_under_a_rate_limit_the_batch_completes(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    rivya_airflow_conn.configure(rate_limit=8)
    out = tmp_path / "out"
    _, run = dag_harness.run(_source(_items(20), out, deferrable=True))
    assert run.state == "success"
    requests = rivya_airflow_conn.requests("/api/v1/")
    assert 429 in [r["status"] for r in requests]  # the limit was met, and absorbed
    # Retry-After (1 s here) held the whole process: the worker submitting and the trigger
    # polling share one budget. Requests already in flight may land just after a 429.
    arrived = [datetime.datetime.fromisoformat(r["time"]).timestamp() for r in requests]
    for limited_at in [t for t, r in zip(arrived, requests, strict=True) if r["status"] == 429]:
        during = [t - limited_at for t in arrived if 0.25 < t - limited_at < 0.95]
        assert during == [], f"sent {during} s after a 429 that said Retry-After: 1"
    assert len(list(out.glob("*.png"))) == 20
    assert len(_charges(rivya_airflow_conn)) == 20


def test_running_the_same_task_again_replays_and_does_not_download_again(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    """A retry (same task identity) replays every item, and images an earlier try stored
    intact are not downloaded again; a removed or damaged image is."""
    out = tmp_path / "out"

    def run() -> dict[str, Any]:
        operator = RivyaBatchGenerateImagesOperator(
            task_id="batch",
            items=_items(5),
            output_path=str(out),
            deferrable=False,
            poll_interval=0.2,
        )
        return operator.execute({"ti": FakeTaskInstance(task_id="batch")})  # type: ignore[arg-type]

    def media_gets() -> int:
        return len([r for r in rivya_airflow_conn.requests() if "/media/" in r["path"]])

    first = run()
    assert first["by_status"] == {"succeeded": 5}
    assert media_gets() == 5
    intact = (out / "sku-01_0.png").read_bytes()
    (out / "sku-01_0.png").write_bytes(intact[:100])  # damaged
    (out / "sku-03_0.png").unlink()
    second = run()
    assert second["by_status"] == {"succeeded": 5}
    assert media_gets() == 7  # only the damaged and the removed one came again
    assert (out / "sku-03_0.png").exists()
    assert (out / "sku-01_0.png").read_bytes() == intact
    reserves = [e for e in rivya_airflow_conn.ledger()["entries"] if e["type"] == "reserve"]
    assert len(reserves) == 5  # the second run replayed: nothing paid twice


def test_once_the_duration_is_learned_each_generation_is_checked_about_once(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    """Fewer polls at scale: the first batch polls on the shared schedule (2 s, then 7 s for a
    4 s generation) and teaches this process the model's duration; the second batch's first
    checks wait for each generation's expected completion, so one check finds it done."""
    rivya_airflow_conn.configure(latency=4)
    count = 6

    def status_checks_per_item(task_id: str) -> float:
        def checks() -> int:
            return sum(
                1
                for r in rivya_airflow_conn.requests("/api/v1/generations/")
                if r["method"] == "GET"
            )

        before = checks()
        operator = RivyaBatchGenerateImagesOperator(
            task_id=task_id, items=_items(count), output_path=str(tmp_path / task_id)
        )
        operator.deferrable = False
        summary = operator.execute({"ti": FakeTaskInstance(task_id=task_id)})  # type: ignore[arg-type]
        assert summary["by_status"] == {"succeeded": count}
        return (checks() - before - count) / count  # minus the resume's one read per item

    first = status_checks_per_item("first")
    second = status_checks_per_item("second")
    assert first >= 2.0  # 2 s: still running; 7 s: done
    assert second <= 1.2  # at 4.2 s: done (at most one item checked twice)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "inline"])
def test_items_whose_generation_failed_once_are_submitted_again_in_the_same_try(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path, deferrable: bool
) -> None:
    rivya_airflow_conn.configure(fail_next=2)  # the first two generations fail (a blip)
    out = tmp_path / "out"
    _, run = dag_harness.run(_source(_items(6), out, deferrable=deferrable))
    assert run.state == "success"
    summary = dag_harness.xcom(run, "batch")
    assert summary["by_status"] == {"succeeded": 6}
    assert summary["credits_spent"] == 6 * 4
    index = _index(out)
    assert [line["status"] for line in index] == ["succeeded"] * 6
    assert len(list(out.glob("*.png"))) == 6
    generations = rivya_airflow_conn.generations()
    assert len(generations) == 8  # 6 + the 2 failed ones once more
    assert len({g["idempotency_key"] for g in generations}) == 8
    assert sorted(_charges(rivya_airflow_conn)) == sorted(line["generation_id"] for line in index)
    reserves = [e for e in rivya_airflow_conn.ledger()["entries"] if e["type"] == "reserve"]
    refunds = [e for e in rivya_airflow_conn.ledger()["entries"] if e["type"] == "refund"]
    assert (len(reserves), len(refunds)) == (8, 2)  # the failed ones' credits came back


def test_only_items_whose_generation_failed_are_submitted_again() -> None:
    from rivya_provider.batch import failed_positions
    from rivya_provider.triggers.batch import BatchEvent

    state = {"ids": ["g0", None, "g2", "g3"]}  # item 1 was refused at submit: never waited for
    event = BatchEvent(
        status="complete",
        succeeded=[0],
        failed={1: ("generation_failed", "x"), 2: ("not_found", "gone")},
        unreadable=[2],
    )
    assert failed_positions(state, event) == [2]  # rank 1 is item 2; item 3 did not fail
