"""[observability] OpenLineage events of the examples, through ``airflow dags test`` as a user runs
them, with ``apache-airflow-providers-openlineage`` installed (the ``openlineage`` extra; in the
dev environment) and its file transport configured.

Under ``tests/e2e`` because it needs that package: the Airflow matrix installs only the test
group, and there ``test_lineage_without_the_package`` (in ``tests/operators``) shows that nothing
changes without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.testing import RivyaEmulator, run_emulator

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def lineage_runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The generate, reference and marketing examples run once each; their events and the
    emulator's record."""
    root = tmp_path_factory.mktemp("openlineage")
    events = root / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(root / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags_examples"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        RIVYA_OUTPUT_DIR=str(root / "out"),
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
    )
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
    )
    with run_emulator(latency=1.0) as emulator:
        env["AIRFLOW_CONN_RIVYA_DEFAULT"] = emulator.connection_json()
        for dag_id in (
            "example_rivya_generate",
            "example_rivya_reference",
            "example_rivya_marketing_refresh",
        ):
            run = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", dag_id],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        yield events.read_text(), emulator, root


def _complete(text: str, job: str) -> dict[str, Any]:
    found = [
        event
        for event in map(json.loads, text.splitlines())
        if event["eventType"] == "COMPLETE" and event["job"]["name"] == job
    ]
    assert len(found) == 1, f"{len(found)} COMPLETE events of {job}"
    return found[0]


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    """(namespace, name) of each dataset, from an event's JSON or from the facet objects."""
    return [
        (d["namespace"], d["name"]) if isinstance(d, dict) else (d.namespace, d.name)
        for d in datasets
    ]


def _generation_ids(emulator: RivyaEmulator, prompt_part: str) -> list[str]:
    return [g["id"] for g in emulator.generations() if prompt_part in g["prompt"]]


def test_a_generate_run_reports_its_stored_image_and_the_generation(lineage_runs: Any) -> None:
    text, _emulator, root = lineage_runs
    event = _complete(text, "example_rivya_generate.generate_image")
    stored = sorted((root / "out" / "generate").glob("*.png"))
    assert len(stored) == 1
    assert _names(event["outputs"]) == [("file", str(stored[0]))]
    assert event["inputs"] == []
    facet = event["run"]["facets"]["rivya"]
    assert facet["model"] == "qwen-image"
    assert facet["generationIds"] == [stored[0].name.removesuffix("_0.png")]
    assert facet["credits"] == 4
    assert facet["clientRequestId"].startswith("airflow:example_rivya_generate/generate_image/")


def test_a_reference_run_links_the_uploaded_file_to_the_image_made_from_it(
    lineage_runs: Any,
) -> None:
    text, emulator, root = lineage_runs
    upload = _complete(text, "example_rivya_reference.upload_reference")
    generate = _complete(text, "example_rivya_reference.generate_with_reference")
    source = REPO / "dags_examples" / "assets" / "reference_magenta.png"
    assert _names(upload["inputs"]) == [("file", str(source))]
    [(namespace, name)] = _names(upload["outputs"])
    port = emulator.base_url.rstrip("/").rsplit(":", 1)[1]
    assert namespace in (f"http://localhost:{port}", f"http://127.0.0.1:{port}")  # the media host
    assert name.startswith("/media/files/file_")
    assert name.endswith("/reference_magenta.png")
    # The upload's output is the generation's input: one lineage graph, unsigned.
    assert _names(generate["inputs"]) == [(namespace, name)]
    stored = sorted((root / "out" / "reference").glob("*.png"))
    assert _names(generate["outputs"]) == [("file", str(p)) for p in stored]
    assert len(stored) == 1


def test_a_batch_run_reports_its_index_and_every_generation(lineage_runs: Any) -> None:
    text, _emulator, _root = lineage_runs
    [event] = [
        e
        for e in map(json.loads, text.splitlines())
        if e["eventType"] == "COMPLETE"
        and e["job"]["name"].startswith("example_rivya_marketing_refresh.")
        and "rivya" in e["run"]["facets"]
    ]
    [(namespace, name)] = _names(event["outputs"])
    assert namespace == "file"
    assert name.endswith("/index.jsonl")
    lines = [json.loads(line) for line in Path(name).read_text().splitlines()]
    facet = event["run"]["facets"]["rivya"]
    assert sorted(facet["generationIds"]) == sorted(line["generation_id"] for line in lines)
    assert facet["generations"] == len(lines) > 1
    assert facet["credits"] == 4 * len(lines)


def test_no_event_carries_the_key_or_a_signature(lineage_runs: Any) -> None:
    text, emulator, _ = lineage_runs
    assert emulator.api_key not in text
    assert "sig=" not in text


def test_a_failed_try_reports_its_references_and_its_generation() -> None:
    from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator
    from rivya_provider.operators.generate import RivyaGenerateImageOperator
    from rivya_provider.operators.upload import RivyaFileUploadOperator

    reference = {
        "url": "https://rivya.ai/media/files/file_1/shoe.png?sig=abc&exp=1",
        "kind": "image",
        "mimeType": "image/png",
    }
    generate = RivyaGenerateImageOperator(task_id="g", prompt="p", reference_media_items=reference)
    lineage = generate.get_openlineage_facets_on_failure(None)
    assert _names(lineage.inputs) == [("https://rivya.ai", "/media/files/file_1/shoe.png")]
    assert lineage.outputs == []
    assert lineage.run_facets == {}  # failed before any generation existed
    generate._rivya_generation_id = "task_abc"  # as finish() records it before it raises
    facet = generate.get_openlineage_facets_on_failure(None).run_facets["rivya"]
    assert facet.generationIds == ["task_abc"]
    upload = RivyaFileUploadOperator(task_id="u", source="/data/shoe.png")
    lineage = upload.get_openlineage_facets_on_failure(None)
    assert _names(lineage.inputs) == [("file", "/data/shoe.png")]
    relative = RivyaFileUploadOperator(task_id="r", source="refs/shoe.png")
    inputs = relative.get_openlineage_facets_on_failure(None).inputs
    assert _names(inputs) == [("file", str(Path.cwd() / "refs" / "shoe.png"))]
    assert lineage.outputs == []
    batch = RivyaBatchGenerateImagesOperator(
        task_id="b", items=[], output_path="s3://bucket/catalogue"
    )
    assert batch.get_openlineage_facets_on_failure(None).outputs == []  # failed before its index
