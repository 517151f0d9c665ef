"""Regenerate the per-Airflow constraint files of the compatibility matrix (``constraints/``).

Older Airflow releases no longer resolve against today's newest dependencies (3.1.0 and 3.2.2
break inside Airflow on newer structlog and pydantic), so each matrix entry is resolved as of
its release: ``uv pip compile --exclude-newer <cut-off>`` over the provider's runtime
dependencies, the ``emulator`` extra and the ``test`` dependency group, for every Python from
3.10 on (``--universal``). The files are committed; ``make test-compat`` installs from them, so
CI resolves nothing on the day.

Run it after changing the matrix or the dependencies (needs uv and the package index):
``.venv/bin/python scripts/compat_constraints.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints"

#: Airflow version -> resolution cut-off (UTC), a day or two after its PyPI upload, so the
#: providers and task SDK released with it are in and nothing later is.
MATRIX: dict[str, str] = {
    "3.1.0": "2025-09-27T00:00:00Z",  # oldest 3.1 (uploaded 2025-09-25)
    "3.2.2": "2026-05-31T00:00:00Z",  # newest 3.2 (uploaded 2026-05-29)
    "3.3.2": "2026-09-19T00:00:00Z",  # newest 3.3 (uploaded 2026-09-17)
}


def find_uv() -> list[str]:
    for candidate in (shutil.which("uv"), str(Path.home() / ".local/bin/uv")):
        if candidate and Path(candidate).exists():
            return [candidate]
    return [sys.executable, "-m", "uv"]


def compile_entry(version: str, cutoff: str) -> Path:
    target = CONSTRAINTS / f"airflow-{version}.txt"
    with tempfile.TemporaryDirectory() as tmp:
        pin = Path(tmp) / "pin.txt"
        pin.write_text(f"apache-airflow=={version}\n")
        subprocess.run(
            [
                *find_uv(),
                "pip",
                "compile",
                "pyproject.toml",
                "--extra",
                "emulator",
                "--group",
                "test",
                "--constraint",
                str(pin),
                "--exclude-newer",
                cutoff,
                "--python-version",
                "3.10",
                "--universal",
                "--no-header",
                "--no-annotate",
                "--quiet",
                "--output-file",
                str(target),
            ],
            cwd=REPO,
            check=True,
        )
    body = target.read_text()
    target.write_text(
        f"# Airflow {version} resolved as of {cutoff} by scripts/compat_constraints.py\n" + body
    )
    return target


def main() -> int:
    CONSTRAINTS.mkdir(exist_ok=True)
    for version, cutoff in MATRIX.items():
        print(f"compat: {compile_entry(version, cutoff).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
