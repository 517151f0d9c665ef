"""Part of ``make test-compat``: the example DAGs through the ``airflow`` CLI, as a user runs them.

With the interpreter of one matrix venv: ``scripts/demo.py`` (``make demo``: ``airflow dags test
example_rivya_generate`` against the emulator) must store an image; ``airflow dags
list-import-errors`` over ``dags_examples/`` must report none and ``airflow dags list`` must show
all four examples; ``airflow dags test`` of the reference and marketing examples must succeed,
with every generation charged exactly once in the emulator's ledger. (The approval example waits
for a person; the test suite answers it inside ``dag.test()``.) Each Airflow version gets its own
home under ``.airflow/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import airflow

REPO = Path(__file__).resolve().parents[1]
HOME = REPO / ".airflow" / f"compat-{airflow.__version__}"
BIN = Path(sys.executable).parent
EXAMPLES = sorted(path.stem for path in (REPO / "dags_examples").glob("example_*.py"))


CLI_DAG_TESTS = ("example_rivya_reference", "example_rivya_marketing_refresh")


def airflow_cli(*args: str, **extra_env: str) -> str:
    # RIVYA_OUTPUT_DIR as the demo leaves it: the marketing Asset URI is derived from it, and an
    # Asset whose URI changed since the DAG was stored counts as inactive.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.pop("RIVYA_OUTPUT_DIR", None)
    env.update(
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags_examples"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        **extra_env,
    )
    result = subprocess.run(
        [str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        sys.exit(f"compat: `airflow {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def json_output(*args: str) -> Any:
    """The JSON a ``-o json`` command printed (its last line; Airflow may log above it)."""
    lines = [line for line in airflow_cli(*args, "-o", "json").splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else []


def main() -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    os.environ["RIVYA_DEMO_HOME"] = str(HOME)
    # The demo migrates the home (once per Airflow version) and runs `airflow dags test`.
    demo = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], check=False)
    if demo.returncode != 0:
        return demo.returncode
    errors = json_output("dags", "list-import-errors")
    if errors:
        sys.exit(f"compat: import errors in dags_examples/: {errors}")
    listed = {row["dag_id"] for row in json_output("dags", "list")}
    missing = sorted(set(EXAMPLES) - listed)
    if missing:
        sys.exit(f"compat: `airflow dags list` does not show {missing}")
    from rivya_provider.testing import run_emulator

    with run_emulator(latency=1.0) as emulator:
        connection = emulator.connection_json()
        for dag_id in CLI_DAG_TESTS:
            airflow_cli("dags", "test", dag_id, AIRFLOW_CONN_RIVYA_DEFAULT=connection)
        generations = emulator.generations()
        charges = emulator.charges_by_generation()
    if not generations or sorted(charges) != sorted(g["id"] for g in generations):
        sys.exit(f"compat: generations {generations} vs charges {charges}")
    if set(charges.values()) != {4}:
        sys.exit(f"compat: a generation was not charged exactly once: {charges}")
    print(
        f"compat: Airflow {airflow.__version__}: {len(listed)} DAGs parse, demo image stored, "
        f"`dags test` of {', '.join(CLI_DAG_TESTS)}: {len(generations)} generations, each paid once"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
