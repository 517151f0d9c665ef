"""The services of a distributed Airflow for end-to-end tests: Postgres 15 and Redis 7.

Used by ``test_distributed.py`` beside it (CeleryExecutor, Postgres metadata DB, Redis broker).
Both come from Debian and are installed with ``apt-get`` when missing (CI is root and reaches
the Debian registry). Postgres refuses to run as root, so its throwaway cluster lives in a
directory of its own under the system temp dir (pytest's ``tmp_path`` is private to root),
owned by the ``postgres`` user, and every Postgres command runs through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: ``[core] hostname_callable`` of every Airflow process: a task instance's ``hostname`` is the
#: process's ``RIVYA_E2E_HOSTNAME``, so two workers on one machine can be told apart.
HOSTNAME_MODULE = '''"""This process's Airflow hostname (distributed e2e's hostname_callable)."""

import os


def hostname():
    return os.environ.get("RIVYA_E2E_HOSTNAME", "e2e-host")
'''


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def ensure_services_installed() -> None:
    """Install Postgres 15 and Redis from Debian when either is missing."""
    missing = []
    if not (PG_BIN / "pg_ctl").exists():
        missing.append("postgresql-15")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if missing:
        _apt_install(*missing)


def write_hostname_module(folder: Path) -> str:
    """Write the hostname module into ``folder`` (put it on ``PYTHONPATH``); its dotted path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rivya_e2e_hostname.py").write_text(HOSTNAME_MODULE)
    return "rivya_e2e_hostname.hostname"


class Postgres:
    """A throwaway Postgres cluster on a loopback port, trust auth, run as ``postgres``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="rivya-e2e-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.started = False

    @staticmethod
    def _as_postgres(*command: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
        )

    def start(self, database: str) -> str:
        """initdb, start, create ``database``; return its SQLAlchemy URL (psycopg2)."""
        os.chmod(self.root, 0o755)
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E",
            "UTF8",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "start",
        )  # fmt: skip
        self.started = True
        self._as_postgres(
            str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), database
        )
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def dump(self, database: str) -> str:
        """``pg_dump`` of ``database`` (plain SQL, data included)."""
        return self._as_postgres(
            str(PG_BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), database,
            timeout=300,
        ).stdout  # fmt: skip

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.SubprocessError):
                self._as_postgres(
                    str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
                )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


def redis_command(port: int, folder: Path) -> list[str]:
    """A Redis on loopback ``port`` with no persistence (no RDB snapshots, no AOF)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--dir", str(folder), "--protected-mode", "yes"),
    ]


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str, started: float) -> Iterator[None]:
    """Record in ``timings[name]`` the seconds from ``started`` when the block ends."""
    yield
    timings[name] = round(time.monotonic() - started, 1)
