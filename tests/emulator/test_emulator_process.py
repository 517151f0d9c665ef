"""The CLI, the launcher, the pytest plugin, and import hygiene (fresh interpreters)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from rivya_provider.testing.emulator_process import EmulatorProcess, run_emulator

READY = re.compile(r"^Rivya emulator listening on (http://\S+) \(API key: (\S+)\)$")


@pytest.mark.parametrize(
    ("stop_signal", "keys"),
    [(signal.SIGTERM, ["rvya_sk_one", "rvya_sk_two"]), (signal.SIGINT, [])],
)
def test_cli_prints_its_address_serves_and_exits_0(
    stop_signal: signal.Signals, keys: list[str]
) -> None:
    command = [sys.executable, "-m", "rivya_provider.emulator", "--port", "0", "--credits", "50"]
    for key in keys:
        command += ["--api-key", key]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        found = READY.match(process.stdout.readline().rstrip("\n"))
        assert found, "first line must announce the base URL and key"
        base_url, printed_key = found.groups()
        assert printed_key == (keys[0] if keys else "rvya_sk_emulator")
        assert not base_url.endswith(":0")
        for key in keys or ["rvya_sk_emulator"]:
            credits = httpx.get(
                f"{base_url}/api/v1/credits", headers={"Authorization": f"Bearer {key}"}
            )
            assert credits.json() == {"current_credits": 50}
        process.send_signal(stop_signal)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_config_file_keys_and_limits(tmp_path: Path) -> None:
    config = tmp_path / "emulator.json"
    settings = {
        "keys": {"rvya_sk_gone": {"state": "revoked"}, "rvya_sk_live": {}},
        "rate_limit": 1,
        "rate_limit_window": 60,
    }
    config.write_text(json.dumps(settings))
    runner = EmulatorProcess(api_keys=(), extra_args=["--config", str(config)])
    runner.start()
    try:
        assert runner.api_key == "rvya_sk_live"
        url = f"{runner.base_url}/api/v1/credits"
        gone = httpx.get(url, headers={"Authorization": "Bearer rvya_sk_gone"})
        assert gone.json()["error"]["code"] == "api_key_revoked"
        live = {"Authorization": "Bearer rvya_sk_live"}
        assert httpx.get(url, headers=live).status_code == 200
        assert httpx.get(url, headers=live).status_code == 429
    finally:
        assert runner.stop() == 0


@pytest.mark.parametrize("in_process", [False, True])
def test_run_emulator_yields_a_working_handle(in_process: bool) -> None:
    with run_emulator(latency=0, credits=20, in_process=in_process) as emulator:
        headers = {"Authorization": f"Bearer {emulator.api_key}"}
        body = {"model": "qwen-image", "prompt": "handle"}
        task = httpx.post(f"{emulator.base_url}/api/v1/generations", json=body, headers=headers)
        assert task.json()["status"] == "succeeded"
        assert emulator.charges_by_generation() == {task.json()["id"]: 4}
        assert emulator.balance() == 16
        base_url = emulator.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/_emulator/health")


def test_connection_helpers_describe_the_same_airflow_connection(rivya_emulator) -> None:
    from airflow.sdk import Connection

    expected = {
        "conn_type": "rivya",
        "host": rivya_emulator.base_url,
        "password": rivya_emulator.api_key,
    }
    assert json.loads(rivya_emulator.connection_json()) == expected
    parsed = Connection.from_uri(rivya_emulator.connection_uri(), conn_id="rivya_default")
    assert (parsed.conn_type, parsed.host, parsed.password) == tuple(expected.values())


def test_rivya_airflow_conn_sets_the_variable(rivya_airflow_conn) -> None:
    value = json.loads(os.environ["AIRFLOW_CONN_RIVYA_DEFAULT"])
    assert value["host"] == rivya_airflow_conn.base_url
    assert value["password"] == rivya_airflow_conn.api_key


def test_plugin_in_a_user_project(tmp_path: Path) -> None:
    """A user's test session gets the fixtures; the connection lasts one test only."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nrivya_emulator_credits = 77\n")
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import os

            import httpx


            def test_with_conn(rivya_airflow_conn):
                assert "AIRFLOW_CONN_RIVYA_DEFAULT" in os.environ
                response = httpx.get(
                    rivya_airflow_conn.base_url + "/api/v1/credits",
                    headers={"Authorization": "Bearer " + rivya_airflow_conn.api_key},
                )
                assert response.json() == {"current_credits": 77}


            def test_after(rivya_emulator):
                assert "AIRFLOW_CONN_RIVYA_DEFAULT" not in os.environ
                assert rivya_emulator.requests() == []
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_RIVYA_DEFAULT"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


_PROBE = textwrap.dedent(
    """
    import json, sys

    def loaded():
        roots = {"airflow", "httpx", "starlette", "uvicorn", "PIL", "fastapi"}
        ours = ("rivya_provider.api", "rivya_provider.emulator._app")
        return sorted(m for m in sys.modules if m.split(".")[0] in roots or m.startswith(ours))

    snapshots = {}
    import rivya_provider.testing.plugin
    snapshots["plugin"] = loaded()
    import rivya_provider.emulator
    snapshots["emulator package"] = loaded()
    from rivya_provider.emulator import create_app
    create_app()
    import rivya_provider.emulator.__main__, rivya_provider.emulator._render
    snapshots["emulator app"] = loaded()
    print(json.dumps(snapshots))
    """
)


@pytest.fixture(scope="module")
def import_snapshots() -> dict[str, list[str]]:
    """Heavy modules loaded after each import step, in one fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    snapshots: dict[str, list[str]] = json.loads(out.stdout)
    return snapshots


def test_loading_the_pytest_plugin_is_cheap(import_snapshots: dict[str, list[str]]) -> None:
    assert import_snapshots["plugin"] == []


def test_importing_the_emulator_package_is_cheap(import_snapshots: dict[str, list[str]]) -> None:
    assert import_snapshots["emulator package"] == []


def test_emulator_never_imports_the_api_client_or_airflow(
    import_snapshots: dict[str, list[str]],
) -> None:
    loaded = import_snapshots["emulator app"]
    assert "starlette" in loaded  # the probe sees what the app imports
    assert not [m for m in loaded if m.startswith(("rivya_provider.api", "airflow"))]


# Runs the CLI exactly as `python -m rivya_provider.emulator` would, with Pillow made
# unimportable (as in an install without the `emulator` extra).
_WITHOUT_PILLOW = textwrap.dedent(
    """
    import runpy, sys
    sys.modules["PIL"] = None
    sys.argv = ["rivya_provider.emulator", "--port", "0"]
    runpy.run_module("rivya_provider.emulator", run_name="__main__", alter_sys=True)
    """
)


def test_without_pillow_the_cli_refuses_to_start_and_names_the_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PILLOW], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "listening" not in result.stdout  # never served, so nothing can be accepted or charged
    assert "Pillow" in result.stderr
    assert "airflow-provider-rivya[emulator]" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_pillow_the_app_cannot_be_built(monkeypatch: pytest.MonkeyPatch) -> None:
    from rivya_provider.emulator._app import create_app
    from rivya_provider.emulator._extra import EmulatorExtraMissing

    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(EmulatorExtraMissing, match=r"Pillow.*`emulator` extra"):
        create_app()
