"""`make demo`: run the flagship example DAG once and show what it made.

Starts the local Rivya emulator on a free loopback port (or uses the real API when
``RIVYA_API_KEY`` is set; base URL from ``RIVYA_BASE_URL``, default https://rivya.ai), prepares a
throwaway Airflow home in ``.airflow/demo`` (SQLite, gitignored; ``RIVYA_DEMO_HOME`` moves it), runs
``airflow dags test example_rivya_generate``, stops the emulator, and prints where the images are,
their sizes, the credits spent and the elapsed time. Exits 0 only when a new image is on disk.
Set ``RIVYA_DEMO_PROMPT`` to draw something else.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(os.environ.get("RIVYA_DEMO_HOME") or REPO / ".airflow" / "demo").resolve()
DAGS_FOLDER = REPO / "dags_examples"
OUTPUT_DIR = REPO / "output"
DAG_ID = "example_rivya_generate"
EMULATOR_KEY = "rvya_sk_demo_emulator"
DAG_TEST_TIMEOUT = 300.0
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(message, flush=True)


def stop(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGINT first (a process that ran a task in-process ignores SIGTERM), then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Emulator:
    """The local Rivya emulator as a subprocess on a free loopback port."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[Any] | None = None
        self.base_url = ""

    def start(self, timeout: float = 30.0) -> str:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        command = [sys.executable, "-m", "rivya_provider.emulator", "--host", "127.0.0.1"]
        command += ["--port", "0", "--api-key", EMULATOR_KEY, "--credits", "1000"]
        command += ["--latency", os.environ.get("RIVYA_DEMO_LATENCY", "2.0")]
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"listening on (http://\S+)", self.log_path.read_text())
            if match:
                self.base_url = match.group(1).rstrip("/")
                return self.base_url
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the emulator did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


def current_credits(base_url: str, api_key: str) -> int | None:
    """The wallet balance, or None when it cannot be read (e.g. a key without credits:read)."""
    from rivya_provider.api import ClientConfig, RivyaClient
    from rivya_provider.api.errors import RivyaError

    try:
        config = ClientConfig(base_url=base_url, api_key=api_key, max_attempts=2, max_backoff=2)
        with RivyaClient(config) as client:
            return client.get_credits().current_credits
    except RivyaError:
        return None


def airflow_env(connection: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))
    }
    env.update(
        AIRFLOW_HOME=str(AIRFLOW_HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_RIVYA_DEFAULT=json.dumps(connection),
        RIVYA_OUTPUT_DIR=str(OUTPUT_DIR),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def migrate(env: dict[str, str], log_path: Path) -> None:
    """``airflow db migrate`` once; later runs skip it (stamp = Airflow version + DB file)."""
    import airflow

    stamp = AIRFLOW_HOME / ".migrated"
    if (
        (AIRFLOW_HOME / "airflow.db").exists()
        and stamp.exists()
        and stamp.read_text().strip() == airflow.__version__
    ):
        return
    say(f"Preparing a throwaway Airflow home in {AIRFLOW_HOME} (first run only, a few seconds)...")
    with log_path.open("w") as log:
        subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=300,
        )
    stamp.write_text(airflow.__version__)


def run_dag(env: dict[str, str], log_path: Path) -> int:
    """``airflow dags test`` bounded like ``timeout -s INT``; returns its exit code."""
    command = [str(BIN / "airflow"), "dags", "test", DAG_ID]
    prompt = os.environ.get("RIVYA_DEMO_PROMPT")
    if prompt:
        command += ["--conf", json.dumps({"prompt": prompt})]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            return process.wait(timeout=DAG_TEST_TIMEOUT)
        except subprocess.TimeoutExpired:
            say(f"`airflow dags test` took longer than {DAG_TEST_TIMEOUT:.0f} s; stopping it")
            stop(process)
            return 124
        finally:
            stop(process)


def new_images(since: float) -> list[Path]:
    folder = OUTPUT_DIR / "generate"
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.stat().st_mtime >= since
    )


def describe(path: Path) -> str:
    size = path.stat().st_size
    try:
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            pixels = f"{image.width}x{image.height} {image.format}, "
    except Exception:
        pixels = ""
    return f"{pixels}{size / 1024:.0f} KB"


def main() -> int:
    started = time.monotonic()
    started_wall = time.time() - 1.0
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    api_key = os.environ.get("RIVYA_API_KEY", "").strip()
    emulator: Emulator | None = None
    dag_log = AIRFLOW_HOME / "dags_test.log"
    code = 1
    try:
        if api_key:
            base_url = os.environ.get("RIVYA_BASE_URL", "https://rivya.ai").rstrip("/")
            say(f"Using the real Rivya API at {base_url} (RIVYA_API_KEY is set).")
        else:
            emulator = Emulator(AIRFLOW_HOME / "emulator.log")
            base_url = emulator.start()
            api_key = EMULATOR_KEY
            say(f"Started the local Rivya emulator at {base_url} (no account needed).")
        connection = {"conn_type": "rivya", "host": base_url, "password": api_key}
        env = airflow_env(connection)
        migrate(env, AIRFLOW_HOME / "migrate.log")
        credits_before = current_credits(base_url, api_key)
        say(f"Running `airflow dags test {DAG_ID}` (log: {dag_log})...")
        code = run_dag(env, dag_log)
        credits_after = current_credits(base_url, api_key)
    finally:
        if emulator is not None:
            emulator.stop()

    elapsed = time.monotonic() - started
    images = new_images(started_wall)
    if code != 0 or not images:
        say(f"\nThe demo failed (exit code {code}); last lines of {dag_log}:")
        for line in dag_log.read_text(errors="replace").splitlines()[-25:]:
            say(f"  {line}")
        return 1

    say("\nDone. Your image" + ("s are:" if len(images) > 1 else " is:"))
    for path in images:
        say(f"  {path.relative_to(REPO)}  ({describe(path)})")
    if credits_before is not None and credits_after is not None:
        spent = credits_before - credits_after
        say(f"Credits spent: {spent} (balance {credits_after})")
    say(f"Elapsed: {elapsed:.1f} s. Run `make demo` again for another one.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
