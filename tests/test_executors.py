"""Executors (serial, process, dask), worker set-up, the executor registry and progress reporting."""

from __future__ import annotations

import logging
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from diffim.framework import executors as ex
from diffim.framework import worker as worker_module
from diffim.framework.debug import debug_info, reset_debug
from diffim.framework.executors import (
    ExecutorError,
    JobResult,
    WorkerSetup,
    execute_job,
    get_executor,
    progress,
)
from diffim.framework.plugins import hookimpl, isolated_plugin_manager
from diffim.plugins import executor_hooks
from diffim.plugins.executors import DaskExecutor, ProcessExecutor, SerialExecutor

# Workers import job functions by module name; spawned workers receive this sys.path.
sys.path.insert(0, str(Path(__file__).parent))
import _executor_jobs as jobs  # noqa: E402

SEEDS = [3, 1, -1, 4, 1, 5]  # seed -1 raises; seed 1 twice (no de-duplication of equal jobs)
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@pytest.fixture
def registry() -> Iterator[Any]:
    """The executor registry filled by the built-in hook module only (entry points not needed)."""
    ex.executors.refresh()
    with isolated_plugin_manager(builtins=False) as pm:
        pm.register(executor_hooks, "executors-under-test")
        yield ex.executors
    ex.executors.refresh()


@pytest.fixture(scope="module")
def debug_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("debug") / "debug.py"
    path.write_text(
        "from diffim.framework import debug\n"
        f"debug.getInfo({jobs.DEBUG_NAME!r}).flag = 'set by debug.py'\n"
    )
    return str(path)


@pytest.fixture(scope="module")
def pool(debug_file: str) -> Iterator[ProcessExecutor]:
    """One 2-worker spawn pool for the module (workers cost ~0.5 s each to start)."""
    setup = WorkerSetup(
        debug_file=debug_file,
        log_levels=[f"{jobs.LOGGER_NAME}=DEBUG"],
        env={"DIFFIM_TEST_EXTRA": "yes"},
    )
    with pytest.MonkeyPatch.context() as mp:
        for var in BLAS_VARS:
            mp.setenv(var, "3")  # the workers must not inherit this
        with ProcessExecutor(processes=2, worker_setup=setup) as executor:
            yield executor


def _outcomes(results: list[JobResult]) -> list[tuple[int, bool, Any, str | None]]:
    return [(r.index, r.ok, r.value, r.error) for r in results]


# ------------------------------------------------------------------------------- registry


def test_builtins_are_registered_and_built_by_name(registry: Any) -> None:
    assert {"serial", "process", "dask"} <= set(registry)
    with get_executor() as serial:
        assert isinstance(serial, SerialExecutor) and serial.describe() == {"executor": "serial", "processes": 1}
    process = get_executor("process", processes=3, scheduler=None)  # None-valued options are ignored
    assert isinstance(process, ProcessExecutor) and process.processes == 3
    process.close()  # no worker was started
    with pytest.raises(ValueError, match=r"no executor called 'proces'; did you mean 'process'\?"):
        get_executor("proces")


def test_bad_options_are_one_line_errors(registry: Any) -> None:
    with pytest.raises(TypeError, match=r"executor 'serial' does not accept option\(s\) 'scheduler'"):
        get_executor("serial", scheduler="tcp://x:8786")
    with pytest.raises(ValueError, match=r"processes must be a positive integer, got 0"):
        get_executor("process", processes=0)
    with pytest.raises(ValueError, match=r"serial executor runs one job at a time, got processes=4; use --executor process"):
        get_executor("serial", processes=4)


class _ReplacingPlugin:
    class Mine(SerialExecutor):
        name = "process"

    @hookimpl
    def diffim_register_executors(self, registry: Any) -> None:
        registry.register("process", self.Mine, replace=True)


def test_a_plugin_can_replace_a_builtin(registry: Any) -> None:
    from diffim.framework.plugins import get_plugin_manager

    ex.executors.refresh()
    get_plugin_manager().register(_ReplacingPlugin())
    assert isinstance(get_executor("process"), _ReplacingPlugin.Mine)


def test_dask_missing_says_how_to_install(registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ExecutorError, match=r'needs the optional dependency dask\[distributed\] .*pip install "diffim\[dask\]"'):
        get_executor("dask")


# ------------------------------------------------------------------------------ execution


