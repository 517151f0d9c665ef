"""Test controls: request log, faults, config, reset, and their loopback-only guard."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from rivya_provider.emulator import EmulatorConfig, create_app


def test_request_log_records_names_never_values(api) -> None:
    secret = "rvya_sk_should_never_be_logged"
    api.emulator.add_key(secret)
    api.create(key=secret, **{"Idempotency-Key": "idem-value-xyz"})
    api.http.get("/api/v1/credits", params={"probe": "1"})
    api.emulator.ledger()  # control requests are not logged
    entries = api.emulator.requests()
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/api/v1/generations", 202),
        ("GET", "/api/v1/credits", 200),
    ]
    create, credits = entries
    assert {"authorization", "idempotency-key", "content-type"} <= set(create["headers_present"])
    assert create["headers_present"] == sorted(create["headers_present"])
    assert create["key"] == "key1"
    assert credits["query"] == "probe=1"
    assert credits["request_id"].startswith("req_")
    dumped = json.dumps(entries)
    assert secret not in dumped
    assert "idem-value-xyz" not in dumped
    assert secret not in json.dumps(api.emulator.ledger())
    assert secret not in json.dumps(api.emulator.configure())


def test_status_fault_with_retry_after_hits_the_next_n_requests(api) -> None:
    api.emulator.inject_fault(
        "/api/v1/credits", status=503, code="public_api_disabled", retry_after=1, count=2
    )
    for _ in range(2):
        response = api.http.get("/api/v1/credits")
        api.assert_error(response, 503, "public_api_disabled")
        assert response.headers["retry-after"] == "1"
    assert api.http.get("/api/v1/credits").status_code == 200
    assert [e["fault"] for e in api.emulator.requests()] == ["status", "status", None]


def test_status_fault_default_code_follows_the_status(api) -> None:
    api.emulator.inject_fault("/api/v1/credits", status=429)
    api.assert_error(api.http.get("/api/v1/credits"), 429, "rate_limited")
    api.emulator.inject_fault("/api/v1/credits", status=502)
    api.assert_error(api.http.get("/api/v1/credits"), 502, "internal_error")


def test_fault_method_and_exact_matching(api) -> None:
    task_id = api.create().json()["id"]
    api.emulator.inject_fault("/api/v1/generations", method="POST", match="exact", status=500)
    assert api.get(task_id).status_code == 200  # GET and a longer path: no match
    api.assert_error(api.create(), 500, "internal_error")
    assert api.emulator.faults() == []


def test_faulted_create_reserves_nothing(api) -> None:
    api.emulator.inject_fault("/api/v1/generations", method="POST", status=503)
    api.create()
    assert api.emulator.ledger()["entries"] == []


def test_drop_closes_the_connection_without_a_response(api) -> None:
    api.emulator.inject_fault("/api/v1/generations/", action="drop")
    task_id = api.create().json()["id"]
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get(task_id)
    assert api.get(task_id).status_code == 200
    dropped = api.emulator.requests()[1]
    assert (dropped["fault"], dropped["status"]) == ("drop", None)


def test_drop_after_processes_the_request_then_drops(api) -> None:
    api.emulator.inject_fault("/api/v1/generations", method="POST", action="drop_after")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.create(**{"Idempotency-Key": "lost-response"})
    generations = api.emulator.generations()
    assert len(generations) == 1
    assert generations[0]["idempotency_key"] == "lost-response"
    retry = api.create(**{"Idempotency-Key": "lost-response"})
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == generations[0]["id"]
    assert len(api.emulator.ledger()["entries"]) == 1


def test_delay_fault_then_normal_answer(api) -> None:
    api.emulator.inject_fault("/api/v1/credits", action="delay", delay=0.3)
    started = time.monotonic()
    assert api.http.get("/api/v1/credits").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.http.get("/api/v1/credits")
    assert time.monotonic() - started < 0.3


def test_clear_faults(api) -> None:
    api.emulator.inject_fault("/api/", status=500, count=5)
    assert len(api.emulator.faults()) == 1
    api.emulator.clear_faults()
    assert api.http.get("/api/v1/credits").status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "no-slash"},
        {"path": "/x", "action": "explode"},
        {"path": "/x", "action": "delay"},
        {"path": "/x", "status": 99},
        {"path": "/x", "match": "regex"},
        {"path": "/x", "bogus": 1},
    ],
)
def test_invalid_fault_rules_are_rejected(api, rule: dict[str, object]) -> None:
    response = httpx.post(f"{api.emulator.base_url}/_emulator/faults", json=rule)
    api.assert_error(response, 400, "validation_failed")


def test_invalid_config_is_rejected_whole(api) -> None:
    response = httpx.post(
        f"{api.emulator.base_url}/_emulator/config", json={"latency": 5, "credits": -1}
    )
    api.assert_error(response, 400, "validation_failed")
    assert api.emulator.configure()["latency"] == 0.2
    unknown = httpx.post(f"{api.emulator.base_url}/_emulator/config", json={"colour": "red"})
    api.assert_error(unknown, 400, "validation_failed")


def test_reset_restores_startup_state(api) -> None:
    api.emulator.configure(credits=7, api_disabled=True, fail_next=3)
    api.emulator.configure(api_disabled=False)
    task_id = api.create().json()["id"]
    api.emulator.add_key("rvya_sk_temp")
    api.emulator.inject_fault("/api/", status=500, count=9)
    api.emulator.reset()
    config = api.emulator.configure()
    assert (config["credits"], config["fail_next"], config["api_disabled"]) == (1000, 0, False)
    assert config["latency"] == 0.5
    assert [k["label"] for k in config["keys"]] == ["key0"]
    assert api.emulator.faults() == []
    assert api.emulator.ledger() == {"balance": 1000, "entries": []}
    assert api.emulator.requests() == []
    api.assert_error(api.get(task_id), 404, "not_found")


async def test_controls_refuse_non_loopback_clients() -> None:
    app = create_app(EmulatorConfig())
    remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=remote, base_url="http://emu") as client:
        response = await client.post("/_emulator/reset")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert (await client.get("/api/v1/models")).status_code == 200
    for loopback in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        local = httpx.ASGITransport(app=app, client=(loopback, 4000))
        async with httpx.AsyncClient(transport=local, base_url="http://emu") as client:
            assert (await client.get("/_emulator/health")).status_code == 200
