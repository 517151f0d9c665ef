"""Testing helpers for users' own DAG tests: emulator launcher and pytest fixtures.

``from rivya_provider.testing import run_emulator, RivyaEmulator, load_dag`` (imported on first
use; the pytest plugin is :mod:`rivya_provider.testing.plugin`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rivya_provider.testing.dags import load_dag
    from rivya_provider.testing.emulator_process import (
        EmulatorError,
        EmulatorProcess,
        RivyaEmulator,
        run_emulator,
    )

__all__ = ["EmulatorError", "EmulatorProcess", "RivyaEmulator", "load_dag", "run_emulator"]


def __getattr__(name: str) -> Any:
    if name == "load_dag":
        from rivya_provider.testing.dags import load_dag

        return load_dag
    if name in __all__:
        from rivya_provider.testing import emulator_process

        return getattr(emulator_process, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
