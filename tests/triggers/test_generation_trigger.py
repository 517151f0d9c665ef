"""RivyaGenerationTrigger against the emulator over HTTP, with injected faults."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from rivya_provider.triggers.generation import RivyaGenerationTrigger

FAST_POLL = {"first_delay": 0.05, "interval": 0.1, "factor": 1.5, "max_interval": 0.3}


def _submit(emulator: Any, prompt: str = "a trigger test") -> str:
    from rivya_provider.api.models import GenerationRequest
    from rivya_provider.hooks.rivya import RivyaHook

    with RivyaHook().get_client() as client:
        created = client.create_generation(
            GenerationRequest(model="qwen-image", prompt=prompt, params={}),
            idempotency_key=f"trigger-test-{uuid.uuid4().hex}",
        )
    return created.generation.id


async def _events(trigger: RivyaGenerationTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def test_serialize_round_trip_is_plain_json_without_secrets(rivya_airflow_conn: Any) -> None:
    trigger = RivyaGenerationTrigger(
        generation_id="task_1", deadline=1_900_000_000.5, rivya_conn_id="rivya_x", poll=FAST_POLL
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "rivya_provider.triggers.generation.RivyaGenerationTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert rivya_airflow_conn.api_key not in json.dumps(kwargs)
    rebuilt = RivyaGenerationTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


async def test_rides_out_429_503_and_dropped_connections(rivya_airflow_conn: Any) -> None:
    emulator = rivya_airflow_conn
    generation_id = _submit(emulator)
    path = f"/api/v1/generations/{generation_id}"
    emulator.inject_fault(path, status=429, code="rate_limited", retry_after="1", count=2)
    emulator.inject_fault(path, status=503, code="public_api_disabled", count=2)
    emulator.inject_fault(path, action="drop", count=2)
    trigger = RivyaGenerationTrigger(generation_id, deadline=time.time() + 60, poll=FAST_POLL)
    events = await _events(trigger)
    assert len(events) == 1
    assert events[0]["status"] == "succeeded"
    assert events[0]["generation"]["id"] == generation_id
    polled = [r for r in emulator.requests() if r["path"] == path]
    assert len(polled) >= 7  # six faulted answers, then at least one real one
    assert {r["method"] for r in polled} == {"GET"}
    assert [r["method"] for r in emulator.requests()].count("POST") == 1


async def test_failed_generation_yields_failed_event(rivya_airflow_conn: Any) -> None:
    generation_id = _submit(rivya_airflow_conn, "doomed [[fail]]")
    events = await _events(
        RivyaGenerationTrigger(generation_id, deadline=time.time() + 30, poll=FAST_POLL)
    )
    assert [e["status"] for e in events] == ["failed"]
    assert events[0]["generation"]["error"]["code"] == "generation_failed"


async def test_deadline_yields_timeout_with_last_status(rivya_airflow_conn: Any) -> None:
    rivya_airflow_conn.configure(latency=30)
    generation_id = _submit(rivya_airflow_conn, "slow")
    started = time.monotonic()
    events = await _events(
        RivyaGenerationTrigger(generation_id, deadline=time.time() + 1.0, poll=FAST_POLL)
    )
    assert time.monotonic() - started < 10
    assert [e["status"] for e in events] == ["timeout"]
    assert events[0]["generation"]["status"] in ("queued", "processing")


async def test_non_retryable_error_ends_with_error_event(rivya_airflow_conn: Any) -> None:
    from rivya_provider.api import pool

    events = await _events(
        RivyaGenerationTrigger("task_does_not_exist", deadline=time.time() + 30, poll=FAST_POLL)
    )
    assert pool.pool_users() == 0
    assert [e["status"] for e in events] == ["error"]
    assert events[0]["error_code"] == "not_found"


async def test_two_copies_at_once_agree_and_charge_once(rivya_airflow_conn: Any) -> None:
    """Triggerer HA may run duplicates: both see the same result; nothing is paid twice."""
    generation_id = _submit(rivya_airflow_conn, "ha")
    deadline = time.time() + 30
    first, second = await asyncio.gather(
        _events(RivyaGenerationTrigger(generation_id, deadline=deadline, poll=FAST_POLL)),
        _events(RivyaGenerationTrigger(generation_id, deadline=deadline, poll=FAST_POLL)),
    )
    assert first == second
    assert first[0]["status"] == "succeeded"
    from rivya_provider.api import pool

    assert pool.pool_users() == 0  # both released the shared pool on their way out
    charges = [e for e in rivya_airflow_conn.ledger()["entries"] if e["type"] == "charge"]
    assert len(charges) == 1


async def test_cancelled_trigger_releases_its_connection_pool(rivya_airflow_conn: Any) -> None:
    from rivya_provider.api import pool

    rivya_airflow_conn.configure(latency=30)
    generation_id = _submit(rivya_airflow_conn, "cancel me")
    trigger = RivyaGenerationTrigger(generation_id, deadline=time.time() + 60, poll=FAST_POLL)
    task = asyncio.ensure_future(_events(trigger))
    await asyncio.sleep(0.5)
    assert pool.pool_users() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.pool_users() == 0
