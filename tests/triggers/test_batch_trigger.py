"""[batch] RivyaBatchTrigger: one GET-only wait for a whole batch, one compact event."""

from __future__ import annotations

import json
import time
from typing import Any

from rivya_provider.triggers.batch import BatchEvent, RivyaBatchTrigger
from tests.triggers.test_generation_trigger import FAST_POLL, _submit


async def _events(trigger: RivyaBatchTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def test_serialize_round_trip_is_plain_json_without_secrets(rivya_airflow_conn: Any) -> None:
    trigger = RivyaBatchTrigger(
        ["task_1", "task_2"],
        deadline=1_900_000_000.5,
        poll=FAST_POLL,
        model="qwen-image",
        created_at=[1_899_999_990.1, None],
    )
    classpath, kwargs = trigger.serialize()
    assert kwargs["created_at"] == [1_899_999_990.1, None]
    assert classpath == "rivya_provider.triggers.batch.RivyaBatchTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert rivya_airflow_conn.api_key not in json.dumps(kwargs)
    assert RivyaBatchTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_one_event_says_where_each_generation_ended_with_gets_only(
    rivya_airflow_conn: Any,
) -> None:
    emulator = rivya_airflow_conn
    ids = [_submit(emulator, "fine"), _submit(emulator, "bad [[fail]]"), _submit(emulator, "ok")]
    ids.append("task_not_this_accounts")
    path = f"/api/v1/generations/{ids[2]}"
    emulator.inject_fault(path, status=503, count=2)  # a blip never ends a wait
    trigger = RivyaBatchTrigger(ids, deadline=time.time() + 60, poll=FAST_POLL)
    (payload,) = await _events(trigger)
    event = BatchEvent.parse(json.loads(json.dumps(payload)))
    assert event.status == "complete"
    assert event.succeeded == [0, 2]
    assert list(event.failed) == [1, 3]
    assert event.failed[1][0] == "generation_failed"
    assert event.failed[3][0] == "not_found"
    assert event.unreadable == [3]  # did not fail: not to be submitted again
    assert event.pending == []
    not_gets = [r for r in emulator.requests("/api/v1/generations") if r["method"] != "GET"]
    assert len(not_gets) == 3  # only _submit's three creates: the trigger sent GETs only


async def test_generations_still_running_at_the_deadline_are_pending(
    rivya_airflow_conn: Any,
) -> None:
    rivya_airflow_conn.configure(latency=30.0)
    ids = [_submit(rivya_airflow_conn, f"slow {n}") for n in range(3)]
    started = time.monotonic()
    (payload,) = await _events(RivyaBatchTrigger(ids, deadline=time.time() + 1.0, poll=FAST_POLL))
    assert time.monotonic() - started < 4.0
    event = BatchEvent.parse(payload)
    assert event.status == "timeout"
    assert event.pending == [0, 1, 2]


def test_the_event_for_a_thousand_items_stays_small() -> None:
    """Positions, not ids or URLs: a few bytes per item."""
    event = BatchEvent(
        status="complete",
        succeeded=list(range(990)),
        failed={n: ("generation_failed", "x" * 200) for n in range(990, 1000)},
    )
    size = len(json.dumps(event.model_dump(mode="json")))
    print(f"event for 1,000 items: {size} bytes")
    assert size < 8 * 1024


def test_a_malformed_event_is_a_retryable_error() -> None:
    import pytest

    from rivya_provider.api.errors import RivyaError

    with pytest.raises(RivyaError) as raised:
        BatchEvent.parse({"status": "done"})
    assert raised.value.retryable
