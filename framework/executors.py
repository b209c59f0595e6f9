"""Executors: run a list of independent jobs serially, on a process pool or on a cluster.

The model
---------
A *job* is any picklable object (the launcher uses a ``JobSpec``: task class path, config as a
plain dict, input paths, output directory). A *job function* is a top-level function of an
importable module, ``fn(job) -> value``. An `Executor` runs ``fn`` on every job and returns one
`JobResult` per job, in job order::

    from diffim.framework.executors import WorkerSetup, get_executor, progress

    setup = WorkerSetup(debug_file="debug.py", log_levels=["diffim=VERBOSE"])
    with (
        get_executor("process", processes=2, worker_setup=setup) as executor,
        progress(len(jobs), desc="pairs") as bar,
    ):
        results = executor.map(run_one_pair, jobs, on_result=bar)
    failed = [r for r in results if not r.ok]

Rules every executor keeps (the built-ins are tested against them):

* An exception raised by ``fn`` becomes a failed `JobResult` (``ok=False``, a one-line
  ``error``, the full ``traceback``); the other jobs go on. Only `KeyboardInterrupt` aborts.
* Results are identical whichever executor runs them: ``fn`` gets the same job object and its
  return value comes back unchanged (through pickle for remote workers).
* ``on_result`` is called in the calling thread, once per job, in completion order.
* Worker processes are prepared once each with the `WorkerSetup`: BLAS/OpenMP threads pinned
  (1 by default), the same ``--log-level`` specs, the user's debug file re-loaded (spawned
  workers start from a fresh interpreter, so the launcher's ``--debug`` would otherwise be lost;
  LSST's pipetask re-imports ``debug`` before each quantum for the same reason). The launching
  process itself is not re-prepared: the ``serial`` executor runs jobs there as it is, except
  that it pins BLAS threads too while it runs them (`pinned_threads`): the thread count changes
  the order of BLAS sums, so this is what makes serial and parallel results bit-identical.
* Fail fast: ``map(..., stop_when=...)`` starts no further job once ``stop_when(result)`` is true
  for a result; jobs never started come back with ``cancelled=True``. Dispatchers check
  `Executor.stopping` before starting each job.
* Timeouts: executors with ``supports_timeout`` take ``timeout=SECONDS`` per job. `execute_job`
  enforces it where the job runs: `JobTimeout` (a `BaseException`, so a task's ``except
  Exception`` cannot swallow it) is raised in the job after ``timeout`` seconds (SIGALRM in a
  worker's main thread, an asynchronous exception in other threads); the job comes back failed
  with ``timed_out=True``. The exception arrives when the job next runs Python code, so a single
  long call into C finishes first; the ``process`` executor also kills a worker that still has
  not answered ``kill_grace`` seconds later.
* Early start: `Executor.start` starts the workers and imports modules there while the caller
  is still busy (the launcher calls it before resolving the pipeline), so worker start-up
  overlaps the launcher's own.

Built-in executors (:mod:`diffim.plugins.executors`)
----------------------------------------------------
``serial`` (default), ``process`` (``-j N``; `concurrent.futures.ProcessPoolExecutor` with the
*spawn* start method) and ``dask`` (optional extra ``pip install "diffim[dask]"``; a
``distributed`` scheduler address, or a ``distributed.LocalCluster`` when none is given).

Writing an executor plugin
--------------------------
Subclass `Executor`, implement `Executor.dispatch` (run each job through `execute_job` on the
worker side, so setup and error capture behave like the built-ins) and register the class from
the ``diffim_register_executors`` hook::

    from diffim.framework.executors import Executor, execute_job
    from diffim.framework.plugins import hookimpl

    class ThreadExecutor(Executor):
        name = "threads"

        def dispatch(self, fn, jobs, emit):
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(self.processes) as pool:
                futures = [pool.submit(execute_job, fn, i, job) for i, job in enumerate(jobs)]
                for future in futures:
                    emit(future.result())

    @hookimpl
    def diffim_register_executors(registry):
        registry.register("threads", ThreadExecutor)

The built-ins register first (``tryfirst``), so a plugin replaces one with
``registry.register("process", MyExecutor, replace=True)``.

Progress
--------
`progress` returns a callable usable as ``on_result``: a tqdm bar when tqdm is installed and
stderr is a terminal, otherwise INFO lines on the ``diffim.run`` logger at most every
``interval`` seconds (LSST's ``PeriodicLogger`` behaviour) plus a final summary line.

Speed
-----
``python benchmarks/executors.py`` times 8 CPU-bound numpy jobs of ~0.5 s (512² FFTs) against
``serial`` on the 2-core development machine, idle: ``process`` with 2 workers is 1.70x faster
from a cold start (pool start-up and shut-down included) and 1.86x on a warm pool. Workers skip
the interpreter's teardown when the pool shuts down (~0.3 s saved per run). The launcher's own
figure (``diffim run -j 2`` on a table of 8 image pairs, end to end) is measured by
``python benchmarks/launcher.py``; what limits it there is not the executor but each worker's
start-up (~1.2 CPU-s of imports and first-job costs of the tasks, which a serial run pays once)
and memory bandwidth (two 2048² subtractions at once each run ~20 % slower on that machine).

This module imports only the standard library (the registry and the logging/debug helpers load
on first use), so spawned workers start quickly.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import sys
import threading
import time
import traceback as traceback_module
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from .progress import Progress, progress

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from .config import Registry

    #: The executor registry (name -> Executor class); built on first access, see `__getattr__`.
    executors: Registry

__all__ = [
    "BLAS_THREAD_ENV_VARS",
    "DEFAULT_EXECUTOR",
    "Executor",
    "ExecutorError",
    "JobResult",
    "JobTimeout",
    "Progress",
    "WorkerSetup",
    "execute_job",
    "executors",
    "get_executor",
    "THREAD_BUDGET_ENV",
    "pinned_threads",
    "prepare_worker",
    "progress",
    "set_thread_budget_provider",
    "thread_budget",
    "warm_worker",
]

#: Name of the executor used when none is asked for.
DEFAULT_EXECUTOR = "serial"

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


def thread_budget() -> int:
    """Return the threads a job in this process may use for its own parallel work.

    Tasks cap their FFT workers and thread pools with it, so that ``N`` worker processes on
    ``C`` cores run ``C // N`` threads each instead of each taking every core. It is what a
    provider set by the executor says (`set_thread_budget_provider`: in a ``process`` worker, the
    cores divided by the jobs running now), else ``$DIFFIM_THREADS`` when set to a positive
    integer (`WorkerSetup.threads`), else the cores this process may run on.

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
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: Longest error text kept in `JobResult.error` (the full text is in the traceback).
MAX_ERROR_CHARS = 500


