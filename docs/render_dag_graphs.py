"""Render the example DAGs' graphs to PNGs in docs/ (needs Graphviz's ``dot`` on PATH).

Run by hand when an example's shape changes; the PNGs are committed, so neither the tests nor CI
need Graphviz::

    .venv/bin/python docs/render_dag_graphs.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = (
    "example_rivya_reference",
    "example_rivya_marketing_refresh",
    "example_rivya_approval",
    "example_rivya_catalogue_review",
)
COLOURS = {
    "RivyaGenerateImageOperator": "#f4e3ff",
    "RivyaFileUploadOperator": "#f4e3ff",
    "RivyaBatchGenerateImagesOperator": "#f4e3ff",
    "HITLOperator": "#fff3c4",
}


def to_dot(dag: object) -> str:
    lines = [
        f'digraph "{dag.dag_id}" {{',  # type: ignore[attr-defined]
        "  rankdir=LR; bgcolor=white; pad=0.2;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [color="#666666"];',
    ]
    for task in dag.tasks:  # type: ignore[attr-defined]
        kind = task.operator_name
        if type(task).__name__ == "MappedOperator":
            kind += " (mapped)"
        colour = COLOURS.get(task.operator_name, "#e8f0fe")
        label = f"{task.task_id}\\n{kind}"
        lines.append(f'  "{task.task_id}" [label="{label}", fillcolor="{colour}"];')
    for task in dag.tasks:  # type: ignore[attr-defined]
        for downstream in sorted(task.downstream_task_ids):
            lines.append(f'  "{task.task_id}" -> "{downstream}";')
    lines.append("}")
    return "\n".join(lines)


def main() -> int:
    if shutil.which("dot") is None:
        print("Graphviz `dot` is not on PATH (apt-get install graphviz)", file=sys.stderr)
        return 1
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rivya-docs-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags_examples"))
    assert not bag.import_errors, bag.import_errors
    for dag_id in DAGS:
        target = REPO / "docs" / f"{dag_id}.png"
        subprocess.run(
            ["dot", "-Tpng", "-Gdpi=110", "-o", str(target)],
            input=to_dot(bag.dags[dag_id]),
            text=True,
            check=True,
        )
        print(f"wrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
