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
