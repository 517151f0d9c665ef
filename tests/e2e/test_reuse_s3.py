"""[incremental] Reuse on object storage: a batch refreshed in ``s3://`` lists the prefix once and
reads its index, and never HEADs or GETs each image.

A local S3-compatible server (moto's, dev group ``s3``) is started by the test; Airflow reaches it
the way users reach S3: ``ObjectStoragePath("s3://<conn_id>@bucket/...")`` through the Amazon
provider and an ``aws`` connection whose ``endpoint_url`` points at it. Every request the server
answers is read from its request log. Under ``tests/e2e`` because the Airflow matrix installs only
the ``test`` group.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator
from tests.operators.test_generate_validation import FakeTaskInstance

BUCKET = "catalogue"
REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+"')
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some status lines


class S3Server:
    """moto's server on a free loopback port, with the requests it answered."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=True)
        self.log: list[tuple[str, str]] = []
        server = self

        class Recorder(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                match = REQUEST_LINE.search(ANSI.sub("", record.getMessage()))
                if match:
                    server.log.append((match["method"], match["target"]))

        self.recorder = Recorder()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> S3Server:
        werkzeug = logging.getLogger("werkzeug")
        werkzeug.addHandler(self.recorder)
        werkzeug.setLevel(logging.INFO)
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        logging.getLogger("werkzeug").removeHandler(self.recorder)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    import boto3

    with S3Server() as server:
        connection = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": server.endpoint, "region_name": "us-east-1"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", json.dumps(connection))
        boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        server.log.clear()
        yield server


def _items(changed: int | None = None) -> list[dict[str, Any]]:
    return [
        {"key": f"SKU-{n:03d}", "prompt": f"product {n}" + (" in red" if n == changed else "")}
        for n in range(40)
    ]


def _batch(items: list[dict[str, Any]], run: str) -> dict[str, Any]:
    operator = RivyaBatchGenerateImagesOperator(
        task_id="batch",
        items=items,
        output_path=f"s3://aws_moto@{BUCKET}/images",
        skip_unchanged=True,
        deferrable=False,
        poll_interval=0.2,
        retries=0,
    )
    result: dict[str, Any] = operator.execute({"ti": FakeTaskInstance(run_id=run)})  # type: ignore[arg-type]
    return result


def _creates(emulator: Any) -> int:
    return sum(1 for r in emulator.requests("/api/v1/generations") if r["method"] == "POST")


def test_a_reused_batch_on_s3_lists_the_prefix_and_reads_no_image(
    rivya_airflow_conn: Any, s3: S3Server
) -> None:
    first = _batch(_items(), "run-1")
    assert (first["generated"], first["reused"]) == (40, 0)
    assert first["index"] == f"s3://aws_moto@{BUCKET}/images/index.jsonl"
    image_puts = [t for m, t in s3.log if m == "PUT" and t.split("?")[0].endswith("_0.png")]
    assert len(image_puts) == 40

    s3.log.clear()
    again = _batch(_items(), "run-2")
    assert (again["generated"], again["reused"], again["failed"]) == (0, 40, 0)
    assert _creates(rivya_airflow_conn) == 40
    requests = list(s3.log)
    lists = [t for m, t in requests if m == "GET" and "list-type=2" in t]
    objects = [(m, t.split("?")[0]) for m, t in requests if "list-type=2" not in t]
    index, summary = f"/{BUCKET}/images/index.jsonl", f"/{BUCKET}/images/summary.json"
    sheet = f"/{BUCKET}/images/index.html"
    # The output check (the folder and the bucket), one listing of the folder and one of its
    # records folder, the index read (its size comes from the listing), and the new summary,
    # contact sheet and index, each one PUT of the finished object (no temporary and copy). No
    # image, no record.
    assert len(lists) == 3, requests
    assert sorted(objects) == sorted(
        [
            ("HEAD", f"/{BUCKET}/images"),
            ("HEAD", f"/{BUCKET}"),
            ("GET", index),
            ("PUT", summary),
            ("PUT", sheet),
            ("PUT", index),
        ]
    ), requests
    assert len(requests) == 9

    s3.log.clear()
    changed = _batch(_items(changed=7), "run-3")
    assert (changed["generated"], changed["reused"]) == (1, 39)
    assert _creates(rivya_airflow_conn) == 41
    puts = [t.split("?")[0] for m, t in s3.log if m == "PUT"]
    assert f"/{BUCKET}/images/SKU-007_0.png" in puts or any("SKU-007_0" in t for t in puts), s3.log
