"""Executors: run a list of independent jobs serially, on a process pool or on a cluster.

The model
---------
A *job* is any picklable object (the launcher uses a ``JobSpec``: task class path, config as a
plain dict, input paths, output directory). A *job function* is a top-level function of an
importable module, ``fn(job) -> value``. An `Executor` runs ``fn`` on every job and returns one
`~diffim.framework.worker.JobResult` per job, in job order::

    from diffim.framework.executors import WorkerSetup, get_executor, progress

    setup = WorkerSetup(debug_file="debug.py", log_levels=["diffim=VERBOSE"])
    with (
        get_executor("process", processes=2, worker_setup=setup) as executor,
        progress(len(jobs), desc="pairs") as bar,
    ):
        results = executor.map(run_one_pair, jobs, on_result=bar)
    failed = [r for r in results if not r.ok]

This module holds the executor interface and the registry. Their companions live in their own
modules and are re-exported here, so ``from diffim.framework.executors import ...`` gives every
name an executor user needs:

* :mod:`diffim.framework.worker`: the worker side, `~diffim.framework.worker.WorkerSetup`,
  `~diffim.framework.worker.JobResult`, `~diffim.framework.worker.execute_job`,
  `~diffim.framework.worker.warm_worker` and `~diffim.framework.worker.prepare_worker`;
* :mod:`diffim.framework.threads`: the thread limits, `~diffim.framework.threads.thread_budget`
  and `~diffim.framework.threads.pinned_threads`;
* :mod:`diffim.framework.timelimit`: `~diffim.framework.timelimit.JobTimeout`;
* :mod:`diffim.framework.progress`: `progress` and `Progress`.

Rules every executor keeps (the built-ins are tested against them):

* An exception raised by ``fn`` becomes a failed `~diffim.framework.worker.JobResult`
  (``ok=False``, a one-line ``error``, the full ``traceback``); the other jobs go on. Only
  `KeyboardInterrupt` aborts.
* Results are identical whichever executor runs them: ``fn`` gets the same job object and its
  return value comes back unchanged (through pickle for remote workers).
* ``on_result`` is called in the calling thread, once per job, in completion order.
* Worker processes are prepared once each with the `~diffim.framework.worker.WorkerSetup`
  (BLAS threads pinned, log levels, debug file; see :mod:`diffim.framework.worker`). The
  launching process itself is not re-prepared: the ``serial`` executor runs jobs there as it
  is, except that it pins BLAS threads too while it runs them
  (`~diffim.framework.threads.pinned_threads`), so that serial and parallel results are
  bit-identical.
* Fail fast: ``map(..., stop_when=...)`` starts no further job once ``stop_when(result)`` is true
  for a result; jobs never started come back with ``cancelled=True``. Dispatchers check
  `Executor.stopping` before starting each job.
* Timeouts: executors with ``supports_timeout`` take ``timeout=SECONDS`` per job and pass it to
  `~diffim.framework.worker.execute_job`, which enforces it where the job runs (see
  :mod:`diffim.framework.timelimit`); the job comes back failed with ``timed_out=True``. The
  ``process`` executor also kills a worker that still has not answered ``kill_grace`` seconds
  later.
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
Subclass `Executor`, implement `Executor.dispatch` (run each job through
`~diffim.framework.worker.execute_job` on the worker side, so setup and error capture behave
like the built-ins) and register the class from the ``diffim_register_executors`` hook::

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
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from .progress import Progress, progress
from .threads import (
    BLAS_THREAD_ENV_VARS,
    THREAD_BUDGET_ENV,
    pinned_threads,
    set_thread_budget_provider,
    thread_budget,
)
from .timelimit import JobTimeout
from .worker import JobResult, WorkerSetup, execute_job, prepare_worker, warm_worker

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from .config import Registry

    #: The executor registry (name -> Executor class); built on first access, see `__getattr__`.
    executors: Registry

# Re-exported names (defined in .progress, .threads, .timelimit and .worker) stay in __all__:
# ``from diffim.framework.executors import *`` and the documented imports keep working.
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


class ExecutorError(RuntimeError):
    """An executor could not be created or could not reach its workers.

    Failures of individual jobs are never raised: they are failed
    `~diffim.framework.worker.JobResult` objects.
    """


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
    """Base class of executors: runs ``fn(job)`` for every job, collecting results.

    Each job's outcome is a `~diffim.framework.worker.JobResult`.

    Parameters
    ----------
    processes : `int` or `None`, optional
        Number of parallel workers (``-j``); `None` lets the executor choose.
    worker_setup : `~diffim.framework.worker.WorkerSetup` or `None`, optional
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

    #: Whether the executor enforces ``timeout`` (passes it to `~diffim.framework.worker.execute_job`).
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
            Modules for `~diffim.framework.worker.warm_worker` (``"pkg.mod"``,
            ``"pkg.mod:function"`` or ``"pkg.mod:function:argument"``).
        jobs : `int`, optional
            Number of jobs expected, when known (no more workers than jobs are started).
        """

    def dispatch(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], emit: Callable[[JobResult], None]
    ) -> None:
        """Run every job and call ``emit`` once per job with its `JobResult` (override this).

        Run each job through `~diffim.framework.worker.execute_job` (with ``self.worker_setup``
        and ``self.timeout``), which returns the `~diffim.framework.worker.JobResult` to emit.
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
            Called with each `~diffim.framework.worker.JobResult` as it completes, in the
            calling thread (not for jobs that never started).
        stop_when : callable, optional
            Called after ``on_result`` with each result; once it returns true no further job is
            started (fail fast). Jobs already running finish and are reported.

        Returns
        -------
        results : `list` [`~diffim.framework.worker.JobResult`]
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
