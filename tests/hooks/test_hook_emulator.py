"""RivyaHook against the bundled emulator (the other side of the contract)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from rivya_provider.hooks.rivya import RivyaHook

if TYPE_CHECKING:
    from rivya_provider.testing.emulator_process import RivyaEmulator


def test_test_connection_reports_the_balance(rivya_airflow_conn: RivyaEmulator) -> None:
    assert RivyaHook().test_connection() == (True, "Connected: 1000 credits")


def test_test_connection_with_a_wrong_key(
    rivya_emulator: RivyaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "rivya", "host": rivya_emulator.base_url, "password": "rvya_sk_wrong"}
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_WRONG", json.dumps(conn))
    ok, message = RivyaHook(rivya_conn_id="rivya_wrong").test_connection()
    assert not ok
    assert message.startswith("api_key_invalid: ")
    assert "rvya_sk_wrong" not in message
