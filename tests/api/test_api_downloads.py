"""Downloads: streamed, size-limited, hashed, and the key only ever sent to the API's origin."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from rivya_api_support import BASE_URL, MEDIA_URL, Harness

from rivya_provider.api.errors import (
    DownloadTooLargeError,
    NotFoundError,
    RivyaError,
    RivyaValidationError,
    TransportError,
)

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.mark.parametrize(
    ("url", "authorized"),
    [
        (f"{BASE_URL}/media/out.png", True),  # the API's own origin
        (f"{MEDIA_URL}/media/out.png", False),  # same port, other host name
        ("http://127.0.0.1:9999/media/out.png", False),  # same host, other port
        ("https://127.0.0.1:8765/media/out.png", False),  # same host and port, other scheme
        ("https://cdn.example.com/out.png", False),
    ],
)
def test_authorization_only_to_the_api_origin(
    api: Harness, router: respx.MockRouter, url: str, authorized: bool
) -> None:
    route = router.get(url).respond(200, content=IMAGE, headers={"Content-Type": "image/png"})
    sink = io.BytesIO()
    result = api("download", url, sink, max_bytes=1_000_000)
    headers = route.calls.last.request.headers
    assert ("Authorization" in headers) is authorized
    if authorized:
        assert headers["Authorization"] == f"Bearer {api.config.api_key}"
    assert headers["User-Agent"].startswith("airflow-provider-rivya/")
    assert sink.getvalue() == IMAGE
    assert result.size_bytes == len(IMAGE)
    assert result.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert result.content_type == "image/png"


def test_redirect_to_another_host_drops_the_key(api: Harness, router: respx.MockRouter) -> None:
    router.get(f"{BASE_URL}/media/out.png").respond(
        302, headers={"Location": f"{MEDIA_URL}/cdn/out.png"}
    )
    cdn = router.get(f"{MEDIA_URL}/cdn/out.png").respond(200, content=IMAGE)
    sink = io.BytesIO()
    api("download", f"{BASE_URL}/media/out.png", sink, max_bytes=1_000_000)
    assert "Authorization" not in cdn.calls.last.request.headers
    assert sink.getvalue() == IMAGE


def test_api_calls_do_not_follow_redirects(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").respond(301, headers={"Location": "https://elsewhere/x"})
    with pytest.raises(RivyaError, match="unexpected redirect"):
        api("get_credits")


def _chunks(data: bytes, size: int = 100) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class _Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body without Content-Length that may break after some bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._data = data
        self._fail_after = fail_after

    def _parts(self) -> Iterator[bytes]:
        sent = 0
        for chunk in _chunks(self._data):
            if self._fail_after is not None and sent >= self._fail_after:
                raise httpx.ReadError("connection reset")
            sent += len(chunk)
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._parts():
            yield chunk


def test_max_bytes_aborts_an_undeclared_body(api: Harness, router: respx.MockRouter) -> None:
    url = f"{MEDIA_URL}/big.png"
    router.get(url).mock(return_value=httpx.Response(200, stream=_Body(IMAGE)))
    sink = io.BytesIO()
    limit = len(IMAGE) - 1
    with pytest.raises(DownloadTooLargeError) as caught:
        api("download", url, sink, max_bytes=limit)
    assert f"{limit}-byte download limit" in caught.value.message
    assert len(sink.getvalue()) <= limit


def test_max_bytes_refuses_a_declared_size_before_reading(
    api: Harness, router: respx.MockRouter
) -> None:
    url = f"{MEDIA_URL}/big.png"
    router.get(url).respond(200, content=IMAGE)  # respx sets Content-Length
    sink = io.BytesIO()
    with pytest.raises(DownloadTooLargeError, match=f"is {len(IMAGE)} bytes"):
        api("download", url, sink, max_bytes=100)
    assert sink.getvalue() == b""


def test_exactly_max_bytes_is_fine(api: Harness, router: respx.MockRouter) -> None:
    url = f"{MEDIA_URL}/ok.png"
    router.get(url).mock(return_value=httpx.Response(200, stream=_Body(IMAGE)))
    result = api("download", url, io.BytesIO(), max_bytes=len(IMAGE))
    assert result.size_bytes == len(IMAGE)
    assert result.content_type is None


def test_broken_stream_is_a_transport_error(api: Harness, router: respx.MockRouter) -> None:
    url = f"{MEDIA_URL}/broken.png"
    router.get(url).mock(return_value=httpx.Response(200, stream=_Body(IMAGE, fail_after=300)))
    with pytest.raises(TransportError, match="ReadError"):
        api("download", url, io.BytesIO(), max_bytes=1_000_000)


def test_expired_url_maps_to_not_found(api: Harness, router: respx.MockRouter) -> None:
    url = f"{MEDIA_URL}/gone.png"
    route = router.get(url).respond(404, text="<html>gone</html>")
    with pytest.raises(NotFoundError):
        api("download", url, io.BytesIO(), max_bytes=1_000)
    assert route.call_count == 1


def test_transient_download_failures_are_retried(api: Harness, router: respx.MockRouter) -> None:
    url = f"{MEDIA_URL}/flaky.png"
    route = router.get(url).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("x"),
            httpx.Response(200, content=IMAGE),
        ]
    )
    sink = io.BytesIO()
    api("download", url, sink, max_bytes=1_000_000)
    assert route.call_count == 3
    assert sink.getvalue() == IMAGE


@pytest.mark.parametrize(
    ("url", "max_bytes"),
    [("ftp://x/y", 10), ("/relative/path.png", 10), ("not a url", 10), (f"{BASE_URL}/a", 0)],
)
def test_bad_download_arguments(api: Harness, url: str, max_bytes: int) -> None:
    with pytest.raises(RivyaValidationError):
        api("download", url, io.BytesIO(), max_bytes=max_bytes)