def test_serial_keeps_order_and_a_failing_job_fails_alone() -> None:
    seen: list[int] = []
    with SerialExecutor() as executor:
        results = executor.map(jobs.compute, SEEDS, on_result=lambda r: seen.append(r.index))
    assert seen == list(range(len(SEEDS)))
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    failed = results[2]
    assert failed.error == "ValueError: bad seed -1 second line of the message"
    assert failed.value is None and "Traceback" in (failed.traceback or "") and "bad seed -1" in (failed.traceback or "")
    assert results[1].value == results[4].value == jobs.compute(1)
    assert results[0].worker.endswith(f":{os.getpid()}")
    with pytest.raises(RuntimeError, match="executor 'serial' is closed; create a new one"):
        executor.map(jobs.compute, [1])


def test_results_are_identical_whichever_executor_runs_them(pool: ProcessExecutor) -> None:
    with SerialExecutor() as serial:
        expected = _outcomes(serial.map(jobs.compute, SEEDS))
    seen: list[int] = []
    assert _outcomes(pool.map(jobs.compute, SEEDS, on_result=lambda r: seen.append(r.index))) == expected
    assert sorted(seen) == list(range(len(SEEDS)))
    assert expected[2][3] == "ValueError: bad seed -1 second line of the message"


def test_dask_local_cluster_gives_the_same_results_on_prepared_workers(debug_file: str) -> None:
    with SerialExecutor() as serial:
        expected = _outcomes(serial.map(jobs.compute, SEEDS))
    setup = WorkerSetup(debug_file=debug_file, log_levels=[f"{jobs.LOGGER_NAME}=DEBUG"])
    # One single-threaded worker process: a real LocalCluster, as small as it gets.
    with DaskExecutor(processes=1, worker_setup=setup, timeout=2.0) as dask:
        seen: list[int] = []
        assert _outcomes(dask.map(jobs.compute, SEEDS, on_result=lambda r: seen.append(r.index))) == expected
        assert sorted(seen) == list(range(len(SEEDS)))
        (report,) = [r.value for r in dask.map(jobs.probe, [0])]
        assert dask.describe() == {"executor": "dask", "processes": 1, "scheduler": None, "timeout": 2.0}
        assert dask.worker_setup.threads == len(os.sched_getaffinity(0))  # the local worker's share of the cores
        # --timeout: enforced in the worker's thread; the worker is restarted for the next job
        late, after = dask.map(jobs.spin, [60.0, 0.0])
        # --fail-fast: one thread, so one job at a time: nothing starts after the failure
        fast = dask.map(jobs.compute, SEEDS, stop_when=lambda r: not r.ok)
    assert report["pid"] != os.getpid()
    assert (report["flag"], report["level"], report["OPENBLAS_NUM_THREADS"]) == ("set by debug.py", logging.DEBUG, "1")
    assert report["threads"] == len(os.sched_getaffinity(0))  # one local worker: every core is its share
    assert late.timed_out and not late.ok and 2.0 <= late.seconds < 30
    assert late.error == "JobTimeout: the job ran longer than its time limit of 2 s (--timeout) and was stopped"
    assert after.ok and after.worker != late.worker  # a fresh worker process: no half-updated state
    assert [(r.ok, r.cancelled) for r in fast] == [(True, False), (True, False), (False, False)] + [(False, True)] * 3


