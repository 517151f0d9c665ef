"""[hardening] Garbled answers are transient, success needs results, bodies are bounded on
decoded bytes, every server string is redacted at the boundary. Both clients, mocked HTTP."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from typing import Any

import httpx
import pytest
import respx
from rivya_api_support import API_KEY, Harness, generation

from rivya_provider.api.errors import (
    DownloadTooLargeError,
    GenerationFailedError,
    GenerationTimeoutError,
    RivyaError,
    TransportError,
)
from rivya_provider.api.models import GenerationRequest

REQUEST = GenerationRequest(model="qwen-image", prompt="p")
DONE = generation(
    status="succeeded",
    final_credits=4,
    result={
        "primary_url": "http://127.0.0.1:8765/m/1.png",
        "urls": ["http://127.0.0.1:8765/m/1.png"],
    },
)

GARBLED = [
    ("truncated-json", lambda: httpx.Response(200, text='{"id": "task_1", "stat')),
    ("html-proxy-page", lambda: httpx.Response(200, html="<html>502 Bad Gateway</html>")),
    ("missing-status", lambda: httpx.Response(200, json={"id": "task_1"})),
    ("not-an-object", lambda: httpx.Response(200, json=["task_1"])),
    ("empty-body", lambda: httpx.Response(200, content=b"")),
    (
        "unknown-encoding",
        lambda: httpx.Response(200, content=b"xx", headers={"Content-Encoding": "br"}),
    ),
]


@pytest.mark.parametrize(("name", "bad"), GARBLED, ids=[g[0] for g in GARBLED])
def test_a_garbled_status_answer_is_retried_then_the_wait_succeeds(
    api: Harness, router: respx.MockRouter, name: str, bad: Any
) -> None:
    answers = iter([bad(), bad(), httpx.Response(200, json=DONE)])
    route = router.get("/api/v1/generations/task_1").mock(side_effect=lambda r: next(answers))
    done = api("wait_for_generation", "task_1", api.time.now + 600)
    assert done.succeeded
    assert route.call_count == 3


@pytest.mark.parametrize(("name", "bad"), GARBLED, ids=[g[0] for g in GARBLED])
def test_a_garbled_create_answer_is_retried_with_the_same_key(
    api: Harness, router: respx.MockRouter, name: str, bad: Any
) -> None:
    keys: list[str] = []
    answers = iter([bad(), httpx.Response(202, json=generation())])

    def create(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        return next(answers)

    router.post("/api/v1/generations").mock(side_effect=create)
    created = api("create_generation", REQUEST, "same-key")
    assert created.generation.id == "task_1"
    assert keys == ["same-key", "same-key"]  # the API replays: nothing is paid twice


def test_garbled_answers_to_the_end_are_an_invalid_response(
    api: Harness, router: respx.MockRouter
) -> None:
    router.get("/api/v1/credits").respond(200, text="<html>")
    with pytest.raises(RivyaError) as caught:
        api("get_credits")
    assert (caught.value.code, caught.value.retryable) == ("invalid_response", True)
    assert router.routes[0].call_count == api.config.max_attempts


def test_succeeded_without_results_is_not_success(api: Harness, router: respx.MockRouter) -> None:
    empty = generation(status="succeeded", final_credits=4, result=None)
    answers = iter([httpx.Response(200, json=empty)] * 3 + [httpx.Response(200, json=DONE)])
    router.get("/api/v1/generations/task_1").mock(side_effect=lambda r: next(answers))
    assert api("wait_for_generation", "task_1", api.time.now + 600).result_urls


def test_succeeded_without_results_until_the_deadline_times_out(
    api: Harness, router: respx.MockRouter
) -> None:
    empty = generation(status="succeeded", result={"urls": []})
    router.get("/api/v1/generations/task_1").respond(200, json=empty)
    with pytest.raises(GenerationTimeoutError):
        api("wait_for_generation", "task_1", api.time.now + 60)


def test_an_oversized_json_answer_is_refused_without_reading_it_all(
    api: Harness, router: respx.MockRouter
) -> None:
    sent: list[int] = []
    mib = b" " * (1024 * 1024)

    def stream() -> Any:
        for _ in range(300):  # 300 MiB if read to the end
            sent.append(1)
            yield mib

    async def astream() -> Any:
        for chunk in stream():
            yield chunk

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=stream() if api.mode == "sync" else astream())

    router.get("/api/v1/credits").mock(side_effect=answer)
    with pytest.raises(RivyaError) as caught:
        api.with_config(max_attempts=1)("get_credits")
    assert caught.value.code == "response_too_large"
    assert len(sent) <= 3  # reading stopped just past the 1 MiB limit


def _gzip_bomb(decoded_mib: int) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    return b"".join(deflater.compress(block) for _ in range(decoded_mib)) + deflater.flush()


def test_a_gzip_bomb_is_refused_on_decoded_bytes(api: Harness, router: respx.MockRouter) -> None:
    bomb = _gzip_bomb(64)  # about 64 KiB on the wire, 64 MiB decoded
    assert len(bomb) < 1024 * 1024
    router.get("/api/v1/credits").respond(200, content=bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(RivyaError) as caught:
        api.with_config(max_attempts=1)("get_credits")
    assert caught.value.code == "response_too_large"


def test_a_gzip_bomb_download_stops_at_max_bytes_of_decoded_data(
    api: Harness, router: respx.MockRouter
) -> None:
    import io

    bomb = _gzip_bomb(64)
    router.get("/m/bomb.png").respond(
        200, content=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "image/png"}
    )
    sink = io.BytesIO()
    with pytest.raises(DownloadTooLargeError, match="decoded"):
        api("download", "http://127.0.0.1:8765/m/bomb.png", sink, max_bytes=1024 * 1024)
    assert len(sink.getvalue()) <= 1024 * 1024


def test_gzip_answers_are_read(api: Harness, router: respx.MockRouter) -> None:
    body = gzip.compress(json.dumps({"current_credits": 7}).encode())
    route = router.get("/api/v1/credits").respond(
        200, content=body, headers={"Content-Encoding": "gzip"}
    )
    assert api("get_credits").current_credits == 7
    assert route.calls.last.request.headers["Accept-Encoding"] == "gzip, deflate"


def test_a_redirect_loop_is_a_transport_error(api: Harness, router: respx.MockRouter) -> None:
    router.get("/m/loop.png").respond(302, headers={"Location": "http://127.0.0.1:8765/m/loop.png"})
    import io

    with pytest.raises(TransportError, match="TooManyRedirects") as caught:
        api("download", "http://127.0.0.1:8765/m/loop.png", io.BytesIO(), max_bytes=1000)
    assert caught.value.retryable is False


def test_every_server_string_is_redacted_at_the_boundary(
    api: Harness, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    echoing = generation(
        status=f"weird-{API_KEY}",
        model=API_KEY,
        error={"code": f"code-{API_KEY}", "message": f"m {API_KEY}"},
        **{f"x-{API_KEY}": API_KEY},
    )
    failed = {**echoing, "status": "failed"}
    answers = iter([httpx.Response(200, json=echoing), httpx.Response(200, json=failed)])
    router.get("/api/v1/generations/task_1").mock(side_effect=lambda r: next(answers))
    with caplog.at_level(logging.DEBUG), pytest.raises(GenerationFailedError) as caught:
        api("wait_for_generation", "task_1", api.time.now + 600)
    dumped = json.dumps(caught.value.generation.model_dump(mode="json"))
    assert API_KEY not in dumped
    assert "[redacted]" in dumped
    assert API_KEY not in str(caught.value)
    assert API_KEY not in caught.value.code
    assert all(API_KEY not in record.getMessage() for record in caplog.records)


def test_the_decoder_bounds_each_piece_and_rejects_bad_input() -> None:
    from rivya_provider.api._decoding import PIECE_BYTES, BoundedDecoder, UnsupportedEncoding

    decoder = BoundedDecoder("gzip")
    decoder.feed(_gzip_bomb(4))
    pieces = []
    while piece := decoder.take():
        pieces.append(len(piece))
    assert max(pieces) <= PIECE_BYTES
    assert sum(pieces) == 4 * 1024 * 1024
    broken = BoundedDecoder("gzip")
    broken.feed(b"not gzip at all")
    with pytest.raises(zlib.error):
        broken.take()
    with pytest.raises(UnsupportedEncoding):
        BoundedDecoder("br")
