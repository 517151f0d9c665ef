"""``python -m rivya_provider.emulator``: serve the local Rivya emulator."""

from __future__ import annotations

import sys

from rivya_provider.emulator._extra import EmulatorExtraMissing, check_emulator_extra


def _run() -> int:
    try:
        check_emulator_extra()
    except EmulatorExtraMissing as exc:
        print(f"rivya emulator: {exc}", file=sys.stderr)
        return 1
    from rivya_provider.emulator._server import main

    return main()


if __name__ == "__main__":
    sys.exit(_run())
