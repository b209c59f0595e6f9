"""BLAS thread limits while a task runs.

The kernel fit multiplies many small matrices (one normal-equation system per candidate);
OpenBLAS splits each over its threads and the synchronisation costs more than it saves: on the
2048² benchmark pair a subtraction takes 1.65 s with two BLAS threads and 1.41 s with one. The
whole-image FFTs have their own thread count (``convolutionWorkers``) and are not affected.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["blas_threads", "with_blas_threads"]

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Limit the BLAS libraries already loaded to ``threads`` threads inside the block.

    Parameters
    ----------
    threads : int
        Thread count; 0 leaves the libraries' settings alone.
    """
    if threads <= 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up: without threadpoolctl the libraries keep their settings
        yield
        return
    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield


def with_blas_threads(method: F) -> F:
    """Run a task method under :func:`blas_threads` with its config's ``blasThreads``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with blas_threads(int(getattr(self.config, "blasThreads", 0))):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
