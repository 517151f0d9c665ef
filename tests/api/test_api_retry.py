"""The retry policy: what retries, how often, how long it waits; on fake time, both clients."""

from __future__ import annotations

import email.utils
import io
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from rivya_api_support import Harness, generation

from rivya_provider.api.errors import (
    IdempotencyConflictError,
    RateLimitedError,
    RivyaError,
    UnavailableError,
)
from rivya_provider.api.models import GenerationRequest

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


def _failure(kind: str) -> httpx.Response | Exception:
    """A response for one failure shape, or the transport exception to raise."""
    if kind == "connect_error":
        return httpx.ConnectError("connection refused")
    if kind == "read_timeout":
        return httpx.ReadTimeout("timed out")
    if kind == "remote_protocol_error":
        return httpx.RemoteProtocolError("peer closed connection")
    status = int(kind)
    return httpx.Response(status, json={"error": {"code": f"code_{status}", "message": "x"}})


def _raise_or_return(kind: str) -> Any:
    def side_effect(request: httpx.Request) -> httpx.Response:
        outcome = _failure(kind)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return side_effect


# (failure shape, retried?)
CLASSIFICATION = [
    ("connect_error", True),
    ("read_timeout", True),
    ("remote_protocol_error", True),
    ("429", True),
    ("502", True),
    ("503", True),
    ("504", True),
    ("500", False),
    ("400", False),
    ("401", False),
    ("402", False),
    ("403", False),
    ("404", False),
    ("409", False),
    ("422", False),
]


@pytest.mark.parametrize(("shape", "retried"), CLASSIFICATION)
def test_get_retry_classification(
    api: Harness, router: respx.MockRouter, shape: str, retried: bool
) -> None:
    route = router.get("/api/v1/credits").mock(side_effect=_raise_or_return(shape))
    with pytest.raises(RivyaError):
        api("get_credits")
    assert route.call_count == (5 if retried else 1)
    assert len(api.time.sleeps) == (4 if retried else 0)


@pytest.mark.parametrize(("shape", "retried"), CLASSIFICATION)
def test_create_retry_classification(
    api: Harness, router: respx.MockRouter, shape: str, retried: bool
) -> None:
    route = router.post("/api/v1/generations").mock(side_effect=_raise_or_return(shape))
    with pytest.raises(RivyaError):
        api("create_generation", GenerationRequest(model="qwen-image", prompt="a"), "key-1")
    assert route.call_count == (5 if retried else 1)


@pytest.mark.parametrize("shape", ["connect_error", "read_timeout", "429", "503"])
def test_recovers_after_transient_failures(
    api: Harness, router: respx.MockRouter, shape: str
) -> None:
    ok = httpx.Response(200, json={"current_credits": 1000})
    router.get("/api/v1/credits").mock(side_effect=[_failure(shape), _failure(shape), ok])
    assert api("get_credits").current_credits == 1000
    assert len(api.time.sleeps) == 2


def test_full_jitter_backoff_doubles_up_to_the_cap(
    api: Harness, router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each window
    router.get("/api/v1/credits").respond(502)
    with pytest.raises(UnavailableError):
        api("get_credits")
    assert api.time.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_jittered_waits_stay_inside_their_window(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").respond(504)
    for _ in range(5):
        with pytest.raises(UnavailableError):
            api("get_credits")
    windows = [1.0, 2.0, 4.0, 8.0] * 5
    assert len(api.time.sleeps) == len(windows)
    assert all(0 <= slept <= cap for slept, cap in zip(api.time.sleeps, windows, strict=True))
    assert len(set(api.time.sleeps)) > 1  # actually random


def test_retry_after_seconds_is_honoured(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "3"}, json={"error": {"code": "rate_limited"}}
            ),
            httpx.Response(200, json={"current_credits": 5}),
        ]
    )
    assert api("get_credits").current_credits == 5
    assert api.time.sleeps == [3.0]


def test_retry_after_http_date_is_honoured(api: Harness, router: respx.MockRouter) -> None:
    when = email.utils.formatdate(api.time.now + 7, usegmt=True)
    router.get("/api/v1/credits").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": when}),
            httpx.Response(200, json={"current_credits": 5}),
        ]
    )
    api("get_credits")
    assert api.time.sleeps == [7.0]


def test_retry_after_is_capped_at_max_backoff(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3600"}),
            httpx.Response(200, json={"current_credits": 5}),
        ]
    )
    api("get_credits")
    assert api.time.sleeps == [60.0]


