"""BLAS threads are limited while ImagePsfMatchTask runs, and restored afterwards."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from diffim.framework.executors import pinned_threads
from diffim.tasks.threads import with_blas_threads


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_pinned_threads_limits_inside_the_block_only() -> None:
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    if not _blas_threads():
        pytest.fail("numpy's BLAS is not visible to threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with pinned_threads(1):
            assert set(_blas_threads()) == {1}
        assert _blas_threads() == before
        with pinned_threads(None):  # None leaves the setting alone
            assert _blas_threads() == before


def test_task_methods_run_with_the_configured_thread_count() -> None:
    seen = []

    class Config:
        blasThreads = 1  # noqa: N815 - the config field's name

    class Fake:
        config = Config()

        @with_blas_threads
        def run(self) -> str:
            seen.append(_blas_threads())
            return "ok"

    with threadpool_limits(limits=2, user_api="blas"):
        assert Fake().run() == "ok"
    assert set(seen[0]) == {1}
