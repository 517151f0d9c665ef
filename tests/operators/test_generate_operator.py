"""RivyaGenerateImageOperator through ``dag.test()`` against the emulator over real HTTP."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.operators.conftest import DagHarness

DAG_HEADER = """
from __future__ import annotations
import datetime
from airflow.sdk import DAG
from rivya_provider.operators.generate import RivyaGenerateImageOperator
"""


def _dag_source(body: str, **dag_kwargs: Any) -> str:
    kwargs = ", ".join(f"{k}={v!r}" for k, v in dag_kwargs.items())
    return (
        DAG_HEADER
        + "\nwith DAG(dag_id=DAG_ID, schedule=None, start_date=datetime.datetime(2026, 1, 1)"
        + (f", {kwargs}" if kwargs else "")
        + ") as dag:\n"
        + "\n".join("    " + line for line in body.strip().splitlines())
        + "\n"
    )


def _with_id(source: str, dag_id: str) -> str:
    return source.replace("DAG_ID", repr(dag_id), 1)


def _charges(ledger: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in ledger["entries"]:
        if entry["type"] == "charge":
            counts[entry["generation_id"]] = counts.get(entry["generation_id"], 0) + 1
    return counts


def _local(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


def _assert_image_files(manifest: dict[str, Any], fmt: str, size: tuple[int, int]) -> None:
    assert manifest["status"] == "succeeded"
    assert manifest["images"], manifest
    for image in manifest["images"]:
        data = _local(image["path"]).read_bytes()
        assert len(data) == image["size_bytes"]
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == fmt
            assert picture.size == size
        assert _local(image["path"]).name.startswith(manifest["generation_id"])


def test_deferrable_run_stores_a_valid_png_and_charges_once(
    dag_harness: DagHarness,
    rivya_airflow_conn: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rivya_provider.triggers.generation import RivyaGenerationTrigger

    # dag.test() runs triggers inline, in this process: record every trigger that runs.
    triggered: list[dict[str, Any]] = []
    original_run = RivyaGenerationTrigger.run

    def recording_run(self: RivyaGenerationTrigger) -> Any:
        triggered.append(self.serialize()[1])
        return original_run(self)

    monkeypatch.setattr(RivyaGenerationTrigger, "run", recording_run)
    out = tmp_path / "out"
    source = _dag_source(
        f"""
RivyaGenerateImageOperator(
    task_id="generate",
    prompt="a lighthouse at dawn, {{{{ ds }}}}",
    image_size="square_hd",
    output_path={str(out)!r},
    deferrable=True,
    poll_interval=0.2,
)
"""
    )
    _, run = dag_harness.run(_with_id(source, "rivya_deferrable"))
    assert run.state == "success"
    manifest = dag_harness.xcom(run, "generate")
    _assert_image_files(manifest, "PNG", (1024, 1024))
    assert manifest["final_credits"] == 4
    assert manifest["client_request_id"].startswith("airflow:rivya_deferrable/generate/")
    assert dag_harness.xcom(run, "generate", key="generation_id") == manifest["generation_id"]
    # Only the final files remain: no temporary .part files.
    assert sorted(p.name for p in out.iterdir()) == [_local(manifest["images"][0]["path"]).name]

    emulator = rivya_airflow_conn
    assert _charges(emulator.ledger()) == {manifest["generation_id"]: 1}
    # It really deferred: one trigger ran for this generation, and it polled with GETs only.
    assert [kwargs["generation_id"] for kwargs in triggered] == [manifest["generation_id"]]
    requests = emulator.requests()
    creates = [r for r in requests if r["method"] == "POST"]
    assert len(creates) == 1
    polls = [r for r in requests if r["path"].startswith("/api/v1/generations/")]
    assert polls
    assert all(r["method"] == "GET" for r in polls)
    assert "idempotency-key" in creates[0]["headers_present"]
    # The key is in no log line, and no media request carried it.
    output = capfd.readouterr()
    assert emulator.api_key not in output.out + output.err
    assert emulator.api_key not in json.dumps(manifest)
    media = [r for r in requests if "/api/v1/" not in r["path"]]
    assert media
    assert all("authorization" not in r["headers_present"] for r in media)


def test_sync_path_waits_in_the_worker_and_writes_jpeg(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    source = _dag_source(
        f"""
RivyaGenerateImageOperator(
    task_id="generate",
    prompt="a red bicycle",
    image_size="landscape_16_9",
    output_format="jpeg",
    output_path={str(tmp_path)!r},
    deferrable=False,
    poll_interval=0.2,
)
"""
    )
    _, run = dag_harness.run(_with_id(source, "rivya_sync"))
    assert run.state == "success"
    manifest = dag_harness.xcom(run, "generate")
    _assert_image_files(manifest, "JPEG", (1024, 576))
    assert manifest["images"][0]["path"].endswith(".jpg")


def test_expand_over_three_prompts_makes_three_generations(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    source = _dag_source(
        f"""
