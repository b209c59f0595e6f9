"""The worker side of executors: prepare a worker process, run one job, report a `JobResult`.

Every executor runs each job through `execute_job` where the job lands, so set-up, error capture
and time limits behave the same whichever executor runs it:

* An exception raised by the job function becomes a failed `JobResult` (``ok=False``, a
  one-line ``error``, the full ``traceback``). Only `KeyboardInterrupt` goes through.
* Worker processes are prepared once each with the `WorkerSetup` (`prepare_worker`): BLAS/OpenMP
  threads pinned (1 by default, see :mod:`diffim.framework.threads`), the same ``--log-level``
  specs, the user's debug file re-loaded (spawned workers start from a fresh interpreter, so the
  launcher's ``--debug`` would otherwise be lost; LSST's pipetask re-imports ``debug`` before
  each quantum for the same reason). The launching process itself is not re-prepared.
* With a ``timeout`` the job runs under a time limit (:mod:`diffim.framework.timelimit`) and
  comes back failed with ``timed_out=True`` when it runs over.
* `warm_worker` prepares a worker and imports modules ahead of its first job
  (`~diffim.framework.executors.Executor.start`).

This module imports only the standard library (the logging/debug helpers load on first use), so
spawned workers start quickly.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading
import time
import traceback as traceback_module
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .threads import BLAS_THREAD_ENV_VARS, THREAD_BUDGET_ENV, _limit_loaded_thread_pools
from .timelimit import JobTimeout, _TimeLimit, _timeout_error

__all__ = [
    "JobResult",
    "WorkerSetup",
    "execute_job",
    "prepare_worker",
    "warm_worker",
]

#: Longest error text kept in `JobResult.error` (the full text is in the traceback).
MAX_ERROR_CHARS = 500


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) > MAX_ERROR_CHARS:
        line = line[: MAX_ERROR_CHARS - 1] + "…"
    return line


def _describe_exception(exc: BaseException) -> str:
    detail = _one_line(str(exc))
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


_node_name: str | None = None


def _worker_name() -> str:
    """``host:pid`` of the current process."""
    global _node_name
    if _node_name is None:
        _node_name = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "localhost")
    return f"{_node_name}:{os.getpid()}"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobResult:
    """Outcome of one job.

    Attributes
    ----------
    index : `int`
        Position of the job in the list given to `~diffim.framework.executors.Executor.map`.
    ok : `bool`
        `True` when the job function returned normally.
    value : `object`
        What the job function returned (`None` for a failed job).
    error : `str` or `None`
        One line ``"ExceptionType: message"`` for a failed job, else `None`.
    traceback : `str` or `None`
        The formatted traceback of a failed job (from the worker), else `None`.
    seconds : `float`
        Wall-clock time spent in the job function.
    worker : `str`
        ``host:pid`` of the process that ran the job (``""`` when it never ran).
    timed_out : `bool`
        The job was stopped because it ran longer than the executor's ``timeout``.
    cancelled : `bool`
        The job never started: ``map``'s ``stop_when`` stopped the run first.
    """

    index: int
    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    worker: str = ""
    timed_out: bool = False
    cancelled: bool = False

    @classmethod
    def failure(
        cls,
        index: int,
        exc: BaseException,
        *,
        error: str | None = None,
        seconds: float = 0.0,
        worker: str = "",
        timed_out: bool = False,
    ) -> JobResult:
        """Build a failed result from an exception.

        Parameters
        ----------
        index : `int`
            Job position.
        exc : `BaseException`
            The exception; its traceback is formatted into `traceback`.
        error : `str`, optional
            One-line error text; default ``"ExceptionType: message"``.
        seconds : `float`, optional
            Time spent before the failure.
        worker : `str`, optional
            ``host:pid`` of the process where it failed.
        timed_out : `bool`, optional
            The job was stopped by its time limit.

        Returns
        -------
        result : `JobResult`
            With ``ok=False``.
        """
        text = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            index=index,
            ok=False,
            error=_one_line(error) if error is not None else _describe_exception(exc),
            traceback=text,
            seconds=seconds,
            worker=worker,
            timed_out=timed_out,
        )


# --------------------------------------------------------------------------------------------
# Worker set-up
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class WorkerSetup:
    """How to prepare a worker process before it runs jobs (picklable).

    Parameters
    ----------
    debug_file : `str` or `None`, optional
        Debug file to re-load in each worker (`diffim.framework.debug.load_debug`). The launcher
        passes the path `load_debug` returned in the main process; `None`: no debug file. Workers
        on other machines need the file at the same path.
    log_levels : `list` [`str`], optional
        ``--log-level`` specs (``LEVEL`` or ``LOGGER=LEVEL``) applied in order with
        `diffim.framework.log.set_log_levels`. A spec without a logger applies to ``diffim``
        only; `level_specs` turns the launcher's applied levels (plugin loggers included) into
        explicit ``LOGGER=LEVEL`` specs.
    blas_threads : `int` or `None`, optional
        Threads allowed to BLAS/OpenMP in each worker (1: one core per job, which is what makes
        N workers N times faster). `None` leaves threading alone.
    threads : `int` or `None`, optional
        Threads a job may use for its own parallel loops
        (`~diffim.framework.threads.thread_budget` in the worker); `None`: the executor's choice
        (the ``process`` executor shares the cores among the jobs running at each moment, a dask
        local cluster gives each of its ``N`` workers an equal share).
    env : `dict` [`str`, `str`], optional
        Extra environment variables for the workers (set before they start when the executor
        starts them, and again by `apply`).

    Raises
    ------
    ValueError
        If ``blas_threads`` or ``threads`` is not a positive integer or `None`, or a log-level
        spec is malformed.
    TypeError
        If ``log_levels`` is a string instead of a list of strings.
    """

    debug_file: str | None = None
    log_levels: list[str] = dataclasses.field(default_factory=list)
    blas_threads: int | None = 1
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("blas_threads", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                msg = f"WorkerSetup.{name} must be a positive integer or None, got {value!r}"
                raise ValueError(msg)
        if isinstance(self.log_levels, str):  # a single spec: a list of its characters is never meant
            msg = f"WorkerSetup.log_levels must be a list of specs, got the string {self.log_levels!r}; use [{self.log_levels!r}]"
            raise TypeError(msg)
        self.log_levels = list(self.log_levels)
        if self.log_levels:
            from .log import parse_log_level_spec

            for spec in self.log_levels:  # fail in the launcher, not in every worker
                parse_log_level_spec(spec)
        if self.debug_file is not None:
            self.debug_file = os.fspath(self.debug_file)
        self.env = {str(key): str(value) for key, value in self.env.items()}

    @staticmethod
    def level_specs(applied: Mapping[str, int]) -> list[str]:
        """Turn what `~diffim.framework.log.set_log_levels` applied into explicit specs for workers.

        Parameters
        ----------
        applied : `~collections.abc.Mapping` [`str`, `int`]
            Logger name (``""`` for the root logger) -> level, as returned by ``set_log_levels``
            in the launcher (component-less specs already expanded to every default logger).

        Returns
        -------
        specs : `list` [`str`]
            ``LOGGER=LEVEL`` specs, for `log_levels`.

        Examples
        --------
        >>> WorkerSetup.level_specs({"diffim": 10, "my_plugin": 10, "": 30})
        ['diffim=10', 'my_plugin=10', '=30']
        """
        return [f"{name}={level}" for name, level in applied.items()]

    def environ(self) -> dict[str, str]:
        """Return the environment variables a worker should start with.

        Returns
        -------
        env : `dict` [`str`, `str`]
            `env` plus every `~diffim.framework.threads.BLAS_THREAD_ENV_VARS` entry set to
            `blas_threads` and `~diffim.framework.threads.THREAD_BUDGET_ENV` set to `threads` (each when not `None`).
        """
        env = dict(self.env)
        if self.blas_threads is not None:
            env.update(dict.fromkeys(BLAS_THREAD_ENV_VARS, str(self.blas_threads)))
        if self.threads is not None:
            env[THREAD_BUDGET_ENV] = str(self.threads)
        return env

    def apply(self) -> None:
        """Prepare the current process: environment, BLAS threads, log levels, debug file.

        Called once per worker process (use `prepare_worker`, which also remembers failures).
        The environment variables only affect libraries loaded afterwards; BLAS libraries that
        are already loaded are limited with ``threadpoolctl``.

        Raises
        ------
        diffim.framework.debug.DebugFileError
            If the debug file is missing or raises.
        """
        os.environ.update(self.environ())
        if self.blas_threads is not None:
            _limit_loaded_thread_pools(self.blas_threads)
        if self.log_levels:
            from .log import set_log_levels

            set_log_levels(self.log_levels)
        if self.debug_file is not None:
            from .debug import load_debug

            load_debug(self.debug_file)


# The setup this process was prepared with, and the one-line error if that failed.
_prepared: WorkerSetup | None = None
_prepare_error: tuple[str, str] | None = None
_prepare_lock = threading.Lock()


def prepare_worker(worker_setup: WorkerSetup) -> str | None:
    """Apply ``worker_setup`` to this process once; later calls with an equal setup do nothing.

    Used as the process pool's initializer and by `execute_job`. A failure is not raised (it
    would break the whole pool): it is remembered and every job of this worker then fails with
    it.

    Parameters
    ----------
    worker_setup : `WorkerSetup`
        The setup to apply.

    Returns
    -------
    error : `str` or `None`
        One-line description of the set-up failure, `None` when the worker is ready.
    """
    global _prepared, _prepare_error
    with _prepare_lock:
        if _prepared != worker_setup:
            _prepared = worker_setup
            _prepare_error = None
            try:
                worker_setup.apply()
            except Exception as exc:
                text = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
                _prepare_error = (f"worker set-up failed: {_describe_exception(exc)}", text)
        return None if _prepare_error is None else _prepare_error[0]


def execute_job(
    fn: Callable[[Any], Any],
    index: int,
    job: Any,
    worker_setup: WorkerSetup | None = None,
    launcher_pid: int | None = None,
    timeout: float | None = None,
) -> JobResult:
    """Run one job where it lands (worker side) and wrap the outcome in a `JobResult`.

    Parameters
    ----------
    fn : callable
        The job function, called as ``fn(job)``.
    index : `int`
        Position of the job.
    job : `object`
        The job.
    worker_setup : `WorkerSetup`, optional
        Applied first (once per process, `prepare_worker`) unless this is the launching process.
    launcher_pid : `int`, optional
        Process id of the launching process: set-up is skipped there (threads of a local dask
        cluster, the serial executor), since the launcher prepared itself.
    timeout : `float`, optional
        Seconds the job may run; then `~diffim.framework.timelimit.JobTimeout` is raised in it
        (see :mod:`diffim.framework.timelimit`).

    Returns
    -------
    result : `JobResult`
        ``ok=True`` with the return value, or ``ok=False`` with the error of ``fn`` (or of the
        worker set-up, or ``timed_out=True``). Never raises, except `KeyboardInterrupt`.
    """
    worker = _worker_name()
    if worker_setup is not None and os.getpid() != launcher_pid:
        setup_error = prepare_worker(worker_setup)
        if setup_error is not None:
            assert _prepare_error is not None  # set together with the returned text
            return JobResult(index=index, ok=False, error=setup_error, traceback=_prepare_error[1], worker=worker)
    start = time.perf_counter()
    try:
        # one try around the time limit too: a late asynchronous JobTimeout lands in here
        try:
            if timeout is None:
                value = fn(job)
            else:
                with _TimeLimit(timeout):
                    value = fn(job)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - sys.exit() in a job fails that job only
            return JobResult.failure(index, exc, seconds=time.perf_counter() - start, worker=worker)
        result = JobResult(index=index, ok=True, value=value, seconds=time.perf_counter() - start, worker=worker)
    except JobTimeout as exc:
        assert timeout is not None
        return JobResult.failure(
            index, exc, error=_timeout_error(timeout), seconds=time.perf_counter() - start, worker=worker, timed_out=True
        )
    return result


def warm_worker(
    modules: Sequence[str], worker_setup: WorkerSetup | None = None, launcher_pid: int | None = None
) -> str:
    """Prepare this worker and import ``modules`` ahead of its first job.

    See `~diffim.framework.executors.Executor.start`.

    Parameters
    ----------
    modules : sequence of `str`
        ``"package.module"`` to import, ``"package.module:function"`` to import it and call
        ``function()`` (e.g. to load plugins), or ``"package.module:function:argument"`` to call
        ``function("argument")``. Failures are ignored: the job that needs the module reports
        them.
    worker_setup : `WorkerSetup`, optional
        Applied first, as by `execute_job`.
    launcher_pid : `int`, optional
        Process id of the launching process (nothing is prepared there).

    Returns
    -------
    worker : `str`
        ``host:pid`` of this process.
    """
    if worker_setup is not None and os.getpid() != launcher_pid:
        prepare_worker(worker_setup)
    for spec in modules:
        name, _, call = spec.partition(":")
        function, sep, argument = call.partition(":")
        try:
            module = importlib.import_module(name)
            if function:
                getattr(module, function)(*([argument] if sep else []))
        except Exception:  # noqa: BLE001, S112 - warming up is best effort
            continue
    return _worker_name()
