"""The per-process request budget (``api.ratelimit``): pacing, 429 feedback, recovery, sharing.

Unit tests drive :class:`RequestBudget` on a fake clock; the client tests run through the
sync/async harness, whose clients share one budget per account and clock, as the clients of one
worker or triggerer process do.
"""

from __future__ import annotations

import io
import itertools

import pytest
import respx
from rivya_api_support import API_KEY, BASE_URL, MEDIA_URL, FakeTime, Harness, generation

from rivya_provider.api._core import ClientCore
from rivya_provider.api._effects import Sleep
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.errors import RateLimitedError, RivyaValidationError
from rivya_provider.api.polling import PollSchedule
from rivya_provider.api.ratelimit import (
    MIN_RATE_SHARE,
    RECOVERY_SHARE_PER_SECOND,
    RequestBudget,
    shared_budget,
)

SUCCEEDED = generation(
    status="succeeded", result={"primary_url": f"{MEDIA_URL}/a.png", "urls": [f"{MEDIA_URL}/a.png"]}
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reserve_lets_a_burst_go_then_paces_at_the_rate() -> None:
    clock = Clock()
    budget = RequestBudget(4.0, clock=clock)
    waits = [budget.reserve() for _ in range(8)]
    assert waits[:4] == [0.0, 0.0, 0.0, 0.0]  # one second's worth at once
    assert waits[4:] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    clock.now += 10.0  # a quiet spell refills the bucket up to the burst, not beyond
    assert [budget.reserve() for _ in range(5)] == pytest.approx([0, 0, 0, 0.0, 0.25])


def test_a_429_holds_every_request_until_retry_after_and_halves_the_rate() -> None:
    clock = Clock()
    budget = RequestBudget(10.0, clock=clock)
    sent_at = budget.now()
    budget.throttled(3.0, sent_at)
    assert budget.rate == 5.0
    assert budget.blocked_for() == 3.0
    assert budget.reserve() == 3.0  # nothing before Retry-After; then one request goes
    clock.now += 3.0
    assert budget.blocked_for() == 0.0
    assert budget.reserve() == pytest.approx(0.2)  # and the next at the halved rate, no burst


def test_429s_to_requests_sent_before_the_last_decrease_halve_only_once() -> None:
    clock = Clock()
    budget = RequestBudget(16.0, clock=clock)
    in_flight = [budget.now() for _ in range(6)]  # six requests sent together
    clock.now += 0.01
    for sent_at in in_flight:  # all six meet the same limit
        budget.throttled(1.0, sent_at)
    assert budget.rate == 8.0
    clock.now += 1.0
    budget.throttled(1.0, budget.now())  # a request sent after the decrease: a new signal
    assert budget.rate == 4.0  # no growth while blocked by the Retry-After


def test_the_rate_recovers_gradually_and_never_beyond_the_configured_one() -> None:
    clock = Clock()
    budget = RequestBudget(10.0, clock=clock)
    budget.throttled(None, budget.now())
    assert budget.rate == 5.0
    clock.now += 2.0
    budget.reserve()
    assert budget.rate == pytest.approx(5.0 + 10.0 * RECOVERY_SHARE_PER_SECOND * 2.0)
    clock.now += 60.0
    budget.reserve()
    assert budget.rate == 10.0


def test_the_rate_has_a_floor() -> None:
    clock = Clock()
    budget = RequestBudget(10.0, clock=clock)
    for _ in range(20):
        clock.now += 0.001
        budget.throttled(None, budget.now())
    assert budget.rate == pytest.approx(10.0 * MIN_RATE_SHARE)


def test_one_budget_per_account_and_rate_keyed_without_the_key() -> None:
    clock = Clock()
    first = shared_budget(BASE_URL, API_KEY, 5.0, clock)
    assert shared_budget(BASE_URL, API_KEY, 5.0, clock) is first
    assert shared_budget(BASE_URL, API_KEY + "x", 5.0, clock) is not first
    assert shared_budget("http://127.0.0.1:9999", API_KEY, 5.0, clock) is not first
    from rivya_provider.api import ratelimit

    assert not any(API_KEY in repr(key) for key in ratelimit._BUDGETS)


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), True, "10"])
def test_config_refuses_a_bad_rate(rate: object) -> None:
    with pytest.raises(RivyaValidationError, match="max_requests_per_second: must be"):
        ClientConfig(api_key=API_KEY, base_url=BASE_URL, max_requests_per_second=rate)  # type: ignore[arg-type]


