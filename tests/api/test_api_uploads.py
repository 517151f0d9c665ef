"""Uploads: MIME sniffing, kind/model/size rules refused before any request, streaming."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]
import httpx
import pytest
import respx
from rivya_api_support import Harness

from rivya_provider.api.errors import RivyaValidationError
from rivya_provider.api.mime import sniff_mime
from rivya_provider.api.upload_source import check_upload
from rivya_provider.api.uploads import KIND_RULES, MB, UploadCheck

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64
UPLOADED = {"id": "file_1", "url": "https://rivya.ai/u/file_1", "kind": "image"}

SIGNATURES = [
    (PNG, None, "image/png"),
    (JPEG, None, "image/jpeg"),
    (WEBP, None, "image/webp"),
    (b"GIF89a" + b"\x00" * 16, None, "image/gif"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16, "video", "video/mp4"),
    (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 16, "audio", "audio/mp4"),
    (b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 16, "video", "video/quicktime"),
    (b"\x1a\x45\xdf\xa3" + b"\x00" * 16, "video", "video/webm"),
    (b"ID3\x03\x00" + b"\x00" * 16, "audio", "audio/mpeg"),
    (b"\xff\xfb\x90\x00" + b"\x00" * 16, "audio", "audio/mpeg"),
    (b"\xff\xf1\x50\x80" + b"\x00" * 16, "audio", "audio/aac"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 16, "audio", "audio/wav"),
    (b"OggS\x00\x02" + b"\x00" * 16, "audio", "audio/ogg"),
    (b"\x89PNG\r\n\x1a", None, None),  # 7 of the 8 signature bytes
    (b"hello, world\n", None, None),
    (b"", None, None),
]


@pytest.mark.parametrize(("head", "kind", "mime"), SIGNATURES)
def test_sniffing(head: bytes, kind: str | None, mime: str | None) -> None:
    assert sniff_mime(head, kind) == mime


def _multipart_file_part(request: httpx.Request) -> str:
    body = request.content.decode("latin-1")
    return body[body.index('name="file"') :]


def test_png_named_jpg_is_sent_as_png(
    api: Harness, router: respx.MockRouter, tmp_path: Path
) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(PNG)
    route = router.post("/api/v1/files").respond(201, json=UPLOADED)
    uploaded = api("upload_file", source, "image", model="qwen-image", client_request_id="c-1")
    assert uploaded.id == "file_1"
    assert uploaded.check == UploadCheck(  # what was checked is returned, not checked again
        name="photo.jpg",
        size_bytes=len(PNG),
        mime_type="image/png",
        kind="image",
        max_bytes=10 * MB,
    )
    request = route.calls.last.request
    part = _multipart_file_part(request)
    assert 'filename="photo.jpg"' in part
    assert "Content-Type: image/png" in part
    body = request.content.decode("latin-1")
    for field, value in (("kind", "image"), ("model", "qwen-image"), ("client_request_id", "c-1")):
        assert f'name="{field}"\r\n\r\n{value}\r\n' in body
    assert request.headers["Authorization"] == f"Bearer {api.config.api_key}"
    assert int(request.headers["Content-Length"]) == len(request.content)


@pytest.mark.parametrize(
    ("content", "kind", "model", "rule"),
    [
        (b"just some text, honest\n", "image", None, "not a recognised image format"),
        (b"", "image", None, "file: is empty"),
        (PNG, "video", None, "content is image/png, not accepted for video uploads"),
        (b"GIF89a" + b"\x00" * 40, "image", None, "content is image/gif, not accepted"),
        (PNG, "video", "qwen-image", "kind: model qwen-image accepts image files only"),
        (PNG, "document", None, "kind: must be one of image, video, audio"),
    ],
)
def test_bad_files_are_refused_before_any_request(
    api: Harness,
    router: respx.MockRouter,
    tmp_path: Path,
    content: bytes,
    kind: str,
    model: str | None,
    rule: str,
) -> None:
    source = tmp_path / "upload.png"
    source.write_bytes(content)
    route = router.post("/api/v1/files").respond(201, json=UPLOADED)
    with pytest.raises(RivyaValidationError, match=rule):
        api("upload_file", source, kind, model=model)
    assert route.call_count == 0
    with pytest.raises(RivyaValidationError, match=rule):
        check_upload(source, kind, model)


def _sized_png(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.write(PNG)
        handle.truncate(size)  # sparse: no real disk use
    return path


def test_size_limit(api: Harness, router: respx.MockRouter, tmp_path: Path) -> None:
    limit = 10 * MB
    assert KIND_RULES["image"].max_bytes == limit == 10_485_760
    route = router.post("/api/v1/files").respond(201, json=UPLOADED)
    too_big = _sized_png(tmp_path / "big.png", limit + 1)
    with pytest.raises(RivyaValidationError) as caught:
        api("upload_file", too_big, "image", model="qwen-image")
    assert caught.value.field == "file"
    assert "10485761 bytes, over the 10 MiB (10485760 bytes) limit" in caught.value.message
    assert route.call_count == 0
    at_limit = check_upload(_sized_png(tmp_path / "ok.png", limit), "image", "qwen-image")
    assert at_limit.size_bytes == limit


def test_check_upload_reports_and_restores_position(tmp_path: Path) -> None:
    handle = io.BytesIO(b"prefix" + PNG)
    handle.seek(6)
    check = check_upload(handle, "image", name="dir/ref.webp")
    assert (check.name, check.size_bytes, check.mime_type, check.kind) == (
        "ref.webp",
        len(PNG),
        "image/png",
        "image",
    )
    assert handle.tell() == 6


def test_check_upload_refuses_streams_it_cannot_rewind() -> None:
    with pytest.raises(RivyaValidationError, match="seekable"):
        check_upload(_OneShot(PNG), "image")


def test_fsspec_file_objects_work(api: Harness, router: respx.MockRouter) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/refs/cat.png", PNG)
    route = router.post("/api/v1/files").respond(201, json=UPLOADED)
    with fs.open("/bucket/refs/cat.png", "rb") as handle:
        check = check_upload(handle, "image", "qwen-image")
        assert (check.name, check.size_bytes, check.mime_type) == ("cat.png", len(PNG), "image/png")
        api("upload_file", handle, "image", model="qwen-image")
    request = route.calls.last.request
    assert PNG in request.content
    assert 'filename="cat.png"' in _multipart_file_part(request)
    assert "Content-Length" in request.headers


class _OneShot:
    """Non-seekable binary stream that records read sizes."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.reads: list[int] = []

    def read(self, size: int = -1, /) -> bytes:
        self.reads.append(size)
        return self._inner.read(size)


