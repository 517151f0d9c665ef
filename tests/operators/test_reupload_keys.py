"""[hardening] Re-uploading the same reference must not make a paid generation new work.

A re-run uploads its reference again and gets a new URL. The upload item's ``sha256`` stands
for the file in the idempotency key, so the key stays; with Airflow 3.3's task state store the
retry reattaches to the generation it paid for. Without a store (3.1, 3.2) the API holds the
key with the old body: the operator warns and pays once more (README, Supported versions).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.operators.conftest import DagHarness

REFERENCE = (
    Path(__file__).resolve().parents[2] / "dags_examples" / "assets" / "reference_magenta.png"
)


def _has_task_state_store() -> bool:
    from airflow.sdk.execution_time import task_runner

    return hasattr(task_runner, "TaskStateStoreAccessor")


def _source(marker: Path, out: Path) -> str:
    return f"""
from __future__ import annotations
import datetime
from pathlib import Path
from airflow.sdk import DAG
from rivya_provider.operators.generate import RivyaGenerateImageOperator
from rivya_provider.operators.upload import RivyaFileUploadOperator


class UploadEachTry(RivyaGenerateImageOperator):
    \"\"\"Uploads its reference at the start of every try (as a re-run of upload -> generate
    does), then crashes once after the paid submit, before deferring.\"\"\"

    def execute(self, context):
        upload = RivyaFileUploadOperator(task_id="inner_upload", source={str(REFERENCE)!r})
        self.reference_media_items = [upload.execute(context)]
        with Path({str(marker)!r} + ".urls").open("a") as urls:
            urls.write(self.reference_media_items[0]["url"] + "\\n")
        return super().execute(context)

    def defer_until_terminal(self, generation_id, *args):
        marker = Path({str(marker)!r})
        if not marker.exists():
            marker.write_text(generation_id)
            raise RuntimeError("simulated worker crash after submit")
        return super().defer_until_terminal(generation_id, *args)


with DAG(dag_id="rivya_reupload", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    UploadEachTry(
        task_id="generate",
        prompt="in the colours of the reference",
        output_path={str(out)!r},
        deferrable=True,
        poll_interval=0.2,
        retries=1,
        retry_delay=datetime.timedelta(seconds=0),
    )
"""


def test_a_retry_that_uploads_the_reference_again_keeps_the_idempotency_key(
    dag_harness: DagHarness,
    rivya_airflow_conn: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = tmp_path / "crashed-once"
    caplog.set_level(logging.WARNING, logger="rivya_provider")
    _, run = dag_harness.run(_source(marker, tmp_path / "out"))
    assert run.state == "success"
    urls = Path(f"{marker}.urls").read_text().split()
    assert len(urls) == 2
    assert urls[0] != urls[1]  # the retry uploaded again and got a new URL
    creates = [
        r for r in rivya_airflow_conn.requests("/api/v1/generations") if r["method"] == "POST"
    ]
    manifest = dag_harness.xcom(run, "generate")
    charges = [
        e["generation_id"] for e in rivya_airflow_conn.ledger()["entries"] if e["type"] == "charge"
    ]
    if _has_task_state_store():
        # Airflow 3.3+: the retry finds its record under the same key and reattaches with a GET.
        assert charges == [manifest["generation_id"]]
        assert marker.read_text() == manifest["generation_id"]
        assert len(creates) == 1  # the retry sent no create at all
    else:
        # Airflow 3.1/3.2: no record; the API holds the key with the first body (409), so the
        # retry says so and submits under its own series: paid once more, never failed.
        assert len(charges) == 2
        assert "paid again" in caplog.text


def test_the_upload_item_carries_the_digest_of_the_uploaded_bytes(
    dag_harness: DagHarness, rivya_airflow_conn: Any
) -> None:
    from rivya_provider.operators.upload import RivyaFileUploadOperator

    item = RivyaFileUploadOperator(task_id="u", source=str(REFERENCE)).execute({})
    assert item["sha256"] == hashlib.sha256(REFERENCE.read_bytes()).hexdigest()
    sent = [r for r in rivya_airflow_conn.requests("/api/v1/files") if r["method"] == "POST"]
    assert len(sent) == 1
