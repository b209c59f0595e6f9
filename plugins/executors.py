"""The built-in executors: ``serial``, ``process`` and ``dask``.

Registered by :mod:`diffim.plugins.executor_hooks`; obtain them with
``diffim.framework.executors.get_executor(name, ...)``. All three follow the rules of
:mod:`diffim.framework.executors` (failed jobs become failed results, results in job order,
identical values whichever executor runs them).

``serial`` (default)
    Runs the jobs one after another in the launching process, which the launcher has already set
    up (debug file, log levels), so the `~diffim.framework.worker.WorkerSetup` is not
    re-applied, except its BLAS thread count, which is pinned while the jobs run
    (`~diffim.framework.threads.pinned_threads`; results then match the other executors bit
    for bit). ``processes`` may only be `None` or 1. It cannot enforce a ``timeout`` (a job
    runs in the caller's own thread): asking for one is an error that names the executors that
    can.

``process`` (``-j N``)
    A `concurrent.futures.ProcessPoolExecutor` with the *spawn* start method (fork is unsafe with
    threads and BLAS; LSST's pipetask dropped it too). ``processes`` defaults to the number of
    usable cores. Workers start on demand (at most one per job), are reused across `map` calls
    until `close`, and start with the set-up's environment (BLAS threads pinned to 1 before numpy
    is imported, even when the launching script imported it already); the set-up's initializer
    then applies log levels and re-loads the debug file. At most ``processes`` jobs are handed to
    the pool at a time, so when a worker dies (a crash, ``os._exit``, the out-of-memory killer)
    only the jobs running at that moment fail ("BrokenProcessPool: ..."); a fresh pool runs the
    rest. The job function must be picklable by reference (a top-level function of an importable
    module); workers see the launcher's `sys.path`. `ProcessExecutor.start` starts the workers
    before the first `map` and warms their imports. With ``timeout``, a job that overruns gets
    `~diffim.framework.timelimit.JobTimeout` raised in it (SIGALRM); if it has still not answered
    ``kill_grace`` seconds later (stuck in C code), its worker is killed, the job is reported
    timed out and the jobs that were running beside it are run again on a fresh pool. An
    interrupted job may leave its worker's state half-updated (a cache, a half-done import), so
    after a timeout no new job goes to that pool: once the jobs running there have answered,
    it is replaced by a fresh one.

``dask`` (``pip install "diffim[dask]"``)
    Sends the jobs to a ``distributed`` cluster. Options: ``scheduler`` (address such as
    ``tcp://host:8786``; none starts a ``distributed.LocalCluster`` of ``processes`` single-threaded
    worker processes, owned and closed by the executor), ``cluster_options`` (extra
    ``LocalCluster`` keyword arguments, e.g. ``{"processes": False}`` for threads in this process)
    and ``connect_timeout`` (seconds, default 10). Worker set-up runs on each worker process at
    its first job (dask workers are not started by us); remote workers need diffim, the job
    function's module and the debug file at the same path. With a scheduler, ``processes`` is
    ignored: the cluster decides. A ``timeout`` is enforced inside the worker thread running
    the job (an asynchronous `~diffim.framework.timelimit.JobTimeout`, effective when the job
    next runs Python code); dask cannot kill a task stuck in C code. The worker of a job stopped
    that way is restarted (``Client.restart_workers``; it needs a nanny, as local clusters and
    ``dask worker`` have), since the interrupted job may have left its state half-updated. When
    ``map`` may stop early
    (``stop_when``), at most as many jobs as the cluster has threads are submitted at a time, so
    that no queued job is left half-started.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import logging
import multiprocessing.context
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from diffim.framework.executors import Executor, ExecutorError
from diffim.framework.threads import (
    environ,
    pinned_threads,
    set_thread_budget_provider,
    usable_cores,
)
from diffim.framework.worker import JobResult, WorkerSetup, execute_job, warm_worker

if TYPE_CHECKING:  # pragma: no cover
    import concurrent.futures

__all__ = ["DaskExecutor", "ProcessExecutor", "SerialExecutor"]

_log = logging.getLogger("diffim.run")


# ------------------------------------------------------------------------------------ serial


class SerialExecutor(Executor):
    """Run jobs one after another in this process (the default).

    Parameters
    ----------
    processes : `int` or `None`, optional
        Only `None` or 1.
    worker_setup : `WorkerSetup`, optional
        Accepted for a uniform interface; not applied (this process is the launcher).
    """

    name = "serial"

    def __init__(
        self, *, processes: int | None = None, worker_setup: WorkerSetup | None = None, **options: Any
    ) -> None:
        super().__init__(processes=processes, worker_setup=worker_setup, **options)
        if self.processes not in (None, 1):
            msg = f"the serial executor runs one job at a time, got processes={self.processes!r}; use --executor process for -j N"
            raise ValueError(msg)
        self.processes = 1

    def dispatch(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], emit: Callable[[JobResult], None]
    ) -> None:
        """Run the jobs in order, BLAS threads pinned; see `Executor.dispatch`."""
        with pinned_threads(self.worker_setup.blas_threads):
            for index, job in enumerate(jobs):
                if self.stopping:
                    break
                emit(execute_job(fn, index, job))


# ----------------------------------------------------------------------------------- process

_environ_lock = threading.Lock()


@contextlib.contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """Temporarily set ``extra`` in this process's environment (inherited by started children)."""
    with _environ_lock, environ(extra):
        yield


