"""Configuration rules, request headers, client lifecycle, and the API key kept secret."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from rivya_api_support import API_KEY, BASE_URL, Harness, generation

import rivya_provider
from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.errors import RivyaError, RivyaValidationError
from rivya_provider.api.models import GenerationRequest


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8765",
        "http://127.9.8.7",
        "http://localhost:8000/",
        "http://LOCALHOST",
        "http://[::1]:8765",
        "https://rivya.ai",
        "https://api.example.com:8443/rivya/",
    ],
)
def test_allowed_base_urls(base_url: str) -> None:
    config = ClientConfig(api_key=API_KEY, base_url=base_url)
    assert config.base_url == base_url.rstrip("/")


@pytest.mark.parametrize(
    ("base_url", "rule"),
    [
        ("http://rivya.ai", "plain http is only allowed for loopback hosts"),
        ("http://10.0.0.5:8765", "plain http is only allowed for loopback hosts"),
        ("http://localhost.evil.com", "plain http is only allowed for loopback hosts"),
        ("http://128.0.0.1", "plain http is only allowed for loopback hosts"),
        ("ftp://rivya.ai", "must be an http(s) URL"),
        ("rivya.ai", "must be an http(s) URL"),
        ("", "must be a URL"),
        ("https://rivya.ai/?key=1", "must not have a query"),
        ("https://rivya.ai:notaport", "is not a valid URL"),
    ],
)
def test_refused_base_urls(base_url: str, rule: str) -> None:
    with pytest.raises(RivyaValidationError) as caught:
        ClientConfig(api_key=API_KEY, base_url=base_url)
    assert caught.value.field == "base_url"
    assert rule in caught.value.message


def test_credentials_in_the_base_url_are_refused_without_echo() -> None:
    with pytest.raises(RivyaValidationError) as caught:
        ClientConfig(api_key="k", base_url=f"https://user:{API_KEY}@rivya.ai")
    assert API_KEY not in str(caught.value)
    assert "credentials" in caught.value.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_backoff": -1}, "max_backoff"),
    ],
)
def test_numeric_settings_are_checked(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RivyaValidationError) as caught:
        ClientConfig(api_key=API_KEY, **changes)
    assert caught.value.field == field


@pytest.mark.parametrize("bad_key", [f"{API_KEY}\n", f"rvya sk {API_KEY}", f"{API_KEY}\x00"])
def test_keys_that_cannot_be_a_header_are_refused_without_echo(bad_key: str) -> None:
    if bad_key.strip() == API_KEY:
        assert ClientConfig(api_key=bad_key).api_key == API_KEY  # surrounding space trimmed
        return
    with pytest.raises(RivyaValidationError) as caught:
        ClientConfig(api_key=bad_key)
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)


def test_key_is_not_in_any_repr(config: ClientConfig) -> None:
    for text in (
        repr(config),
        str(config),
        repr(RivyaClient(config, httpx.Client())),
        repr(AsyncRivyaClient(config, httpx.AsyncClient())),
    ):
        assert API_KEY not in text
    assert "127.0.0.1:8765" in repr(config)


def _echo_401(request: httpx.Request) -> httpx.Response:
    # A (badly behaved) server echoing the key back in its error.
    auth = request.headers["Authorization"]
    return httpx.Response(
        401,
        json={"error": {"code": "api_key_invalid", "message": f"bad {auth}", "requestId": auth}},
    )


def _leaky_connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"cannot send {request.headers['Authorization']}")


def _failed_with_echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json=generation(
            status="failed", error={"code": "generation_failed", "message": f"k={API_KEY}"}
        ),
    )


SCENARIOS: list[tuple[str, Callable[[httpx.Request], httpx.Response], str, tuple[Any, ...]]] = [
    ("server echoes the key", _echo_401, "get_credits", ()),
    ("transport error text holds it", _leaky_connect_error, "get_credits", ()),
    ("rate limited to exhaustion", lambda r: httpx.Response(429), "get_credits", ()),
    ("non-JSON answer", lambda r: httpx.Response(200, text="<html>"), "get_credits", ()),
    ("failed generation echoes it", _failed_with_echo, "wait_for_generation", ("task_1", 0.0)),
    (
        "timeout",
        lambda r: httpx.Response(200, json=generation(status="processing")),
        "wait_for_generation",
        ("task_1", 0.0),
    ),
    (
        "conflict",
        lambda r: httpx.Response(409, json={"error": {"code": "idempotency_conflict"}}),
        "create_generation",
        (GenerationRequest(model="qwen-image", prompt="p"), "key"),
    ),
]


@pytest.mark.parametrize(("name", "handler", "method", "args"), SCENARIOS)
def test_key_never_appears_in_errors_or_logs(
    api: Harness,
    router: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    name: str,
    handler: Callable[[httpx.Request], httpx.Response],
    method: str,
    args: tuple[Any, ...],
) -> None:
    router.route().mock(side_effect=handler)
    with caplog.at_level(logging.DEBUG), pytest.raises(RivyaError) as caught:
        api(method, *args)
    exc = caught.value
    traceback_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    texts = [str(exc), repr(exc), exc.message, str(exc.request_id), traceback_text]
    assert all(API_KEY not in text for text in texts), name
    assert caplog.records  # the scenario did log something
    assert all(API_KEY not in record.getMessage() for record in caplog.records), name


def test_headers_per_request(api: Harness, router: respx.MockRouter) -> None:
    credits = router.get("/api/v1/credits").respond(200, json={"current_credits": 1000})
    models = router.get("/api/v1/models").respond(
        200, json={"object": "list", "data": [{"id": "qwen-image"}]}
    )
    assert api("get_credits").current_credits == 1000
    assert [m.id for m in api("list_models")] == ["qwen-image"]
    sent = credits.calls.last.request.headers
    assert sent["Authorization"] == f"Bearer {API_KEY}"
    assert sent["User-Agent"] == f"airflow-provider-rivya/{rivya_provider.__version__}"
    assert "Authorization" not in models.calls.last.request.headers  # public endpoint


def test_list_models_skips_entries_that_are_not_models(
    api: Harness, router: respx.MockRouter
) -> None:
    body = {
        "object": "list",
        "data": [
            {"id": "qwen-image", "params": {"any": "json"}, "new_field": 1},
            {"display_name": "no id"},
            {"id": "bad-price", "base_credits": "four"},
            "not an object",
        ],
    }
    router.get("/api/v1/models").respond(200, json=body)
    models = api("list_models")
    assert [m.id for m in models] == ["qwen-image"]
    assert models[0].model_extra == {"new_field": 1}


@pytest.mark.parametrize(
    "body", [[{"id": "qwen-image"}], {"models": [{"id": "qwen-image"}]}, {"data": None}]
)
def test_a_catalogue_without_a_data_list_is_an_invalid_response(
    api: Harness, router: respx.MockRouter, body: Any
) -> None:
    router.get("/api/v1/models").respond(200, json=body)
    with pytest.raises(RivyaError, match="no 'data' list") as caught:
        api("list_models")
    assert caught.value.code == "invalid_response"


def test_empty_key_sends_no_authorization(router: respx.MockRouter) -> None:
    route = router.get("/api/v1/credits").respond(401, json={"error": {"code": "api_key_missing"}})
    client = RivyaClient(ClientConfig(api_key="", base_url=BASE_URL), httpx.Client())
    with client, pytest.raises(RivyaError, match="api_key_missing"):
        client.get_credits()
    assert "Authorization" not in route.calls.last.request.headers


def test_sync_client_closes_only_what_it_owns(config: ClientConfig) -> None:
    borrowed = httpx.Client()
    with RivyaClient(config, borrowed):
        pass
    assert not borrowed.is_closed
    borrowed.close()
    owner = RivyaClient(config)
    with owner:
        pass
    assert owner._http.is_closed


def test_async_client_closes_only_what_it_owns(config: ClientConfig) -> None:
    async def scenario() -> tuple[bool, bool]:
        borrowed = httpx.AsyncClient()
        async with AsyncRivyaClient(config, borrowed):
            pass
        owner = AsyncRivyaClient(config)
        async with owner:
            pass
        result = (borrowed.is_closed, owner._http.is_closed)
        await borrowed.aclose()
        return result

    assert asyncio.run(scenario()) == (False, True)
