"""Test-wide setup: an isolated, throwaway Airflow home so tests never touch ~/airflow."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Set before anything imports Airflow: its configuration is read once, at import time.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="rivya-tests-airflow-")
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_AIRFLOW_HOME, "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.makedirs(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], exist_ok=True)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` once per session, shared by every suite that runs DAGs."""
    from tests.airflow_support import migrate_db

    migrate_db()


# -- nothing written into the checkout ------------------------------------------------------------
# A test that stores images at a relative path (or a bad output_path that slipped through) writes
# into the repository: once, images landed in ./None, ./12345 and ./out and were committed. The
# session fails if a test leaves a new top-level entry in the checkout (git-ignored ones aside).
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_UNTRACKED_AT_START = pytest.StashKey[set[str]]()


def _checkout_entries() -> set[str]:
    import subprocess

    listed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=normal"],
        cwd=_CHECKOUT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout (an sdist): nothing to compare
        return set()
    return {line[3:].split("/")[0] for line in listed.stdout.splitlines() if line.startswith("??")}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_UNTRACKED_AT_START] = _checkout_entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_UNTRACKED_AT_START, None)
    if before is None or hasattr(session.config, "workerinput"):
        return
    new = sorted(_checkout_entries() - before)
    if new:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(  # type: ignore[union-attr]
            f"FAILED: tests wrote into the checkout: {new} (use tmp_path)", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
