"""One request budget per process and API account: paced slots that back off on 429 (AIMD).

Every client of a process that talks to the same API with the same key takes its requests from
one :class:`RequestBudget` (:func:`shared_budget`): the worker submitting a batch, and every
trigger in a triggerer. The budget is per process: several workers and triggerers on one account
each have their own, and the ``429`` feedback keeps them under the account's limit together
(docs/DEPLOYING.md sizes them).

The rule, additive increase and multiplicative decrease:

- **Pacing.** Requests go at ``rate`` per second, with a burst of up to one second's worth after a
  quiet spell. Each request gets the next free slot (:meth:`RequestBudget.reserve_slot`); slots are
  handed out in order and never overtake one another, whatever the rate did meanwhile.
- **Decrease.** On a ``429`` (:meth:`RequestBudget.throttled`) the rate halves, once per
  congestion event: a ``429`` to a request sent before the last decrease says nothing new. Nothing
  is sent before the ``Retry-After`` has passed, and every slot handed out before the ``429`` is
  void: a request already waiting asks again (:meth:`RequestBudget.recheck`) and queues at the new
  rate behind the ``Retry-After``. (Before, the waits handed out stood, so every request due
  during a ``Retry-After`` went at its end in one burst, met the limit again, and halved the rate
  again, down to the floor.) The burst shrinks with the rate.
- **Increase.** Per second without a ``429`` (outside a ``Retry-After``), the rate grows back by
  :data:`RECOVERY_SHARE_PER_SECOND` of the configured one, never beyond it, never under
  :data:`MIN_RATE_SHARE` of it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["DEFAULT_REQUESTS_PER_SECOND", "RequestBudget", "Slot", "shared_budget"]

#: Requests per second one process sends to one account unless the connection says otherwise.
DEFAULT_REQUESTS_PER_SECOND = 10.0
#: The rate never falls below this share of the configured one.
MIN_RATE_SHARE = 0.05
#: Per second without a 429, the rate grows back by this share of the configured one: from half
#: to full in 20 s. A tenth (5 s) made 429s about twice as frequent among 2-4 processes over one
#: limit (tests/api/test_api_ratelimit_fleet.py), as every process grows at once.
RECOVERY_SHARE_PER_SECOND = 0.025


class Slot(NamedTuple):
    """A request's place in the budget's schedule."""

    wait: float
    """Seconds to wait before sending (0: now)."""
    epoch: int
    """The budget's schedule it belongs to; a 429 starts a new one and voids this slot."""


class RequestBudget:
    """Paces requests at ``rate`` per second (bursts up to ``burst``); thread-safe.

    The schedule is virtual (GCRA): ``_next`` is when the request after the last slot handed out
    is due; a request may go up to ``_tolerance()`` earlier than that, which is the burst.

    :param rate: requests per second allowed when no 429 was seen.
    :param burst: requests that may go at once after a quiet spell (default: one second's worth).
    :param clock: monotonic seconds (tests inject a fake).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.configured = float(rate)
        self.rate = float(rate)
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self._clock = clock
        now = clock()
        self._next = now
        self._grown_until = now
        self._blocked_until = 0.0
        self._last_throttle = -float("inf")
        self._epoch = 0
        self._lock = threading.Lock()

    def _grow(self, now: float) -> None:
        """Additive increase for the time since the last call without a 429 or Retry-After."""
        since = max(self._grown_until, self._last_throttle, self._blocked_until)
        self._grown_until = max(self._grown_until, now)
        if now > since and self.rate < self.configured:
            growth = self.configured * RECOVERY_SHARE_PER_SECOND * (now - since)
            self.rate = min(self.configured, self.rate + growth)

    def _tolerance(self) -> float:
        """How much earlier than ``_next`` a request may go: the burst, shrunk with the rate."""
        burst = max(1.0, self.burst * self.rate / self.configured)
        return (burst - 1.0) / self.rate

    def now(self) -> float:
        """The budget's clock (pass it back to :meth:`throttled` as ``sent_at``)."""
        return self._clock()

    def blocked_for(self) -> float:
        """Seconds until the last ``Retry-After`` has passed (0: not blocked)."""
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    def reserve_slot(self) -> Slot:
        """Take the next free slot; wait ``slot.wait``, then :meth:`recheck` it before sending."""
        with self._lock:
            now = self._clock()
            self._grow(now)
            send = max(now, self._blocked_until, self._next - self._tolerance())
            self._next = max(send, self._next) + 1.0 / self.rate
            return Slot(send - now, self._epoch)

    def reserve(self) -> float:
        """Take the next free slot; return the seconds to wait before sending (0: now)."""
        return self.reserve_slot().wait

    def recheck(self, slot: Slot) -> Slot:
        """After waiting for ``slot``: the same slot with no wait left when it still holds, else
        (a 429 was answered meanwhile) a new slot at the new rate behind the ``Retry-After``."""
        with self._lock:
            if slot.epoch == self._epoch:
                return Slot(0.0, slot.epoch)
        return self.reserve_slot()

    def throttled(self, retry_after: float | None, sent_at: float | None = None) -> None:
        """A 429 was answered: send nothing before ``retry_after`` passed, and halve the rate,
        once per congestion event: a 429 to a request sent (``sent_at``) before the last
        decrease says nothing new, as many requests in flight meet the same limit at once.
        Either change voids the slots handed out so far."""
        with self._lock:
            now = self._clock()
            self._grow(now)
            blocked_until = self._blocked_until
            if retry_after is not None and retry_after > 0:
                self._blocked_until = max(self._blocked_until, now + retry_after)
            halve = sent_at is None or sent_at >= self._last_throttle
            if halve:
                self.rate = max(self.configured * MIN_RATE_SHARE, self.rate / 2)
                self._last_throttle = now
            elif self._blocked_until == blocked_until:
                return  # nothing changed: the slots handed out still hold
            self._epoch += 1
            # No burst after a 429; a Retry-After lets one request go when it ends.
            if retry_after:
                self._next = self._blocked_until + self._tolerance()
            else:
                self._next = now + self._tolerance() + 1.0 / self.rate


_BUDGETS: dict[tuple[str, str, float, Callable[[], float]], RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_budget(
    base_url: str, api_key: str, rate: float, clock: Callable[[], float] = time.monotonic
) -> RequestBudget:
    """This process's budget for one account at ``base_url`` (keyed by a digest of the key).

    Clients on the same clock share it; a client on an injected clock (a test's fake time) gets
    the budget of that clock.
    """
    account = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    key = (base_url, account, float(rate), clock)
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = RequestBudget(rate, clock=clock)
        return budget
