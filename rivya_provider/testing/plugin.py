"""pytest plugin (entry point ``pytest11``): fixtures that run the local Rivya emulator.

Loaded into every pytest session of anyone who installs the provider, so importing it stays
cheap: no Airflow, no httpx, no emulator until a fixture is used.

* ``rivya_emulator_session`` (session scope): one emulator subprocess for the whole session.
* ``rivya_emulator``: that emulator, reset before the test (no generations, files, ledger
  entries, request log or faults; startup config: latency 0.5 s, 1000 credits, which the ini
  options ``rivya_emulator_latency`` and ``rivya_emulator_credits`` change).
* ``rivya_airflow_conn``: ``rivya_emulator`` with ``AIRFLOW_CONN_RIVYA_DEFAULT`` set to it for
  the test's duration only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rivya_provider.testing.emulator_process import RivyaEmulator

FIXTURE_LATENCY = 0.5
"""Seconds to a terminal status in fixtures (``rivya_emulator.configure(latency=...)``)."""
FIXTURE_CREDITS = 1000


def pytest_addoption(parser: pytest.Parser) -> None:
    """Ini options for the emulator fixtures' startup configuration."""
    parser.addini(
        "rivya_emulator_latency",
        f"seconds to a terminal status in the Rivya emulator (default {FIXTURE_LATENCY})",
        default=str(FIXTURE_LATENCY),
    )
    parser.addini(
        "rivya_emulator_credits",
        f"starting wallet balance of the Rivya emulator (default {FIXTURE_CREDITS})",
        default=str(FIXTURE_CREDITS),
    )


@pytest.fixture(scope="session")
def rivya_emulator_session(pytestconfig: pytest.Config) -> Iterator[RivyaEmulator]:
    """One emulator subprocess on a free loopback port, shared by the session."""
    from rivya_provider.testing.emulator_process import run_emulator

    latency = float(pytestconfig.getini("rivya_emulator_latency"))
    credits = int(pytestconfig.getini("rivya_emulator_credits"))
    with run_emulator(latency=latency, credits=credits) as emulator:
        yield emulator


@pytest.fixture
def rivya_emulator(rivya_emulator_session: RivyaEmulator) -> RivyaEmulator:
    """The session emulator, reset to its startup state before the test; this process's
    learned generation durations are forgotten too, so each test polls from the shared schedule
    (an earlier test's latency would otherwise set its first check)."""
    from rivya_provider.api.polling import durations

    rivya_emulator_session.reset()
    durations.clear()
    return rivya_emulator_session


@pytest.fixture
def rivya_airflow_conn(
    rivya_emulator: RivyaEmulator, monkeypatch: pytest.MonkeyPatch
) -> RivyaEmulator:
    """``rivya_emulator`` with ``AIRFLOW_CONN_RIVYA_DEFAULT`` pointing at it during the test."""
    monkeypatch.setenv("AIRFLOW_CONN_RIVYA_DEFAULT", rivya_emulator.connection_json())
    return rivya_emulator
