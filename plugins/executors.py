"""The built-in executors: ``serial``, ``process`` and ``dask``.

Registered by :mod:`diffim.plugins.executor_hooks`; obtain them with
``diffim.framework.executors.get_executor(name, ...)``. All three follow the rules of
:mod:`diffim.framework.executors` (failed jobs become failed results, results in job order,
identical values whichever executor runs them).

``serial`` (default)
    Runs the jobs one after another in the launching process, which the launcher has already set
    up (debug file, log levels), so the `~diffim.framework.executors.WorkerSetup` is not
    re-applied. ``processes`` may only be `None` or 1.

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
    module); workers see the launcher's `sys.path`.

``dask`` (``pip install "diffim[dask]"``)
    Sends the jobs to a ``distributed`` cluster. Options: ``scheduler`` (address such as
    ``tcp://host:8786``; none starts a ``distributed.LocalCluster`` of ``processes`` single-threaded
    worker processes, owned and closed by the executor), ``cluster_options`` (extra
    ``LocalCluster`` keyword arguments, e.g. ``{"processes": False}`` for threads in this process)
    and ``connect_timeout`` (seconds, default 10). Worker set-up runs on each worker process at
    its first job (dask workers are not started by us); remote workers need diffim, the job
    function's module and the debug file at the same path. With a scheduler, ``processes`` is
    ignored: the cluster decides.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing.context
import os
import pickle
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from diffim.framework.executors import (
    Executor,
    ExecutorError,
    JobResult,
    WorkerSetup,
    execute_job,
    prepare_worker,
)

if TYPE_CHECKING:  # pragma: no cover
    import concurrent.futures

__all__ = ["DaskExecutor", "ProcessExecutor", "SerialExecutor"]

_log = logging.getLogger("diffim.run")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
        """Run the jobs in order; see `Executor.dispatch`."""
        for index, job in enumerate(jobs):
            emit(execute_job(fn, index, job))


# ----------------------------------------------------------------------------------- process

_environ_lock = threading.Lock()


@contextlib.contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """Temporarily set ``extra`` in this process's environment (inherited by started children)."""
    with _environ_lock:
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
    """

    name = "process"

    def __init__(
        self, *, processes: int | None = None, worker_setup: WorkerSetup | None = None, **options: Any
    ) -> None:
        super().__init__(processes=processes, worker_setup=worker_setup, **options)
        if self.processes is None:
            self.processes = _usable_cores()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._pid = os.getpid()

    def _ensure_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            import concurrent.futures

            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=_EnvSpawnContext(self.worker_setup.environ()),
                initializer=prepare_worker,
                initargs=(self.worker_setup,),
            )
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

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
        pending = collections.deque(enumerate(jobs))
        in_flight: dict[concurrent.futures.Future[JobResult], int] = {}
        try:
            while pending or in_flight:
                pool = self._ensure_pool()
                # A bounded window: when a worker dies, only the jobs running then are lost.
                while pending and len(in_flight) < self.processes:
                    index, job = pending[0]
                    try:
                        future = pool.submit(execute_job, fn, index, job, self.worker_setup, self._pid)
                    except BrokenProcessPool:
                        break  # the pool broke under us: collect the in-flight jobs, then renew it
                    pending.popleft()
                    in_flight[future] = index
                if not in_flight:
                    self._drop_pool()
                    continue
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    result, lost = self._collect(future, in_flight.pop(future))
                    broken = broken or lost
                    emit(result)
                if broken:  # one death fails every future still in the pool
                    for future, index in list(in_flight.items()):
                        result, _ = self._collect(future, index)
                        emit(result)
                    in_flight.clear()
                    self._drop_pool()
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise

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
        """Shut the worker processes down (waiting for them). Safe to call twice."""
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

    Raises
    ------
    ExecutorError
        If ``distributed`` is not installed (the message says how to install it).
    """

    name = "dask"

    def __init__(
        self,
        *,
        processes: int | None = None,
        worker_setup: WorkerSetup | None = None,
        scheduler: str | None = None,
        cluster_options: Mapping[str, Any] | None = None,
        connect_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        super().__init__(processes=processes, worker_setup=worker_setup, **options)
        _import_distributed()  # fail now, before anything runs
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
        futures = {
            client.submit(execute_job, fn, index, job, self.worker_setup, self._pid, pure=False): index
            for index, job in enumerate(jobs)
        }
        try:
            # distributed's as_completed: dask futures are not concurrent.futures ones.
            for future in distributed.as_completed(list(futures), loop=client.loop):
                index = futures.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # a lost worker, or (de)serialisation failures
                    result = JobResult.failure(index, exc)
                future.release()
                emit(result)
        except BaseException:
            client.cancel(list(futures))
            raise

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