class ExecutorError(RuntimeError):
    """An executor could not be created or could not reach its workers.

    Failures of individual jobs are never raised: they are failed `JobResult` objects.
    """


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
        Position of the job in the list given to `Executor.map`.
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


class JobTimeout(BaseException):
    """Raised inside a job that ran longer than its executor's ``timeout``.

    A `BaseException` (as `KeyboardInterrupt`), so that ``except Exception`` blocks in task code
    cannot swallow it; `execute_job` turns it into a failed `JobResult` with ``timed_out=True``.
    """


def _timeout_error(timeout: float) -> str:
    return f"JobTimeout: the job ran longer than its time limit of {timeout:g} s (--timeout) and was stopped"


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
        Threads a job may use for its own parallel loops (`thread_budget` in the worker); `None`:
        the executor's choice (the ``process`` executor gives each of its ``N`` workers an equal
        share of the cores).
    env : `dict` [`str`, `str`], optional
        Extra environment variables for the workers (set before they start when the executor
        starts them, and again by `apply`).

    Raises
    ------
    ValueError
        If ``blas_threads`` is not a positive integer or `None`, or a log-level spec is malformed.
    TypeError
        If ``log_levels`` is a string instead of a list of strings.
    """

    debug_file: str | None = None
    log_levels: list[str] = dataclasses.field(default_factory=list)
    blas_threads: int | None = 1
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    threads: int | None = None

    def __post_init__(self) -> None:
        bad_threads = self.blas_threads is not None and (
            isinstance(self.blas_threads, bool) or not isinstance(self.blas_threads, int) or self.blas_threads < 1
        )
        if bad_threads:
            msg = f"WorkerSetup.blas_threads must be a positive integer or None, got {self.blas_threads!r}"
            raise ValueError(msg)
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            msg = f"WorkerSetup.threads must be a positive integer or None, got {self.threads!r}"
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
            `env` plus every `BLAS_THREAD_ENV_VARS` entry set to `blas_threads` and
            `THREAD_BUDGET_ENV` set to `threads` (each when not `None`).
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


def _limit_loaded_thread_pools(threads: int) -> Any:
    """Limit thread pools of already loaded BLAS/OpenMP libraries; the limiter (to restore them)."""
    import threadpoolctl

    return threadpoolctl.threadpool_limits(limits=threads)


class pinned_threads:  # lower case: used like a function, ``with pinned_threads(1):``
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

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self._saved: dict[str, str | None] = {}
        self._limiter: Any = None

    def __enter__(self) -> Self:
        if self.threads is None:
            return self
        self._saved = {var: os.environ.get(var) for var in BLAS_THREAD_ENV_VARS}
        os.environ.update(dict.fromkeys(BLAS_THREAD_ENV_VARS, str(self.threads)))
        if any(name in sys.modules for name in ("numpy", "scipy")):  # BLAS may be loaded already
            self._limiter = _limit_loaded_thread_pools(self.threads)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None
        for var, value in self._saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        self._saved = {}


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
        Seconds the job may run; then `JobTimeout` is raised in it (see the module docstring).

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
    """Prepare this worker and import ``modules`` ahead of its first job (see `Executor.start`).

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