def test_total_backoff_budget_stops_retrying(api: Harness, router: respx.MockRouter) -> None:
    route = router.get("/api/v1/credits").respond(
        429, headers={"Retry-After": "40"}, json={"error": {"code": "rate_limited"}}
    )
    with pytest.raises(RateLimitedError) as caught:
        api("get_credits")
    # 40 s, then another 40 s would pass the 60 s budget: stop and surface Retry-After.
    assert api.time.sleeps == [40.0]
    assert route.call_count == 2
    assert caught.value.retry_after == 40.0


def test_default_budget_never_exceeds_sixty_seconds(
    api: Harness, router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    router.get("/api/v1/credits").respond(503, headers={"Retry-After": "25"})
    with pytest.raises(UnavailableError):
        api("get_credits")
    assert sum(api.time.sleeps) <= 60.0
    assert api.time.sleeps == [25.0, 25.0]


def test_max_attempts_is_configurable(api: Harness, router: respx.MockRouter) -> None:
    route = router.get("/api/v1/credits").respond(502)
    with pytest.raises(UnavailableError):
        api.with_config(max_attempts=2)("get_credits")
    assert route.call_count == 2


def test_create_sends_the_same_key_and_body_on_every_attempt(
    api: Harness, router: respx.MockRouter
) -> None:
    route = router.post("/api/v1/generations").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("timed out"),
            httpx.Response(503, json={"error": {"code": "public_api_disabled"}}),
            httpx.Response(202, json=generation(), headers={"Idempotent-Replayed": "true"}),
        ]
    )
    request = GenerationRequest(model="qwen-image", prompt="a lighthouse", client_request_id="t1")
    created = api("create_generation", request, "dag/task/run/-1:abc")
    assert created.generation.id == "task_1"
    assert created.replayed is True
    keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
    bodies = {call.request.content for call in route.calls}
    assert route.call_count == 4
    assert keys == {"dag/task/run/-1:abc"}
    assert bodies == {request.canonical_json()}
    assert json.loads(bodies.pop()) == request.to_api()


def test_create_conflict_is_never_retried(api: Harness, router: respx.MockRouter) -> None:
    route = router.post("/api/v1/generations").respond(
        409, json={"error": {"code": "idempotency_conflict", "message": "different body"}}
    )
    with pytest.raises(IdempotencyConflictError):
        api("create_generation", GenerationRequest(model="qwen-image", prompt="a"), "k")
    assert route.call_count == 1
    assert api.time.sleeps == []


def test_create_without_replay_header_is_not_a_replay(
    api: Harness, router: respx.MockRouter
) -> None:
    router.post("/api/v1/generations").respond(201, json=generation())
    created = api("create_generation", {"model": "qwen-image", "prompt": "a"}, "k")
    assert created.replayed is False


@pytest.mark.parametrize("bad_key", ["", "   ", "two words", "x" * 256, "line\nbreak"])
def test_bad_idempotency_keys_are_refused_locally(
    api: Harness, router: respx.MockRouter, bad_key: str
) -> None:
    route = router.post("/api/v1/generations").respond(201, json=generation())
    with pytest.raises(RivyaError, match="idempotency_key"):
        api("create_generation", GenerationRequest(model="qwen-image", prompt="a"), bad_key)
    assert route.call_count == 0


def test_upload_from_a_path_is_retried_with_the_whole_body(
    api: Harness, router: respx.MockRouter, tmp_path: Path
) -> None:
    source = tmp_path / "ref.png"
    source.write_bytes(PNG)
    route = router.post("/api/v1/files").mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(201, json={"id": "file_1", "url": "https://cdn/x.png"}),
        ]
    )
    assert api("upload_file", source).id == "file_1"
    assert route.call_count == 2
    first, second = (call.request.content for call in route.calls)
    assert PNG in first
    assert PNG in second


class _OneShotReader:
    """A binary stream that cannot seek (e.g. a socket or a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._inner.read(size)


def test_upload_from_a_non_seekable_stream_is_not_retried(
    api: Harness, router: respx.MockRouter
) -> None:
    route = router.post("/api/v1/files").respond(503)
    with pytest.raises(UnavailableError):
        api("upload_file", _OneShotReader(PNG), name="ref.png")
    assert route.call_count == 1


def test_no_real_sleeping(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").respond(429, headers={"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(RateLimitedError):
        api("get_credits")
    assert time.monotonic() - started < 2.0
    assert sum(api.time.sleeps) == 60.0
