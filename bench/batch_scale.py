"""The same prompts two ways on a real Airflow: N mapped generate tasks vs one batch task.

Run: ``.venv/bin/python bench/batch_scale.py [--mapped 200] [--batched 1000] [--latency 10]
[--rps 200] [--max-concurrency N] [--image-size square] [--idle 20] [--budget 1500] [--keep]``

Starts the emulator (``--latency`` s per generation) and a real Airflow in a throwaway home
(api-server, dag-processor, scheduler with the LocalExecutor and ``parallelism`` 8, one
triggerer; SQLite), writes two bench DAGs into its dags folder and runs them one after the other:

- ``bench_rivya_mapped``: ``RivyaGenerateImageOperator.partial(...).expand(prompt=[...])``,
  one deferrable task instance per image (``--mapped`` prompts);
- ``bench_rivya_batched``: one ``RivyaBatchGenerateImagesOperator`` with ``--batched`` items.

For each run it prints: the DAG run's wall time (API start_date to end_date) and its ratio to the
generation latency, with a timeline from the emulator's request log (creates, last status poll,
image downloads) and, for the batch, each try's phases from its task and trigger logs; Airflow
CPU seconds per image (user + system of every process of the api-server, dag-processor,
scheduler with its LocalExecutor workers and task processes, and triggerer; sampled with psutil
every 0.5 s, exited children counted through their parent's reaped-children times; the emulator
is measured but not counted), next to an idle baseline measured before the runs; creates,
status polls per item, 429 answers, ledger reservations against N (double charges); peak RSS
and PSS of the worker side (every process under the scheduler) and of the triggerer tree; the
scheduler's errors for a stale executor event (an Airflow race). Then the ratios against their
targets: batched CPU/image / mapped CPU/image (<= 1/20), batched wall / latency (<= 2 plus
storing time), status polls per item (<= 2.5). Figures only; it asserts nothing. Every process
it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.real_airflow import (  # noqa: E402
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

MAPPED_DAG = "bench_rivya_mapped"
BATCHED_DAG = "bench_rivya_batched"
AIRFLOW_COMPONENTS = ("api-server", "dag-processor", "scheduler", "triggerer")
PARALLELISM = 8
CREDITS_PER_IMAGE = 4
PROMPT = "Bench product {i}: a ceramic mug on an oak table, soft studio light, photorealistic"
SAMPLE_INTERVAL = 0.5
PSS_EVERY = 4
RUN_ID_PATH = "{{ run_id | replace(':', '-') | replace('+', '') }}"

DAG_HEADER = '''"""Written by bench/batch_scale.py: {what}."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import dag

{import_line}

COUNT = {count}
PROMPT = {prompt!r}
OUTPUT = os.environ["RIVYA_OUTPUT_DIR"]


