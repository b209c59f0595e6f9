"""Progress of a list of jobs: a bar on a terminal (tqdm, when installed), log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from .worker import JobResult

__all__ = ["Progress", "progress"]

_log = logging.getLogger("diffim.run")


class Progress:
    """Progress of a list of jobs; use as ``on_result`` callback and context manager.

    Parameters
    ----------
    total : `int`
        Number of jobs.
    desc : `str`
        What is counted, e.g. ``"pairs"``.

    Attributes
    ----------
    done : `int`
        Jobs finished so far.
    failed : `int`
        Failed jobs among them.
    """

    def __init__(self, total: int, desc: str) -> None:
        self.total = total
        self.desc = desc
        self.done = 0
        self.failed = 0
        self.closed = False

    def update(self, n: int = 1, *, failed: int = 0) -> None:
        """Count ``n`` finished jobs, ``failed`` of which failed.

        Parameters
        ----------
        n : `int`, optional
            Jobs finished.
        failed : `int`, optional
            How many of them failed.
        """
        self.done += n
        self.failed += failed

    def __call__(self, result: JobResult) -> None:
        """Count one `JobResult` (so the object can be passed as ``on_result``)."""
        self.update(1, failed=0 if result.ok else 1)

    def close(self) -> None:
        """Finish the display. Safe to call twice."""
        self.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _LogProgress(Progress):
    """Periodic INFO lines on ``diffim.run``, at most every ``interval`` seconds."""

    def __init__(self, total: int, desc: str, interval: float, clock: Callable[[], float]) -> None:
        super().__init__(total, desc)
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.last = self.start

    def _line(self, now: float) -> str:
        elapsed = now - self.start
        text = f"{self.desc}: {self.done}/{self.total} done"
        if self.failed:
            text += f", {self.failed} failed"
        text += f", {elapsed:.1f} s elapsed"
        if 0 < self.done < self.total:
            text += f", ~{elapsed / self.done * (self.total - self.done):.0f} s left"
        return text

    def update(self, n: int = 1, *, failed: int = 0) -> None:
        super().update(n, failed=failed)
        now = self.clock()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            _log.info("%s", self._line(now))

    def close(self) -> None:
        if not self.closed:
            _log.info("%s", self._line(self.clock()))
        super().close()


class _TqdmProgress(Progress):
    """A tqdm bar on a terminal."""

    def __init__(self, total: int, desc: str, tqdm_class: Any, stream: IO[str]) -> None:
        super().__init__(total, desc)
        self.bar = tqdm_class(total=total, desc=desc, file=stream, unit="job", dynamic_ncols=True)

    def update(self, n: int = 1, *, failed: int = 0) -> None:
        super().update(n, failed=failed)
        if failed:
            self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        if not self.closed:
            self.bar.close()
        super().close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress(
    total: int,
    *,
    desc: str = "jobs",
    interval: float = 30.0,
    stream: IO[str] | None = None,
    enable: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Progress:
    """Report progress through a list of jobs: a tqdm bar on a terminal, log lines otherwise.

    Parameters
    ----------
    total : `int`
        Number of jobs.
    desc : `str`, optional
        Label of the bar or of the log lines, e.g. ``"pairs"``.
    interval : `float`, optional
        Log mode: least number of seconds between two progress lines (a summary line is always
        logged by ``close``).
    stream : file-like, optional
        Where the bar goes and whose ``isatty()`` decides; default `sys.stderr`.
    enable : `bool`, optional
        `False` returns a silent counter (e.g. for a single job).
    clock : callable, optional
        Time source in seconds (for tests).

    Returns
    -------
    progress : `Progress`
        Call it with each `JobResult` (``on_result=progress``) or use ``update()``; close it, or
        use it as a context manager.
    """
    if not enable:
        return Progress(total, desc)
    out = sys.stderr if stream is None else stream
    if _is_terminal(out):
        try:
            import tqdm  # optional: the bar is a nicety, the log lines always work
        except ImportError:
            pass
        else:
            return _TqdmProgress(total, desc, tqdm.tqdm, out)
    return _LogProgress(total, desc, interval, clock)
