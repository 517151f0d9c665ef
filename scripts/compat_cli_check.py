"""Part of ``make test-compat``: the example DAGs through the ``airflow`` CLI, as a user runs them.

With the interpreter of one matrix venv: ``airflow dags list-import-errors`` over
``dags_examples/`` must report none and ``airflow dags list`` must show all four examples; then
``scripts/demo.py`` (``make demo``: ``airflow dags test example_rivya_generate`` against the
emulator) must store an image. Each Airflow version gets its own home under ``.airflow/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import airflow

REPO = Path(__file__).resolve().parents[1]
HOME = REPO / ".airflow" / f"compat-{airflow.__version__}"
BIN = Path(sys.executable).parent
EXAMPLES = sorted(path.stem for path in (REPO / "dags_examples").glob("example_*.py"))


def airflow_cli(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags_examples"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    result = subprocess.run(
        [str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        sys.exit(f"compat: `airflow {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def main() -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    os.environ["RIVYA_DEMO_HOME"] = str(HOME)
    # The demo migrates the home (once per Airflow version) and runs `airflow dags test`.
    demo = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], check=False)
    if demo.returncode != 0:
        return demo.returncode
    errors = json.loads(airflow_cli("dags", "list-import-errors", "-o", "json") or "[]")
    if errors:
        sys.exit(f"compat: import errors in dags_examples/: {errors}")
    listed = {row["dag_id"] for row in json.loads(airflow_cli("dags", "list", "-o", "json"))}
    missing = sorted(set(EXAMPLES) - listed)
    if missing:
        sys.exit(f"compat: `airflow dags list` does not show {missing}")
    print(f"compat: Airflow {airflow.__version__}: {len(listed)} DAGs parse, demo image stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
