"""Test-suite setup: run against a known plugin set (no third-party autoload)."""

from __future__ import annotations

import sys

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # datasette's switch: diffim.framework.plugins skips third-party entry points when set
    sys._called_from_test = True  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(sys, "_called_from_test"):
        del sys._called_from_test  # type: ignore[attr-defined]
