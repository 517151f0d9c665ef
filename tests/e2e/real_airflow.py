"""A real Airflow for end-to-end tests: one process per component, stopped by PID.

Shared by the end-to-end tests (``test_*.py`` beside it). Each component (api-server,
dag-processor, scheduler, triggerer) runs as its own process in a throwaway ``AIRFLOW_HOME``
(SQLite, LocalExecutor); ``simple_auth_manager_all_admins`` lets tests call ``/api/v2`` without a
token.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

BIN = Path(sys.executable).parent
EMULATOR_KEY = "rvya_sk_e2e_emulator"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Processes started by this test, each stopped by PID with its children."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[Any]] = {}

    def start(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[Any]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
        log.close()
        self.started[name] = process
        return process

    @staticmethod
    def _tree(pid: int) -> list[psutil.Process]:
        try:
            parent = psutil.Process(pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_now(self, name: str) -> list[int]:
        """SIGKILL a process and its children (a crash, not a shutdown); returns their PIDs."""
        process = self.started.pop(name)
        tree = self._tree(process.pid)
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        psutil.wait_procs(tree, timeout=10)
        return [proc.pid for proc in tree]

    def stop_all(self, grace: float = 15.0) -> None:
        """Stop everything at once: SIGINT to each PID, wait together, then SIGKILL leftovers."""
        trees = {name: self._tree(process.pid) for name, process in self.started.items()}
        for process in self.started.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for process in self.started.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        leftovers = [proc for tree in trees.values() for proc in tree]
        _, alive = psutil.wait_procs(leftovers, timeout=max(0.1, deadline - time.monotonic()))
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        for process in self.started.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.started.clear()

    def log_lines_with(self, name: str, *words: str) -> str:
        """The lines of a component's log that name any of ``words`` (case-insensitive)."""
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        wanted = [word.lower() for word in words]
        lines = path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if any(w in line.lower() for w in wanted))

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def task_log_tails(home: Path, task_ids: list[str], lines: int = 60) -> str:
    """The end of each try's log of ``task_ids`` (Airflow writes them under
    ``$AIRFLOW_HOME/logs/dag_id=*/run_id=*/task_id=*/``), to show why a task failed."""
    out = []
    for task_id in task_ids:
        for path in sorted((home / "logs").glob(f"dag_id=*/run_id=*/task_id={task_id}/**/*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- task log {path.relative_to(home)} ---\n" + "\n".join(tail))
    return "\n".join(out)


def _airflow_env(
    home: Path, port: int, emulator_url: str, executor: str = "LocalExecutor", **extra: str
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "RIVYA_"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR=executor,
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API__SECRET_KEY="rivya-e2e-secret-key",
        AIRFLOW__API_AUTH__JWT_SECRET="rivya-e2e-jwt-secret-0123456789abcdef",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="30",
        AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
        AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1",
        AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="6",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW_CONN_RIVYA_DEFAULT=json.dumps(
            {"conn_type": "rivya", "host": emulator_url, "password": EMULATOR_KEY}
        ),
        RIVYA_OUTPUT_DIR=str(home / "output"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)  # a test's own settings win (e.g. parallelism, the output folder)
    return env


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[Any]:
    end = time.monotonic() + seconds

    def remaining() -> float:
        left = end - time.monotonic()
        assert left > 0, "end-to-end test ran out of its time budget"
        return left

    yield remaining


def _wait_for(
    what: str, check: Any, remaining: Any, interval: float = 0.5, limit: float | None = None
) -> Any:
    """Poll ``check`` until truthy, within the test budget (and ``limit`` seconds if given)."""
    end = time.monotonic() + (limit if limit is not None else remaining())
    while True:
        try:
            result = check()
        except httpx.TransportError:  # a busy api-server on a small machine: ask again
            result = None
        if result:
            return result
        if remaining() < interval or time.monotonic() + interval > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def start_airflow(
    procs: Processes,
    env: dict[str, str],
    port: int,
    remaining: Any,
    *,
    triggerer: bool = True,
    timeout: float = 30.0,
) -> httpx.Client:
    """Migrate the metadata DB, start api-server, dag-processor, scheduler (and one triggerer
    named ``triggerer`` unless ``triggerer=False``); return a client of the REST API."""
    airflow = str(BIN / "airflow")
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=remaining()
    )
    procs.start("api-server", [airflow, "api-server", "--port", str(port)], env)
    procs.start("dag-processor", [airflow, "dag-processor"], env)
    procs.start("scheduler", [airflow, "scheduler"], env)
    if triggerer:
        procs.start("triggerer", [airflow, "triggerer"], env)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout)


def start_emulator(
    procs: Processes,
    remaining: Any,
    *,
    latency: float,
    credits: int | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Start the emulator as the process ``emulator`` on a free loopback port (key
    ``EMULATOR_KEY``, ``latency`` s per generation); return its base URL once it listens."""
    import re

    procs.start(
        "emulator",
        [
            *(sys.executable, "-m", "rivya_provider.emulator", "--host", "127.0.0.1"),
            *("--port", "0", "--api-key", EMULATOR_KEY, "--latency", str(latency)),
            *(("--credits", str(credits)) if credits is not None else ()),
        ],
        {"PYTHONUNBUFFERED": "1", "PATH": str(BIN)} if env is None else env,
    )

    def emulator_url() -> str | None:
        match = re.search(r"listening on (http://\S+)", procs.log_tail("emulator"))
        return match.group(1).rstrip("/") if match else None

    url: str = _wait_for("the emulator", emulator_url, remaining)
    return url


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def _task_instances(client: httpx.Client, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    data = _get(client, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)
    return list(data["task_instances"])
