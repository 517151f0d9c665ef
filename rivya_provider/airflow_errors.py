"""How Rivya errors become Airflow task outcomes: the one place that decides retry or fail.

Non-retryable API errors (auth, scope, validation, credits, idempotency conflict, a local
check) raise ``AirflowFailException``, so Airflow spends no retry on them. Everything else is
raised as it is and Airflow may retry: a retry of these operators replays, it never pays twice.
"""

from __future__ import annotations

from rivya_provider.api.errors import GenerationFailedError, GenerationTimeoutError, RivyaError
from rivya_provider.compat import AirflowFailException

__all__ = ["to_airflow_error"]


def to_airflow_error(error: RivyaError) -> Exception:
    """The exception a task raises for ``error``: fail for good, or leave it retryable."""
    if error.retryable or isinstance(error, (GenerationFailedError, GenerationTimeoutError)):
        return error
    return AirflowFailException(str(error))
