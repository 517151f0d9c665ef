"""Fewer polls at scale: checks before a generation's expected completion are skipped.

The expected duration is the running median of the model's finished generations in this
process (``polling.durations``), learned from the server's ``created_at``/``updated_at``.
"""

from __future__ import annotations

import datetime

import pytest
import respx
from rivya_api_support import BASE_URL, Harness, generation

from rivya_provider.api.models import Generation, epoch_seconds
from rivya_provider.api.polling import (
    MIN_DURATION_SAMPLES,
    DurationLog,
    PollSchedule,
    durations,
    learned_delay,
)

STATUS_PATH = "/api/v1/generations/task_1"


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _succeeded(created: float, took: float) -> dict[str, object]:
    return generation(
        status="succeeded",
        created_at=_iso(created),
        updated_at=_iso(created + took),
        result={"primary_url": "https://x/1.png", "urls": ["https://x/1.png"]},
    )


def test_timestamps_parse_with_z_with_offset_and_without_zone() -> None:
    assert epoch_seconds("1970-01-01T00:00:10.500Z") == 10.5
    assert epoch_seconds("1970-01-01T01:00:10+01:00") == 10.0
    assert epoch_seconds("1970-01-01T00:00:10") == 10.0  # no zone: UTC
    assert epoch_seconds("yesterday") is None
    assert epoch_seconds(None) is None


def test_duration_is_updated_minus_created_and_none_when_unknown() -> None:
    done = Generation.model_validate(_succeeded(1000.0, 12.5))
    assert done.duration == pytest.approx(12.5)
    assert done.created_epoch == pytest.approx(1000.0)
    assert Generation.model_validate(generation(updated_at=None)).duration is None
    backwards = generation(created_at=_iso(1000.0), updated_at=_iso(990.0))
    assert Generation.model_validate(backwards).duration is None


def test_median_needs_a_few_samples_and_follows_the_model() -> None:
    log = DurationLog()
    for took in (10.0, 11.0):
        log.observe(BASE_URL, "qwen-image", took)
    assert MIN_DURATION_SAMPLES == 3
    assert log.expected(BASE_URL, "qwen-image") is None
    log.observe(BASE_URL, "qwen-image", 30.0)  # one slow outlier does not move a median much
    assert log.expected(BASE_URL, "qwen-image") == pytest.approx(11.0 + 0.55)
    assert log.expected(BASE_URL, "other-model") is None
    assert log.expected("http://elsewhere", "qwen-image") is None
    log.observe(BASE_URL, "qwen-image", -1.0)  # nonsense is ignored
    log.observe(BASE_URL, "qwen-image", float("nan"))
    assert log.expected(BASE_URL, "qwen-image") == pytest.approx(11.55)
    log.clear()
    assert log.expected(BASE_URL, "qwen-image") is None


def test_learned_delay_skips_early_checks_but_never_waits_more_than_max_interval() -> None:
    schedule = PollSchedule()  # 2, 5, 7.5, ... capped at 15
    assert learned_delay(schedule, 2.0, None, 100.0) == 2.0  # nothing learned: the schedule
    assert learned_delay(schedule, 2.0, 110.0, 100.0) == pytest.approx(10.0)
    assert learned_delay(schedule, 2.0, 160.0, 100.0) == 15.0  # lag bound: max_interval
    assert learned_delay(schedule, 5.0, 101.0, 100.0) == 5.0  # never earlier than scheduled
    assert learned_delay(schedule, 5.0, 90.0, 100.0) == 5.0  # overdue: back on the schedule


def test_the_first_check_waits_for_the_expected_completion(
    api: Harness, router: respx.MockRouter
) -> None:
    for _ in range(MIN_DURATION_SAMPLES):
        durations.observe(BASE_URL, "qwen-image", 10.0)
    created = api.time.now - 1.0  # submitted a second ago
    router.get(STATUS_PATH).respond(200, json=_succeeded(created, 10.0))
    api("wait_for_generation", "task_1", api.time.now + 600, model="qwen-image", created_at=created)
    assert api.time.sleeps == pytest.approx([10.0 + 0.5 - 1.0])  # median + 5 %, from creation
    assert router.calls.call_count == 1  # one check, not 2 s / 7 s / 14.5 s


def test_without_hints_the_model_is_learned_from_the_first_check(
    api: Harness, router: respx.MockRouter
) -> None:
    for _ in range(MIN_DURATION_SAMPLES):
        durations.observe(BASE_URL, "qwen-image", 30.0)
    created = api.time.now
    running = generation(status="processing", created_at=_iso(created))
    router.get(STATUS_PATH).mock(
        side_effect=[
            respx.MockResponse(200, json=running),
            respx.MockResponse(200, json=running),
            respx.MockResponse(200, json=_succeeded(created, 30.0)),
        ]
    )
    api("wait_for_generation", "task_1", api.time.now + 600)
    # 2 s (schedule, nothing known yet), then up to the expected 31.5 s in steps of 15 at most
    assert api.time.sleeps == pytest.approx([2.0, 15.0, 31.5 - 17.0])


def test_succeeded_generations_teach_the_median(api: Harness, router: respx.MockRouter) -> None:
    created = api.time.now
    router.get(STATUS_PATH).respond(200, json=_succeeded(created, 8.0))
    for _ in range(MIN_DURATION_SAMPLES):
        api("wait_for_generation", "task_1", api.time.now + 600)
    assert durations.expected(BASE_URL, "qwen-image") == pytest.approx(8.0 + 0.4)


def test_failed_generations_do_not_teach_it(api: Harness, router: respx.MockRouter) -> None:
    failed = generation(
        status="failed",
        created_at=_iso(api.time.now),
        updated_at=_iso(api.time.now + 0.5),
        error={"code": "generation_failed", "message": "nope"},
    )
    router.get(STATUS_PATH).respond(200, json=failed)
    for _ in range(MIN_DURATION_SAMPLES):
        with pytest.raises(Exception, match="nope"):
            api("wait_for_generation", "task_1", api.time.now + 600)
    assert durations.expected(BASE_URL, "qwen-image") is None
