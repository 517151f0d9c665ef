"""What Airflow shows of a Rivya task: mapped-task labels and Asset event metadata (dag.test())."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.operators.conftest import DagHarness


def _rendered_map_indexes(dag_run: Any, task_id: str) -> list[str | None]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.run_id == dag_run.run_id, TaskInstance.task_id == task_id)
            .order_by(TaskInstance.map_index)
        ).all()
        return [row.rendered_map_index for row in rows]


def test_mapped_generations_are_labelled_by_their_prompt(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    source = f"""
from __future__ import annotations
import datetime
from airflow.sdk import DAG
from rivya_provider.operators.generate import RivyaGenerateImageOperator

with DAG(dag_id="rivya_labels", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    RivyaGenerateImageOperator.partial(
        task_id="gen", output_path={str(tmp_path)!r}, poll_interval=0.2, retries=0
    ).expand(
        prompt=["a red apple on a white table, studio light, 50 mm", "{{{{ '{{{{ x }}}}' }}}}"]
    )
    RivyaGenerateImageOperator.partial(
        task_id="own", output_path={str(tmp_path)!r}, poll_interval=0.2, retries=0,
        map_index_template="sku {{{{ task.prompt[-1] }}}}",
    ).expand(prompt=["p1", "p2"])
"""
    _, run = dag_harness.run(source)
    assert run.state == "success"
    assert _rendered_map_indexes(run, "gen") == [
        "a red apple on a white table, studio li…",
        "{{ x }}",  # the rendered prompt is shown as it is, never rendered again
    ]
    assert _rendered_map_indexes(run, "own") == ["sku 1", "sku 2"]  # the author's template wins


def test_outlet_events_say_which_images_changed(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    source = f"""
from __future__ import annotations
import datetime
from airflow.sdk import DAG, Asset
from rivya_provider.operators.generate import RivyaGenerateImageOperator

with DAG(dag_id="rivya_outlets", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    RivyaGenerateImageOperator(
        task_id="gen", prompt="a lamp", output_path={str(tmp_path)!r}, poll_interval=0.2,
        outlets=[Asset("rivya://tests/lamp")],
    )
"""
    _, run = dag_harness.run(source)
    assert run.state == "success"
    manifest = dag_harness.xcom(run, "gen")
    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run.run_id))
        extras = [event.extra for event in events]
    assert len(extras) == 1
    published = extras[0]["rivya"]
    assert published["generation_id"] == manifest["generation_id"]
    assert published["paths"] == [manifest["images"][0]["path"]]
    assert published["final_credits"] == 4
