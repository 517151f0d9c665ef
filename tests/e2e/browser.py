"""Debian's Chromium for the browser tests, installed when missing (driven through Playwright,
dev group ``browser``; no browser download)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, installed when missing (as root, from the Debian registry)."""
    if not CHROMIUM.exists():
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=True,
            env=env,
            timeout=1200,
            capture_output=True,
        )
    return CHROMIUM
