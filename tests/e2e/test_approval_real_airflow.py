"""The approval example on a real Airflow, answered through the REST API as a reviewer would.

``dag.test()`` cannot answer a human-in-the-loop task on Airflow 3.1 and 3.2, so this is where
those releases show the example working (``make test-compat`` runs it on every matrix entry):
two candidates are generated (deferrable), the review waits, a ``PATCH .../hitlDetails`` picks
candidate 2, and only that image is published; each candidate is paid exactly once.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
from real_airflow import (  # type: ignore[import-not-found]
    Processes,
    _airflow_env,
    _deadline,
    _free_port,
    _get,
    _task_instances,
    _wait_for,
    start_airflow,
    start_emulator,
    task_log_tails,
)

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "example_rivya_approval"
BUDGET = 300.0
# Seconds per generation. Not shorter: a trigger that fires within a scheduler loop of the
# deferral meets Airflow's stale defer-exit race (apache/airflow#66374, #71580, #72716): the
# executor's "success" for the deferring try is drained after the task resumed, and the
# scheduler fails the task ("state mismatch"). Seen here once with 1 s on 3.1.0.
LATENCY = 5.0
#: Seconds between the review waiting and the answer: several scheduler loops.
REVIEWER_DELAY = 5.0
#: A review waiting for its answer: deferred (3.1, 3.2), or Airflow 3.3's own HITL state.
WAITING_STATES = ("deferred", "awaiting_input")


def test_approval_example_publishes_the_chosen_candidate_on_a_real_airflow(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    shutil.copy2(REPO / "dags_examples" / f"{DAG_ID}.py", home / "dags")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    port = _free_port()
    try:
        with _deadline(BUDGET) as remaining:
            base = start_emulator(procs, remaining, latency=LATENCY)
            emulator = httpx.Client(base_url=base, timeout=10.0)
            env = _airflow_env(home, port, base)
            api = start_airflow(procs, env, port, remaining)

            def parsed() -> bool:
                try:
                    return api.get(f"/api/v2/dags/{DAG_ID}").status_code == 200
                except httpx.HTTPError:
                    return False

            _wait_for("the approval DAG to be parsed", parsed, remaining)
            api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
            response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
            response.raise_for_status()
            run_id = response.json()["dag_run_id"]
            hitl = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"

            def waiting_for_review() -> dict[str, object] | None:
                run_state = _get(api, f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
                assert run_state != "failed", _task_instances(api, DAG_ID, run_id)
                states = {ti["task_id"]: ti["state"] for ti in _task_instances(api, DAG_ID, run_id)}
                if states.get("review") not in WAITING_STATES:
                    return None
                answer = api.get(hitl)
                return answer.json() if answer.status_code == 200 else None

            detail = _wait_for("the review to wait for input", waiting_for_review, remaining, 1.0)

            def first_segment_reported() -> bool | None:
                """The scheduler has the executor's event for the review's first run segment
                (the process that parked it has exited)."""
                events = procs.log_lines_with("scheduler", "Received executor event")
                return "task_id='review'" in events or None

            # A person answers minutes later. An answer before the executor's event for the
            # parked task meets the stale defer-exit race named at LATENCY (seen in CI on 3.3.2
            # under load, 6 s after the review waited: "finished with state success, but the
            # task instance's state attribute is queued", then the review failed), so answer
            # after that event, and later still, as a person would.
            _wait_for("the review's first segment to end", first_segment_reported, remaining, 0.5)
            time.sleep(REVIEWER_DELAY)
            reply = api.patch(
                hitl, json={"chosen_options": ["Publish candidate 2"], "params_input": {}}
            )
            assert reply.status_code == 200, reply.text

            def finished() -> str | None:
                state = str(_get(api, f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"])
                return state if state in ("success", "failed") else None

            state = _wait_for("the run to finish", finished, remaining, 1.0)
            states = {ti["task_id"]: ti["state"] for ti in _task_instances(api, DAG_ID, run_id)}
            assert state == "success", states
            # The grid and the REST API name each mapped candidate by the start of its prompt.
            labels = {
                ti["map_index"]: ti["rendered_map_index"]
                for ti in _task_instances(api, DAG_ID, run_id)
                if ti["task_id"] == "generate_candidates"
            }
            assert labels == {
                0: "warm watercolour illustration: A hero b…",
                1: "crisp studio photograph: A hero banner …",
            }

            candidates = []
            for map_index in (0, 1):
                entry = _get(
                    api,
                    f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/generate_candidates"
                    "/xcomEntries/return_value",
                    map_index=map_index,
                )
                value = entry["value"]
                candidates.append(json.loads(value) if isinstance(value, str) else value)
            assert all(c["primary_url"] in str(detail.get("body")) for c in candidates)
            published = sorted((home / "output" / "approval" / "published").iterdir())
            chosen = Path(candidates[1]["images"][0]["path"].removeprefix("file://"))
            assert [p.name for p in published] == [chosen.name]
            assert published[0].read_bytes() == chosen.read_bytes()

            ledger = emulator.get("/_emulator/ledger").json()
            charges = [e["generation_id"] for e in ledger["entries"] if e["type"] == "charge"]
            assert sorted(charges) == sorted(c["generation_id"] for c in candidates), ledger
    except BaseException:
        for name in procs.started:
            print(f"--- {name} log (tail) ---\n{procs.log_tail(name)}")
        print("--- scheduler: errors and state changes ---")
        print(procs.log_lines_with("scheduler", "mismatch", "error", "failed"))
        print(task_log_tails(home, ["review", "generate_candidates", "approved", "publish"]))
        raise
    finally:
        procs.stop_all()
        print(f"\napproval e2e: {time.monotonic() - started:.1f} s")
