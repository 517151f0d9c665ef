"""Load cost of the ``rivya`` pytest plugin, which every pytest session of every user loads.

Each sample is a fresh interpreter that imports pytest (already loaded when pytest loads its
plugins), then times ``import rivya_provider.testing.plugin``. The baseline, measured in the
same run, is ``import pytest`` itself. Prints medians over ``--runs`` samples and the heavy
modules the plugin pulled in (none expected). Target: plugin load <= 5 ms.

    .venv/bin/python bench/plugin_load.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import pytest
t1 = time.perf_counter()
before = set(sys.modules)
import rivya_provider.testing.plugin
t2 = time.perf_counter()
new = sorted(m for m in set(sys.modules) - before if not m.startswith("rivya_provider"))
print(json.dumps({"pytest": t1 - t0, "plugin": t2 - t1, "new": new}))
"""
HEAVY = ("airflow", "httpx", "sqlalchemy", "PIL", "starlette", "uvicorn", "pydantic")


def sample() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    samples = [sample() for _ in range(runs)]
    plugin_ms = statistics.median(float(str(s["plugin"])) * 1000 for s in samples)
    pytest_ms = statistics.median(float(str(s["pytest"])) * 1000 for s in samples)
    new_modules = sorted({m for s in samples for m in s["new"]})  # type: ignore[attr-defined]
    heavy = [m for m in new_modules if m.split(".")[0] in HEAVY]
    print(f"rivya pytest plugin load: {plugin_ms:.2f} ms median of {runs} (target <= 5 ms)")
    print(
        f"baseline `import pytest`: {pytest_ms:.1f} ms; plugin/pytest = {plugin_ms / pytest_ms:.3f}"
    )
    print(f"modules the plugin added besides rivya_provider: {new_modules or 'none'}")
    print(f"heavy modules: {heavy or 'none'}")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())
