"""Extra links: a button on a finished Rivya task that opens what it made.

Airflow computes each link on the worker when a run segment ends (``finalize``) and keeps the
answer in XCom ``_link_<class>``; the UI shows that. The target itself is recorded by the task
when its images are stored (:func:`rivya_provider.observability.push_link`), so computing a link
never calls Rivya and never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

__all__ = ["RivyaBatchIndexLink", "RivyaImageLink"]


def _recorded_link(ti_key: TaskInstanceKey) -> str:
    """The target the task recorded, or ``""`` (no button) when there is none or it is unread."""
    from rivya_provider.observability import LINK_XCOM_KEY

    try:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=LINK_XCOM_KEY)
    except Exception:  # a link must never fail the task (Airflow 3.1 does not catch it)
        return ""
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else ""


class RivyaImageLink(BaseOperatorLink):
    """The "Rivya image" button: the first stored image where ``output_url`` serves it, else
    the result URL."""

    name = "Rivya image"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The recorded target of this task instance, ``""`` before its images are stored."""
        return _recorded_link(ti_key)


class RivyaBatchIndexLink(BaseOperatorLink):
    """The "Rivya batch index" button: ``index.jsonl`` where ``output_url`` serves it."""

    name = "Rivya batch index"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The recorded target of this task instance, ``""`` without ``output_url``."""
        return _recorded_link(ti_key)
