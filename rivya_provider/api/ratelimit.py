"""One request budget per process and API account: a token bucket that backs off on 429.

Every client of a process that talks to the same API with the same key takes its requests from
one :class:`RequestBudget` (:func:`shared_budget`): the worker submitting a batch, and every
trigger in a triggerer. The core asks it before each send (:meth:`RequestBudget.reserve` returns
how long to wait first) and tells it about each ``429`` (:meth:`RequestBudget.throttled`): the rate
halves, nothing is sent before the ``Retry-After`` has passed, and the rate then grows back by a
tenth of the configured rate per second without a ``429`` (additive increase, multiplicative
decrease). The budget is per process: several workers and triggerers on one account each have
their own, and the ``429`` feedback keeps them honest (docs/DEPLOYING.md sizes them).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

__all__ = ["DEFAULT_REQUESTS_PER_SECOND", "RequestBudget", "shared_budget"]

#: Requests per second one process sends to one account unless the connection says otherwise.
DEFAULT_REQUESTS_PER_SECOND = 10.0
#: The rate never falls below this share of the configured one.
MIN_RATE_SHARE = 0.05
#: Per second without a 429, the rate grows back by this share of the configured one.
RECOVERY_SHARE_PER_SECOND = 0.1


class RequestBudget:
    """A token bucket of ``rate`` requests per second (bursts up to ``burst``), thread-safe.

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
        self._tokens = self.burst
        self._updated = clock()
        self._blocked_until = 0.0
        self._last_throttle = -float("inf")
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        # Nothing refills or recovers while a Retry-After holds: the API said "not yet".
        previous, self._updated = self._updated, now
        elapsed = max(0.0, now - max(previous, self._blocked_until))
        if self.rate < self.configured:
            quiet = max(0.0, now - max(self._last_throttle, previous, self._blocked_until))
            growth = self.configured * RECOVERY_SHARE_PER_SECOND * quiet
            self.rate = min(self.configured, self.rate + growth)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def now(self) -> float:
        """The budget's clock (pass it back to :meth:`throttled` as ``sent_at``)."""
        return self._clock()

    def blocked_for(self) -> float:
        """Seconds until the last ``Retry-After`` has passed (0: not blocked). A request whose
        reserved wait is over asks again before it goes, so a 429 answered meanwhile holds it."""
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    def reserve(self) -> float:
        """Take one request's token; return the seconds to wait before sending it (0: now)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= 1.0
            # Tokens refill from the end of a Retry-After on, at the current rate.
            held = max(0.0, self._blocked_until - now)
            return held + max(0.0, -self._tokens) / self.rate

    def throttled(self, retry_after: float | None, sent_at: float | None = None) -> None:
        """A 429 was answered: send nothing before ``retry_after`` passed, and halve the rate,
        once per congestion event: a 429 to a request sent (``sent_at``) before the last
        decrease says nothing new, as many requests in flight meet the same limit at once."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if retry_after is not None and retry_after > 0:
                self._blocked_until = max(self._blocked_until, now + retry_after)
            if sent_at is not None and sent_at < self._last_throttle:
                return
            self.rate = max(self.configured * MIN_RATE_SHARE, self.rate / 2)
            self._last_throttle = now
            # No burst after a 429; a Retry-After lets one request go when it ends.
            self._tokens = min(self._tokens, 0.0) + (1.0 if retry_after else 0.0)


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
