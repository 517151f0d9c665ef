"""Importing the package must be cheap and side-effect free (DAG files are parsed often)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Runs in a fresh interpreter so nothing imported by pytest or other tests leaks in. Any socket
# creation raises, so a network call at import time fails the check loudly.
_PROBE = textwrap.dedent(
    """
    import socket, sys

    class _NoNetwork(socket.socket):
        def __init__(self, *a, **k):
            raise AssertionError("network access at import time")

    socket.socket = _NoNetwork
    socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(AssertionError("net"))

    import {modules}

    heavy = sorted(
        m for m in sys.modules
        if m.split(".")[0] in {{"airflow", "sqlalchemy", "httpx", "PIL", "fastapi", "uvicorn"}}
    )
    print(",".join(heavy))
    """
)


def _imported_heavy_modules(*modules: str) -> list[str]:
    code = _PROBE.format(modules=", ".join(modules))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    line = out.stdout.strip()
    return line.split(",") if line else []


def test_importing_the_package_pulls_in_neither_airflow_nor_http_stack() -> None:
    assert _imported_heavy_modules("rivya_provider", "rivya_provider.get_provider_info") == []


def test_probe_detects_heavy_imports() -> None:
    # Guard against a probe that can never fail: importing Airflow's ORM must be reported.
    assert "sqlalchemy" in _imported_heavy_modules("sqlalchemy")


def test_the_pytest_plugin_loads_nothing_heavy() -> None:
    # Every pytest session of every user who installs the provider loads it (entry point
    # pytest11): Airflow, httpx and the emulator must wait until a fixture is used.
    # bench/plugin_load.py prints its load time (target <= 5 ms).
    assert _imported_heavy_modules("pytest", "rivya_provider.testing.plugin") == []


def _modules_imported_by(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(','.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.strip().split(","))


def test_dag_files_importing_the_operators_load_no_client_code() -> None:
    # A DAG file imports the operator classes at every parse; the client, the trigger and
    # storage load only when a task runs.
    loaded = _modules_imported_by(
        "import rivya_provider.operators.generate, rivya_provider.operators.upload, "
        "rivya_provider.sensors.generation"
    )
    assert "rivya_provider.operators.generate" in loaded  # the probe does see imports
    assert not {m for m in loaded if m.startswith("rivya_provider.api")}
    assert not loaded & {"rivya_provider.triggers.generation", "rivya_provider.storage"}
