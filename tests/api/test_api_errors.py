"""Every documented error code maps to its exception class, through both clients."""

from __future__ import annotations

import email.utils
from typing import Any

import httpx
import pytest
import respx
from rivya_api_support import Harness

from rivya_provider.api import errors
from rivya_provider.api.errors import (
    AuthenticationError,
    GenerationFailedError,
    GenerationTimeoutError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RivyaError,
    RivyaValidationError,
    UnavailableError,
    error_from_response,
    parse_retry_after,
)
from rivya_provider.api.models import Generation

# (code, HTTP status, class, retryable)
CODE_TABLE = [
    ("public_api_disabled", 503, UnavailableError, True),
    ("api_key_missing", 401, AuthenticationError, False),
    ("api_key_invalid", 401, AuthenticationError, False),
    ("api_key_revoked", 401, AuthenticationError, False),
    ("api_key_expired", 401, AuthenticationError, False),
    ("api_scope_denied", 403, PermissionDeniedError, False),
    ("rate_limited", 429, RateLimitedError, True),
    ("validation_failed", 400, RivyaValidationError, False),
    ("not_found", 404, NotFoundError, False),
    ("idempotency_conflict", 409, IdempotencyConflictError, False),
    ("insufficient_credits", 402, InsufficientCreditsError, False),
]


def _envelope(code: str, message: str = "boom", request_id: str = "req_42") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "requestId": request_id}}


@pytest.mark.parametrize(("code", "status", "cls", "retryable"), CODE_TABLE)
def test_error_code_table(code: str, status: int, cls: type[RivyaError], retryable: bool) -> None:
    exc = error_from_response(status, _envelope(code), {})
    assert type(exc) is cls
    assert (exc.code, exc.status_code, exc.message, exc.request_id) == (
        code,
        status,
        "boom",
        "req_42",
    )
    assert exc.retryable is retryable


@pytest.mark.parametrize(("code", "status", "cls", "retryable"), CODE_TABLE)
def test_error_code_table_through_the_clients(
    api: Harness,
    router: respx.MockRouter,
    code: str,
    status: int,
    cls: type[RivyaError],
    retryable: bool,
) -> None:
    router.get("/api/v1/credits").respond(status, json=_envelope(code, "server says no"))
    with pytest.raises(cls) as caught:
        api.with_config(max_attempts=1)("get_credits")
    assert caught.value.code == code
    assert caught.value.request_id == "req_42"
    assert "server says no" in str(caught.value)


def test_code_wins_over_status() -> None:
    # The code is the contract: a rate limit reported with an odd status is still a rate limit.
    exc = error_from_response(400, _envelope("rate_limited"), {"Retry-After": "3"})
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (500, UnavailableError, True),
        (502, UnavailableError, True),
        (599, UnavailableError, True),
        (400, RivyaValidationError, False),
        (401, AuthenticationError, False),
        (404, NotFoundError, False),
        (409, RivyaError, False),
        (418, RivyaError, False),
    ],
)
def test_unknown_codes_map_by_status_class(
    status: int, cls: type[RivyaError], retryable: bool
) -> None:
    exc = error_from_response(status, _envelope("brand_new_code", "new"), {})
    assert type(exc) is cls
    assert exc.code == "brand_new_code"  # the unknown code is kept
    assert exc.retryable is retryable
    assert exc.message == "new"


@pytest.mark.parametrize("body", [None, "not json", [], {"error": "flat"}, {"detail": "x"}])
def test_malformed_error_bodies_are_tolerated(body: Any) -> None:
    exc = error_from_response(502, body, {"X-Request-Id": "req_hdr"})
    assert isinstance(exc, UnavailableError)
    assert exc.status_code == 502
    assert exc.code == "unavailable"
    assert exc.request_id == "req_hdr"
    assert "502" in exc.message


def test_retry_after_parsing() -> None:
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after(date, now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("-4", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_string_and_repr_carry_code_status_and_request_id() -> None:
    exc = error_from_response(401, _envelope("api_key_invalid", "Invalid API key"), {})
    assert str(exc) == "api_key_invalid: Invalid API key (HTTP 401, request id req_42)"
    assert repr(exc).startswith("AuthenticationError(code='api_key_invalid', status_code=401")


def test_local_errors() -> None:
    failed = Generation.model_validate(
        {
            "id": "task_9",
            "status": "failed",
            "error": {"code": "generation_failed", "message": "NSFW filter"},
        }
    )
    exc = GenerationFailedError(failed)
    assert exc.generation is failed
    assert exc.code == "generation_failed"
    assert "task_9" in str(exc)
    assert "NSFW filter" in str(exc)
    assert exc.retryable is False

    timeout = GenerationTimeoutError(generation_id="task_9", last_status="processing")
    assert (timeout.generation_id, timeout.last_status) == ("task_9", "processing")
    assert "processing" in str(timeout)
    assert timeout.code == "generation_timeout"

    local = RivyaValidationError("prompt: too long", field="prompt")
    assert (local.field, local.status_code, local.code) == ("prompt", None, "validation_failed")


def test_every_exported_error_is_a_rivya_error() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type):
            assert issubclass(value, RivyaError), name


def test_transport_errors_are_wrapped(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.TransportError) as caught:
        api.with_config(max_attempts=1)("get_credits")
    assert caught.value.retryable is True
    assert caught.value.status_code is None
    assert "ConnectError" in caught.value.message
    assert "/api/v1/credits" in caught.value.message


def test_non_json_success_is_an_invalid_response(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").respond(200, text="<html>portal</html>")
    with pytest.raises(RivyaError) as caught:
        api("get_credits")
    assert caught.value.code == "invalid_response"


def test_unexpected_shape_is_an_invalid_response(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/generations/task_1").respond(200, json={"status": "queued"})
    with pytest.raises(RivyaError) as caught:
        api("get_generation", "task_1")
    assert caught.value.code == "invalid_response"
    assert "id" in caught.value.message
