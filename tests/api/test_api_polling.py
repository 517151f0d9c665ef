"""Poll schedule values, Retry-After override, deadlines, and wait_for_generation (both clients)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import respx
from rivya_api_support import Harness, generation

from rivya_provider.api.errors import (
    GenerationFailedError,
    GenerationTimeoutError,
    NotFoundError,
    RivyaValidationError,
)
from rivya_provider.api.models import Generation
from rivya_provider.api.polling import PollSchedule, next_delay

STATUS_PATH = "/api/v1/generations/task_1"
SUCCEEDED = generation(
    status="succeeded",
    final_credits=4,
    result={"primary_url": "https://x/1.png", "urls": ["https://x/1.png"]},
)


def _statuses(*statuses: str) -> list[httpx.Response]:
    return [
        httpx.Response(200, json=SUCCEEDED if s == "succeeded" else generation(status=s))
        for s in statuses
    ]


def test_default_schedule_values() -> None:
    delays = [PollSchedule().delay(i) for i in range(8)]
    assert delays == [2.0, 5.0, 7.5, 11.25, 15.0, 15.0, 15.0, 15.0]


def test_custom_schedule_values() -> None:
    schedule = PollSchedule(first_delay=0.0, interval=1.0, factor=2.0, max_interval=5.0)
    assert [schedule.delay(i) for i in range(6)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert schedule.delay(10_000) == 5.0  # no overflow far out


def test_every_starts_at_the_interval_and_grows_like_the_default() -> None:
    assert PollSchedule.every(None) == PollSchedule()
    assert [PollSchedule.every(4).delay(i) for i in range(5)] == [4.0, 4.0, 6.0, 9.0, 13.5]
    assert PollSchedule.every(30).max_interval == 30.0  # a long interval is not capped below
    assert PollSchedule.every(1).max_interval == PollSchedule().max_interval


def test_schedule_round_trips_as_plain_json() -> None:
    schedule = PollSchedule(first_delay=1.0, interval=3.0, factor=2.0, max_interval=30.0)
    as_json = json.loads(json.dumps(schedule.to_dict()))
    assert PollSchedule.from_dict(as_json) == schedule
    assert PollSchedule.from_dict(None) == PollSchedule()
    assert PollSchedule.from_dict({"interval": "8"}) == PollSchedule(interval=8.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"every": 3}, "unknown settings"),
        ({"interval": "often"}, "poll.interval: must be a number"),
        ({"factor": 0.5}, "poll.factor: must be a finite number >= 1"),
        ({"first_delay": -1}, "poll.first_delay: must be a finite number of seconds >= 0"),
        ({"interval": float("nan")}, "poll.interval: must be a finite number"),
        ({"interval": 0}, "poll.interval: must be a finite number of seconds >= 0.1"),
        ({"max_interval": 0.05}, "poll.max_interval: must be a finite number of seconds >= 0.1"),
        ({"factor": float("inf")}, "poll.factor: must be a finite number"),
    ],
)
def test_bad_schedules_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RivyaValidationError, match=message):
        PollSchedule.from_dict(data)


def test_next_delay_follows_the_schedule() -> None:
    schedule = PollSchedule()
    assert [next_delay(schedule, i, None, None, 0.0) for i in range(4)] == [2.0, 5.0, 7.5, 11.25]


def test_retry_after_overrides_the_schedule() -> None:
    schedule = PollSchedule()
    assert next_delay(schedule, 4, 40.0, None, 0.0) == 40.0  # longer than scheduled
    assert next_delay(schedule, 4, 1.0, None, 0.0) == 1.0  # shorter, too
    assert next_delay(schedule, 0, -3.0, None, 0.0) == 0.0


def test_next_delay_never_passes_the_deadline() -> None:
    schedule = PollSchedule()
    assert next_delay(schedule, 3, None, deadline=105.0, now=100.0) == 5.0
    assert next_delay(schedule, 0, 60.0, deadline=105.0, now=100.0) == 5.0
    assert next_delay(schedule, 3, None, deadline=100.0, now=130.0) == 0.0


def test_wait_reports_each_status_change_once(api: Harness, router: respx.MockRouter) -> None:
    route = router.get(STATUS_PATH).mock(
        side_effect=_statuses("queued", "queued", "processing", "processing", "succeeded")
    )
    seen: list[str] = []
    result = api(
        "wait_for_generation",
        "task_1",
        deadline=api.time.now + 600,
        on_status=lambda g: seen.append(g.status),
    )
    assert isinstance(result, Generation)
    assert result.succeeded
    assert seen == ["queued", "processing", "succeeded"]
    assert route.call_count == 5
    assert api.time.sleeps == [2.0, 5.0, 7.5, 11.25, 15.0]


def test_wait_raises_on_failure_with_the_generation(api: Harness, router: respx.MockRouter) -> None:
    failed = generation(status="failed", error={"code": "generation_failed", "message": "nope"})
    router.get(STATUS_PATH).mock(
        side_effect=[*_statuses("processing"), httpx.Response(200, json=failed)]
    )
    seen: list[Generation] = []
    with pytest.raises(GenerationFailedError) as caught:
        api("wait_for_generation", "task_1", api.time.now + 600, seen.append)
    assert caught.value.generation.id == "task_1"
    assert caught.value.generation.error is not None
    assert caught.value.generation.error.message == "nope"
    assert [g.status for g in seen] == ["processing", "failed"]


def test_wait_stops_at_the_deadline_with_a_final_check(
    api: Harness, router: respx.MockRouter
) -> None:
    route = router.get(STATUS_PATH).respond(200, json=generation(status="processing"))
    start = api.time.now
    with pytest.raises(GenerationTimeoutError) as caught:
        api("wait_for_generation", "task_1", deadline=start + 20)
    assert caught.value.generation_id == "task_1"
    assert caught.value.last_status == "processing"
    # 2 + 5 + 7.5 = 14.5, then the wait is cut to the 5.5 s left, then one last check.
    assert api.time.sleeps == [2.0, 5.0, 7.5, 5.5]
    assert route.call_count == 4
    assert api.time.now == start + 20


def test_wait_past_the_deadline_still_checks_once(api: Harness, router: respx.MockRouter) -> None:
    route = router.get(STATUS_PATH).mock(side_effect=_statuses("succeeded"))
    assert api("wait_for_generation", "task_1", deadline=api.time.now - 5).succeeded
    assert route.call_count == 1
    assert api.time.sleeps == []


def test_poll_schedule_override(api: Harness, router: respx.MockRouter) -> None:
    router.get(STATUS_PATH).mock(side_effect=_statuses("processing", "succeeded"))
    quick = PollSchedule(first_delay=0.0, interval=0.5)
    api("wait_for_generation", "task_1", api.time.now + 60, poll=quick)
    assert api.time.sleeps == [0.5]


def test_retry_after_during_polling_replaces_the_next_delay(
    api: Harness, router: respx.MockRouter
) -> None:
    limited = httpx.Response(
        429, headers={"Retry-After": "9"}, json={"error": {"code": "rate_limited"}}
    )
    router.get(STATUS_PATH).mock(side_effect=[limited, *_statuses("succeeded")])
    api.with_config(max_attempts=1)("wait_for_generation", "task_1", api.time.now + 600)
    assert api.time.sleeps == [2.0, 9.0]


def test_transient_errors_never_end_the_wait(api: Harness, router: respx.MockRouter) -> None:
    router.get(STATUS_PATH).mock(
        side_effect=[
            httpx.Response(500),
            httpx.ConnectError("down"),
            httpx.Response(503, json={"error": {"code": "public_api_disabled"}}),
            *_statuses("succeeded"),
        ]
    )
    result = api.with_config(max_attempts=1)("wait_for_generation", "task_1", api.time.now + 600)
    assert result.succeeded


def test_inner_retries_do_not_sleep_past_the_deadline(
    api: Harness, router: respx.MockRouter
) -> None:
    router.get(STATUS_PATH).respond(429, headers={"Retry-After": "50"})
    start = api.time.now
    with pytest.raises(GenerationTimeoutError):
        api("wait_for_generation", "task_1", deadline=start + 30)
    assert api.time.now <= start + 30


def test_non_retryable_errors_end_the_wait(api: Harness, router: respx.MockRouter) -> None:
    route = router.get(STATUS_PATH).respond(404, json={"error": {"code": "not_found"}})
    with pytest.raises(NotFoundError):
        api("wait_for_generation", "task_1", api.time.now + 600)
    assert route.call_count == 1


def test_unknown_status_is_running_and_logged_once(
    api: Harness, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    router.get(STATUS_PATH).mock(side_effect=_statuses("moderating", "moderating", "succeeded"))
    with caplog.at_level(logging.WARNING, logger="rivya_provider.api"):
        assert api("wait_for_generation", "task_1", api.time.now + 600).succeeded
    unknown = [r for r in caplog.records if "unknown status" in r.getMessage()]
    assert len(unknown) == 1
    assert "moderating" in unknown[0].getMessage()


@pytest.mark.parametrize("deadline", [float("nan"), float("inf"), "soon"])
def test_deadline_must_be_epoch_seconds(
    api: Harness, router: respx.MockRouter, deadline: Any
) -> None:
    route = router.get(STATUS_PATH).mock(side_effect=_statuses("succeeded"))
    with pytest.raises(RivyaValidationError, match="deadline"):
        api("wait_for_generation", "task_1", deadline)
    assert route.call_count == 0
