"""RivyaHook: connection -> client config, test_connection, async paths, connection form."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from airflow.sdk import BaseHook, Connection

from rivya_provider.api import pool
from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.errors import RivyaValidationError
from rivya_provider.api.polling import PollSchedule
from rivya_provider.get_provider_info import get_provider_info
from rivya_provider.hooks.rivya import (
    EXTRA_FIELDS,
    RivyaHook,
    base_url_from_connection,
    config_from_connection,
)

KEY = "rvya_sk_hook_test_abcdef123456"
BASE_URL = "http://127.0.0.1:8765"


def _set_conn(
    monkeypatch: pytest.MonkeyPatch, conn_id: str = "rivya_default", **fields: Any
) -> None:
    payload = {"conn_type": "rivya", "host": BASE_URL, "password": KEY, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(payload))


def _conn(**fields: Any) -> Connection:
    return Connection(conn_id="c", conn_type="rivya", **fields)


def _config(extra: Any = None, **fields: Any) -> ClientConfig:
    raw = extra if isinstance(extra, str) or extra is None else json.dumps(extra)
    return config_from_connection(_conn(extra=raw, **fields))


def test_hook_identity() -> None:
    assert (RivyaHook.conn_type, RivyaHook.default_conn_name, RivyaHook.hook_name) == (
        "rivya",
        "rivya_default",
        "Rivya",
    )
    assert RivyaHook.conn_name_attr == "rivya_conn_id"
    assert RivyaHook().rivya_conn_id == "rivya_default"
    assert issubclass(RivyaHook, BaseHook)


def test_defaults_from_a_minimal_connection() -> None:
    config = _config(password=KEY)
    assert config == ClientConfig(api_key=KEY)
    assert config.base_url == "https://rivya.ai"
    assert (config.timeout, config.max_attempts, config.max_backoff) == (30.0, 5, 60.0)
    assert config.poll == PollSchedule()


def test_extras_map_to_config_and_poll_schedule() -> None:
    extra = {
        "timeout": "12.5",  # the UI stores strings
        "max_attempts": 3,
        "max_backoff": "20",
        "poll_first_delay": 1,
        "poll_interval": "4",
        "poll_factor": 2,
        "extra__rivya__poll_max_interval": "40",  # prefixed form (older connection forms)
        "max_requests_per_second": "25",
        "unrelated": "ignored",
        "max_attempts_note": "",
    }
    config = _config(extra, host=BASE_URL, password=KEY)
    assert (config.timeout, config.max_attempts, config.max_backoff) == (12.5, 3, 20.0)
    assert config.poll == PollSchedule(first_delay=1, interval=4, factor=2, max_interval=40)
    assert config.max_requests_per_second == 25.0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"timeout": "fast"}, "extra.timeout"),
        ({"timeout": "nan"}, "extra.timeout"),
        ({"timeout": 0}, "extra.timeout"),
        ({"max_attempts": "2.5"}, "extra.max_attempts"),
        ({"max_attempts": 0}, "extra.max_attempts"),
        ({"max_backoff": "inf"}, "extra.max_backoff"),
        ({"poll_factor": 0.5}, "extra.poll_factor"),
        ({"poll_interval": "nan"}, "extra.poll_interval"),
        ({"poll_interval": 0}, "extra.poll_interval"),
        ({"poll_max_interval": 0}, "extra.poll_max_interval"),
        ({"poll_first_delay": -1}, "extra.poll_first_delay"),
        ({"max_requests_per_second": 0}, "extra.max_requests_per_second"),
        ({"max_requests_per_second": "many"}, "extra.max_requests_per_second"),
        ('{"timeout": 30,}', "extra"),
        ("[1, 2]", "extra"),
    ],
)
def test_bad_extras_name_the_connection_and_the_field(extra: Any, field: str) -> None:
    with pytest.raises(RivyaValidationError) as caught:
        _config(extra, password=KEY)
    assert caught.value.field == field
    assert caught.value.message.startswith(f"connection 'c': {field}: ")


@pytest.mark.parametrize("password", [None, "", "   "])
def test_a_missing_api_key_is_refused_naming_the_connection(password: str | None) -> None:
    with pytest.raises(RivyaValidationError, match=r"connection 'c': password \(the API key\)"):
        _config(password=password)


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        (None, None, None, "https://rivya.ai"),
        ("", 8765, "http", "https://rivya.ai"),
        ("rivya.ai", None, None, "https://rivya.ai"),
        ("rivya.ai/", None, "", "https://rivya.ai"),
        ("https://rivya.ai", None, None, "https://rivya.ai"),
        # README's Test-button workaround on 3.3.0-3.3.2: the port stored as 443, same address
        ("https://rivya.ai", 443, None, "https://rivya.ai:443"),
        ("http://127.0.0.1:8765", None, None, "http://127.0.0.1:8765"),
        ("127.0.0.1", 8765, "http", "http://127.0.0.1:8765"),
        ("127.0.0.1:9000", 8765, "http", "http://127.0.0.1:9000"),
        ("localhost", 8765, "HTTP", "http://localhost:8765"),
        ("api.example.com", 8443, "public", "https://api.example.com:8443"),
        ("::1", 8765, "http", "http://[::1]:8765"),
        ("https://gw.example.com/rivya", 444, None, "https://gw.example.com:444/rivya"),
    ],
)
def test_base_url_from_host_port_schema(
    host: str | None, port: int | None, schema: str | None, expected: str
) -> None:
    assert base_url_from_connection(host, port, schema) == expected
    config = _config(host=host, port=port, schema=schema, password=KEY)
    assert config.base_url == expected


def test_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(RivyaValidationError, match="loopback"):
        _config(host="rivya.ai", schema="http", password=KEY)


def test_get_client_reads_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "rivya_custom", extra={"max_attempts": 2})
    with RivyaHook(rivya_conn_id="rivya_custom").get_client() as client:
        assert isinstance(client, RivyaClient)
        assert client.config.base_url == BASE_URL
        assert client.config.api_key == KEY
        assert client.config.max_attempts == 2
        assert KEY not in repr(client)


def test_test_connection_success(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch)
    with respx.mock(base_url=BASE_URL) as router:
        route = router.get("/api/v1/credits").respond(200, json={"current_credits": 1000})
        assert RivyaHook().test_connection() == (True, "Connected: 1000 credits")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_test_connection_bad_key(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch)
    with respx.mock(base_url=BASE_URL) as router:
        router.get("/api/v1/credits").respond(
            401,
            json={
                "error": {"code": "api_key_invalid", "message": "Invalid API key", "requestId": "r"}
            },
        )
        assert RivyaHook().test_connection() == (False, "api_key_invalid: Invalid API key")


def test_test_connection_network_down_answers_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, extra={"max_attempts": 5})
    sleeps: list[float] = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    with respx.mock(base_url=BASE_URL) as router:
        route = router.get("/api/v1/credits").mock(side_effect=httpx.ConnectError("refused"))
        ok, message = RivyaHook().test_connection()
    assert not ok
    assert message.startswith("transport_error: ConnectError")
    assert route.call_count == 2  # at most two attempts for an interactive check
    assert sum(sleeps) <= 2.0
    assert KEY not in message


def test_test_connection_missing_connection() -> None:
    ok, message = RivyaHook(rivya_conn_id="does_not_exist").test_connection()
    assert not ok
    assert "does_not_exist" in message


def test_async_paths_never_use_the_blocking_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, extra={"timeout": 9})

    lookup = BaseHook.get_connection

    def blocking(cls: Any, conn_id: str) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread (Airflow 3.1's fallback): the loop runs on
            return lookup(conn_id)
        raise AssertionError("blocking connection lookup inside the event loop")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(blocking))
    hook = RivyaHook()

    async def scenario() -> tuple[float, int, int, bool]:
        own = await hook.get_async_client()
        assert isinstance(own, AsyncRivyaClient)
        await own.aclose()
        async with hook.async_client(poll={"interval": 3.0}) as first:
            async with hook.async_client() as second:
                shared = first._http is second._http
                users = pool.pool_users()
                credits = (await second.get_credits()).current_credits
            return first.config.poll.interval, users, credits, shared

    with respx.mock(base_url=BASE_URL) as router:
        router.get("/api/v1/credits").respond(200, json={"current_credits": 7})
        interval, users, credits, shared = asyncio.run(scenario())
    assert (interval, users, credits, shared) == (3.0, 2, 7, True)


def test_async_client_releases_the_pool_on_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch)

    seen: list[httpx.AsyncClient] = []

    async def crash() -> None:
        async with RivyaHook().async_client() as client:
            seen.append(client._http)
            raise RuntimeError("trigger crashed")

    async def scenario() -> tuple[int, bool]:
        with pytest.raises(RuntimeError, match="trigger crashed"):
            await crash()
        return pool.pool_users(), seen[0].is_closed

    assert asyncio.run(scenario()) == (0, True)


def test_ui_field_behaviour_matches_the_provider_info() -> None:
    (entry,) = get_provider_info()["connection-types"]
    declared = entry["ui-field-behaviour"]
    behaviour = RivyaHook.get_ui_field_behaviour()
    assert behaviour == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }
    assert set(behaviour["hidden_fields"]) == {"login", "port", "schema"}
    assert behaviour["relabeling"] == {"password": "API key", "host": "Base URL"}
    assert entry["hook-class-name"] == f"{RivyaHook.__module__}.{RivyaHook.__qualname__}"
    assert (entry["connection-type"], entry["hook-name"]) == ("rivya", "Rivya")


def test_conn_fields_defaults_match_the_client_defaults() -> None:
    (entry,) = get_provider_info()["connection-types"]
    fields = entry["conn-fields"]
    assert set(fields) == set(EXTRA_FIELDS)
    config, poll = ClientConfig(api_key="k"), PollSchedule()
    for key, (attribute, _convert) in EXTRA_FIELDS.items():
        source = poll if key.startswith("poll_") else config
        assert fields[key]["schema"]["default"] == getattr(source, attribute), key
        assert "null" in fields[key]["schema"]["type"]
        assert fields[key]["label"]


def test_providers_manager_registers_the_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    # ProvidersManager() re-initialises the singleton on 3.1: read it once, use that object.
    manager = ProvidersManager()
    try:  # Airflow 3.3 resolves hooks in the task runtime's own manager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:  # 3.1, 3.2
        hooks = manager.hooks
    else:
        hooks = ProvidersManagerTaskRuntime().hooks
    hook_info = hooks["rivya"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "rivya_provider.hooks.rivya.RivyaHook"
    assert hook_info.connection_testable
    import airflow.providers_manager as providers_manager_module

    if "conn-fields" in Path(providers_manager_module.__file__ or "").read_text():
        # 3.2+ reads the form declared in the provider info, with or without Flask-AppBuilder.
        behaviour = manager.field_behaviours["rivya"]
        assert "extra__rivya__max_attempts" in manager.connection_form_widgets
    else:
        # 3.1 reads it only from the hook's get_ui_field_behaviour(), and only where
        # Flask-AppBuilder is installed (it logs "not fully initialized" otherwise).
        behaviour = RivyaHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API key"
    assert set(behaviour["hidden_fields"]) == {"login", "port", "schema"}


def test_config_is_a_plain_dataclass_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch)
    config = RivyaHook().get_config()
    assert dataclasses.replace(config, timeout=1.0).api_key == KEY
    assert KEY not in repr(config)