def test_non_seekable_stream_uploads_chunked(api: Harness, router: respx.MockRouter) -> None:
    route = router.post("/api/v1/files").respond(201, json=UPLOADED)
    api("upload_file", _OneShot(PNG + b"\x01" * 1000), name="x.png")
    request = route.calls.last.request
    assert PNG + b"\x01" * 1000 in request.content
    assert "Content-Length" not in request.headers
    assert request.headers["Transfer-Encoding"] == "chunked"


def test_non_seekable_stream_over_the_limit_is_stopped_while_streaming(
    api: Harness, router: respx.MockRouter
) -> None:
    router.post("/api/v1/files").respond(201, json=UPLOADED)
    source = _OneShot(PNG + b"\x00" * (10 * MB))
    with pytest.raises(RivyaValidationError, match="over the 10 MiB"):
        api("upload_file", source, name="x.png")


def test_upload_streams_in_chunks(
    api: Harness, router: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _sized_png(tmp_path / "big.png", 3 * MB)
    reads: list[int] = []
    real_open = open

    def spying_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if os.fspath(file) == os.fspath(path):
            return _ReadSpy(handle, reads)
        return handle

    monkeypatch.setattr("builtins.open", spying_open)
    route = router.post("/api/v1/files").respond(201, json=UPLOADED)
    api("upload_file", path)
    assert route.call_count == 1
    assert int(route.calls.last.request.headers["Content-Length"]) > 3 * MB
    assert reads
    assert max(reads) <= 64 * 1024  # never the whole file at once
    assert all(size >= 0 for size in reads)


class _ReadSpy:
    def __init__(self, inner: Any, reads: list[int]) -> None:
        self._inner = inner
        self._reads = reads

    def read(self, size: int = -1, /) -> bytes:
        self._reads.append(size)
        data: bytes = self._inner.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_client_request_id_length_is_checked(
    api: Harness, router: respx.MockRouter, tmp_path: Path
) -> None:
    source = tmp_path / "a.png"
    source.write_bytes(PNG)
    route = router.post("/api/v1/files").respond(201, json=UPLOADED)
    with pytest.raises(RivyaValidationError, match="client_request_id"):
        api("upload_file", source, client_request_id="x" * 129)
    assert route.call_count == 0


def test_missing_path_is_refused(api: Harness, tmp_path: Path) -> None:
    with pytest.raises(RivyaValidationError, match="cannot read"):
        api("upload_file", tmp_path / "nope.png")
    with pytest.raises(RivyaValidationError, match="not a regular file"):
        api("upload_file", tmp_path)


def test_uploaded_file_response_tolerance(api: Harness, router: respx.MockRouter) -> None:
    router.post("/api/v1/files").respond(
        201, json={"file": {"url": "https://x/f.webp", "mimeType": "image/webp", "sizeBytes": 9}}
    )
    uploaded = api("upload_file", io.BytesIO(WEBP), name="f.webp")
    assert uploaded.id is None
    assert uploaded.kind == "image"  # filled in from the request
    assert uploaded.as_reference().to_api() == {
        "url": "https://x/f.webp",
        "kind": "image",
        "mimeType": "image/webp",
    }


def test_get_file(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/files/file_1").respond(200, json=UPLOADED)
    assert api("get_file", "file_1").url == UPLOADED["url"]


@pytest.mark.parametrize("bad_id", ["", "..", "."])
def test_ids_cannot_escape_their_path(api: Harness, router: respx.MockRouter, bad_id: str) -> None:
    with pytest.raises(RivyaValidationError):
        api("get_file", bad_id)
    with pytest.raises(RivyaValidationError):
        api("get_generation", bad_id)


def test_ids_are_path_quoted(api: Harness, router: respx.MockRouter) -> None:
    route = router.get("/api/v1/files/a%2Fb%3Fc").respond(200, json=UPLOADED)
    api("get_file", "a/b?c")
    assert route.call_count == 1
