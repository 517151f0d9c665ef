"""The poll schedule of a generation, in one place: when to look again, and when to stop.

Rivya's guidance: first status check about 2-3 s after submitting, then every 5-10 s, slower
for long jobs. The default schedule is 2, 5, 7.5, 11.25, 15, 15, ... seconds. A server
``Retry-After`` overrides the schedule for one wait; an absolute deadline (epoch seconds,
``time.time()``) caps every wait.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import math
import statistics
import threading
from collections.abc import Mapping
from typing import Any

from rivya_provider.api.errors import RivyaValidationError

__all__ = [
    "MIN_POLL_INTERVAL",
    "DurationLog",
    "PollSchedule",
    "durations",
    "learned_delay",
    "next_delay",
    "seconds",
]

#: The floor of any interval between two status checks: no setting can flood the API.
MIN_POLL_INTERVAL = 0.1


def seconds(
    field: str, value: object, minimum: float = 0.0, *, above: bool = False, unit: str = "seconds"
) -> float:
    """``value`` (a number or a ``timedelta``) as finite seconds ``>= minimum`` (``> minimum``
    when ``above``).

    :raises RivyaValidationError: naming ``field`` and the rule (``nan``, ``inf``, text, ``None``
        and booleans are refused).
    """
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    rule = f"a finite number{f' of {unit}' if unit else ''} {'>' if above else '>='} {minimum:g}"
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if (
        number is None
        or not math.isfinite(number)
        or number < minimum
        or (above and number == minimum)
    ):
        raise RivyaValidationError(f"{field}: must be {rule} (got {value!r})", field=field)
    return float(number)


@dataclasses.dataclass(frozen=True)
class PollSchedule:
    """Delays between status checks: ``first_delay``, then ``interval`` growing by ``factor``.

    :param first_delay: seconds from submit to the first check.
    :param interval: seconds before the second check.
    :param factor: growth of each following interval.
    :param max_interval: cap of any interval.
    """

    first_delay: float = 2.0
    interval: float = 5.0
    factor: float = 1.5
    max_interval: float = 15.0

    def __post_init__(self) -> None:
        minimums = {
            "first_delay": 0.0,
            "interval": MIN_POLL_INTERVAL,
            "factor": 1.0,
            "max_interval": MIN_POLL_INTERVAL,
        }
        for name, minimum in minimums.items():
            unit = "" if name == "factor" else "seconds"
            value = seconds(f"poll.{name}", getattr(self, name), minimum, unit=unit)
            object.__setattr__(self, name, value)

    def delay(self, index: int) -> float:
        """The wait before check number ``index`` (0 is the first check after submit)."""
        if index <= 0:
            return self.first_delay
        # Clamp the exponent: the cap is reached long before any float overflow.
        grown = self.interval * self.factor ** min(index - 1, 64)
        return min(grown, self.max_interval)

    def to_dict(self) -> dict[str, float]:
        """Plain JSON (for trigger kwargs)."""
        return {field.name: float(getattr(self, field.name)) for field in dataclasses.fields(self)}

    @classmethod
    def every(cls, interval: float | None) -> PollSchedule:
        """First check after ``interval`` s, then ``interval`` growing as the default does.

        ``None`` is the default schedule. The cap is the default cap, or ``interval`` if larger.
        """
        default = cls()
        if interval is None:
            return default
        checked = seconds("poll_interval", interval, MIN_POLL_INTERVAL)
        return cls(
            first_delay=checked,
            interval=checked,
            factor=default.factor,
            max_interval=max(default.max_interval, checked),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PollSchedule:
        """Inverse of :meth:`to_dict`: missing keys take defaults; unknown keys are refused."""
        if not data:
            return cls()
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RivyaValidationError(
                f"poll: unknown settings {unknown}; known: {sorted(known)}", field="poll"
            )
        values: dict[str, float] = {}
        for key, value in data.items():
            if value is None:
                continue
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                raise RivyaValidationError(
                    f"poll.{key}: must be a number (got {value!r})", field=f"poll.{key}"
                ) from None
        return cls(**values)


def next_delay(
    schedule: PollSchedule,
    attempt_index: int,
    retry_after: float | None,
    deadline: float | None,
    now: float,
) -> float:
    """Seconds to wait before check ``attempt_index``.

    ``retry_after`` (from the server) replaces the scheduled delay; the result never reaches
    past ``deadline`` (absolute epoch seconds) and is ``0.0`` once the deadline has passed.
    """
    delay = schedule.delay(attempt_index) if retry_after is None else max(0.0, retry_after)
    if deadline is not None:
        delay = min(delay, deadline - now)
    return max(0.0, delay)


#: Finished generations remembered per model for the running median.
DURATION_SAMPLES = 51
#: Finished generations of a model seen before its median is used.
MIN_DURATION_SAMPLES = 3
#: Aim this share past the median (and at least ``EXPECTED_SLACK_SECONDS`` past it): a check
#: right at the median finds half the generations still running.
EXPECTED_SLACK_SHARE = 0.05
EXPECTED_SLACK_SECONDS = 0.25


class DurationLog:
    """How long generations took, per API and model, learned in this process (thread-safe).

    Every finished generation a client of the process waits for adds its duration (server
    ``updated_at - created_at``); :meth:`expected` is the running median of the last
    :data:`DURATION_SAMPLES`, once :data:`MIN_DURATION_SAMPLES` were seen.
    """

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str], collections.deque[float]] = {}
        self._lock = threading.Lock()

    def observe(self, base_url: str, model: str, seconds: float) -> None:
        """Remember that a generation of ``model`` took ``seconds``."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        with self._lock:
            samples = self._samples.setdefault(
                (base_url, model), collections.deque(maxlen=DURATION_SAMPLES)
            )
            samples.append(seconds)

    def expected(self, base_url: str, model: str) -> float | None:
        """Seconds a generation of ``model`` is expected to take (``None``: not learned yet)."""
        with self._lock:
            samples = self._samples.get((base_url, model))
            if samples is None or len(samples) < MIN_DURATION_SAMPLES:
                return None
            median = statistics.median(samples)
        return median + max(EXPECTED_SLACK_SECONDS, median * EXPECTED_SLACK_SHARE)

    def clear(self) -> None:
        """Forget everything (test fixtures start each test from the shared schedule)."""
        with self._lock:
            self._samples.clear()


#: The process's log: every client of a worker or triggerer learns into it.
durations = DurationLog()


def learned_delay(
    schedule: PollSchedule, scheduled: float, expected_done: float | None, now: float
) -> float:
    """The wait before a check, given that the generation is expected done at
    ``expected_done`` (epoch seconds; ``None``: unknown).

    Checks the schedule would make before then are skipped: wait until ``expected_done``,
    but never longer than the schedule's ``max_interval`` at a time, so a generation that
    finishes early is seen at most ``max_interval`` late (the schedule's own worst case).
    """
    if expected_done is None or expected_done - now <= scheduled:
        return scheduled
    return max(scheduled, min(expected_done - now, schedule.max_interval))
