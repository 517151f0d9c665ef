"""The retry policy, in one place, as a tenacity ``Retrying`` object.

What retries: connection errors and timeouts (:class:`TransportError` with ``retryable``),
HTTP 429, 502, 503, 504, and 2xx answers that cannot be read (``GARBLED_CODES``). Never: 409
and every other 4xx, nor 500 (a server bug rarely heals in seconds; :meth:`wait_for_generation`
still rides it out on its poll schedule). Creates are retried only because each carries an
``Idempotency-Key``, identical on every attempt.

Waits: the server's ``Retry-After`` when given (capped at ``max_backoff``), else exponential
backoff with full jitter (``uniform(0, min(max_backoff, 2 ** (attempt - 1)))``). A call stops
after ``max_attempts`` attempts, or when the next wait would take its total sleep past
``max_backoff`` or past the caller's deadline; the last error is then raised as is.

tenacity decides; it never sleeps here: the sans-IO core drives ``Retrying.iter()`` itself and
turns each ``DoSleep`` into a sleep effect that the sync or async client performs.
"""

from __future__ import annotations

from collections.abc import Callable

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from rivya_provider.api.errors import RivyaError, TransportError

__all__ = [
    "BACKOFF_MULTIPLIER",
    "GARBLED_CODES",
    "RETRY_STATUS_CODES",
    "is_retryable_failure",
    "retry_policy",
]

RETRY_STATUS_CODES = frozenset({429, 502, 503, 504})
BACKOFF_MULTIPLIER = 1.0
"""Cap of the first jittered wait, in seconds; it doubles per attempt."""


#: Local codes of a 2xx answer that could not be read (garbled JSON, an HTML proxy page, a
#: missing field, an oversized body): transient, repeated like a network error.
GARBLED_CODES = frozenset({"invalid_response", "response_too_large"})


def is_retryable_failure(exc: BaseException) -> bool:
    """Whether one failed attempt may be repeated at once (see the module docstring)."""
    if isinstance(exc, TransportError):
        return exc.retryable
    if not isinstance(exc, RivyaError):
        return False
    return exc.status_code in RETRY_STATUS_CODES or exc.code in GARBLED_CODES


class _WaitRetryAfterOrJitter(wait_base):
    """``Retry-After`` when the server sent it, else full-jitter exponential backoff."""

    def __init__(self, max_backoff: float) -> None:
        self._max = max_backoff
        self._jitter = tenacity.wait_random_exponential(
            multiplier=BACKOFF_MULTIPLIER, max=max_backoff
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        retry_after = getattr(failure, "retry_after", None)
        if isinstance(retry_after, (int, float)):
            return min(max(0.0, float(retry_after)), self._max)
        return float(self._jitter(retry_state))


class _StopWhenSpent(stop_base):
    """Stop at ``max_attempts``, or when the coming wait exceeds the budget or the deadline."""

    def __init__(
        self,
        max_attempts: int,
        max_backoff: float,
        deadline: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self._max_attempts:
            return True
        upcoming = retry_state.upcoming_sleep
        if retry_state.idle_for + upcoming > self._max_backoff + 1e-9:
            return True
        return self._deadline is not None and self._clock() + upcoming > self._deadline


def _never_sleep(seconds: float) -> None:
    raise RuntimeError("the Rivya client core drives tenacity and performs its own sleeps")


def retry_policy(
    *,
    max_attempts: int,
    max_backoff: float,
    deadline: float | None = None,
    clock: Callable[[], float],
) -> tenacity.Retrying:
    """A fresh ``Retrying`` for one call (``max_attempts=1`` disables retries)."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable_failure),
        wait=_WaitRetryAfterOrJitter(max_backoff),
        stop=_StopWhenSpent(max_attempts, max_backoff, deadline, clock),
        sleep=_never_sleep,
        reraise=True,
    )
