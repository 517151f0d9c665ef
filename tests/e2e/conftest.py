"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from tests.e2e.browser import chromium

__all__ = ["chromium"]