# --------------------------------------------------------------------------------------------
# The executor interface
# --------------------------------------------------------------------------------------------


def _check_processes(name: str, processes: int | None) -> int | None:
    if processes is None:
        return None
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        msg = f"executor {name!r}: processes must be a positive integer, got {processes!r} (use -j N with N >= 1)"
        raise ValueError(msg)
    return processes


def _check_timeout(name: str, timeout: float | None, supported: bool) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        msg = f"executor {name!r}: timeout must be a positive number of seconds, got {timeout!r}"
        raise ValueError(msg)
    if not supported:
        msg = (
            f"the {name!r} executor cannot enforce a per-job timeout (got timeout={timeout!r}); "
            "use --executor process (or dask), or drop --timeout"
        )
        raise ValueError(msg)
    return float(timeout)


class Executor:
    """Base class of executors: runs ``fn(job)`` for every job, collecting `JobResult` objects.

    Parameters
    ----------
    processes : `int` or `None`, optional
        Number of parallel workers (``-j``); `None` lets the executor choose.
    worker_setup : `WorkerSetup` or `None`, optional
        How to prepare worker processes; `None` means ``WorkerSetup()`` (BLAS threads pinned to 1,
        nothing else).
    timeout : `float` or `None`, optional
        Seconds each job may run (``--timeout``); only for executors with `supports_timeout`.
    **options
        Executor-specific options. Options a subclass does not accept raise `TypeError`,
        except those whose value is `None` (so a launcher can pass ``scheduler=None`` to all).

    Raises
    ------
    TypeError
        For an unknown option.
    ValueError
        If ``processes`` is not a positive integer, or ``timeout`` is not a positive number or
        is given to an executor that cannot enforce it.

    Notes
    -----
    Subclasses set `name`, take their own options as keyword arguments, pass the rest to
    ``super().__init__`` and implement `dispatch`. Workers load plugins from entry points only;
    plugins registered in-process (``isolated_plugin_manager``) are not seen by worker
    processes. When third-party plugin autoloading is off in the launcher, it is turned off in
    the workers too (``DIFFIM_DISABLE_PLUGIN_AUTOLOAD=1`` in their environment).
    """

    #: Registry name of the executor (used in messages and `describe`).
    name: ClassVar[str] = "executor"

    #: Whether the executor enforces ``timeout`` (passes it to `execute_job`).
    supports_timeout: ClassVar[bool] = False

    def __init__(
        self,
        *,
        processes: int | None = None,
        worker_setup: WorkerSetup | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(key for key, value in options.items() if value is not None)
        if unknown:
            msg = (
                f"executor {self.name!r} does not accept option(s) {', '.join(map(repr, unknown))}; "
                f"remove them or pick an executor that takes them"
            )
            raise TypeError(msg)
        self.processes: int | None = _check_processes(self.name, processes)
        setup = WorkerSetup() if worker_setup is None else worker_setup
        if not isinstance(setup, WorkerSetup):
            msg = f"executor {self.name!r}: worker_setup must be a WorkerSetup, got {type(setup).__name__}"
            raise TypeError(msg)
        self.worker_setup: WorkerSetup = _with_plugin_policy(setup)
        self.timeout: float | None = _check_timeout(self.name, timeout, self.supports_timeout)
        self.closed = False
        self._stopping = False
        self._may_stop = False

    @property
    def stopping(self) -> bool:
        """Whether `map` asked to start no further job (``stop_when`` was true for a result)."""
        return self._stopping

    @property
    def may_stop(self) -> bool:
        """Whether the running `map` was given a ``stop_when`` (so `stopping` may become true)."""
        return self._may_stop

    def start(self, warm: Sequence[str] = (), *, jobs: int | None = None) -> None:
        """Start the workers now and import ``warm`` modules in them (default: do nothing).

        Lets worker start-up overlap the caller's own work (the launcher calls it before it
        resolves the pipeline). Executors whose workers start on demand may override it.

        Parameters
        ----------
        warm : sequence of `str`
            Modules for `warm_worker` (``"pkg.mod"``, ``"pkg.mod:function"`` or
            ``"pkg.mod:function:argument"``).
        jobs : `int`, optional
            Number of jobs expected, when known (no more workers than jobs are started).
        """

    def dispatch(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], emit: Callable[[JobResult], None]
    ) -> None:
        """Run every job and call ``emit`` once per job with its `JobResult` (override this).

        Run each job through `execute_job` (with ``self.worker_setup`` and ``self.timeout``).
        Before starting a job, check `stopping`: once it is true start no more (jobs already
        running are still reported); `map` reports the jobs never started as cancelled.

        Parameters
        ----------
        fn : callable
            The job function.
        jobs : `~collections.abc.Sequence`
            The jobs; job ``i`` must be reported with ``index=i``.
        emit : callable
            Report one result; call it from the thread that called `dispatch`.
        """
        raise NotImplementedError(f"executor {self.name!r} does not implement dispatch()")

    def map(
        self,
        fn: Callable[[Any], Any],
        jobs: Sequence[Any],
        *,
        on_result: Callable[[JobResult], None] | None = None,
        stop_when: Callable[[JobResult], bool] | None = None,
    ) -> list[JobResult]:
        """Run ``fn(job)`` for every job.

        Parameters
        ----------
        fn : callable
            Top-level function of an importable module (process and cluster workers import it
            by name).
        jobs : `~collections.abc.Sequence`
            Picklable jobs.
        on_result : callable, optional
            Called with each `JobResult` as it completes, in the calling thread (not for jobs
            that never started).
        stop_when : callable, optional
            Called after ``on_result`` with each result; once it returns true no further job is
            started (fail fast). Jobs already running finish and are reported.

        Returns
        -------
        results : `list` [`JobResult`]
            One per job, in job order. A job that raised has ``ok=False``; a job never started
            because of ``stop_when`` has ``ok=False, cancelled=True``.

        Raises
        ------
        RuntimeError
            If the executor is closed.
        """
        if self.closed:
            msg = f"executor {self.name!r} is closed; create a new one with get_executor({self.name!r})"
            raise RuntimeError(msg)
        jobs = list(jobs)
        results: list[JobResult | None] = [None] * len(jobs)
        self._stopping = False
        self._may_stop = stop_when is not None

        def emit(result: JobResult) -> None:
            results[result.index] = result
            if on_result is not None:
                on_result(result)
            if stop_when is not None and not self._stopping and stop_when(result):
                self._stopping = True

        if jobs:
            self.dispatch(fn, jobs, emit)
        missing = [index for index, result in enumerate(results) if result is None]
        if missing and self._stopping:
            for index in missing:
                results[index] = JobResult(
                    index=index, ok=False, error="not run: the run stopped after a failure (fail fast)", cancelled=True
                )
            missing = []
        if missing:
            msg = f"executor {self.name!r} returned no result for job(s) {missing[:10]}; this is a bug in the executor"
            raise RuntimeError(msg)
        return [result for result in results if result is not None]

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description (for ``run.json``).

        Returns
        -------
        info : `dict`
            ``executor`` name and ``processes`` (and ``timeout`` when set).
        """
        info: dict[str, Any] = {"executor": self.name, "processes": self.processes}
        if self.timeout is not None:
            info["timeout"] = self.timeout
        return info

    def close(self) -> None:
        """Release workers; the executor cannot be used afterwards. Safe to call twice."""
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} processes={self.processes}>"


def _with_plugin_policy(setup: WorkerSetup) -> WorkerSetup:
    """Make workers load the same kind of plugin set as this process (autoload on or off)."""
    from .plugins import DISABLE_AUTOLOAD_ENV, autoload_enabled

    if autoload_enabled() or DISABLE_AUTOLOAD_ENV in setup.env:
        return setup
    return dataclasses.replace(setup, env={**setup.env, DISABLE_AUTOLOAD_ENV: "1"})


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_registry: Registry | None = None
_registry_lock = threading.Lock()


def _populate(registry: Registry) -> None:
    from .plugins import get_plugin_manager

    get_plugin_manager().diffim_register_executors(registry)


def _executors() -> Registry:
    # Built on first use: the config package (pydantic) stays out of worker start-up.
    global _registry
    with _registry_lock:
        if _registry is None:
            from .config import Registry

            _registry = Registry(
                "executor",
                "Ways to run a list of jobs: serial, a process pool, a dask cluster, ...",
                populate=_populate,
            )
        return _registry


def __getattr__(name: str) -> Any:
    # ``executors`` is the registry (name -> Executor class), filled by the
    # ``diffim_register_executors`` hook on first read.
    if name == "executors":
        return _executors()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def get_executor(name: str = DEFAULT_EXECUTOR, /, **options: Any) -> Executor:
    """Create the executor registered as ``name``.

    Parameters
    ----------
    name : `str`, optional
        Registry name (``serial``, ``process``, ``dask`` or a plugin's).
    **options
        Passed to the executor class: ``processes``, ``worker_setup`` and its own options.

    Returns
    -------
    executor : `Executor`
        A new executor; close it (or use it as a context manager) when done.

    Raises
    ------
    ValueError
        If no executor is registered under ``name`` (the message lists the registered ones).
    TypeError
        If the registered object did not build an `Executor`, or an option is unknown.
    """
    registry = _executors()
    try:
        entry = registry[name]
    except KeyError:
        raise ValueError(registry.unknown_message(name)) from None
    executor = entry.target(**options)
    if not isinstance(executor, Executor):
        msg = (
            f"executor {name!r} ({entry.target!r}) built a {type(executor).__name__}, not an Executor; "
            "fix the plugin that registers it"
        )
        raise TypeError(msg)
    return executor