RivyaGenerateImageOperator.partial(
    task_id="generate",
    image_size="square",
    output_path={str(tmp_path)!r},
    deferrable=True,
    poll_interval=0.2,
).expand(prompt=["a cat", "a dog", "a fox"])
"""
    )
    _, run = dag_harness.run(_with_id(source, "rivya_expand"))
    assert run.state == "success"
    manifests = [dag_harness.xcom(run, "generate", map_index=i) for i in range(3)]
    ids = {m["generation_id"] for m in manifests}
    assert len(ids) == 3
    for manifest in manifests:
        _assert_image_files(manifest, "PNG", (512, 512))
    assert _charges(rivya_airflow_conn.ledger()) == dict.fromkeys(ids, 1)


def test_failed_generation_fails_the_task_and_spends_nothing(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    source = _dag_source(
        f"""
RivyaGenerateImageOperator(
    task_id="generate",
    prompt="this one breaks [[fail]]",
    output_path={str(tmp_path)!r},
    deferrable=True,
    poll_interval=0.2,
    retries=0,
)
"""
    )
    _, run = dag_harness.run(_with_id(source, "rivya_failed"))
    assert run.state == "failed"
    ledger = rivya_airflow_conn.ledger()
    assert _charges(ledger) == {}
    assert {e["type"] for e in ledger["entries"]} == {"reserve", "refund"}
    assert list(tmp_path.iterdir()) == []


def test_deadline_timeout_fails_the_task(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    rivya_airflow_conn.configure(latency=30)
    source = _dag_source(
        f"""
RivyaGenerateImageOperator(
    task_id="generate",
    prompt="slow",
    output_path={str(tmp_path)!r},
    deferrable=True,
    poll_interval=0.2,
    timeout=1.5,
    retries=0,  # a retry would reattach and wait again (the default: see test_default_retries)
)
"""
    )
    _, run = dag_harness.run(_with_id(source, "rivya_timeout"))
    assert run.state == "failed"
    assert list(tmp_path.iterdir()) == []


def test_retry_after_crash_between_submit_and_defer_is_charged_once(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    """A worker dying after the create but before deferring must not pay twice on retry."""
    marker = tmp_path / "crashed-once"
    source = (
        DAG_HEADER
        + f"""
import datetime as _dt
from pathlib import Path


class CrashOnceOperator(RivyaGenerateImageOperator):
    def defer_until_terminal(self, generation_id, *args):
        marker = Path({str(marker)!r})
        if not marker.exists():
            marker.write_text(generation_id)
            raise RuntimeError("simulated worker crash after submit")
        return super().defer_until_terminal(generation_id, *args)


with DAG(dag_id="rivya_retry", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    CrashOnceOperator(
        task_id="generate",
        prompt="charged once, please",
        output_path={str(tmp_path / "out")!r},
        deferrable=True,
        poll_interval=0.2,
        retries=1,
        retry_delay=_dt.timedelta(seconds=0),
    )
"""
    )
    _, run = dag_harness.run(source)
    assert run.state == "success"
    manifest = dag_harness.xcom(run, "generate")
    assert marker.read_text() == manifest["generation_id"]
    ledger = rivya_airflow_conn.ledger()
    assert _charges(ledger) == {manifest["generation_id"]: 1}
    assert [e["type"] for e in ledger["entries"]].count("reserve") == 1


def test_wait_for_completion_false_then_sensor(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    source = (
        DAG_HEADER
        + f"""
from rivya_provider.sensors.generation import RivyaGenerationSensor

with DAG(dag_id="rivya_sensor", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    submit = RivyaGenerateImageOperator(
        task_id="submit", prompt="later", wait_for_completion=False
    )
    wait = RivyaGenerationSensor(
        task_id="wait",
        generation_id="{{{{ ti.xcom_pull(task_ids='submit', key='generation_id') }}}}",
        output_path={str(tmp_path)!r},
        deferrable=True,
        poll_interval=0.2,
    )
    submit >> wait
"""
    )
    _, run = dag_harness.run(source)
    assert run.state == "success"
    submitted = dag_harness.xcom(run, "submit")
    assert submitted["status"] in ("queued", "processing")
    assert submitted["images"] == []
    waited = dag_harness.xcom(run, "wait")
    assert waited["generation_id"] == submitted["generation_id"]
    _assert_image_files(waited, "PNG", (1024, 1024))