class _EnvSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawn process started with extra environment variables.

    The variables must be in place before the child's interpreter starts: the child imports the
    launching script's ``__main__`` (and so maybe numpy, which fixes the BLAS thread count)
    before any initializer runs.
    """

    child_env: Mapping[str, str] = {}

    def start(self) -> None:
        with _environ(self.child_env):
            super().start()


class _EnvSpawnContext(multiprocessing.context.SpawnContext):
    """Spawn context whose processes start with ``env`` (what ProcessPoolExecutor uses)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__()
        self._child_env = dict(env)

    def Process(self, *args: Any, **kwargs: Any) -> _EnvSpawnProcess:  # noqa: N802 - multiprocessing's name
        process = _EnvSpawnProcess(*args, **kwargs)
        process.child_env = self._child_env
        return process


# Worker side of the process executor: when each in-flight slot's job started (time.monotonic,
# which is system-wide), shared with the launcher so it can kill a job deaf to its time limit.
_slot_starts: Any = None


def _quick_exit() -> None:
    """Last exit handler of a worker: flush logs and streams, then skip interpreter teardown.

    By then the pool's worker loop has ended and multiprocessing has flushed the result queue;
    what is left is tearing down every module a job imported (astropy, scipy: ~0.2 s and more),
    which the launcher would wait for.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _init_process_worker(worker_setup: WorkerSetup, warm: Sequence[str], starts: Any) -> None:
    """Pool initializer: set the worker up (`prepare_worker`), import ``warm``, keep ``starts``."""
    global _slot_starts
    _slot_starts = starts
    atexit.register(_quick_exit)  # registered first, so it runs after the handlers of later imports
    set_thread_budget_provider(_share_of_cores)
    warm_worker(warm, worker_setup)


def _share_of_cores() -> int:
    """The cores divided among the jobs running now in this pool (its slots with a start time)."""
    if _slot_starts is None:
        return 0
    running = sum(1 for started in _slot_starts if started > 0.0)
    return max(1, usable_cores() // max(1, running))


def _execute_in_slot(
    slot: int,
    fn: Callable[[Any], Any],
    index: int,
    job: Any,
    worker_setup: WorkerSetup,
    launcher_pid: int,
    timeout: float | None,
) -> JobResult:
    """`execute_job`, recording in the shared array when the job started (0: not running)."""
    if _slot_starts is not None:
        _slot_starts[slot] = time.monotonic()
    try:
        return execute_job(fn, index, job, worker_setup, launcher_pid, timeout)
    finally:
        if _slot_starts is not None:
            _slot_starts[slot] = 0.0


def _dask_execute(
    fn: Callable[[Any], Any],
    index: int,
    job: Any,
    worker_setup: WorkerSetup,
    launcher_pid: int,
    timeout: float | None,
) -> tuple[JobResult, str | None]:
    """`execute_job` on a dask worker; also returns the worker's address (to restart it)."""
    result = execute_job(fn, index, job, worker_setup, launcher_pid, timeout)
    address = None
    if result.timed_out:
        with contextlib.suppress(Exception):
            from distributed import get_worker

            address = get_worker().address
    return result, address


