"""Every Python block of the README runs, as a user would run it, so a recipe cannot rot.

A block that defines ``test_`` functions is a user's test module: it runs in its own pytest
process, outside this repository (so only the installed ``rivya`` plugin supplies fixtures),
against a small ``marketing_refresh`` DAG in a fresh dags folder. Any other block is a script
and runs with ``python``. Both use this session's migrated Airflow home.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
BLOCKS = BLOCK.findall(README.read_text())

MARKETING_REFRESH = textwrap.dedent(
    """
    from datetime import datetime

    from airflow.sdk import dag

    from rivya_provider.operators.generate import RivyaGenerateImageOperator


    @dag(dag_id="marketing_refresh", schedule=None, start_date=datetime(2026, 1, 1))
    def marketing_refresh():
        RivyaGenerateImageOperator(
            task_id="banner",
            prompt="A spring sale banner",
            output_path={output!r},
            deferrable=True,
        )


    marketing_refresh()
    """
)


def test_the_readme_has_python_recipes() -> None:
    # If the pattern stopped matching, every recipe would silently go untested.
    assert len(BLOCKS) >= 2
    assert any("def test_" in block for block in BLOCKS)


@pytest.fixture
def user_project(airflow_db: None, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    dags = tmp_path / "dags"
    dags.mkdir()
    output = tmp_path / "images"
    (dags / "marketing_refresh.py").write_text(MARKETING_REFRESH.format(output=str(output)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    env.pop("AIRFLOW_CONN_RIVYA_DEFAULT", None)
    return tmp_path, env


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i + 1}")
def test_readme_block_runs(index: int, user_project: tuple[Path, dict[str, str]]) -> None:
    project, env = user_project
    block = BLOCKS[index]
    if "def test_" in block:
        module = project / f"test_readme_block{index + 1}.py"
        module.write_text(block)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)]
        expected = f"{block.count('def test_')} passed"
    else:
        script = project / f"readme_block{index + 1}.py"
        script.write_text(block)
        command = [sys.executable, str(script)]
        expected = ""
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"README block {index + 1} failed:\n{block}\n{output[-4000:]}"
    assert expected in result.stdout, output[-4000:]
