"""The published artefacts: what a user downloads from the package index."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEV_TOOLS = {"pytest", "pytest-asyncio", "respx", "ruff", "mypy", "mutmut"}


def _uv() -> list[str]:
    found = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    return [found] if Path(found).exists() else [sys.executable, "-m", "uv"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([*_uv(), "build", "-q", "--out-dir", str(out), str(REPO)], check=True)
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


def test_wheel_carries_license_changelog_and_classifiers(built: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(built[0]) as wheel:
        names = wheel.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(metadata_name))
        license_name = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert b"Apache License" in wheel.read(license_name)
        assert b"## 0.2.0" in wheel.read("rivya_provider/CHANGELOG.md")
    assert metadata["License-Expression"] == "Apache-2.0"
    classifiers = set(metadata.get_all("Classifier") or [])
    for minor in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {minor}" in classifiers
    assert {"Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"} <= classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)


def test_no_published_extra_carries_development_tools(built: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(built[0]) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(name))
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert extras == {"emulator", "openlineage"}
    requirements = metadata.get_all("Requires-Dist") or []
    named = {
        r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in requirements
    }
    assert not named & DEV_TOOLS
    emulator = {r.split(">")[0].lower() for r in requirements if "extra == 'emulator'" in r}
    assert emulator == {"pillow", "starlette", "uvicorn"}
    lineage = {r.split(">")[0].lower() for r in requirements if "extra == 'openlineage'" in r}
    assert lineage == {"apache-airflow-providers-openlineage"}


def test_sdist_holds_what_the_readme_asks_users_to_run(built: tuple[Path, Path]) -> None:
    with tarfile.open(built[1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in (
        "Makefile",
        "LICENSE",
        "CHANGELOG.md",
        "scripts/bootstrap.sh",
        "scripts/demo.py",
        "scripts/test_compat.sh",
        "constraints/airflow-3.1.0.txt",
        "dags_examples/example_rivya_generate.py",
        "bench/plugin_load.py",
        "docs/render_dag_graphs.py",
        "tests/conftest.py",
    ):
        assert needed in names, needed
