"""Per-job time limits: `JobTimeout` raised inside a job that runs longer than allowed.

`~diffim.framework.worker.execute_job` runs a job under `_TimeLimit` when its executor was given
a ``timeout`` (``--timeout SECONDS``). `JobTimeout` is a `BaseException`, so a task's ``except
Exception`` cannot swallow it. In a worker's main thread a SIGALRM timer raises it; in other
threads (a dask worker's) a watcher thread raises it asynchronously. Either way the exception
arrives when the job next runs Python code, so a single long call into C finishes first; the
``process`` executor also kills a worker that still has not answered ``kill_grace`` seconds later.

This module imports only the standard library.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = ["JobTimeout"]


class JobTimeout(BaseException):
    """Raised inside a job that ran longer than its executor's ``timeout``.

    A `BaseException` (as `KeyboardInterrupt`), so that ``except Exception`` blocks in task code
    cannot swallow it; `~diffim.framework.worker.execute_job` turns it into a failed
    `~diffim.framework.worker.JobResult` with ``timed_out=True``.
    """


def _timeout_error(timeout: float) -> str:
    return f"JobTimeout: the job ran longer than its time limit of {timeout:g} s (--timeout) and was stopped"


# The time limit a SIGALRM is meant for (the handler is installed once per process and stays:
# restoring the previous one could let a late signal hit the default handler, which kills).
_alarm_target: _TimeLimit | None = None


def _on_alarm(signum: int, frame: Any) -> None:
    limit = _alarm_target
    if limit is not None and limit.active:
        raise JobTimeout(_timeout_error(limit.seconds))


class _TimeLimit:
    """Raise `JobTimeout` in the calling thread ``seconds`` from now, unless left before.

    In the main thread (a process worker) a SIGALRM timer raises it, which also interrupts
    blocking system calls; elsewhere (threads of a dask worker), or when SIGALRM is in use, a
    watcher thread raises it asynchronously in the job's thread (``PyThreadState_SetAsyncExc``),
    which takes effect when that thread next runs Python code. Either way it is raised again
    every `RETRY` seconds until the limit is left: an exception that lands in a garbage-collector
    callback or a ``__del__`` is only printed, not raised, and must not let the job run on.
    """

    #: Seconds between two raises while the job has not stopped: long enough for the ``finally``
    #: blocks run while the first one unwinds the job to finish undisturbed.
    RETRY = 1.0

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active = False
        self._signal = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ident = 0

    @staticmethod
    def _use_signal() -> bool:
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            return False
        handler = signal.getsignal(signal.SIGALRM)
        free = handler in (signal.SIG_DFL, signal.SIG_IGN, None, _on_alarm)
        return free and signal.getitimer(signal.ITIMER_REAL)[0] == 0.0  # do not steal someone's timer

    def _watch(self) -> None:
        import ctypes

        if self._stopped.wait(self.seconds):
            return
        while True:
            with self._lock:
                if not self.active:
                    return
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._ident), ctypes.py_object(JobTimeout))
            if self._stopped.wait(self.RETRY):
                return

    def __enter__(self) -> Self:
        global _alarm_target
        self.active = True
        if self._use_signal():
            self._signal = True
            if signal.getsignal(signal.SIGALRM) is not _on_alarm:
                signal.signal(signal.SIGALRM, _on_alarm)
            _alarm_target = self
            signal.setitimer(signal.ITIMER_REAL, self.seconds, self.RETRY)
        else:
            self._ident = threading.get_ident()
            threading.Thread(target=self._watch, name="diffim-job-time-limit", daemon=True).start()
        return self

    def _stop(self) -> None:
        if self._signal:
            self.active = False  # from now on a pending SIGALRM does nothing
            signal.setitimer(signal.ITIMER_REAL, 0)
        else:
            import ctypes

            with self._lock:
                self.active = False
                # clear an exception raised by the watcher but not delivered yet
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._ident), None)
            self._stopped.set()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while True:
            try:
                self._stop()
                return
            except JobTimeout:  # delivered while stopping: stop again (the first one propagates)
                continue
