"""What the emulator needs beyond the provider: the ``emulator`` extra, checked before serving."""

from __future__ import annotations

import importlib

INSTALL_HINT = "pip install 'airflow-provider-rivya[emulator]'"

#: import name -> distribution of each package the ``emulator`` extra brings.
EXTRA_PACKAGES = {"PIL": "Pillow", "starlette": "starlette", "uvicorn": "uvicorn"}


class EmulatorExtraMissing(RuntimeError):
    """A package of the ``emulator`` extra is not installed."""


def check_emulator_extra() -> None:
    """Raise :class:`EmulatorExtraMissing` naming every missing package and the extra.

    Checked at start, so an emulator without Pillow never accepts (and charges) a generation
    whose image it could not render.
    """
    missing = []
    for module, distribution in EXTRA_PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        raise EmulatorExtraMissing(
            f"the Rivya emulator needs {', '.join(missing)} (it serves with starlette and uvicorn "
            f"and renders real images with Pillow); install the `emulator` extra: {INSTALL_HINT}"
        )
