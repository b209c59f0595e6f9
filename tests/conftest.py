"""Test-suite setup: run against a known plugin set (no third-party autoload)."""

from __future__ import annotations

import os
import sys

import pytest

# One BLAS thread: on 2 cores, threaded BLAS fighting other processes slows small solves 3-10x.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def pytest_configure(config: pytest.Config) -> None:
    # datasette's switch: diffim.framework.plugins skips third-party entry points when set
    sys._called_from_test = True  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(sys, "_called_from_test"):
        del sys._called_from_test  # type: ignore[attr-defined]
