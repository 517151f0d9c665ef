"""Fixtures for running the example DAGs with ``dag.test()`` against the emulator.

``examples`` copies ``dags_examples/`` (with its ``assets/``) into the throwaway dags folder
(``dag.test()`` needs the DAG file there, to serialize it) and imports the example modules with
``RIVYA_OUTPUT_DIR`` pointing at a temporary folder.

``hitl_responder`` answers a human-in-the-loop task from a background thread while ``dag.test()``
runs. On Airflow 3.3 ``dag.test()`` leaves a HITL task parked in ``awaiting_input`` and polls the
DB every second until something outside records a response. The responder waits until the task's
HITL detail row exists and the task instance is ``awaiting_input``, then sends the answer through
Airflow's REST API, ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/
{map_index}/hitlDetails``, to the api-server's own FastAPI app (``create_app("core")``, in
process, same DB; ``simple_auth_manager_all_admins`` makes the caller an admin): the same routing,
validation, write of ``chosen_options``/``params_input``/``responded_by``/``responded_at`` and
event-driven resume (the task goes to ``scheduled`` with the response as its event) as a
deployed api-server. If no task is waiting before its deadline it fails the run, so
``dag.test()`` returns instead of waiting forever.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest

from rivya_provider.compat import prepare_dag_test
from tests.airflow_support import import_file, task_states, xcom

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "dags_examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("example_*.py"))


class Examples:
    """The example DAG modules, copied into the dags folder and imported once per session."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        self._modules: dict[str, ModuleType] = {}

    def install(self) -> None:
        shutil.copytree(EXAMPLES / "assets", self.dags_folder / "assets", dirs_exist_ok=True)
        for source in EXAMPLE_FILES:
            shutil.copy2(source, self.dags_folder / source.name)

    def dag(self, name: str) -> Any:
        """The ``DAG`` of ``dags_examples/<name>.py`` (imported from the dags-folder copy)."""
        if name not in self._modules:
            path = self.dags_folder / f"{name}.py"
            module = import_file(path, f"rivya_examples_{name}")
            self._modules[name] = module
        dag = getattr(self._modules[name], name)()  # the @dag factory builds the DAG
        prepare_dag_test(dag, self.dags_folder / f"{name}.py")
        return dag

    xcom = staticmethod(xcom)
    task_states = staticmethod(task_states)


@pytest.fixture(scope="session")
def examples_output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rivya-example-output")


@pytest.fixture(scope="session")
def examples(airflow_db: None, examples_output_dir: Path) -> Iterator[Examples]:
    previous = os.environ.get("RIVYA_OUTPUT_DIR")
    os.environ["RIVYA_OUTPUT_DIR"] = str(examples_output_dir)
    harness = Examples(examples_output_dir)
    harness.install()
    try:
        yield harness
    finally:
        if previous is None:
            os.environ.pop("RIVYA_OUTPUT_DIR", None)
        else:
            os.environ["RIVYA_OUTPUT_DIR"] = previous


class HITLResponder:
    """Answers one human-in-the-loop task of a ``dag.test()`` run from a background thread."""

    def __init__(
        self,
        dag_id: str,
        task_id: str,
        chosen_options: list[str],
        *,
        map_index: int = -1,
        params_input: dict[str, Any] | None = None,
        reviewer: str = "reviewer",
        deadline: float = 120.0,
        on_waiting: Callable[[], None] | None = None,
    ) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.map_index = map_index
        self.chosen_options = chosen_options
        self.params_input = params_input or {}
        self.reviewer = reviewer
        self.deadline = deadline
        self.on_waiting = on_waiting
        self.options: list[str] | None = None
        self.run_id: str | None = None
        self.hitl_body: str | None = None
        self.response: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="hitl-responder", daemon=True)

    def __enter__(self) -> HITLResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            self._answer_when_waiting()
        except BaseException as exc:
            self.error = exc
            self._fail_waiting_runs()

    def _waiting(self, session: Any) -> Any:
        """The awaiting-input task instance of our task that has no response yet, or None."""
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        return session.scalars(
            select(TaskInstance)
            .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
            .where(
                TaskInstance.dag_id == self.dag_id,
                TaskInstance.task_id == self.task_id,
                TaskInstance.map_index == self.map_index,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                HITLDetail.chosen_options.is_(None),
            )
        ).first()

    @staticmethod
    def _detail(session: Any, ti_id: Any) -> tuple[str | None, list[str]]:
        from airflow.models.hitl import HITLDetail
        from sqlalchemy import select

        row = session.execute(
            select(HITLDetail.body, HITLDetail.options).where(HITLDetail.ti_id == ti_id)
        ).one()
        return row.body, list(row.options)

    def _answer_when_waiting(self) -> None:
        from airflow.api_fastapi.app import create_app
        from airflow.utils.session import create_session
        from starlette.testclient import TestClient

        stop_at = time.monotonic() + self.deadline
        while time.monotonic() < stop_at:
            with create_session() as session:
                ti = self._waiting(session)
                if ti is not None:
                    self.run_id = ti.run_id
                    self.hitl_body, self.options = self._detail(session, ti.id)
            if self.run_id is not None:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"{self.dag_id}.{self.task_id} never waited for input")
        if self.on_waiting is not None:
            self.on_waiting()
        with TestClient(create_app("core")) as api:
            response = api.patch(
                f"/api/v2/dags/{self.dag_id}/dagRuns/{quote(self.run_id, safe='')}"
                f"/taskInstances/{self.task_id}/{self.map_index}/hitlDetails",
                json={"chosen_options": self.chosen_options, "params_input": self.params_input},
            )
        if response.status_code != 200:
            raise AssertionError(f"PATCH hitlDetails: {response.status_code} {response.text}")
        self.response = response.json()

    def _fail_waiting_runs(self) -> None:
        """Unblock ``dag.test()``: fail any run of ours still parked on this task."""
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState, TaskInstanceState
        from sqlalchemy import select

        with create_session() as session:
            for ti in session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == self.dag_id,
                    TaskInstance.task_id == self.task_id,
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            ):
                ti.state = TaskInstanceState.FAILED
                for run in session.scalars(
                    select(DagRun).where(DagRun.dag_id == self.dag_id, DagRun.run_id == ti.run_id)
                ):
                    run.state = DagRunState.FAILED


@pytest.fixture
def hitl_responder(monkeypatch: pytest.MonkeyPatch) -> type[HITLResponder]:
    """``with hitl_responder(dag_id, task_id, ["Approve"]): dag.test()`` answers the HITL task."""
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    return HITLResponder