def test_process_workers_pin_blas_reload_debug_and_set_log_levels(pool: ProcessExecutor) -> None:
    reports = [r.value for r in pool.map(jobs.probe, range(4))]
    pids = {report["pid"] for report in reports}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"  # the launcher's own setting is untouched
    for report in reports:
        assert [report[var] for var in BLAS_VARS] == ["1", "1", "1"]
        assert report["EXTRA"] == "yes"
        # each job gets its share of the cores among the jobs running at that moment
        cores = len(os.sched_getaffinity(0))
        assert max(1, cores // 2) <= report["threads"] <= cores
        assert report["flag"] == "set by debug.py"  # the debug file was re-loaded in the worker
        assert report["level"] == logging.DEBUG
    assert debug_info(jobs.DEBUG_NAME).flag is False  # ... and not in this process
    assert logging.getLogger(jobs.LOGGER_NAME).getEffectiveLevel() != logging.DEBUG


def test_fail_fast_starts_no_job_after_a_failure(pool: ProcessExecutor) -> None:
    durations = [0.0, -1.0] + [0.2] * 6  # job 1 fails at once; the others take long enough to be left out
    seen: list[int] = []
    results = pool.map(jobs.fail_or_spin, durations, on_result=lambda r: seen.append(r.index), stop_when=lambda r: not r.ok)
    started = [r.index for r in results if not r.cancelled]
    assert started == list(range(len(started))) and 2 <= len(started) < len(durations)  # a prefix, in job order
    assert sorted(seen) == started  # on_result: only for jobs that ran
    assert not results[1].ok and not results[1].cancelled
    for result in results[len(started):]:
        assert (result.ok, result.cancelled, result.worker) == (False, True, "")
        assert result.error == "not run: the run stopped after a failure (fail fast)"
    with SerialExecutor() as serial:  # serial: exactly the jobs up to the failure
        assert [r.cancelled for r in serial.map(jobs.compute, SEEDS, stop_when=lambda r: not r.ok)] == [False] * 3 + [True] * 3
    assert pool.map(jobs.compute, [1, 2])[1].ok  # the next map starts afresh


def test_timeout_stops_the_job_and_its_worker_is_replaced() -> None:
    with ProcessExecutor(processes=1, timeout=0.5) as executor:
        assert executor.describe()["timeout"] == 0.5
        late, after = executor.map(jobs.spin, [60.0, 0.0])  # spin() even catches Exception
    assert late.timed_out and not late.ok and 0.5 <= late.seconds < 30
    assert late.error == "JobTimeout: the job ran longer than its time limit of 0.5 s (--timeout) and was stopped"
    assert "JobTimeout" in (late.traceback or "")
    # the next job ran on a fresh pool: an interrupted job may leave its worker half-updated
    assert after.ok and not after.timed_out and after.worker != late.worker


def test_a_job_deaf_to_its_timeout_has_its_worker_killed() -> None:
    with ProcessExecutor(processes=1, timeout=0.3, kill_grace=0.3) as executor:
        # the clock starts when the job starts in its worker: worker start-up does not count
        deaf, after = executor.map(jobs.spin_deaf, [60.0, 0.0])
    assert deaf.timed_out and not deaf.ok and 0.6 <= deaf.seconds < 30
    assert deaf.error is not None and deaf.error.endswith("did not stop within 0.3 s more; its worker process was killed")
    assert after.ok and after.worker != deaf.worker  # ran on a fresh pool


def test_timeout_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"the 'serial' executor cannot enforce a per-job timeout \(got timeout=5\); use --executor process"):
        SerialExecutor(timeout=5)
    with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds, got 0"):
        ProcessExecutor(timeout=0)
    with pytest.raises(ValueError, match=r"kill_grace must be a number of seconds >= 0, got -1"):
        ProcessExecutor(kill_grace=-1)


def test_start_warms_the_workers_before_the_first_job() -> None:
    with ProcessExecutor(processes=2) as executor:
        executor.start(["_executor_jobs:warm", "no_such_module_xyz"], jobs=1)  # bad names are ignored
        assert len(executor._pool._processes) == 1  # type: ignore[union-attr]  # 1 job to come: 1 worker
        reports = [r.value for r in executor.map(jobs.warm_marks, [0, 1, 2])]
    assert 1 <= len({report["pid"] for report in reports}) <= 2
    assert all(report["warmed"] == [str(report["pid"])] for report in reports)  # every worker, once, first
    idle = ProcessExecutor(processes=1)
    idle.start([])
    idle.close()  # warming only: its worker is killed, not waited for
    assert idle.closed and idle._pool is None


def test_serial_pins_blas_threads_while_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with SerialExecutor() as serial:
        (report,) = [r.value for r in serial.map(jobs.probe, [0])]
    assert (report["OPENBLAS_NUM_THREADS"], report["MKL_NUM_THREADS"]) == ("1", "1")
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4" and "MKL_NUM_THREADS" not in os.environ  # restored
    with ex.pinned_threads(None):  # None: left alone
        assert os.environ["OPENBLAS_NUM_THREADS"] == "4"


def test_a_dying_worker_fails_only_its_job() -> None:
    with ProcessExecutor(processes=1) as executor:
        results = executor.map(jobs.crash_or_square, [2, -1, 3, 4])
    assert [r.value for r in results] == [4, None, 9, 16]
    assert results[1].error is not None and results[1].error.startswith("BrokenProcessPool: a worker process died")
    assert results[0].worker != results[2].worker  # a fresh pool ran the rest


