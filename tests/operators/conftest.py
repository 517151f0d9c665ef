"""Fixtures for tests that run DAGs with ``dag.test()`` against the emulator."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.compat import prepare_dag_test
from tests.airflow_support import import_file, task_states, xcom


class DagHarness:
    """Writes a DAG file into the dags folder (``dag.test()`` needs it serialized) and runs it."""

    def __init__(self) -> None:
        self.dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

    def load(self, source: str) -> Any:
        """Write ``source`` as a DAG file and import it; returns the module's ``dag``."""
        name = f"dag_{uuid.uuid4().hex[:12]}"
        path = self.dags_folder / f"{name}.py"
        path.write_text(source)
        dag = import_file(path, name).dag
        prepare_dag_test(dag)
        return dag

    def run(self, source: str) -> tuple[Any, Any]:
        """Load and ``dag.test()`` the DAG; returns (dag, dag_run)."""
        dag = self.load(source)
        return dag, dag.test()

    xcom = staticmethod(xcom)
    task_states = staticmethod(task_states)


@pytest.fixture
def dag_harness(airflow_db: None) -> DagHarness:
    return DagHarness()


@pytest.fixture
def memory_fs() -> Iterator[Any]:
    """A fresh ``memory://`` filesystem attached to Airflow's ObjectStoragePath registry."""
    from airflow.sdk.io.store import _STORE_CACHE, attach
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]
    _STORE_CACHE.pop("memory", None)
    attach(protocol="memory", fs=fs)
    yield fs
    _STORE_CACHE.pop("memory", None)
    fs.store.clear()
