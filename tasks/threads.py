"""BLAS thread limits while a task runs.

The kernel fit multiplies many small matrices (one normal-equation system per candidate);
OpenBLAS splits each over its threads and the synchronisation costs more than it saves: on the
2048² benchmark pair a subtraction takes 1.65 s with two BLAS threads and 1.41 s with one. The
whole-image FFTs have their own thread count (``convolutionWorkers``) and are not affected.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from diffim.framework.threads import pinned_threads, thread_budget

__all__ = ["parallel_threads", "with_blas_threads"]

F = TypeVar("F", bound=Callable[..., Any])


def with_blas_threads(method: F) -> F:
    """Run a task method under :class:`~diffim.framework.threads.pinned_threads` with its
    config's ``blasThreads`` (0 leaves the libraries' settings alone)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with pinned_threads(int(getattr(self.config, "blasThreads", 0)) or None):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def parallel_threads(configured: int) -> int:
    """Threads for a task's own parallel loop: ``configured``, capped by the process's share.

    In a worker of ``diffim run -j N`` the share is the cores divided by ``N``
    (:func:`~diffim.framework.threads.thread_budget`), so ``N`` jobs do not each start
    ``configured`` threads on the same cores. The results do not depend on it.
    """
    return max(1, min(int(configured), thread_budget()))
