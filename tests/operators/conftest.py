"""Fixtures for tests that run DAGs with ``dag.test()`` against the emulator."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` once per session (SQLite in the throwaway AIRFLOW_HOME)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )


class DagHarness:
    """Writes a DAG file into the dags folder (``dag.test()`` needs it serialized) and runs it."""

    def __init__(self) -> None:
        self.dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

    def load(self, source: str) -> Any:
        """Write ``source`` as a DAG file and import it; returns the module's ``dag``."""
        name = f"dag_{uuid.uuid4().hex[:12]}"
        path = self.dags_folder / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module.dag

    def run(self, source: str) -> tuple[Any, Any]:
        """Load and ``dag.test()`` the DAG; returns (dag, dag_run)."""
        dag = self.load(source)
        return dag, dag.test()

    @staticmethod
    def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_run.dag_id,
                    XComModel.run_id == dag_run.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                    XComModel.map_index == map_index,
                )
            ).first()
            return None if row is None else XComModel.deserialize_value(row)

    @staticmethod
    def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
        from airflow.utils.session import create_session

        with create_session() as session:
            from airflow.models.taskinstance import TaskInstance
            from sqlalchemy import select

            tis = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
                )
            ).all()
            return {(ti.task_id, ti.map_index): str(ti.state) for ti in tis}


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


MakeDag = Callable[[str], Any]
