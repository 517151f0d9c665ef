"""End to end on a real Airflow (scheduler, triggerer, dag-processor, api-server) and the emulator.

The flagship DAG (1 generation) and the weekly marketing DAG (3 products in one batch task: 3
generations behind one trigger) run with ``deferrable=True`` against the emulator, which takes
10 s per generation.
Afterwards the reference DAG (upload -> generate) runs, is cleared as a whole and runs again: the
re-run uploads the reference again under a new URL, and still pays for one generation.
Two triggerers run at once, as in an HA deployment. Once the generation tasks are seen
``deferred`` through the REST API, the triggerer holding most of their triggers (the trigger's
``triggerer_id``) is killed with SIGKILL, process tree included, while the generations are still
running; nothing is restarted. The surviving triggerer must adopt the orphaned triggers, every
generation must complete, both DAG runs must succeed, and the emulator's ledger must show each
generation reserved and charged exactly once (charges == generations, one generation id per
task instance): a takeover re-polls, it never re-submits.

Each Airflow component is its own process (so a triggerer can be killed alone), in a throwaway
``AIRFLOW_HOME`` with SQLite and the LocalExecutor. ``simple_auth_manager_all_admins`` lets the
test call ``/api/v2`` without a token. Every process started here is stopped by PID in a
``finally`` (SIGINT, then SIGKILL), children included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import httpx
from real_airflow import (  # type: ignore[import-not-found]
    BIN,
    Processes,
    _airflow_env,
    _deadline,
    _free_port,
    _get,
    _task_instances,
    _wait_for,
    start_airflow,
    start_emulator,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "dags_examples"
LATENCY = 10.0
BUDGET = 300.0  # the whole test, processes included
GENERATE_DAG = "example_rivya_generate"
MARKETING_DAG = "example_rivya_marketing_refresh"
REFERENCE_DAG = "example_rivya_reference"
PRODUCTS = 3
TRIGGERERS = ("triggerer-a", "triggerer-b")
# README "Re-roll on purpose": a key that changes on each Clear (Airflow sets max_tries to
# try_number + retries there) and not on a retry; every Clear pays for a fresh image.
REROLL_DAG = "rivya_reroll"
REROLL_SOURCE = f"""
import datetime, os
from airflow.sdk import DAG
from rivya_provider.operators.generate import RivyaGenerateImageOperator

