"""Load a DAG from a folder in a test, the same way on every supported Airflow release."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["load_dag"]


def load_dag(dag_id: str, dag_folder: str | os.PathLike[str] | None = None) -> Any:
    """Parse ``dag_folder`` and return its DAG ``dag_id``, ready for ``dag.test()``.

    Fails loudly on import errors. On Airflow 3.1 it also syncs the DAG to the metadata DB, as
    ``airflow dags test`` does (3.2+ ``dag.test()`` does that itself).

    :param dag_id: the DAG to return.
    :param dag_folder: folder (or file) to parse; default ``[core] dags_folder``. For
        ``dag.test()`` the DAG file must lie inside ``[core] dags_folder``.
    """
    from rivya_provider.compat import conf, dag_bag, prepare_dag_test

    folder = dag_folder if dag_folder is not None else conf.get("core", "dags_folder")
    bag = dag_bag(folder)
    if bag.import_errors:
        details = "\n".join(f"{path}: {error}" for path, error in bag.import_errors.items())
        raise ImportError(f"DAG files in {os.fspath(folder)} failed to import:\n{details}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise LookupError(f"no DAG {dag_id!r} in {os.fspath(folder)} (found {sorted(bag.dag_ids)})")
    prepare_dag_test(dag)
    return dag
