"""The distributed e2e's two DAGs on the LocalExecutor, to compare with the CeleryExecutor figures.

Run: ``.venv/bin/python bench/distributed.py [--distributed-json PATH] [--budget 900]``

Runs ``rivya_distributed_mapped`` (20 mapped deferrable generations in the pool) and then
``rivya_distributed_batch`` (100 items in one task, same pool) exactly as
``tests/e2e/test_distributed.py`` writes them, against the emulator with the same latency, rate
limit, per-process request budget and injected 429s, but on ``real_airflow.py``'s setup: SQLite,
the LocalExecutor, one triggerer, the connection in an ``AIRFLOW_CONN_`` variable, no faults.
Prints wall time, creates, status checks and 429s per DAG; with ``--distributed-json`` (the
``distributed_figures.json`` the e2e test writes in its tmp dir) it prints both side by side.
Figures only; it asserts nothing. Every process it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO)]

from real_airflow import (  # type: ignore[import-not-found]  # noqa: E402
    BIN,
    EMULATOR_KEY,
    Processes,
    _airflow_env,
    _deadline,
    _free_port,
    _get,
    _wait_for,
    start_airflow,
    start_emulator,
)
from test_distributed import (  # type: ignore[import-not-found]  # noqa: E402
    BATCH_DAG,
    BATCH_DAG_SOURCE,
    INJECTED_429,
    INJECTED_RETRY_AFTER,
    LATENCY,
    MAPPED_DAG,
    MAPPED_DAG_SOURCE,
    PER_PROCESS_RATE,
    POOL,
    POOL_SLOTS,
    RATE_LIMIT,
    _figures,
)


def run(budget: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="rivya-bench-distributed-"))
    home = root / "airflow-home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / f"{MAPPED_DAG}.py").write_text(MAPPED_DAG_SOURCE)
    (home / "dags" / f"{BATCH_DAG}.py").write_text(BATCH_DAG_SOURCE)
    logs = root / "logs"
    logs.mkdir()
    procs = Processes(logs)
    port = _free_port()
    figures: dict[str, Any] = {}
    try:
        with _deadline(budget) as remaining:
            base = start_emulator(procs, remaining, latency=LATENCY, credits=2000)
            emulator = httpx.Client(base_url=base, timeout=30.0)
            emulator.post(
                "/_emulator/config", json={"rate_limit": RATE_LIMIT, "rate_limit_window": 1.0}
            ).raise_for_status()
            connection = {
                "conn_type": "rivya",
                "host": base,
                "password": EMULATOR_KEY,
                "extra": {"max_requests_per_second": PER_PROCESS_RATE},
            }
            env = _airflow_env(
                home,
                port,
                base,
                AIRFLOW__CORE__PARALLELISM="8",
                AIRFLOW_CONN_RIVYA_DEFAULT=json.dumps(connection),
            )
            api = start_airflow(procs, env, port, remaining)
            subprocess.run(
                [str(BIN / "airflow"), "pools", "set", POOL, str(POOL_SLOTS), "Rivya API"],
                env=env,
                check=True,
                capture_output=True,
                timeout=remaining(),
            )

            def parsed() -> bool:
                try:
                    return all(
                        api.get(f"/api/v2/dags/{d}").status_code == 200
                        for d in (MAPPED_DAG, BATCH_DAG)
                    )
                except httpx.HTTPError:
                    return False

            _wait_for("the DAGs to be parsed", parsed, remaining)
            for dag_id, label in ((MAPPED_DAG, "mapped_20"), (BATCH_DAG, "batch_100")):
                api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
                seq_start = len(emulator.get("/_emulator/requests").json())
                emulator.post(
                    "/_emulator/faults",
                    json={
                        **{"path": "/api/v1/generations", "match": "prefix", "action": "status"},
                        **{"status": 429, "code": "rate_limited", "count": INJECTED_429},
                        "retry_after": INJECTED_RETRY_AFTER,
                    },
                ).raise_for_status()
                started = time.monotonic()
                response = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
                response.raise_for_status()
                run_id = response.json()["dag_run_id"]

                def done(dag_id: str = dag_id, run_id: str = run_id) -> str | None:
                    state = str(_get(api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])
                    return state if state in ("success", "failed") else None

                state = _wait_for(f"the {dag_id} run", done, remaining, 1.0)
                requests = emulator.get("/_emulator/requests").json()[seq_start:]
                figures[label] = {
                    "state": state,
                    **_figures(requests, time.monotonic() - started),
                }
    finally:
        procs.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distributed-json", type=Path, default=None)
    parser.add_argument("--budget", type=float, default=900.0)
    args = parser.parse_args()
    local = run(args.budget)
    distributed = (
        json.loads(args.distributed_json.read_text())["figures"] if args.distributed_json else {}
    )
    columns = ("wall_s", "creates", "status_checks", "rate_limited_429")
    print(f"{'DAG / executor':32} " + " ".join(f"{c:>16}" for c in columns))
    for label in ("mapped_20", "batch_100"):
        rows = [("LocalExecutor", local.get(label, {}))]
        if label in distributed:
            rows.append(("CeleryExecutor (faults)", distributed[label]))
        for name, row in rows:
            cells = " ".join(f"{row.get(c, '-')!s:>16}" for c in columns)
            print(f"{label + ' ' + name:32} {cells}")
    print(json.dumps({"local_executor": local, "celery_executor": distributed}, indent=2))


if __name__ == "__main__":
    main()