def _worker_ready() -> int:
    """A no-op call that makes the pool start a worker (`ProcessExecutor.start`)."""
    return os.getpid()


_BROKEN_POOL_ERROR = (
    "BrokenProcessPool: a worker process died while this job was running "
    "(a crash, os._exit() or the out-of-memory killer); the other jobs go on"
)


class ProcessExecutor(Executor):
    """Run jobs on a pool of spawned worker processes (``-j N``).

    Parameters
    ----------
    processes : `int` or `None`, optional
        Worker processes; `None`: the number of usable cores.
    worker_setup : `WorkerSetup`, optional
        Applied in every worker; default pins BLAS threads to 1.
    timeout : `float`, optional
        Seconds each job may run (measured in the worker).
    kill_grace : `float`, optional
        Seconds after ``timeout`` (counted from the job's start in its worker) after which a job
        that has not answered has its worker killed (default 30).
    """

    name = "process"
    supports_timeout = True

    def __init__(
        self,
        *,
        processes: int | None = None,
        worker_setup: WorkerSetup | None = None,
        timeout: float | None = None,
        kill_grace: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(processes=processes, worker_setup=worker_setup, timeout=timeout, **options)
        if self.processes is None:
            self.processes = usable_cores()
        if isinstance(kill_grace, bool) or not isinstance(kill_grace, int | float) or kill_grace < 0:
            msg = f"executor 'process': kill_grace must be a number of seconds >= 0, got {kill_grace!r}"
            raise ValueError(msg)
        self.kill_grace = float(kill_grace)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._pid = os.getpid()
        self._warm: tuple[str, ...] = ()  # modules each new worker imports (start())
        self._starts: Any = None  # shared array: start time of the job in each slot
        self._warm_only = False  # the pool has only run warm-ups (start()), no job yet

    def start(self, warm: Sequence[str] = (), *, jobs: int | None = None) -> None:
        """Start the worker processes now and import ``warm`` in each (see `Executor.start`).

        Parameters
        ----------
        warm : sequence of `str`
            Modules for `~diffim.framework.worker.warm_worker`.
        jobs : `int`, optional
            Number of jobs to come: no more than that many workers are started.
        """
        if self.closed or self._pool is not None:
            return
        assert self.processes is not None  # resolved in __init__
        workers = self.processes if jobs is None else max(1, min(self.processes, jobs))
        self._warm = tuple(warm)  # imported by the pool initializer: once in every worker, first
        pool = self._ensure_pool()
        self._warm_only = True
        # one call each: the pool starts a worker per call while none is idle
        for _ in range(workers):
            pool.submit(_worker_ready)

    def _ensure_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            import concurrent.futures

            assert self.processes is not None  # resolved in __init__
            # no static thread share: each worker's budget is the cores among the jobs running
            # now (_share_of_cores, installed by _init_process_worker)
            context = _EnvSpawnContext(self.worker_setup.environ())
            self._starts = context.Array("d", self.processes, lock=False)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=context,
                initializer=_init_process_worker,
                initargs=(self.worker_setup, self._warm, self._starts),
            )
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _kill_workers(self) -> None:
        """Kill the pool's worker processes (the pool then breaks; `_drop_pool` cleans up)."""
        processes = getattr(self._pool, "_processes", None) or {}
        for process in list(processes.values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                process.kill()

    def _check_function(self, fn: Callable[[Any], Any]) -> None:
        # Workers import the function by name; a lambda or local function would fail there
        # for every job, with a far less clear error.
        try:
            pickle.dumps(fn)
        except Exception as exc:
            name = getattr(fn, "__qualname__", repr(fn))
            msg = (
                f"job function {name!r} cannot be sent to worker processes "
                f"({type(exc).__name__}: {' '.join(str(exc).split())}); "
                "define it at the top level of an importable module"
            )
            raise TypeError(msg) from exc

    def dispatch(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], emit: Callable[[JobResult], None]
    ) -> None:
        """Run the jobs on the pool; see `Executor.dispatch`.

        Raises
        ------
        TypeError
            If ``fn`` cannot be pickled by reference.
        """
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        self._check_function(fn)
        assert self.processes is not None  # resolved in __init__
        self._warm_only = False
        pending = collections.deque(enumerate(jobs))
        # future -> (job index, job, slot in the shared array of start times)
        in_flight: dict[concurrent.futures.Future[JobResult], tuple[int, Any, int]] = {}
        tainted = False  # a job was interrupted by its time limit: its worker's state is suspect
        try:
            while (pending and not self.stopping) or in_flight:
                if tainted and not in_flight:  # retire the pool, whose jobs have all answered
                    self._drop_pool()
                    tainted = False
                pool = self._ensure_pool()
                # A bounded window: when a worker dies, only the jobs running then are lost.
                while pending and not self.stopping and not tainted and len(in_flight) < self.processes:
                    index, job = pending[0]
                    slot = min(set(range(self.processes)) - {s for _, _, s in in_flight.values()})
                    try:
                        future = pool.submit(
                            _execute_in_slot, slot, fn, index, job, self.worker_setup, self._pid, self.timeout
                        )
                    except BrokenProcessPool:
                        break  # the pool broke under us: collect the in-flight jobs, then renew it
                    pending.popleft()
                    in_flight[future] = (index, job, slot)
                if not in_flight:
                    self._drop_pool()
                    continue
                done, _ = wait(in_flight, timeout=self._time_to_kill(in_flight), return_when=FIRST_COMPLETED)
                if not done:
                    self._kill_overdue(in_flight, pending, emit)
                    continue
                broken = False
                for future in done:
                    result, lost = self._collect(future, in_flight.pop(future)[0])
                    broken = broken or lost
                    tainted = tainted or result.timed_out
                    emit(result)
                if broken:  # one death fails every future still in the pool
                    for future, (index, _, _) in list(in_flight.items()):
                        result, _ = self._collect(future, index)
                        emit(result)
                    in_flight.clear()
                    self._drop_pool()
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise

    def _started(self, slot: int) -> float:
        """When the job in ``slot`` started in its worker (`time.monotonic`; 0: not yet)."""
        return float(self._starts[slot]) if self._starts is not None else 0.0

    def _time_to_kill(self, in_flight: Mapping[Any, tuple[int, Any, int]]) -> float | None:
        """How long to wait for results before checking for a job deaf to its time limit."""
        if self.timeout is None:
            return None
        limit = self.timeout + self.kill_grace
        # a job's start is only seen by polling the shared array: look again at least every 0.25 s
        remaining = [0.25]
        for _, _, slot in in_flight.values():
            started = self._started(slot)
            if started:
                remaining.append(started + limit - time.monotonic())
        return max(0.02, min(remaining))

    def _kill_overdue(
        self,
        in_flight: dict[concurrent.futures.Future[JobResult], tuple[int, Any, int]],
        pending: collections.deque[tuple[int, Any]],
        emit: Callable[[JobResult], None],
    ) -> None:
        """Kill the workers of a job stuck past its time limit; requeue the jobs running beside it."""
        assert self.timeout is not None
        limit = self.timeout + self.kill_grace
        now = time.monotonic()
        started = {future: self._started(slot) for future, (_, _, slot) in in_flight.items()}
        overdue = {future for future, start in started.items() if start and now - start >= limit}
        if not overdue:
            return
        _log.warning("killing the worker processes: %d job(s) did not stop after their --timeout", len(overdue))
        self._kill_workers()
        requeue = []
        for future, (index, job, _) in sorted(in_flight.items(), key=lambda item: item[1][0]):
            if future in overdue:
                error = (
                    f"JobTimeout: the job ran longer than its time limit of {self.timeout:g} s (--timeout) and did "
                    f"not stop within {self.kill_grace:g} s more; its worker process was killed"
                )
                emit(JobResult(index=index, ok=False, error=error, seconds=now - started[future], timed_out=True))
            else:  # killed with the pool through no fault of its own: run it again
                requeue.append((index, job))
        pending.extendleft(reversed(requeue))
        in_flight.clear()
        self._drop_pool()

    @staticmethod
    def _collect(future: concurrent.futures.Future[JobResult], index: int) -> tuple[JobResult, bool]:
        """Return the job's result (or a failed one) and whether the pool broke."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result(), False
        except BrokenProcessPool as exc:
            return JobResult.failure(index, exc, error=_BROKEN_POOL_ERROR), True
        except Exception as exc:  # e.g. the job or its result could not be pickled
            return JobResult.failure(index, exc), False

    def describe(self) -> dict[str, Any]:
        """See `Executor.describe`; adds the start method."""
        return {**super().describe(), "start_method": "spawn"}

    def close(self) -> None:
        """Shut the worker processes down (waiting for them). Safe to call twice.

        Workers that have only been warming up (`start` without a `map`, e.g. the launcher
        stopped on an error) are killed rather than waited for.
        """
        if self._warm_only:
            self._kill_workers()
            self._warm_only = False
        self._drop_pool()
        super().close()


# -------------------------------------------------------------------------------------- dask


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        msg = (
            f"the dask executor needs the optional dependency dask[distributed] "
            f"({type(exc).__name__}: {exc}); install it with: pip install \"diffim[dask]\""
        )
        raise ExecutorError(msg) from exc
    return distributed


class DaskExecutor(Executor):
    """Run jobs on a dask ``distributed`` cluster (optional extra ``diffim[dask]``).

    Parameters
    ----------
    processes : `int` or `None`, optional
        Workers of the local cluster (`None`: dask's choice); ignored with ``scheduler``.
    worker_setup : `WorkerSetup`, optional
        Applied on each worker process at its first job.
    scheduler : `str`, optional
        Address of a running scheduler (``--scheduler``); none starts a local cluster.
    cluster_options : `dict`, optional
        Extra keyword arguments of ``distributed.LocalCluster`` (override the defaults:
        single-threaded worker processes, no dashboard, quiet logs).
    connect_timeout : `float`, optional
        Seconds to wait for the scheduler.
    timeout : `float`, optional
        Seconds each job may run (enforced in the worker thread).

    Raises
    ------
    ExecutorError
        If ``distributed`` is not installed (the message says how to install it).
    """

    name = "dask"
    supports_timeout = True

    def __init__(
        self,
        *,
        processes: int | None = None,
        worker_setup: WorkerSetup | None = None,
        scheduler: str | None = None,
        cluster_options: Mapping[str, Any] | None = None,
        connect_timeout: float = 10.0,
        timeout: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(processes=processes, worker_setup=worker_setup, timeout=timeout, **options)
        first_import = "distributed" not in sys.modules
        level = logging.getLogger("distributed").level
        _import_distributed()  # fail now, before anything runs
        if first_import:
            # Importing distributed sets its loggers to INFO, and when the application already
            # logs to the console (the launcher does) its start-up chatter goes there: keep it
            # to warnings unless the level was chosen before (--log-level distributed=INFO).
            logging.getLogger("distributed").setLevel(level or logging.WARNING)
        self.scheduler = scheduler
        self.cluster_options = dict(cluster_options or {})
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._cluster: Any = None
        self._pid = os.getpid()

    def _ensure_client(self) -> Any:
        if self._client is not None:
            return self._client
        distributed = _import_distributed()
        if self.scheduler:
            try:
                self._client = distributed.Client(
                    self.scheduler, timeout=self.connect_timeout, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                msg = (
                    f"cannot connect to the dask scheduler {self.scheduler!r} "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())}); "
                    "check the address, or omit --scheduler to use a local cluster"
                )
                raise ExecutorError(msg) from exc
            return self._client
        options: dict[str, Any] = {
            "n_workers": self.processes,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "silence_logs": logging.ERROR,
        }
        options.update(self.cluster_options)
        if self.worker_setup.threads is None and options["processes"] and options.get("n_workers"):
            # each local worker's share of the cores for a job's own FFT workers and thread pools
            self.worker_setup = dataclasses.replace(
                self.worker_setup, threads=max(1, usable_cores() // int(options["n_workers"]))
            )
        if options["processes"] and "env" not in options:
            options["env"] = self.worker_setup.environ()  # set before the worker processes start
        self._cluster = distributed.LocalCluster(**options)
        try:
            self._client = distributed.Client(self._cluster, set_as_default=False)
        except BaseException:
            self._cluster.close()
            self._cluster = None
            raise
        return self._client

    def dispatch(
        self, fn: Callable[[Any], Any], jobs: Sequence[Any], emit: Callable[[JobResult], None]
    ) -> None:
        """Submit every job to the cluster; see `Executor.dispatch`."""
        distributed = _import_distributed()
        client = self._ensure_client()
        pending = collections.deque(enumerate(jobs))
        # Everything at once (the scheduler balances), unless map may stop early: then no more
        # than the cluster's threads, so that stopping leaves no queued job behind.
        window = max(1, sum(client.nthreads().values())) if self.may_stop else len(jobs)
        futures: dict[Any, int] = {}

        def submit() -> list[Any]:
            new = []
            while pending and not self.stopping and len(futures) < window:
                index, job = pending.popleft()
                future = client.submit(
                    _dask_execute, fn, index, job, self.worker_setup, self._pid, self.timeout, pure=False
                )
                futures[future] = index
                new.append(future)
            return new

        try:
            # distributed's as_completed: dask futures are not concurrent.futures ones.
            completed = distributed.as_completed(submit(), loop=client.loop)
            for future in completed:
                index = futures.pop(future)
                address = None
                try:
                    result, address = future.result()
                except Exception as exc:  # a lost worker, or (de)serialisation failures
                    result = JobResult.failure(index, exc)
                future.release()
                if address is not None:
                    self._restart_worker(client, address)
                emit(result)
                completed.update(submit())
        except BaseException:
            client.cancel(list(futures))
            raise

    @staticmethod
    def _restart_worker(client: Any, address: str) -> None:
        """Restart the worker whose job was stopped by its time limit (its state is suspect)."""
        try:
            client.restart_workers([address])
        except Exception as exc:  # noqa: BLE001 - e.g. a worker without a nanny: go on, but say so
            _log.warning(
                "could not restart dask worker %s after a job timed out on it (%s: %s); "
                "its later jobs may misbehave", address, type(exc).__name__, " ".join(str(exc).split()),
            )

    def describe(self) -> dict[str, Any]:
        """See `Executor.describe`; adds the scheduler address (`None` for a local cluster)."""
        return {**super().describe(), "scheduler": self.scheduler}

    def close(self) -> None:
        """Close the client and the local cluster the executor started. Safe to call twice."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        super().close()