with DAG(dag_id={REROLL_DAG!r}, schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    RivyaGenerateImageOperator(
        task_id="hero",
        prompt="a hero banner",
        output_path=os.environ["RIVYA_OUTPUT_DIR"] + "/reroll",
        idempotency_key="{{{{ run_id }}}}-{{{{ ti.map_index }}}}-clear{{{{ ti.max_tries }}}}",
    )
"""


def _reroll_generation(api: httpx.Client, run_id: str) -> str:
    entry = _get(
        api,
        f"/api/v2/dags/{REROLL_DAG}/dagRuns/{run_id}/taskInstances/hero/xcomEntries/generation_id",
    )
    return str(entry["value"]).strip('"')


def test_deferred_generations_survive_a_triggerer_crash(tmp_path: Path) -> None:
    started = time.monotonic()
    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    for name in (f"{GENERATE_DAG}.py", f"{MARKETING_DAG}.py", f"{REFERENCE_DAG}.py"):
        shutil.copy2(EXAMPLES / name, home / "dags" / name)
    shutil.copytree(EXAMPLES / "assets", home / "dags" / "assets")
    (home / "dags" / f"{REROLL_DAG}.py").write_text(REROLL_SOURCE)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    port = _free_port()
    timings: dict[str, float] = {}

    try:
        with _deadline(BUDGET) as remaining:
            # -- the emulator: 10 s per generation, so a crash lands while they are running
            base = start_emulator(
                procs,
                remaining,
                latency=LATENCY,
                credits=1000,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            emulator = httpx.Client(base_url=base, timeout=10.0)

            # -- Airflow: migrate, then one process per component
            env = _airflow_env(home, port, base, RIVYA_MARKETING_MAX_PRODUCTS=str(PRODUCTS))
            api = start_airflow(procs, env, port, remaining, triggerer=False)
            timings["migrated"] = time.monotonic() - started
            airflow = str(BIN / "airflow")

            def api_up() -> bool:
                try:
                    return api.get("/api/v2/monitor/health").status_code == 200
                except httpx.HTTPError:
                    return False

            _wait_for("the api-server", api_up, remaining)

            # -- two triggerers at once (HA), started one after the other to learn their job ids
            triggerer_jobs: dict[int, str] = {}
            for name in TRIGGERERS:
                log_port = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port())}
                procs.start(name, [airflow, "triggerer"], {**env, **log_port})

                def new_job() -> int | None:
                    jobs = _get(api, "/api/v2/jobs", job_type="TriggererJob", is_alive=True)
                    fresh = [j["id"] for j in jobs["jobs"] if j["id"] not in triggerer_jobs]
                    return fresh[0] if fresh else None

                triggerer_jobs[_wait_for(f"{name} to heartbeat", new_job, remaining)] = name

            def parsed() -> bool:
                return all(
                    api.get(f"/api/v2/dags/{dag_id}").status_code == 200
                    for dag_id in (GENERATE_DAG, MARKETING_DAG, REFERENCE_DAG, REROLL_DAG)
                )

            _wait_for("both DAGs to be parsed", parsed, remaining)
            timings["ready"] = time.monotonic() - started

            # -- runs: the weekly DAG gets its scheduled run on unpause; the flagship is triggered
            for dag_id in (GENERATE_DAG, MARKETING_DAG, REFERENCE_DAG):
                api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
            response = api.post(f"/api/v2/dags/{GENERATE_DAG}/dagRuns", json={"logical_date": None})
            response.raise_for_status()
            runs = {GENERATE_DAG: response.json()["dag_run_id"]}

            def marketing_run() -> str | None:
                data = _get(api, f"/api/v2/dags/{MARKETING_DAG}/dagRuns")
                return data["dag_runs"][0]["dag_run_id"] if data["dag_runs"] else None

            runs[MARKETING_DAG] = _wait_for("the scheduled marketing run", marketing_run, remaining)

            # -- wait until a generation is deferred (in the triggerer), then crash the triggerer
            def deferred() -> list[str]:
                found = []
                for dag_id, run_id in runs.items():
                    for ti in _task_instances(api, dag_id, run_id):
                        if ti["state"] == "deferred":
                            found.append(f"{dag_id}.{ti['task_id']}[{ti['map_index']}]")
                return found

            seen_deferred = _wait_for("a deferred generation task", deferred, remaining, 0.3)
            timings["first_deferred"] = time.monotonic() - started
            # Give the other run a moment to defer too, so the crash hits several generations.
            with contextlib.suppress(AssertionError):
                _wait_for(
                    "deferred tasks in both DAGs",
                    lambda: {name.split(".")[0] for name in deferred()} == set(runs),
                    remaining,
                    0.3,
                    limit=6.0,
                )
            at_crash = deferred()

            def triggers_by_triggerer() -> dict[str, int] | None:
                held: dict[str, int] = {}
                for dag_id, run_id in runs.items():
                    for ti in _task_instances(api, dag_id, run_id):
                        job = (ti.get("trigger") or {}).get("triggerer_id")
                        if ti["state"] == "deferred" and job in triggerer_jobs:
                            # generations waited for: the batch's one trigger waits for all
                            weight = PRODUCTS if ti["task_id"] == "generate_product_images" else 1
                            held[triggerer_jobs[job]] = held.get(triggerer_jobs[job], 0) + weight
                # Kill mid-batch: wait until a triggerer runs the batch's trigger.
                return held if any(count >= PRODUCTS for count in held.values()) else None

            held = _wait_for("a triggerer to run the batch", triggers_by_triggerer, remaining)
            victim = max(held, key=lambda name: held[name])  # the one waiting for the most
            survivor = next(name for name in TRIGGERERS if name != victim)
            generations_at_crash = emulator.get("/_emulator/generations").json()
            killed = procs.kill_now(victim)
            timings["triggerer_killed"] = time.monotonic() - started
            running_at_crash = [
                g for g in generations_at_crash if g["status"] in ("queued", "processing")
            ]
            assert running_at_crash, "the crash must land while generations are still running"
            # No restart: the surviving triggerer adopts the dead one's triggers.

            # -- every run completes
            def finished() -> dict[str, str] | None:
                states = {
                    dag_id: _get(api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
                    for dag_id, run_id in runs.items()
                }
                if any(state == "failed" for state in states.values()):
                    return states
                return states if all(state == "success" for state in states.values()) else None

            states = _wait_for("both DAG runs to finish", finished, remaining, 1.0)
            timings["finished"] = time.monotonic() - started
            assert states == {GENERATE_DAG: "success", MARKETING_DAG: "success"}, states

            # -- one generation per generation task instance, each charged exactly once
            generation_ids: dict[str, str] = {}
            for dag_id, run_id in runs.items():
                for ti in _task_instances(api, dag_id, run_id):
                    if ti["task_id"] == "generate_product_images":  # the batch: its index
                        assert ti["state"] == "success", ti
                        summary = _get(
                            api,
                            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/"
                            "generate_product_images/xcomEntries/return_value",
                        )["value"]
                        summary = json.loads(summary) if isinstance(summary, str) else summary
                        index = Path(summary["index"].removeprefix("file://"))
                        for line in index.read_text().splitlines():
                            item = json.loads(line)
                            assert item["status"] == "succeeded", item
                            generation_ids[f"{dag_id}.{item['key']}"] = item["generation_id"]
                        continue
                    if ti["task_id"] != "generate_image":
                        continue
                    assert ti["state"] == "success", ti
                    entry = _get(
                        api,
                        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
                        "/xcomEntries/generation_id",
                        map_index=ti["map_index"],
                    )
                    generation_ids[f"{dag_id}.{ti['task_id']}[{ti['map_index']}]"] = str(
                        entry["value"]
                    ).strip('"')
            assert len(generation_ids) == 1 + PRODUCTS, generation_ids
            assert len(set(generation_ids.values())) == len(generation_ids), generation_ids

            ledger = emulator.get("/_emulator/ledger").json()
            entries = ledger["entries"]
            charges = [e["generation_id"] for e in entries if e["type"] == "charge"]
            reserves = [e["generation_id"] for e in entries if e["type"] == "reserve"]
            refunds = [e for e in entries if e["type"] == "refund"]
            assert sorted(charges) == sorted(generation_ids.values()), ledger
            assert sorted(reserves) == sorted(generation_ids.values()), ledger
            assert not refunds, ledger
            assert ledger["balance"] == 1000 - 4 * (1 + PRODUCTS), ledger

            images = sorted((home / "output").rglob("*.png"))
            assert len(images) == 1 + PRODUCTS, images
            timings["crash_part_done"] = time.monotonic() - started

            # -- a re-run of upload -> generate (Clear on the whole run, as in the UI) uploads the
            #    reference again under a new URL and must still pay once (Airflow 3.3 state store)
            #    With it, the re-roll recipe's task: each Clear pays for a fresh image.
            api.patch(f"/api/v2/dags/{REROLL_DAG}", json={"is_paused": False}).raise_for_status()
            rerun_ids = {}
            for dag_id in (REFERENCE_DAG, REROLL_DAG):
                response = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
                response.raise_for_status()
                rerun_ids[dag_id] = response.json()["dag_run_id"]

            def both_done(tries: int) -> dict[str, str] | None:
                states = {}
                for dag_id, run_id in rerun_ids.items():
                    tis = _task_instances(api, dag_id, run_id)
                    state = str(_get(api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])
                    if state == "failed" or (
                        state == "success" and all(ti["try_number"] >= tries for ti in tis)
                    ):
                        states[dag_id] = state
                return states if len(states) == len(rerun_ids) else None

            first = _wait_for(
                "the reference and re-roll runs", lambda: both_done(1), remaining, 1.0
            )
            assert set(first.values()) == {"success"}, first
            reroll_ids = [_reroll_generation(api, rerun_ids[REROLL_DAG])]
            for dag_id, run_id in rerun_ids.items():
                api.post(
                    f"/api/v2/dags/{dag_id}/clearTaskInstances",
                    json={
                        "dry_run": False,
                        "dag_run_id": run_id,
                        "only_failed": False,
                        "reset_dag_runs": True,
                    },
                ).raise_for_status()
            again = _wait_for("the cleared runs", lambda: both_done(2), remaining, 1.0)
            assert set(again.values()) == {"success"}, again
            reroll_ids.append(_reroll_generation(api, rerun_ids[REROLL_DAG]))
            assert reroll_ids[0] != reroll_ids[1]  # the Clear re-rolled: a fresh generation
            requests = emulator.get("/_emulator/requests").json()
            uploads = [
                r for r in requests if r["method"] == "POST" and r["path"] == "/api/v1/files"
            ]
            assert len(uploads) == 2  # the re-run did upload again
            entries = emulator.get("/_emulator/ledger").json()["entries"]
            new_reserves = [e for e in entries if e["type"] == "reserve"][len(reserves) :]
            reference_reserves = [e for e in new_reserves if e["generation_id"] not in reroll_ids]
            assert len(reference_reserves) == 1, entries  # one generation for both runs
            charged = [e["generation_id"] for e in entries if e["type"] == "charge"]
            assert sorted(g for g in charged if g in reroll_ids) == sorted(reroll_ids)  # 2 paid
            timings["rerun_done"] = time.monotonic() - started
    except BaseException:
        for name in dict.fromkeys([*procs.started, *TRIGGERERS]):
            print(f"--- {name} log (tail) ---\n{procs.log_tail(name)}")
        raise
    finally:
        procs.stop_all()
        elapsed = time.monotonic() - started
        print(f"\ne2e timings (s from start): {timings}; total {elapsed:.1f} s")

    print(f"deferred when the triggerer was killed: {at_crash} (first seen: {seen_deferred})")
    print(f"triggers held at the crash: {held}; killed {victim} (PIDs {killed})")
    print(f"{survivor} adopted the orphaned triggers")
    print(f"generations running at the crash: {len(running_at_crash)}")
    assert elapsed < BUDGET
