"""RivyaFileUploadOperator: local checks before any request, streamed uploads, generate wiring."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from rivya_provider.api.uploads import MB
from rivya_provider.compat import AirflowFailException
from rivya_provider.operators.upload import RivyaFileUploadOperator
from tests.operators.conftest import DagHarness
from tests.operators.test_generate_validation import FakeTaskInstance

REFERENCE_COLOUR = (200, 30, 60)


def _png_bytes(colour: tuple[int, int, int] = REFERENCE_COLOUR, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="GIF")
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _oversized_png(path: Path) -> str:
    with path.open("wb") as handle:
        handle.write(_png_bytes())
        handle.truncate(10 * MB + 1)
    return str(path)


BAD_INPUTS = {
    "missing-file": (lambda d: str(d / "nope.png"), {}, "does not exist"),
    "directory": (lambda d: str(d), {}, "is a directory"),
    "empty-file": (lambda d: _write(d / "empty.png", b""), {}, "empty"),
    "over-10-MB": (lambda d: _oversized_png(d / "big.png"), {}, "10"),
    "text-named-png": (lambda d: _write(d / "notes.png", b"I am text\n" * 20), {}, "content"),
    "gif": (lambda d: _write(d / "anim.gif", _gif_bytes()), {}, "image/gif, not accepted"),
    "truncated-png-header": (lambda d: _write(d / "cut.png", _png_bytes()[:5]), {}, "content"),
    "video-for-qwen-image": (
        lambda d: _write(d / "ref.png", _png_bytes()),
        {"kind": "video"},
        "video",
    ),
    "unknown-kind": (lambda d: _write(d / "ref.png", _png_bytes()), {"kind": "hologram"}, "kind"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_fails_before_any_request(
    rivya_airflow_conn: Any, tmp_path: Path, case: str
) -> None:
    make_source, kwargs, rule = BAD_INPUTS[case]
    operator = RivyaFileUploadOperator(task_id="upload", source=make_source(tmp_path), **kwargs)
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    message = str(raised.value)
    assert rule in message.lower(), message
    assert rivya_airflow_conn.requests() == []


def test_png_named_jpg_uploads_as_png_from_a_file_uri(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    data = _png_bytes()
    source = tmp_path / "photo.jpg"
    source.write_bytes(data)
    item = RivyaFileUploadOperator(task_id="upload", source=f"file://{source}").execute(
        {"ti": FakeTaskInstance()}  # type: ignore[arg-type]
    )
    assert item["kind"] == "image"
    assert item["mimeType"] == "image/png"
    assert item["name"] == "photo.jpg"
    assert item["file_id"].startswith("file_")
    assert httpx.get(item["url"]).content == data
    assert rivya_airflow_conn.api_key not in repr(item)


def test_memory_object_storage_source(rivya_airflow_conn: Any, memory_fs: Any) -> None:
    data = _png_bytes((10, 200, 10))
    memory_fs.pipe("/refs/green.png", data)
    item = RivyaFileUploadOperator(task_id="upload", source="memory://refs/green.png").execute(
        {"ti": FakeTaskInstance()}  # type: ignore[arg-type]
    )
    assert item["mimeType"] == "image/png"
    assert item["name"] == "green.png"
    assert httpx.get(item["url"]).content == data


def test_upload_then_generate_with_the_reference(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    reference = tmp_path / "reference.png"
    reference.write_bytes(_png_bytes())
    out = tmp_path / "out"
    source = f"""
from __future__ import annotations
import datetime
from airflow.sdk import DAG
from rivya_provider.operators.generate import RivyaGenerateImageOperator
from rivya_provider.operators.upload import RivyaFileUploadOperator

with DAG(dag_id="rivya_upload_generate", schedule=None,
         start_date=datetime.datetime(2026, 1, 1)) as dag:
    upload = RivyaFileUploadOperator(task_id="upload", source={str(reference)!r})
    RivyaGenerateImageOperator(
        task_id="generate",
        prompt="in the style of the reference",
        image_size="square",
        reference_media_items=upload.output,
        output_path={str(out)!r},
        deferrable=True,
        poll_interval=0.2,
    )
"""
    _, run = dag_harness.run(source)
    assert run.state == "success"
    uploaded = dag_harness.xcom(run, "upload")
    manifest = dag_harness.xcom(run, "generate")
    stored = Path(manifest["images"][0]["path"].removeprefix("file://"))
    with Image.open(stored) as image:
        # The emulator paints the frame in the reference's average colour (its documented rule).
        assert image.convert("RGB").getpixel((0, 0)) == REFERENCE_COLOUR
    generation = next(
        g for g in rivya_airflow_conn.generations() if g["id"] == manifest["generation_id"]
    )
    assert uploaded["url"] in str(generation)
