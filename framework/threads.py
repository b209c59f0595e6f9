"""Thread limits of a process: BLAS/OpenMP pools and the threads a job may use for its own loops.

Two separate limits, both set per worker by the executors (`~diffim.framework.worker.WorkerSetup`):

* BLAS/OpenMP threads (`pinned_threads`, `BLAS_THREAD_ENV_VARS`): 1 by default in every worker
  and, while it runs jobs, in the launching process too. The thread count changes the order of
  BLAS sums, hence the last bits of results: pinning everywhere is what makes serial and parallel
  runs bit-identical, and one BLAS thread per job is what makes ``N`` workers ``N`` times faster.
* The thread budget (`thread_budget`, ``$DIFFIM_THREADS``): the threads a job may use for its own
  parallel loops (FFT workers, thread pools), so that ``N`` worker processes on ``C`` cores run
  ``C // N`` threads each instead of each taking every core. An executor may make it dynamic
  (`set_thread_budget_provider`): the ``process`` executor's workers share the cores among the
  jobs running at that moment.

This module imports only the standard library (``threadpoolctl`` loads when a limit is applied).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "BLAS_THREAD_ENV_VARS",
    "THREAD_BUDGET_ENV",
    "environ",
    "pinned_threads",
    "set_thread_budget_provider",
    "thread_budget",
    "usable_cores",
]

#: Environment variables read by BLAS / OpenMP / numexpr libraries when they load.
BLAS_THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

#: Environment variable holding the threads a job may use for its own parallel loops (`thread_budget`).
THREAD_BUDGET_ENV = "DIFFIM_THREADS"


_budget_provider: Callable[[], int] | None = None


def set_thread_budget_provider(provider: Callable[[], int] | None) -> None:
    """Make `thread_budget` ask ``provider`` first (an executor's worker; `None` removes it).

    The ``process`` executor's workers share the cores among the jobs running at that moment,
    so the last job of a run gets the cores the finished workers left idle.
    """
    global _budget_provider
    _budget_provider = provider


def usable_cores() -> int:
    """Return the cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def thread_budget() -> int:
    """Return the threads a job in this process may use for its own parallel work.

    Tasks cap their FFT workers and thread pools with it, so that ``N`` worker processes on
    ``C`` cores run ``C // N`` threads each instead of each taking every core. It is what a
    provider set by the executor says (`set_thread_budget_provider`: in a ``process`` worker, the
    cores divided by the jobs running now), else ``$DIFFIM_THREADS`` when set to a positive
    integer (`~diffim.framework.worker.WorkerSetup.threads`), else the cores this process may
    run on.

    Returns
    -------
    threads : `int`
        At least 1.
    """
    if _budget_provider is not None:
        try:
            provided = int(_budget_provider())
        except Exception:  # noqa: BLE001 - a failing provider falls back on the static share
            provided = 0
        if provided > 0:
            return provided
    value = os.environ.get(THREAD_BUDGET_ENV, "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return usable_cores()


def _limit_loaded_thread_pools(threads: int) -> Any:
    """Limit the thread pools of BLAS/OpenMP libraries already loaded; the limiter, or `None`.

    Nothing to limit before numpy or scipy is imported (the environment variables then apply),
    so ``threadpoolctl`` is not even imported.
    """
    if not any(name in sys.modules for name in ("numpy", "scipy")):
        return None
    import threadpoolctl

    return threadpoolctl.threadpool_limits(limits=threads)


@contextlib.contextmanager
def environ(extra: Mapping[str, str]) -> Iterator[None]:
    """Set ``extra`` in this process's environment for the block, then restore what was there.

    Not thread-safe by itself: callers that may run concurrently hold their own lock.
    """
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """Context manager: pin BLAS/OpenMP threads of this process to ``threads``, then restore.

    Sets every `BLAS_THREAD_ENV_VARS` entry (read by BLAS libraries when they load: numpy
    imported inside the block keeps the pin for the life of the process) and limits the thread
    pools of libraries already loaded with ``threadpoolctl`` (undone on exit). The ``diffim run``
    launcher pins before it imports any task, and the ``serial`` executor pins while it runs
    jobs, so that jobs compute with one BLAS thread whichever
    executor runs them (the thread count changes the order of BLAS sums, hence the last bits of
    results).

    Parameters
    ----------
    threads : `int` or `None`
        Threads allowed; `None` changes nothing.
    """
    if threads is None:
        yield
        return
    with environ(dict.fromkeys(BLAS_THREAD_ENV_VARS, str(threads))):
        limiter = _limit_loaded_thread_pools(threads)
        try:
            yield
        finally:
            if limiter is not None:
                limiter.restore_original_limits()