@dag(
    dag_id={dag_id!r},
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_tasks={max_active},
    tags=["rivya", "bench"],
)
'''

MAPPED_BODY = """def bench_rivya_mapped() -> None:
    RivyaGenerateImageOperator.partial(
        task_id="generate",
        image_size={size!r},
        output_path=OUTPUT + "/mapped/{run_path}",
        deferrable=True,
    ).expand(prompt=[PROMPT.format(i=i) for i in range(COUNT)])


bench_rivya_mapped()
"""

BATCHED_BODY = """def bench_rivya_batched() -> None:
    RivyaBatchGenerateImagesOperator(
        task_id="generate_batch",
        items=[{{"key": f"sku-{{i}}", "prompt": PROMPT.format(i=i)}} for i in range(COUNT)],
        image_size={size!r},
        output_path=OUTPUT + "/batched/{run_path}",
        deferrable=True,{concurrency}
    )


bench_rivya_batched()
"""


def _write_dags(dags: Path, args: argparse.Namespace) -> None:
    concurrency = (
        "" if args.max_concurrency is None else f"\n        max_concurrency={args.max_concurrency},"
    )
    mapped = DAG_HEADER.format(
        what=f"{args.mapped} mapped generate tasks",
        import_line="from rivya_provider.operators.generate import RivyaGenerateImageOperator",
        count=args.mapped,
        prompt=PROMPT,
        dag_id=MAPPED_DAG,
        max_active=max(16, args.mapped),
    ) + MAPPED_BODY.format(size=args.image_size, run_path=RUN_ID_PATH)
    batched = DAG_HEADER.format(
        what=f"one batch task of {args.batched} items",
        import_line="from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator",
        count=args.batched,
        prompt=PROMPT,
        dag_id=BATCHED_DAG,
        max_active=16,
    ) + BATCHED_BODY.format(size=args.image_size, run_path=RUN_ID_PATH, concurrency=concurrency)
    (dags / f"{MAPPED_DAG}.py").write_text(mapped)
    (dags / f"{BATCHED_DAG}.py").write_text(batched)


# -- process sampling -------------------------------------------------------------------------

Key = tuple[int, float]  # pid, create time: a pid can be reused


def _cpu(proc: psutil.Process) -> float:
    """User + system seconds of ``proc`` and of its children it has reaped."""
    times = proc.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def _title(proc: psutil.Process) -> str:
    """What a process is (Airflow sets process titles), ids and numbers blurred, to group by."""
    try:
        text = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    text = re.sub(r"/\S*/", "", text)  # paths: keep the last part
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27,}|\d+", "#", text)
    return " ".join(text.split())[:72]


@dataclass
class _Seen:
    proc: psutil.Process
    cpu: float
    in_tree: bool
    own: float = 0.0


@dataclass
class Window:
    """What the sampler saw between ``begin()`` and ``end()``."""

    cpu: dict[str, float]
    lost: dict[str, float]
    peak_rss_mb: dict[str, float]
    peak_pss_mb: dict[str, float]  # worker side ("scheduler": its children) and triggerer
    peak_worker_rss_mb: float
    peak_worker_single_mb: float
    peak_worker_processes: int
    new_worker_processes: int
    seconds: float
    samples: int
    by_title: dict[tuple[str, str], float]  # (component, process title) -> own CPU, as sampled


@dataclass
class TreeSampler:
    """Samples each component's process tree every ``interval`` s on a thread.

    A component's CPU at a moment is the sum, over its live processes, of their own user+system
    and their reaped children's (so a task process that ran and exited between two samples is
    counted through its parent), plus the last seen CPU of processes that left the tree (were
    re-parented away) and then exited, which no process in the tree reaped.
    """

    roots: dict[str, int]
    interval: float = SAMPLE_INTERVAL
    seen: dict[str, dict[Key, _Seen]] = field(default_factory=lambda: defaultdict(dict))
    lost: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    totals: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    titles: dict[Key, tuple[str, str]] = field(default_factory=dict)
    last_own: dict[Key, float] = field(default_factory=dict)
    _window: dict[str, Any] | None = None
    _count: int = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._sample()
            self._stop.wait(self.interval)

    def _sample(self) -> None:
        self._count += 1
        with_pss = self._count % PSS_EVERY == 0  # smaps_rollup reads cost more: every 2 s
        rss: dict[str, float] = {}
        workers_rss = 0.0
        pss: dict[str, float] = defaultdict(float)
        worker_single = 0.0
        worker_count = 0
        worker_keys: set[Key] = set()
        for name, root in self.roots.items():
            previous = self.seen[name]
            current: dict[Key, _Seen] = {}
            tree_rss = 0.0
            for proc in Processes._tree(root):
                try:
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    own = float(times.user + times.system)
                    cpu = own + float(times.children_user + times.children_system)
                    mem = proc.memory_info().rss / 2**20
                    if with_pss and (
                        name == "triggerer" or (name == "scheduler" and proc.pid != root)
                    ):
                        pss[name] += proc.memory_full_info().pss / 2**20
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                current[key] = _Seen(proc, cpu, True, own)
                if key not in self.titles:
                    self.titles[key] = (name, _title(proc))
                self.last_own[key] = own
                tree_rss += mem
                if name == "scheduler" and proc.pid != root:
                    workers_rss += mem
                    worker_single = max(worker_single, mem)
                    worker_count += 1
                    worker_keys.add(key)
            for key, old in previous.items():
                if key in current:
                    continue
                try:
                    if old.proc.is_running():
                        times = old.proc.cpu_times()
                        own = float(times.user + times.system)
                        current[key] = _Seen(old.proc, _cpu(old.proc), False, own)
                        self.last_own[key] = own
                        continue
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
                if not old.in_tree:  # an orphan exited: nobody in the tree reaped it
                    self.lost[name] += old.cpu
            self.seen[name] = current
            self.totals[name] = sum(s.cpu for s in current.values()) + self.lost[name]
            rss[name] = tree_rss
        window = self._window
        if window is not None:
            window["samples"] += 1
            for name, value in rss.items():
                window["peak_rss"][name] = max(window["peak_rss"].get(name, 0.0), value)
            window["peak_workers"] = max(window["peak_workers"], workers_rss)
            for name, value in pss.items():
                window["peak_pss"][name] = max(window["peak_pss"].get(name, 0.0), value)
            window["peak_single"] = max(window["peak_single"], worker_single)
            window["peak_count"] = max(window["peak_count"], worker_count)
            window["worker_keys"] |= worker_keys

    def begin(self) -> None:
        with self._lock:
            self._sample()
            self._window = {
                "started": time.monotonic(),
                "cpu": dict(self.totals),
                "lost": dict(self.lost),
                "samples": 0,
                "peak_rss": {},
                "peak_pss": {},
                "peak_workers": 0.0,
                "peak_single": 0.0,
                "peak_count": 0,
                "worker_keys": set(),
                "own": dict(self.last_own),
                "workers_before": {
                    key
                    for key in self.seen.get("scheduler", {})
                    if key[0] != self.roots["scheduler"]
                },
            }
            self._sample()

    def end(self) -> Window:
        with self._lock:
            self._sample()
            window = self._window
            assert window is not None
            self._window = None
            by_title: dict[tuple[str, str], float] = defaultdict(float)
            for key, own in self.last_own.items():
                by_title[self.titles[key]] += own - window["own"].get(key, 0.0)
            return Window(
                by_title=dict(by_title),
                cpu={n: self.totals[n] - window["cpu"].get(n, 0.0) for n in self.roots},
                lost={n: self.lost[n] - window["lost"].get(n, 0.0) for n in self.roots},
                peak_rss_mb=dict(window["peak_rss"]),
                peak_pss_mb=dict(window["peak_pss"]),
                peak_worker_rss_mb=window["peak_workers"],
                peak_worker_single_mb=window["peak_single"],
                peak_worker_processes=window["peak_count"],
                new_worker_processes=len(window["worker_keys"] - window["workers_before"]),
                seconds=time.monotonic() - window["started"],
                samples=window["samples"],
            )


# -- Airflow and emulator helpers ---------------------------------------------------------------


def _when(text: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (``Z`` or an offset), None for None."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _all_task_instances(api: httpx.Client, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        data = _get(
            api,
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            limit=100,
            offset=len(found),
        )
        found.extend(data["task_instances"])
        if not data["task_instances"] or len(found) >= int(data["total_entries"]):
            return found


@dataclass
class RunFigures:
    """One DAG run: Airflow's view, the emulator's view, the sampler's view."""

    name: str
    images: int
    state: str
    wall: float
    measured_wall: float
    run: dict[str, Any]
    tis: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    ledger: dict[str, Any]
    generations: list[dict[str, Any]]
    emulator_cpu: float
    window: Window

    @property
    def airflow_cpu(self) -> float:
        return sum(self.window.cpu[name] for name in AIRFLOW_COMPONENTS)

    def count(self, method: str, prefix: str, exact: bool = False) -> int:
        return sum(
            1
            for r in self.requests
            if r["method"] == method
            and (r["path"] == prefix if exact else r["path"].startswith(prefix))
        )

    @property
    def polls(self) -> int:
        return self.count("GET", "/api/v1/generations/")

    def poll_split(self, latency: float) -> tuple[int, int, int]:
        """Status GETs before each generation was due, at or after it, most for one."""
        due = {
            str(g["id"]): when + latency
            for g in self.generations
            if (when := _when(g.get("created_at"))) is not None
        }
        early = late = 0
        per_id: dict[str, int] = defaultdict(int)
        for r in self.requests:
            if r["method"] != "GET" or not r["path"].startswith("/api/v1/generations/"):
                continue
            generation_id = r["path"].rsplit("/", 1)[-1]
            per_id[generation_id] += 1
            when = _when(r["time"])
            if generation_id in due and when is not None and when < due[generation_id]:
                early += 1
            else:
                late += 1
        return early, late, max(per_id.values(), default=0)

    def times(self, method: str, prefix: str, exact: bool = False) -> list[float]:
        return sorted(
            t
            for r in self.requests
            if r["method"] == method
            and (r["path"] == prefix if exact else r["path"].startswith(prefix))
            and (t := _when(r["time"])) is not None
        )


def _records(path: Path) -> list[dict[str, Any]]:
    """The JSON records of one Airflow task or trigger log file."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def _events(path: Path) -> list[tuple[float, str]]:
    """(time, message) of every timestamped record of one log file, oldest first."""
    events = []
    for record in _records(path):
        when = _when(str(record.get("timestamp") or "")) if record.get("timestamp") else None
        if when is not None:
            events.append((when, str(record.get("event", ""))))
    return sorted(events)


def _log_problems(home: Path, dag_id: str) -> tuple[int, int, list[str]]:
    """Warning and error lines in ``dag_id``'s task and trigger logs, a few distinct errors."""
    warnings = errors = 0
    samples: dict[str, None] = {}
    for path in sorted((home / "logs").glob(f"dag_id={dag_id}/**/*.log*")):
        for record in _records(path):
            level = str(record.get("level", "")).lower()
            if level == "warning":
                warnings += 1
            if level in ("error", "critical"):
                errors += 1
                samples.setdefault(str(record.get("event", ""))[:160], None)
    return warnings, errors, list(samples)[:5]


def _first(
    events: list[tuple[float, str]], test: Callable[[str], bool], after: float = 0.0
) -> float | None:
    return next((t for t, message in events if t > after and test(message)), None)


def _batch_attempts(home: Path) -> list[dict[str, Any]]:
    """Per try of the batch task, from its log and its trigger's log: when each phase happened."""
    attempts = []
    for path in sorted((home / "logs").glob(f"dag_id={BATCHED_DAG}/**/attempt=*.log")):
        if ".trigger." in path.name:
            continue
        events = _events(path)
        if not events:
            continue
        trigger: list[tuple[float, str]] = []
        for trigger_log in path.parent.glob(f"{path.name}.trigger.*.log"):
            trigger.extend(_events(trigger_log))
        trigger.sort()
        fired = _first(trigger, lambda m: m.startswith("Rivya batch:"))
        attempts.append(
            {
                "attempt": path.name.removesuffix(".log").removeprefix("attempt="),
                "start": events[0][0],
                "submitted": _first(events, lambda m: m.startswith("Submitted ")),
                "deferred": _first(events, lambda m: "DEFERRED" in m),
                "trigger_started": _first(trigger, lambda m: m.startswith("Waiting for")),
                "trigger_fired": fired,
                "resumed": _first(events, lambda m: True, after=fired) if fired else None,
                "first_stored": _first(events, lambda m: m.startswith("Stored ")),
                "index_written": _first(
                    events, lambda m: m.startswith("Rivya batch:") and "; index " in m
                ),
                "end": events[-1][0],
                "stored": sum(1 for _, m in events if m.startswith("Stored ")),
                "reused": sum(1 for _, m in events if "stored by an earlier try" in m),
                "failed_report": any("Failed to report terminal" in m for _, m in events),
            }
        )
    return sorted(attempts, key=lambda a: a["start"])


STALE_EVENT = "but the task instance's state attribute is"


def _stale_event_failures(logs: Path, dag_id: str) -> int:
    """Scheduler lines failing a try of ``dag_id`` for a stale executor success (the race of
    apache/airflow#72716: the defer-exit's success is processed after the task resumed)."""
    path = logs / "scheduler.log"
    if not path.exists():
        return 0
    return sum(
        1
        for line in path.read_text(errors="replace").splitlines()
        if STALE_EVENT in line and f"{dag_id}." in line
    )


# -- the bench ----------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    procs: Processes
    home: Path
    api: httpx.Client
    emulator: httpx.Client
    sampler: TreeSampler
    remaining: Callable[[], float]

    def emulator_cpu(self) -> float:
        try:
            return _cpu(psutil.Process(self.procs.started["emulator"].pid))
        except psutil.NoSuchProcess:
            return 0.0

    def run(self, name: str, dag_id: str, images: int) -> RunFigures:
        self.emulator.post("/_emulator/reset").raise_for_status()
        emulator_before = self.emulator_cpu()
        self.sampler.begin()
        started = time.monotonic()
        response = self.api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        response.raise_for_status()
        run_id = response.json()["dag_run_id"]

        def finished() -> dict[str, Any] | None:
            run = _get(self.api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        run = _wait_for(f"the {name} run", finished, self.remaining, 2.0)
        measured = time.monotonic() - started
        window = self.sampler.end()
        emulator_cpu = self.emulator_cpu() - emulator_before
        start, end = _when(run.get("start_date")), _when(run.get("end_date"))
        wall = (end - start) if start is not None and end is not None else measured
        return RunFigures(
            name=name,
            images=images,
            state=str(run["state"]),
            wall=wall,
            measured_wall=measured,
            run=run,
            tis=_all_task_instances(self.api, dag_id, run_id),
            requests=self.emulator.get("/_emulator/requests").json(),
            ledger=self.emulator.get("/_emulator/ledger").json(),
            generations=self.emulator.get("/_emulator/generations").json(),
            emulator_cpu=emulator_cpu,
            window=window,
        )


def _start(
    args: argparse.Namespace, tmp: Path, procs: Processes, remaining: Callable[[], float]
) -> Bench:
    home = tmp / "airflow-home"
    (home / "dags").mkdir(parents=True)
    credits = CREDITS_PER_IMAGE * (args.mapped + args.batched) * 3 + 1000
    base = start_emulator(
        procs,
        remaining,
        latency=args.latency,
        credits=credits,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    port = _free_port()
    env = _airflow_env(home, port, base)
    env.update(
        AIRFLOW__CORE__PARALLELISM=str(PARALLELISM),
        AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(max(16, args.mapped)),
        AIRFLOW__CORE__MAX_MAP_LENGTH=str(max(1024, args.mapped)),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(_free_port()),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
        AIRFLOW_CONN_RIVYA_DEFAULT=json.dumps(
            {
                "conn_type": "rivya",
                "host": base,
                "password": EMULATOR_KEY,
                "extra": {"max_requests_per_second": args.rps},
            }
        ),
    )
    _write_dags(home / "dags", args)
    api = start_airflow(procs, env, port, remaining, timeout=60.0)

    def api_up() -> bool:
        try:
            return api.get("/api/v2/monitor/health").status_code == 200
        except httpx.HTTPError:
            return False

    _wait_for("the api-server", api_up, remaining)

    def triggerer_alive() -> bool:
        jobs = _get(api, "/api/v2/jobs", job_type="TriggererJob", is_alive=True)
        return bool(jobs["jobs"])

    _wait_for("the triggerer to heartbeat", triggerer_alive, remaining)

    def parsed() -> bool:
        return all(
            api.get(f"/api/v2/dags/{dag_id}").status_code == 200
            for dag_id in (MAPPED_DAG, BATCHED_DAG)
        )

    _wait_for("both bench DAGs to be parsed", parsed, remaining, 1.0)
    for dag_id in (MAPPED_DAG, BATCHED_DAG):
        api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    roots = {name: procs.started[name].pid for name in AIRFLOW_COMPONENTS}
    sampler = TreeSampler(roots)
    sampler.start()
    return Bench(
        args=args,
        procs=procs,
        home=home,
        api=api,
        emulator=httpx.Client(base_url=base, timeout=60.0),
        sampler=sampler,
        remaining=remaining,
    )


# -- report -------------------------------------------------------------------------------------


def _timeline(figures: RunFigures, latency: float) -> dict[str, float | None]:
    """Seconds from the DAG run's start to each phase the emulator saw."""
    origin = _when(figures.run.get("start_date")) or 0.0
    creates = figures.times("POST", "/api/v1/generations", exact=True)
    polls = figures.times("GET", "/api/v1/generations/")
    media = figures.times("GET", "/media/generations/")
    ends = [t for ti in figures.tis if (t := _when(ti.get("end_date"))) is not None]

    def rel(value: float | None) -> float | None:
        return None if value is None else value - origin

    return {
        "first_create": rel(creates[0] if creates else None),
        "last_create": rel(creates[-1] if creates else None),
        "last_generation_due": rel(creates[-1] + latency if creates else None),
        "last_poll": rel(polls[-1] if polls else None),
        "first_download": rel(media[0] if media else None),
        "last_download": rel(media[-1] if media else None),
        "last_task_end": rel(max(ends) if ends else None),
        "run_end": rel(_when(figures.run.get("end_date"))),
    }


def _fmt(value: float | None, unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


def _report_run(
    figures: RunFigures, latency: float, idle_rate: float, bench: Bench
) -> dict[str, Any]:
    n = figures.images
    w = figures.window
    creates = [
        r for r in figures.requests if r["method"] == "POST" and r["path"] == "/api/v1/generations"
    ]
    by_status: dict[str, int] = defaultdict(int)
    for r in creates:
        by_status[str(r["status"])] += 1
    throttled = sum(1 for r in figures.requests if r["status"] == 429)
    entries = figures.ledger.get("entries", [])
    reserves = sum(1 for e in entries if e["type"] == "reserve")
    charges = sum(1 for e in entries if e["type"] == "charge")
    refunds = sum(1 for e in entries if e["type"] == "refund")
    ti_states: dict[str, int] = defaultdict(int)
    retried = 0
    for ti in figures.tis:
        ti_states[str(ti["state"])] += 1
        retried += int((ti.get("try_number") or 1) > 1)
    idle_share = idle_rate * w.seconds
    cpu = figures.airflow_cpu
    timeline = _timeline(figures, latency)
    print(f"\n== {figures.name}: {n} images, DAG run {figures.state} ==")
    print(
        f"  DAG run wall (API start_date -> end_date): {figures.wall:.1f} s = "
        f"{figures.wall / latency:.2f} x latency ({latency:g} s); trigger -> seen finished "
        f"by this script: {figures.measured_wall:.1f} s"
    )
    print(
        "  timeline (s from run start): " + ", ".join(f"{k} {_fmt(v)}" for k, v in timeline.items())
    )
    print(
        f"  task instances: {dict(ti_states)}; retried (try_number > 1): {retried}; "
        f"processes started under the scheduler: {w.new_worker_processes}"
    )
    print(
        f"  Airflow CPU: {cpu:.1f} s in {w.seconds:.1f} s = {cpu / n:.4f} s per image "
        f"(idle baseline {idle_share:.1f} s of it; without it {(cpu - idle_share) / n:.4f} s "
        "per image)"
    )
    print(
        "    by component: "
        + ", ".join(f"{name} {w.cpu[name]:.1f}" for name in AIRFLOW_COMPONENTS)
        + f"; not counted: emulator {figures.emulator_cpu:.1f} s"
        + (
            f"; CPU of exited orphans (last seen) {sum(w.lost.values()):.1f}"
            if any(w.lost.values())
            else ""
        )
    )
    top = sorted(w.by_title.items(), key=lambda item: -item[1])[:6]
    print(
        "    by process kind (own CPU as last sampled every 0.5 s, so a little short): "
        + "; ".join(f"[{comp}] {title!r} {cpu:.1f}" for (comp, title), cpu in top)
    )
    print(
        f"  emulator: creates {len(creates)} (by status {dict(by_status)}), status polls "
        f"{figures.polls} = {figures.polls / n:.2f} per item, image downloads "
        f"{figures.count('GET', '/media/generations/')}, catalogue reads "
        f"{figures.count('GET', '/api/v1/models', exact=True)}, balance reads "
        f"{figures.count('GET', '/api/v1/credits', exact=True)}, 429 answers {throttled}, "
        f"generations {len(figures.generations)}"
    )
    early, late, most = figures.poll_split(latency)
    print(
        f"  status GETs before the generation was due (created_at + latency): "
        f"{early / n:.2f} per item; at or after: {late / n:.2f} per item; most for one "
        f"generation: {most}"
    )
    print(
        f"  ledger: reservations {reserves} for {n} images (double charges "
        f"{max(0, reserves - n)}), charges {charges}, refunds {refunds}"
    )
    print(
        f"  peak memory, summed over processes (RSS counts pages shared by forked processes "
        f"once per process; PSS splits them): worker side (every process under the scheduler, "
        f"at most {w.peak_worker_processes} at once) RSS {w.peak_worker_rss_mb:.0f} MB, PSS "
        f"{w.peak_pss_mb.get('scheduler', 0):.0f} MB, largest process RSS "
        f"{w.peak_worker_single_mb:.0f} MB; triggerer tree RSS "
        f"{w.peak_rss_mb.get('triggerer', 0):.0f} MB, PSS {w.peak_pss_mb.get('triggerer', 0):.0f} "
        f"MB; whole trees RSS: scheduler {w.peak_rss_mb.get('scheduler', 0):.0f} MB, api-server "
        f"{w.peak_rss_mb.get('api-server', 0):.0f} MB, dag-processor "
        f"{w.peak_rss_mb.get('dag-processor', 0):.0f} MB"
    )
    dag_id = MAPPED_DAG if figures.name == "mapped" else BATCHED_DAG
    warnings, errors, samples = _log_problems(bench.home, dag_id)
    print(f"  task/trigger logs: {warnings} warning lines, {errors} error lines")
    for sample in samples:
        print(f"    error: {sample}")
    resume_to_end: float | None = None
    if timeline["last_poll"] is not None and timeline["last_task_end"] is not None:
        resume_to_end = timeline["last_task_end"] - timeline["last_poll"]
    storing: float | None = None
    most_stored = -1
    stale = _stale_event_failures(bench.procs.logs, dag_id)
    print(
        f"  scheduler 'state changed externally' errors for a stale executor success after a "
        f"deferral (the apache/airflow#72716 race; the try is failed into a retry unless the "
        f"resumed task's own success report lands first): {stale}"
    )
    if figures.name == "batched":
        origin = _when(figures.run.get("start_date")) or 0.0
        get_times = figures.times("GET", "/api/v1/generations/")
        after_fired = 0
        bins: dict[int, int] = defaultdict(int)
        for t in get_times:
            bins[int(t - origin)] += 1
        print(
            "  status GETs by second from run start (second:count): "
            + " ".join(f"{second}:{count}" for second, count in sorted(bins.items()))
        )
        for attempt in _batch_attempts(bench.home):
            phases = ", ".join(
                f"{name} {_fmt(None if attempt[name] is None else attempt[name] - origin)}"
                for name in (
                    "start",
                    "submitted",
                    "deferred",
                    "trigger_started",
                    "trigger_fired",
                    "resumed",
                    "first_stored",
                    "index_written",
                    "end",
                )
            )
            print(
                f"  batch try {attempt['attempt']} (s from run start): {phases}; images stored "
                f"{attempt['stored']}, already stored {attempt['reused']}"
                + ("; its success report was refused (404)" if attempt["failed_report"] else "")
            )
            logged = attempt["resumed"] is not None and attempt["index_written"] is not None
            if logged and attempt["stored"] >= most_stored:
                most_stored = attempt["stored"]
                storing = attempt["index_written"] - attempt["resumed"]
            if attempt["trigger_fired"] is not None:
                fired, end = attempt["trigger_fired"], attempt["end"]
                after_fired += sum(1 for t in get_times if fired < t <= end + 1.0)
        print(
            f"  status GETs after a trigger fired (the resume reading each result back): "
            f"{after_fired} = {after_fired / n:.2f} per item; by the trigger: "
            f"{(figures.polls - after_fired) / n:.2f} per item"
        )
    return {
        "images": n,
        "state": figures.state,
        "wall": figures.wall,
        "cpu": cpu,
        "cpu_per_image": cpu / n,
        "cpu_per_image_minus_idle": (cpu - idle_share) / n,
        "polls_per_item": figures.polls / n,
        "creates": len(creates),
        "throttled": throttled,
        "reservations": reserves,
        "storing_logged": storing,
        "last_poll_to_task_end": resume_to_end,
        "retried": retried,
        "stale_event_failures": stale,
        "timeline": timeline,
        "peak_worker_rss_mb": w.peak_worker_rss_mb,
        "peak_worker_pss_mb": w.peak_pss_mb.get("scheduler", 0.0),
        "peak_triggerer_pss_mb": w.peak_pss_mb.get("triggerer", 0.0),
        "peak_triggerer_rss_mb": w.peak_rss_mb.get("triggerer", 0.0),
    }


def _provider_knows(setting: str) -> bool:
    return any(
        setting in path.read_text(errors="replace")
        for path in (REPO / "rivya_provider").rglob("*.py")
    )


def _bench(args: argparse.Namespace, tmp: Path, procs: Processes) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with _deadline(args.budget) as remaining:
        t0 = time.monotonic()
        bench = _start(args, tmp, procs, remaining)
        print(f"Airflow up and both DAGs parsed in {time.monotonic() - t0:.0f} s")
        try:
            idle_rate = 0.0
            if args.idle > 0:
                bench.sampler.begin()
                time.sleep(args.idle)
                idle = bench.sampler.end()
                idle_rate = sum(idle.cpu[n] for n in AIRFLOW_COMPONENTS) / idle.seconds
                print(
                    f"idle baseline: {idle_rate:.3f} CPU-s per s over {idle.seconds:.0f} s ("
                    + ", ".join(f"{n} {idle.cpu[n]:.1f}" for n in AIRFLOW_COMPONENTS)
                    + ")"
                )
            results["idle_cpu_per_s"] = idle_rate
            for name, dag_id, images in (
                ("mapped", MAPPED_DAG, args.mapped),
                ("batched", BATCHED_DAG, args.batched),
            ):
                if images <= 0:
                    continue
                figures = bench.run(name, dag_id, images)
                results[name] = _report_run(figures, args.latency, idle_rate, bench)
        finally:
            bench.sampler.stop()
    return results


def _summary(results: dict[str, Any], args: argparse.Namespace) -> None:
    mapped, batched = results.get("mapped"), results.get("batched")
    print("\n== ratios ==")
    if mapped and batched:
        ratio = batched["cpu_per_image"] / mapped["cpu_per_image"]
        net_m, net_b = mapped["cpu_per_image_minus_idle"], batched["cpu_per_image_minus_idle"]
        net = f"{net_b / net_m:.4f} (1/{net_m / net_b:.0f})" if net_m > 0 and net_b > 0 else "n/a"
        print(
            f"batched CPU/image / mapped CPU/image: {ratio:.4f} (1/{1 / ratio:.0f}; goal <= 1/20);"
            f" without the idle baseline: {net}"
        )
    if batched:
        storing = batched["storing_logged"]
        how = "resume -> index written, from the task log, the try that stored the most"
        if storing is None:
            storing = batched["last_poll_to_task_end"]
            how = "estimated: last status poll -> task end, resume included"
        print(
            f"batched wall / latency: {batched['wall'] / args.latency:.2f} (goal <= 2 plus storing)"
            f"; storing ({how}): {_fmt(storing)}"
            + (
                f"; wall minus storing / latency: {(batched['wall'] - storing) / args.latency:.2f}"
                if storing is not None
                else ""
            )
        )
    for name in ("mapped", "batched"):
        figures = results.get(name)
        if figures and (figures["retried"] or figures["stale_event_failures"]):
            print(
                f"note: {name}: {figures['retried']} task instance(s) needed a retry "
                f"({figures['stale_event_failures']} scheduler errors for a stale executor "
                "event); its wall time, polls and CPU include any retries"
            )
    for name in ("mapped", "batched"):
        if results.get(name):
            print(
                f"{name} status polls per item: {results[name]['polls_per_item']:.2f} (goal <= 2.5)"
            )
    print(json.dumps(results, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mapped", type=int, default=200, help="prompts in the mapped DAG")
    parser.add_argument("--batched", type=int, default=1000, help="items in the batch DAG")
    parser.add_argument("--latency", type=float, default=10.0, help="emulator s per generation")
    parser.add_argument(
        "--rps", type=float, default=200.0, help="connection extra max_requests_per_second"
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=None, help="batch max_concurrency (default: its)"
    )
    parser.add_argument(
        "--image-size", default="square", help="image_size of every image (emulator renders it)"
    )
    parser.add_argument("--idle", type=float, default=20.0, help="s of idle CPU baseline (0: off)")
    parser.add_argument("--budget", type=float, default=1500.0, help="overall deadline, s")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    print(
        f"Airflow {importlib.metadata.version('apache-airflow')}, Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} logical cores "
        f"({psutil.cpu_count(logical=False)} physical), load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print(
        f"LocalExecutor, parallelism {PARALLELISM}, SQLite; one triggerer; latency "
        f"{args.latency:g} s; image_size {args.image_size}; mapped {args.mapped}, batched "
        f"{args.batched} (max_concurrency "
        f"{'operator default' if args.max_concurrency is None else args.max_concurrency}); "
        f"connection extra max_requests_per_second={args.rps:g} "
        f"({'named' if _provider_knows('max_requests_per_second') else 'NOT named'} in "
        "rivya_provider's source)"
    )
    print(
        "CPU counted: user+system of api-server, dag-processor, scheduler (LocalExecutor "
        "workers, task supervisors and task processes included) and triggerer trees; "
        "not the emulator, not this script"
    )
    tmp = Path(tempfile.mkdtemp(prefix="rivya-bench-batch-"))
    procs = Processes(tmp)
    me = psutil.Process()
    before = me.cpu_times()
    results: dict[str, Any] = {}
    try:
        results = _bench(args, tmp, procs)
    except BaseException:
        for name in procs.started:
            print(f"--- {name} log (tail) ---\n{procs.log_tail(name, 20)}")
        raise
    finally:
        procs.stop_all()
        after = me.cpu_times()
        print(
            f"\nthis script's own CPU (sampling, API and emulator reads): "
            f"{after.user + after.system - before.user - before.system:.1f} s"
        )
        if args.keep:
            print(f"kept: {tmp} (Airflow home {tmp / 'airflow-home'}, component logs in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    _summary(results, args)


if __name__ == "__main__":
    main()
