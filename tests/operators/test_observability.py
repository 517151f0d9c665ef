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
    RivyaGenerateImageOperator.partial(
        task_id="named", output_path={str(tmp_path)!r}, poll_interval=0.2, retries=0,
    ).expand_kwargs([{{"prompt": "a shoe", "output_name": "SKU-1"}}, {{"prompt": "a hat"}}])
"""
    _, run = dag_harness.run(source)
    assert run.state == "success"
    assert _rendered_map_indexes(run, "gen") == [
        "a red apple on a white table, studio li…",
        "{{ x }}",  # the rendered prompt is shown as it is, never rendered again
    ]
    assert _rendered_map_indexes(run, "own") == ["sku 1", "sku 2"]  # the author's template wins
    assert _rendered_map_indexes(run, "named") == ["SKU-1", "a hat"]  # the key, else the prompt


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


def _generate_source(tmp_path: Path, **kwargs: Any) -> str:
    arguments = "".join(f" {name}={value!r}," for name, value in kwargs.items())
    return f"""
from __future__ import annotations
import datetime
from airflow.sdk import DAG
from rivya_provider.operators.generate import RivyaGenerateImageOperator

with DAG(dag_id="rivya_links", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    RivyaGenerateImageOperator(
        task_id="gen", prompt="a lamp", output_path={str(tmp_path / "out")!r}, poll_interval=0.2,
        output_name="sku 7".replace(" ", "-"),{arguments}
    )
"""


def test_the_image_link_opens_the_result_url_without_output_url(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    _, run = dag_harness.run(_generate_source(tmp_path))
    assert run.state == "success"
    manifest = dag_harness.xcom(run, "gen")
    assert manifest["primary_url"].startswith("http://")
    assert dag_harness.xcom(run, "gen", key="_link_RivyaImageLink") == manifest["primary_url"]


def test_the_image_link_opens_the_stored_image_where_output_url_serves_it(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    _, run = dag_harness.run(
        _generate_source(tmp_path, output_url="https://cdn.example.com/shop/", do_xcom_push=False)
    )
    assert run.state == "success"
    assert dag_harness.xcom(run, "gen") is None  # the link does not need the return value
    assert (tmp_path / "out" / "sku-7_0.png").is_file()
    link = dag_harness.xcom(run, "gen", key="_link_RivyaImageLink")
    assert link == "https://cdn.example.com/shop/sku-7_0.png"


def test_the_batch_link_opens_the_index_where_output_url_serves_it(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    from tests.operators.test_batch_operator import _items, _source

    out = tmp_path / "my catalogue"
    _, run = dag_harness.run(_source(_items(2), out, output_url="https://cdn.example.com/c"))
    assert run.state == "success"
    assert (out / "index.jsonl").is_file()
    link = dag_harness.xcom(run, "batch", key="_link_RivyaBatchIndexLink")
    assert link == "https://cdn.example.com/c/index.jsonl"


def test_without_output_url_the_batch_has_no_link_target(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    from tests.operators.test_batch_operator import _items, _source

    _, run = dag_harness.run(_source(_items(1), tmp_path / "out"))
    assert run.state == "success"
    assert dag_harness.xcom(run, "batch", key="_link_RivyaBatchIndexLink") in ("", None)


def test_served_url_maps_a_stored_file_under_output_path_only() -> None:
    from rivya_provider.observability import served_url

    root = "/srv/images"
    assert (
        served_url("file:///srv/images/a b/c#1.png", root, "https://cdn.example.com/x")
        == "https://cdn.example.com/x/a%20b/c%231.png"
    )
    assert served_url("file:///srv/other/c.png", root, "https://cdn.example.com/x") is None
    assert served_url("file:///srv/images-2/c.png", root, "https://cdn.example.com/x") is None
    assert served_url("s3://bucket/run/k.png", "s3://bucket/run", "https://b.example/r") == (
        "https://b.example/r/k.png"
    )
    assert served_url("file:///srv/images/c.png", root, None) is None
    assert served_url(None, root, "https://cdn.example.com/x") is None


def test_the_links_are_registered_with_airflow() -> None:
    import os
    import subprocess
    import sys

    from rivya_provider.get_provider_info import get_provider_info
    from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator
    from rivya_provider.operators.generate import RivyaGenerateImageOperator
    from rivya_provider.sensors.generation import RivyaGenerationSensor

    info = get_provider_info()["extra-links"]
    assert info == [
        "rivya_provider.links.RivyaBatchIndexLink",
        "rivya_provider.links.RivyaImageLink",
    ]
    names = {
        cls.__name__: [link.name for link in cls.operator_extra_links]
        for cls in (
            RivyaGenerateImageOperator,
            RivyaGenerationSensor,
            RivyaBatchGenerateImagesOperator,
        )
    }
    assert names == {
        "RivyaGenerateImageOperator": ["Rivya image"],
        "RivyaGenerationSensor": ["Rivya image"],
        "RivyaBatchGenerateImagesOperator": ["Rivya batch index"],
    }
    checkout = str(Path(__file__).resolve().parents[2])  # this checkout's package, as pytest's
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([checkout, os.environ.get("PYTHONPATH", "")]),
    }
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "providers", "links", "--output", "plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "rivya_provider.links.RivyaImageLink" in listed
    assert "rivya_provider.links.RivyaBatchIndexLink" in listed


def test_a_batch_publishes_its_summary_and_index_to_its_outlets(
    dag_harness: DagHarness, rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out = tmp_path / "out"
    source = f"""
from __future__ import annotations
import datetime
from airflow.sdk import DAG, Asset
from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator

with DAG(dag_id="rivya_batch_out", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    RivyaBatchGenerateImagesOperator(
        task_id="batch", output_path={str(out)!r}, poll_interval=0.2, retries=0,
        items=[{{"key": "a", "prompt": "a lamp"}}, {{"key": "b", "prompt": "a chair"}}],
        outlets=[Asset("rivya://tests/catalogue")],
    )
"""
    _, run = dag_harness.run(source)
    assert run.state == "success"
    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run.run_id))
        extras = [event.extra for event in events]
    assert len(extras) == 1
    published = extras[0]["rivya"]
    assert published == dag_harness.xcom(run, "batch")
    assert published["by_status"] == {"succeeded": 2}
    assert published["index"].endswith("/out/index.jsonl")


def test_lineage_costs_nothing_until_openlineage_asks() -> None:
    """Importing and building the operators loads nothing of OpenLineage, installed or not
    (only its provider calls the lineage methods); the Airflow matrix runs the whole suite
    without the package."""
    import subprocess
    import sys

    code = """
import sys
from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator
from rivya_provider.operators.generate import RivyaGenerateImageOperator
from rivya_provider.operators.upload import RivyaFileUploadOperator
from rivya_provider.sensors.generation import RivyaGenerationSensor
RivyaGenerateImageOperator(task_id="g", prompt="p")
RivyaBatchGenerateImagesOperator(task_id="b", items=[], output_path="/tmp/x")
RivyaFileUploadOperator(task_id="u", source="/tmp/x.png")
RivyaGenerationSensor(task_id="s", generation_id="task_1")
loaded = [m for m in sys.modules if "lineage" in m]
# Airflow's own provider discovery reads every installed provider's info, nothing more.
print(sorted(set(loaded) - {"airflow.providers.openlineage.get_provider_info",
                            "airflow.providers.openlineage"}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
