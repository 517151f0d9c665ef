"""RivyaGenerationSensor in its classic modes (poke, reschedule) through ``dag.test()``.

The generation is submitted by ``wait_for_completion=False`` and the emulator keeps it running
for a while, so the sensor must see it unfinished, keep waiting, and only then store it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.operators.conftest import DagHarness

# Airflow 3.1 is the release without airflow.dag_processing.dagbag (see rivya_provider/compat.py).
AIRFLOW_3_1 = importlib.util.find_spec("airflow.dag_processing.dagbag") is None

SOURCE = """
import datetime

from airflow.sdk import DAG

from rivya_provider.operators.generate import RivyaGenerateImageOperator
from rivya_provider.sensors.generation import RivyaGenerationSensor

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    submit = RivyaGenerateImageOperator(
        task_id="submit", prompt={prompt!r}, wait_for_completion=False
    )
    wait = RivyaGenerationSensor(
        task_id="wait",
        generation_id="{{{{ ti.xcom_pull(task_ids='submit', key='generation_id') }}}}",
        output_path={output!r},
        deferrable=False,
        mode={mode!r},
        poke_interval=0.5,
        timeout=60,
    )
    submit >> wait
"""


def _reschedules(dag_run: Any, task_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        count: int = session.scalar(
            select(func.count())
            .select_from(TaskReschedule)
            .join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id)
            .where(TaskInstance.run_id == dag_run.run_id, TaskInstance.task_id == task_id)
        )
        return count


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_sensor_waits_through_unfinished_polls_then_stores_once(
    mode: str, dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    emulator = rivya_airflow_conn
    # Long enough that the first poke sees it unfinished however slowly dag.test() moves from
    # submit to the sensor (over 2.5 s on Airflow 3.2.2 here).
    emulator.configure(latency=8.0)
    source = SOURCE.format(
        dag_id=f"rivya_sensor_{mode}", prompt=f"a {mode} sensor", output=str(tmp_path), mode=mode
    )
    _, run = dag_harness.run(source)
    submitted = dag_harness.xcom(run, "submit")
    if mode == "reschedule" and AIRFLOW_3_1 and run.state != "success":
        # Airflow 3.1.0's dag.test() hands BaseSensorOperator the first reschedule date as a
        # string, so its own run_duration() raises TypeError at a second poke (README); when
        # the first rescheduled poke already finds the generation done, the run succeeds.
        assert dag_harness.task_states(run)[("wait", -1)] == "failed"
        assert len(emulator.generations()) == 1  # the sensor never submits
        return
    assert run.state == "success", dag_harness.task_states(run)

    waited = dag_harness.xcom(run, "wait")
    assert waited["generation_id"] == submitted["generation_id"]
    assert waited["status"] == "succeeded"
    (image,) = waited["images"]
    data = Path(image["path"].removeprefix("file://")).read_bytes()
    assert data.startswith(b"\x89PNG")
    assert hashlib.sha256(data).hexdigest() == image["sha256"]

    status_path = f"/api/v1/generations/{submitted['generation_id']}"
    polls = [r for r in emulator.requests() if r["path"] == status_path]
    assert len(polls) >= 2  # unfinished at least once, then done
    assert all(r["method"] == "GET" for r in polls)
    assert emulator.charges_by_generation() == {submitted["generation_id"]: 4}
    if mode == "reschedule":
        assert _reschedules(run, "wait") >= 1  # it gave its slot back between pokes
    else:
        assert _reschedules(run, "wait") == 0


def test_poke_mode_fails_the_task_on_a_failed_generation(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    source = SOURCE.format(
        dag_id="rivya_sensor_fails", prompt="[[fail]] broken", output=str(tmp_path), mode="poke"
    )
    _, run = dag_harness.run(source)
    states = dag_harness.task_states(run)
    assert states[("submit", -1)] == "success"
    assert states[("wait", -1)] == "failed"
    assert rivya_airflow_conn.charges_by_generation() == {}
    assert list(tmp_path.iterdir()) == []