def test_an_unpicklable_job_function_is_refused_before_starting() -> None:
    executor = ProcessExecutor(processes=1)
    with pytest.raises(TypeError, match=r"job function '.*<lambda>' cannot be sent to worker processes .*define it at the top level"):
        executor.map(lambda job: job, [1])
    assert executor._pool is None
    executor.close()


# --------------------------------------------------------------------------- worker set-up


@pytest.fixture
def clean_worker_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let set-up run in this process (as on a dask worker), then undo it."""
    for var in (*ex.BLAS_THREAD_ENV_VARS, "DIFFIM_TEST_EXTRA"):
        monkeypatch.setenv(var, "7")
    monkeypatch.setattr(worker_module, "_prepared", None)  # where prepare_worker keeps its state
    monkeypatch.setattr(worker_module, "_prepare_error", None)
    logger = logging.getLogger(jobs.LOGGER_NAME)
    level = logger.level
    yield
    logger.setLevel(level)
    reset_debug()


@pytest.mark.usefixtures("clean_worker_state")
def test_setup_applies_once_per_worker_process(debug_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setitem(sys.modules, "threadpoolctl", types.SimpleNamespace(threadpool_limits=lambda limits: calls.append(limits)))
    setup = WorkerSetup(debug_file=debug_file, log_levels=[f"{jobs.LOGGER_NAME}=TRACE"], env={"DIFFIM_TEST_EXTRA": "yes"})
    in_launcher = execute_job(jobs.probe, 0, None, setup, os.getpid())
    assert in_launcher.ok and in_launcher.value["flag"] is False and calls == []  # launcher: left alone
    first = execute_job(jobs.probe, 1, None, setup, -1)  # "another process": prepared now
    report = first.value
    assert (report["flag"], report["level"], report["EXTRA"], report["OPENBLAS_NUM_THREADS"]) == ("set by debug.py", 5, "yes", "1")
    assert calls == [1]  # already loaded BLAS limited through threadpoolctl
    assert execute_job(jobs.probe, 2, None, setup, -1).ok and calls == [1]  # once per process


@pytest.mark.usefixtures("clean_worker_state")
def test_a_failing_setup_fails_each_job_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "debug.py"
    broken.write_text("x = 1\nraise RuntimeError('no display here')\n")
    result = execute_job(jobs.compute, 0, 1, WorkerSetup(debug_file=str(broken)), -1)
    assert not result.ok
    assert result.error is not None and result.error.startswith("worker set-up failed: DebugFileError: debug file ")
    assert "at line 2: RuntimeError: no display here" in result.error and "\n" not in result.error


def test_worker_setup_validates_in_the_launcher() -> None:
    with pytest.raises(ValueError, match=r"blas_threads must be a positive integer or None, got 0"):
        WorkerSetup(blas_threads=0)
    with pytest.raises(ValueError, match=r"bad log level spec 'diffim=LOUD'"):
        WorkerSetup(log_levels=["diffim=LOUD"])
    with pytest.raises(TypeError, match=r"log_levels must be a list of specs, got the string 'DEBUG'; use \['DEBUG'\]"):
        WorkerSetup(log_levels="DEBUG")  # type: ignore[arg-type]
    assert WorkerSetup(blas_threads=None, env={"A": 1}).environ() == {"A": "1"}  # type: ignore[dict-item]
    specs = WorkerSetup.level_specs({"diffim": 10, "my_plugin": 5, "": 30})
    assert WorkerSetup(log_levels=specs).log_levels == ["diffim=10", "my_plugin=5", "=30"]  # valid specs


def test_workers_get_autoload_off_when_the_launcher_has_it_off() -> None:
    # pytest sets sys._called_from_test, so third-party autoload is off here
    assert SerialExecutor().worker_setup.env == {"DIFFIM_DISABLE_PLUGIN_AUTOLOAD": "1"}


# -------------------------------------------------------------------------------- progress


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    caplog.set_level(logging.INFO, logger="diffim.run")
    with progress(4, desc="pairs", interval=10.0, stream=types.SimpleNamespace(), clock=clock) as bar:
        bar(JobResult(index=0, ok=True))
        clock.now += 11.0
        bar(JobResult(index=1, ok=False, error="ValueError: x"))
        clock.now += 5.0
        bar(JobResult(index=2, ok=True))  # under 10 s since the last line: silent
        clock.now += 4.0
    messages = [record.getMessage() for record in caplog.records if record.name == "diffim.run"]
    assert messages == [
        "pairs: 2/4 done, 1 failed, 11.0 s elapsed, ~11 s left",
        "pairs: 3/4 done, 1 failed, 20.0 s elapsed, ~7 s left",
    ]
    assert (bar.done, bar.failed) == (3, 1)


def test_progress_uses_tqdm_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    class FakeBar:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs, self.n, self.postfix, self.closed = kwargs, 0, {}, False
            made.append(self)

        def update(self, n: int) -> None:
            self.n += n

        def set_postfix(self, refresh: bool = True, **kwargs: Any) -> None:
            self.postfix = kwargs

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
    tty = types.SimpleNamespace(isatty=lambda: True)
    with progress(3, desc="pairs", stream=tty) as bar:  # type: ignore[arg-type]
        bar(JobResult(index=0, ok=True))
        bar(JobResult(index=1, ok=False))
    (fake,) = made
    assert (fake.kwargs["total"], fake.kwargs["desc"], fake.kwargs["file"]) == (3, "pairs", tty)
    assert (fake.n, fake.postfix, fake.closed) == (2, {"failed": 1}, True)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed: log lines even on a terminal
    assert type(progress(3, stream=tty)).__name__ == "_LogProgress"  # type: ignore[arg-type]
    assert type(progress(3, enable=False)) is ex.Progress


def test_thread_budget_reads_the_environment_and_defaults_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ex.THREAD_BUDGET_ENV, raising=False)
    assert ex.thread_budget() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(ex.THREAD_BUDGET_ENV, "3")
    assert ex.thread_budget() == 3
    for bad in ("0", "-2", "two", ""):
        monkeypatch.setenv(ex.THREAD_BUDGET_ENV, bad)
        assert ex.thread_budget() == len(os.sched_getaffinity(0))
    assert WorkerSetup(threads=2).environ()[ex.THREAD_BUDGET_ENV] == "2"
    assert ex.THREAD_BUDGET_ENV not in WorkerSetup().environ()
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        WorkerSetup(threads=0)


def test_task_thread_loops_are_capped_by_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from diffim.tasks.threads import parallel_threads

    monkeypatch.setenv(ex.THREAD_BUDGET_ENV, "1")
    assert parallel_threads(2) == 1
    monkeypatch.setenv(ex.THREAD_BUDGET_ENV, "8")
    assert parallel_threads(2) == 2 and parallel_threads(0) == 1


def test_a_job_running_alone_in_the_pool_gets_every_core(pool: ProcessExecutor) -> None:
    (alone,) = pool.map(jobs.probe, [0])
    assert alone.value["threads"] == len(os.sched_getaffinity(0))


def test_a_budget_provider_comes_first_and_a_failing_one_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ex.THREAD_BUDGET_ENV, "3")
    try:
        ex.set_thread_budget_provider(lambda: 5)
        assert ex.thread_budget() == 5
        ex.set_thread_budget_provider(lambda: 1 // 0)
        assert ex.thread_budget() == 3
        ex.set_thread_budget_provider(lambda: 0)
        assert ex.thread_budget() == 3
    finally:
        ex.set_thread_budget_provider(None)
    assert ex.thread_budget() == 3


# --------------------------------------------------------------------------- module layout


def test_names_defined_beside_the_executors_are_re_exported_unchanged() -> None:
    from diffim.framework import progress as progress_module
    from diffim.framework import threads, timelimit

    homes = {
        worker_module: ("JobResult", "WorkerSetup", "execute_job", "prepare_worker", "warm_worker"),
        threads: ("BLAS_THREAD_ENV_VARS", "THREAD_BUDGET_ENV", "pinned_threads", "set_thread_budget_provider", "thread_budget"),
        timelimit: ("JobTimeout",),
        progress_module: ("Progress", "progress"),
    }
    for module, names in homes.items():
        assert set(names) <= set(module.__all__), module.__name__
        for name in names:
            assert getattr(ex, name) is getattr(module, name), name
    moved = {name for names in homes.values() for name in names}
    assert set(ex.__all__) == moved | {"DEFAULT_EXECUTOR", "Executor", "ExecutorError", "executors", "get_executor"}
    # spawned workers unpickle these by their defining module, which must import on its own
    assert WorkerSetup.__module__ == JobResult.__module__ == "diffim.framework.worker"
