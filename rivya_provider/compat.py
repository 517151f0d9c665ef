"""Every difference between the supported Airflow releases (3.1, 3.2, 3.3), bridged once, here.

Each name is resolved at import time by an import or attribute check; the rest of the package
imports these names and never checks a version itself.

- ``conf``: ``airflow.sdk.conf`` from task-sdk 1.2 (Airflow 3.2); ``airflow.configuration.conf``
  on 3.1.
- ``AirflowException``/``AirflowFailException``/``AirflowSkipException``:
  ``airflow.sdk.exceptions`` from Airflow 3.2; ``airflow.exceptions`` on 3.1
  (the classes the 3.1 task runner catches).
- :func:`aget_connection`: ``BaseHook.aget_connection``. On 3.1 it works only inside a task or
  triggerer process (it imports ``SUPERVISOR_COMMS`` before trying the secrets backends); outside
  one (a trigger driven by a unit test) it falls back to the blocking lookup in a worker thread,
  which tries the secrets backends (``AIRFLOW_CONN_*``) first. :func:`get_connection` turns the
  same 3.1 failure of the blocking lookup into an error that names the connection.
- :func:`dag_bag`: parse a DAG folder. ``DagBag`` lives in ``airflow.dag_processing.dagbag`` from
  3.2 (``airflow.models.dagbag`` on 3.1), and 3.3 dropped its ``include_examples`` argument.
- :func:`prepare_dag_test`: ``dag.test()`` stores the DAG's serialized form itself from 3.2 on;
  on 3.1 it fails with "the dag is not serialized" unless something (``airflow dags test``, or
  this function) has synced the DAG file to the metadata DB first.
- :func:`hitl_response_timeout`: ``HITLOperator`` takes ``response_timeout`` from standard
  provider 1.9 (Airflow 3.2); the 3.1 provider reads ``execution_timeout`` instead.
- :func:`task_state_store`: the per-task-instance store of Airflow 3.3+, or ``None`` before it.
  Without it a retry still reattaches to its generation, through the idempotent replay of the
  same ``Idempotency-Key`` (one extra POST that the API answers without charging).
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, Connection

if TYPE_CHECKING:
    from airflow.sdk import Context

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[assignment,unused-ignore]

try:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "aget_connection",
    "conf",
    "dag_bag",
    "default_deferrable",
    "get_connection",
    "hitl_response_timeout",
    "prepare_dag_test",
    "task_state_store",
]


def get_connection(conn_id: str) -> Connection:
    """The connection ``conn_id`` (blocking lookup)."""
    try:
        return BaseHook.get_connection(conn_id)
    except ImportError:  # Airflow 3.1 outside a supervised process: no SUPERVISOR_COMMS
        raise AirflowException(
            f"The conn_id `{conn_id}` isn't defined in any secrets backend (outside a task or "
            "triggerer, Airflow 3.1 cannot ask the API server)"
        ) from None


async def aget_connection(conn_id: str) -> Connection:
    """The connection ``conn_id``, looked up without blocking the event loop."""
    try:
        return await BaseHook.aget_connection(conn_id)
    except ImportError:  # Airflow 3.1 outside a supervised process: no SUPERVISOR_COMMS
        return await asyncio.to_thread(get_connection, conn_id)


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset)."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def hitl_response_timeout(limit: timedelta) -> dict[str, timedelta]:
    """How long a human-in-the-loop task may wait, as this Airflow's ``HITLOperator`` takes it."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    if "response_timeout" in inspect.signature(HITLOperator).parameters:
        return {"response_timeout": limit}
    return {"execution_timeout": limit}


def task_state_store(context: Context | Mapping[str, Any]) -> Any:
    """The task state store of Airflow 3.3+, or ``None`` where the release has none."""
    return context.get("task_state_store")


def dag_bag(dag_folder: str | os.PathLike[str], **kwargs: Any) -> Any:
    """A ``DagBag`` of ``dag_folder`` alone (Airflow's bundled examples never included).

    Imported on call: ``DagBag`` pulls in Airflow's core, which DAG files must not pay for.
    """
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,unused-ignore]

    if "include_examples" in inspect.signature(DagBag.__init__).parameters:  # before 3.3
        kwargs["include_examples"] = False
    return DagBag(dag_folder=os.fspath(dag_folder), **kwargs)


def prepare_dag_test(dag: Any, dag_file: str | os.PathLike[str] | None = None) -> None:
    """Make ``dag.test()`` work on every release: on 3.1, sync the DAG's file to the DB first.

    :param dag: a DAG whose file lies inside a configured DAG bundle (``[core] dags_folder``).
    :param dag_file: the file defining it, when ``dag.fileloc`` is elsewhere (a ``@dag``
        factory called from another module).
    """
    try:
        import airflow.dag_processing.dagbag  # noqa: F401  (3.2+: dag.test() syncs by itself)
    except ImportError:
        pass
    else:
        return
    from pathlib import Path

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag_version import DagVersion
    from airflow.models.dagbag import sync_bag_to_db  # type: ignore[attr-defined,unused-ignore]

    if DagVersion.get_latest_version(dag.dag_id) is not None:
        return
    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    fileloc = Path(dag_file if dag_file is not None else dag.fileloc).resolve()
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        if fileloc.is_relative_to(Path(bundle.path).resolve()):
            bag = dag_bag(fileloc, bundle_path=bundle.path)
            sync_bag_to_db(bag, bundle.name, bundle.version)
            return
    raise ValueError(f"{fileloc} is in no DAG bundle; put it inside [core] dags_folder")
