"""How Rivya errors become Airflow task outcomes: the one place that decides retry or fail.

Imported by operator modules at DAG-parse time: nothing heavy at module level.

Non-retryable API errors (auth, scope, validation, credits, idempotency conflict, a local
check) raise ``AirflowFailException``, so Airflow spends no retry on them. Everything else is
raised as it is and Airflow may retry: a retry of these operators replays, it never pays twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from rivya_provider.compat import AirflowFailException

if TYPE_CHECKING:
    from rivya_provider.api.errors import RivyaError

__all__ = ["DEFAULT_RETRIES", "DEFAULT_RETRY_DELAY", "to_airflow_error"]

#: Retries of the operators when the DAG author sets none (directly or in ``default_args``): a
#: retry replays or reattaches, so it never pays twice, and a crash anywhere (a worker killed
#: mid-store) then still ends in a stored image.
DEFAULT_RETRIES = 3
DEFAULT_RETRY_DELAY = timedelta(seconds=10)


def to_airflow_error(error: RivyaError) -> Exception:
    """The exception a task raises for ``error``: fail for good, or leave it retryable."""
    from rivya_provider.api.errors import GenerationFailedError, GenerationTimeoutError

    if error.retryable or isinstance(error, (GenerationFailedError, GenerationTimeoutError)):
        return error
    return AirflowFailException(str(error))