# -- through the clients ---------------------------------------------------------------------


def test_clients_of_one_process_share_the_pace(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").respond(200, json={"current_credits": 5})
    api = api.with_config(max_requests_per_second=2.0)
    for _ in range(5):  # five clients, one call each, as five triggers would
        api("get_credits")
    assert api.time.sleeps == pytest.approx([0.5, 0.5, 0.5])  # burst of 2, then 2 per second


def test_a_429_makes_the_other_clients_wait_for_retry_after(
    api: Harness, router: respx.MockRouter
) -> None:
    router.get("/api/v1/credits").respond(429, headers={"Retry-After": "4"})
    router.get("/api/v1/generations/task_1").respond(200, json=generation())
    api = api.with_config(max_requests_per_second=100.0, max_attempts=1)
    with pytest.raises(RateLimitedError):
        api("get_credits")  # one client meets the limit
    assert api.time.sleeps == []
    api("get_generation", "task_1")  # another client of the process waits for Retry-After
    assert api.time.sleeps == [4.0]


def test_a_budget_wait_never_runs_past_the_callers_deadline(
    api: Harness, router: respx.MockRouter
) -> None:
    router.get("/api/v1/credits").respond(200, json={"current_credits": 5})
    router.get("/api/v1/generations/task_1").respond(200, json=SUCCEEDED)
    api = api.with_config(max_requests_per_second=0.1)
    api("get_credits")  # the burst token: the next request would wait 10 s
    poll = PollSchedule(first_delay=2.0)
    api("wait_for_generation", "task_1", api.time.now + 5.0, poll=poll)
    assert api.time.sleeps == pytest.approx([2.0, 3.0])  # the first delay, then the budget


def test_media_downloads_are_not_paced(api: Harness, router: respx.MockRouter) -> None:
    with respx.mock(base_url=MEDIA_URL, assert_all_called=False) as media:
        media.get("/media/a.png").respond(200, content=b"\x89PNG\r\n\x1a\n" + b"0" * 64)
        api = api.with_config(max_requests_per_second=1.0)
        for _ in range(4):
            api("download", f"{MEDIA_URL}/media/a.png", io.BytesIO(), 1024)
    assert api.time.sleeps == []


def test_no_budget_when_the_rate_is_none(api: Harness, router: respx.MockRouter) -> None:
    router.get("/api/v1/credits").respond(200, json={"current_credits": 5})
    api = api.with_config(max_requests_per_second=None)
    for _ in range(30):
        api("get_credits")
    assert api.time.sleeps == []


def test_default_rate_is_ten_per_second() -> None:
    assert ClientConfig(api_key=API_KEY).max_requests_per_second == 10.0


def test_fake_time_budgets_are_separate(router: respx.MockRouter) -> None:
    """Each clock has its own budget: a test's fake clock never slows a real client."""
    router.get("/api/v1/credits").respond(200, json={"current_credits": 5})
    config = ClientConfig(api_key=API_KEY, base_url=BASE_URL, max_requests_per_second=1.0)
    first, second = Harness("sync", config, FakeTime()), Harness("sync", config, FakeTime())
    first("get_credits")
    second("get_credits")
    assert first.time.sleeps == second.time.sleeps == []


def test_a_request_already_waiting_is_held_by_a_429_answered_meanwhile() -> None:
    """A reservation is made before the wait; a 429 to another request during that wait holds
    this one until its Retry-After too (the core asks the budget again before sending)."""
    fake = FakeTime()
    config = ClientConfig(api_key=API_KEY, base_url=BASE_URL, max_requests_per_second=1.0)
    core = ClientCore(config, clock=fake.clock)
    assert core.budget is not None
    core.budget.reserve()  # the burst token is gone: the next request waits 1 s
    pacing = core._pace(core.build("GET", "/api/v1/credits"), None)
    first = next(pacing)
    assert isinstance(first, Sleep)
    assert first.seconds == pytest.approx(1.0)
    core.budget.throttled(6.0, core.budget.now())  # meanwhile, another request met a 429
    fake.sleep(first.seconds)
    second = pacing.send(None)
    assert isinstance(second, Sleep)
    assert second.seconds == pytest.approx(5.0)
    fake.sleep(second.seconds)
    with pytest.raises(StopIteration):
        pacing.send(None)


def test_recovery_does_not_depend_on_how_often_the_budget_is_asked() -> None:
    """Growth is counted per second without a 429, not per call: asking every 10 ms or once
    after 2 s ends at the same rate (each call adds only the time since the previous one)."""
    clocks = Clock(), Clock()
    often, once = RequestBudget(10.0, clock=clocks[0]), RequestBudget(10.0, clock=clocks[1])
    for budget in (often, once):
        budget.throttled(None, budget.now())
    for _ in range(200):
        clocks[0].now += 0.01
        often.blocked_for()
        often.reserve()
    clocks[1].now += 2.0
    once.reserve()
    assert often.rate == pytest.approx(once.rate)
    assert once.rate == pytest.approx(5.0 + 10.0 * RECOVERY_SHARE_PER_SECOND * 2.0)


def test_a_429_voids_the_slots_handed_out_so_waiters_queue_at_the_new_rate() -> None:
    """The cause of issue #17's collapse: requests waiting for slots given before a 429 went
    together when its Retry-After ended, met the limit again and halved the rate again. Now each
    asks again after its wait and gets a slot at the halved rate behind the Retry-After."""
    clock = Clock()
    budget = RequestBudget(10.0, clock=clock)
    for _ in range(10):
        budget.reserve()  # the burst is spent
    slots = [budget.reserve_slot() for _ in range(8)]  # eight requests waiting, 0.1 s apart
    assert [slot.wait for slot in slots] == pytest.approx([0.1 * n for n in range(1, 9)])
    clock.now += 0.05
    budget.throttled(1.0, clock.now - 0.04)  # a request sent before the waits met the limit
    sends = []
    for slot in slots:  # each wakes at its old slot, then rechecks until told to go
        at = 100.0 + slot.wait
        while slot.wait > 0:
            clock.now = max(clock.now, at)
            slot = budget.recheck(slot)
            at = clock.now + slot.wait
        sends.append(at)
    assert sends[0] == pytest.approx(101.05)  # one goes when the Retry-After ends
    gaps = [later - earlier for earlier, later in itertools.pairwise(sends)]
    assert min(gaps) > 0.18  # the rest at about the halved rate (recovering), not in one burst


def test_a_429_to_a_request_sent_before_the_last_decrease_keeps_the_slots() -> None:
    clock = Clock()
    budget = RequestBudget(10.0, clock=clock)
    sent_at = budget.now()
    clock.now += 0.01
    budget.throttled(1.0, sent_at)
    slot = budget.reserve_slot()
    budget.throttled(1.0, sent_at)  # same event, same Retry-After: nothing new
    assert budget.recheck(slot).wait == 0.0
    clock.now += 0.5
    budget.throttled(1.0, sent_at)  # same event, but the Retry-After now ends later
    assert budget.rate == 5.0
    assert budget.recheck(slot).wait == pytest.approx(1.0)


def test_slots_never_overtake_one_another_while_the_rate_grows() -> None:
    clock = Clock()
    budget = RequestBudget(10.0, clock=clock)
    budget.throttled(None, budget.now())
    due = []
    for _ in range(30):  # a queue that grows faster than it drains, while the rate recovers
        slot = budget.reserve_slot()
        due.append(clock.now + slot.wait)
        clock.now += 0.1
    assert budget.rate > 5.0
    assert due == sorted(due)
    assert min(later - earlier for earlier, later in itertools.pairwise(due)) > 0


def test_the_burst_shrinks_with_the_rate() -> None:
    clock = Clock()
    budget = RequestBudget(10.0, clock=clock)
    budget.throttled(None, budget.now())
    clock.now += 2.0  # a quiet spell: the bucket is full again, the rate only back to 5.5
    waits = [budget.reserve() for _ in range(8)]
    assert budget.rate == pytest.approx(5.0 + 10.0 * RECOVERY_SHARE_PER_SECOND * 2.0)
    burst = sum(1 for wait in waits if wait == 0.0)
    assert burst == int(budget.rate)  # one second's worth at the current rate, not 10
