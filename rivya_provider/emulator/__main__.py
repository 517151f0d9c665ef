"""``python -m rivya_provider.emulator``: serve the local Rivya emulator."""

from __future__ import annotations

import sys

from rivya_provider.emulator._server import main

if __name__ == "__main__":
    sys.exit(main())
