"""``diffim run`` after the pipeline is resolved: ``--show``, plan, ``--dry-run``, execute, record.

Executors come from `diffim.framework.executors.get_executor`: ``serial`` unless ``--executor``
is given, or ``process`` when ``-j N`` (N > 1) or ``--timeout`` is given without
``--executor``. Jobs are `~diffim.framework.launch.jobs.JobSpec` objects run by
`~diffim.framework.launch.jobs.run_job`.

Speed of parallel runs: `early_executor` creates the executor and starts its workers (warming
their imports of the framework, the plugins, the tasks named on the command line and the
modules of their input and output types: `~diffim.framework.launch.jobs.warm_task`) before the
launcher resolves the pipeline, so the workers' start-up overlaps the launcher's own.
Jobs are handed out largest first (by the size of their input files) when several run at once,
so that a big pair does not start last and leave the other workers idle at the end.

``--fail-fast`` starts no further job once one has failed (a row that fails while planning,
e.g. a missing file, counts: then nothing runs); the jobs never started are recorded with
``status: "not_run"``. ``--timeout SECONDS`` limits each job (process and dask executors): a job
over time is recorded as failed with ``error_kind: "timeout"``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    EXIT_PARTIAL,
    EXIT_TASK,
    OutputDirError,
    TaskFailure,
    UnknownTaskError,
)
from .jobs import ERROR_EXIT_CODES, JobSpec, run_job, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from ..executors import Executor
    from ..pipeline import Pipeline
    from ..worker import JobResult, WorkerSetup
    from .plan import Plan

__all__ = ["check_run_arguments", "choose_executor", "early_executor", "run_command", "run_plan"]

#: Modules every launcher job needs, imported ahead by `early_executor` (``:function`` is called).
WARM_MODULES = (
    "diffim.framework.plugins:get_plugin_manager",
    "diffim.framework.launch.jobs",
    "diffim.framework.config",
    "diffim.framework.task",
    "diffim.framework.connections",
)

_log = logging.getLogger("diffim.run")


def choose_executor(name: str | None, processes: int | None, timeout: float | None = None) -> str:
    """Return the executor name for ``--executor``/``-j``/``--timeout``.

    Parameters
    ----------
    name : `str` or `None`
        ``--executor``.
    processes : `int` or `None`
        ``-j``.
    timeout : `float` or `None`, optional
        ``--timeout`` (the serial executor cannot enforce it).

    Returns
    -------
    name : `str`
        ``name`` if given, else ``"process"`` for ``-j`` > 1 or a timeout, else ``"serial"``.
    """
    if name:
        return name
    return "process" if (processes is not None and processes > 1) or timeout is not None else "serial"


def _executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """``name``, ``processes``, ``scheduler``, ``timeout`` from the arguments (run.json's ``executor``)."""
    timeout = getattr(args, "timeout", None)
    return {"name": choose_executor(args.executor, args.processes, timeout), "processes": args.processes,
            "scheduler": args.scheduler, "timeout": timeout}


def check_run_arguments(args: argparse.Namespace) -> None:
    """Refuse contradictory or incomplete ``diffim run`` arguments (cheap checks, before any work).

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed ``run`` arguments.

    Raises
    ------
    OutputDirError
        No ``-o`` (without ``--dry-run``), ``--resume`` with ``--clobber``, or an existing
        non-empty OUTDIR without either.
    """
    from .outputs import check_output_dir

    if args.show or args.dry_run:
        return
    if not args.output:
        msg = "diffim run needs an output directory: -o OUTDIR (or --dry-run to only print the plan)"
        raise OutputDirError(msg)
    if args.resume and args.clobber:
        msg = "--resume and --clobber contradict each other: --resume keeps finished jobs, --clobber redoes them"
        raise OutputDirError(msg)
    check_output_dir(Path(args.output), clobber=args.clobber, resume=args.resume)


def worker_setup(debug_file: str | None, log_levels: Sequence[str], traces: Sequence[str]) -> WorkerSetup:
    """The `~diffim.framework.worker.WorkerSetup` that makes workers log and debug as this process.

    Parameters
    ----------
    debug_file : `str` or `None`
        Debug file loaded here.
    log_levels, traces : sequence of `str`
        ``--log-level`` and ``--trace`` values.

    Returns
    -------
    setup : `~diffim.framework.worker.WorkerSetup`
    """
    from ..plugins import get_plugin_manager
    from ..worker import WorkerSetup
    from .logsetup import plugin_logger_names, worker_log_levels

    defaults = plugin_logger_names(get_plugin_manager())
    return WorkerSetup(debug_file=debug_file, log_levels=worker_log_levels(log_levels, traces, defaults))


def _task_path(name: str) -> str | None:
    """Class path of a ``-t`` task (registered name or class path), without importing it."""
    from .registry import class_path, task_registry

    registry = task_registry()
    if name in registry:
        target = registry[name].target
        return target if isinstance(target, str) else class_path(target)
    return name if "." in name else None


def _named_task_warm_ups(args: argparse.Namespace) -> list[str]:
    """`warm_task` calls for the tasks named by ``-t`` and ``-p`` (best effort: unclear ones are left out)."""
    from ..pipeline import PipelineDocument, parse_task_spec

    names = []
    for spec in args.tasks or []:
        with contextlib.suppress(Exception):
            names.append(parse_task_spec(spec)[0])
    if args.pipeline:
        with contextlib.suppress(Exception):
            names += [entry.class_ for entry in PipelineDocument.from_file(args.pipeline).tasks.values()]
    warm = []
    for name in names:
        with contextlib.suppress(Exception):
            path = _task_path(str(name))
            spec = f"diffim.framework.launch.jobs:warm_task:{path}"
            if path and spec not in warm:
                warm.append(spec)
    return warm


def _count_jobs(table: str | None) -> int | None:
    """Jobs to come: 1, or the rows of an inputs table (`None` if it cannot be read: planning will say why)."""
    if table is None:
        return 1
    import csv

    from .errors import LaunchError
    from .plan import _read_table

    try:
        return len(_read_table(Path(table))[1])
    except (LaunchError, OSError, UnicodeDecodeError, csv.Error):
        return None


@contextlib.contextmanager
def early_executor(args: argparse.Namespace, debug_file: str | None) -> Iterator[Executor | None]:
    """Create the run's executor and start its workers before the pipeline is resolved.

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed ``run`` arguments (nothing starts for ``--show`` or ``--dry-run``).
    debug_file : `str` or `None`
        Debug file loaded in this process (re-loaded in the workers).

    Yields
    ------
    executor : `~diffim.framework.executors.Executor` or `None`
        Started executor, or `None` when there is nothing to start or it cannot be built now (the
        run then builds it later and reports any error there). Closed on exit.

    Raises
    ------
    OutputDirError
        From `check_run_arguments`, checked first so that nothing starts for a refused run.
    """
    check_run_arguments(args)
    executor: Executor | None = None
    if not (args.show or args.dry_run):
        options = _executor_options(args)
        with contextlib.suppress(Exception):  # e.g. an unknown executor: reported later, in order
            setup = worker_setup(debug_file, args.log_levels, args.traces)
            executor = _executor(options, setup)
        if executor is not None:
            executor.start([*WARM_MODULES, *_named_task_warm_ups(args)], jobs=_count_jobs(args.inputs_table))
    try:
        yield executor
    finally:
        if executor is not None:
            executor.close()


def _check_executor_name(name: str) -> None:
    from ..executors import executors

    if name not in executors:
        raise ValueError(f"--executor: {executors.unknown_message(name)}")


def _check_runnable(pipeline: Pipeline) -> None:
    from ..connections import check_runnable

    for task in pipeline.tasks.values():
        try:
            check_runnable(task.task_class)
        except TypeError as err:
            raise UnknownTaskError(f"task {task.label!r}: {err}") from None


def run_command(
    args: argparse.Namespace,
    pipeline: Pipeline,
    *,
    debug_file: str | None = None,
    log_handler: logging.Handler | None = None,
    executor: Executor | None = None,
) -> int:
    """Carry out ``diffim run`` for a resolved pipeline.

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed ``run`` arguments (``command_argv`` holds the raw arguments, for run.json).
    pipeline : `~diffim.framework.pipeline.Pipeline`
        The resolved pipeline (contracts checked).
    debug_file : `str`, optional
        Debug file loaded in this process (re-loaded in workers).
    log_handler : `logging.Handler`, optional
        The ``--log-file`` handler: log records of jobs run in other processes are appended.
    executor : `~diffim.framework.executors.Executor`, optional
        An executor already started (`early_executor`); default: one is built here.

    Returns
    -------
    code : `int`
        0; failures raise `LaunchError` subclasses carrying the exit code.
    """
    from ..plugins import get_plugin_manager
    from .outputs import is_complete, run_header
    from .plan import format_plan, make_plan, parse_input_args
    from .show import show

    if args.show:
        print(show(pipeline, args.show))
        return 0
    _check_runnable(pipeline)
    options = _executor_options(args)
    _check_executor_name(options["name"])  # the run's arguments were checked by early_executor
    outdir = Path(args.output) if args.output else None
    table = Path(args.inputs_table) if args.inputs_table else None
    header = run_header(
        getattr(args, "command_argv", []), get_plugin_manager(), executor=options,
        pipeline={label: task.class_path for label, task in pipeline.tasks.items()},
    )
    fail_fast = header["fail_fast"] = bool(getattr(args, "fail_fast", False))
    plan = make_plan(pipeline, inputs=parse_input_args(args.inputs), outdir=outdir, table=table,
                     header=header if table is not None else None)
    if args.resume:
        plan.skipped = {
            job.index for job in plan.jobs
            if job.index not in plan.failed and is_complete(Path(job.directory), pipeline.labels, job.id)
        }
    if args.dry_run:
        print(format_plan(plan, options))
        return 0
    assert outdir is not None
    return run_plan(plan, header, options, debug_file=debug_file, log_levels=args.log_levels,
                    traces=args.traces, log_handler=log_handler, pool=executor, fail_fast=fail_fast)


def _skipped_record(job: JobSpec) -> dict[str, Any]:
    """Record of a job skipped by ``--resume``: its previous record, marked ``skipped``."""
    import json

    try:
        previous = json.loads((Path(job.directory) / "run.json").read_text(encoding="utf-8"))
        record = next(r for r in previous.get("jobs", []) if r.get("id") == job.id)
    except (OSError, ValueError, StopIteration):
        return _empty_record(job, "skipped")
    return {**record, "index": job.index, "status": "skipped"}


def _empty_record(job: JobSpec, status: str) -> dict[str, Any]:
    return {"index": job.index, "id": job.id, "directory": job.directory, "status": status,
            "inputs": dict(job.inputs), "tasks": {}, "start": None, "end": None, "seconds": 0.0,
            "error": None, "error_kind": None, "traceback": None}


def _record_of(result: JobResult, job: JobSpec) -> dict[str, Any]:
    if result.ok and isinstance(result.value, Mapping):
        record = dict(result.value)
    else:  # the job function itself failed (a timeout, pickling, a dead worker, ...)
        record = _empty_record(job, "failed")
        kind = "timeout" if result.timed_out else "internal"
        record.update(error=result.error or "job failed", error_kind=kind, traceback=result.traceback,
                      seconds=round(result.seconds, 6))
    record["worker"] = result.worker
    return record


def _not_run_record(job: JobSpec, why: str) -> dict[str, Any]:
    record = _empty_record(job, "not_run")
    record["error"] = f"not run: {why}"
    return record


def _input_bytes(job: JobSpec) -> int:
    total = 0
    for file in job.inputs.values():
        with contextlib.suppress(OSError):
            total += os.stat(file).st_size
    return total


def _largest_first(jobs: list[JobSpec]) -> list[JobSpec]:
    """Jobs by decreasing input size (stable: equal sizes keep the table order)."""
    return sorted(jobs, key=_input_bytes, reverse=True)


def _copy_remote_log(record: Mapping[str, Any], handler: logging.Handler | None) -> None:
    """Append the log lines of a job run in another process to the ``--log-file``."""
    stream = getattr(handler, "stream", None)
    if stream is None or record.get("pid") in (None, os.getpid()):
        return
    for entry in (record.get("tasks") or {}).values():
        path = (entry.get("files") or {}).get("log")
        try:
            text = Path(path).read_text(encoding="utf-8") if path else ""
        except OSError:
            continue
        handler.acquire()
        try:
            stream.write(text)
            stream.flush()
        finally:
            handler.release()


def _executor(executor: Mapping[str, Any], setup: Any) -> Executor:
    """The executor named by `_executor_options`'s ``executor`` mapping, workers set up by ``setup``."""
    from ..executors import get_executor

    name = executor["name"]
    options: dict[str, Any] = {"processes": executor.get("processes"), "worker_setup": setup}
    if executor.get("scheduler"):
        options["scheduler"] = executor["scheduler"]
    if executor.get("timeout") is not None:
        options["timeout"] = executor["timeout"]
    try:
        return get_executor(name, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--executor {name}: {err}") from None


def run_plan(
    plan: Plan,
    header: Mapping[str, Any],
    executor: Mapping[str, Any],
    *,
    debug_file: str | None = None,
    log_levels: list[str] | None = None,
    traces: list[str] | None = None,
    log_handler: logging.Handler | None = None,
    pool: Executor | None = None,
    fail_fast: bool = False,
) -> int:
    """Run the plan's jobs, write ``OUTDIR/run.json`` and report.

    Parameters
    ----------
    plan : `~diffim.framework.launch.plan.Plan`
        The plan (its ``outdir`` is set).
    header : `~collections.abc.Mapping`
        ``run.json`` header.
    executor : `~collections.abc.Mapping`
        ``name``, ``processes``, ``scheduler``, ``timeout``.
    debug_file : `str`, optional
        Debug file for the workers.
    log_levels, traces : `list` [`str`], optional
        ``--log-level`` and ``--trace`` values for the workers.
    log_handler : `logging.Handler`, optional
        ``--log-file`` handler.
    pool : `~diffim.framework.executors.Executor`, optional
        An executor already built (and maybe started) for these options; closed here.
    fail_fast : `bool`, optional
        Start no further job after a failure (``--fail-fast``).

    Returns
    -------
    code : `int`
        0 when every job succeeded (or was skipped).

    Raises
    ------
    TaskFailure
        The single job failed (exit code by error kind: 3, 4, 5 or 6), or some rows of a table
        failed or were not run (7; 6 when none succeeded).
    """
    from ..progress import progress
    from .outputs import write_run_record

    assert plan.outdir is not None
    records: dict[int, dict[str, Any]] = dict(plan.failed)
    for index in sorted(plan.skipped):
        records[index] = _skipped_record(plan.jobs[index])
    to_run = [job for job in plan.jobs if job.index not in records]
    start, clock = utc_now(), time.perf_counter()
    table = plan.table is not None
    if plan.skipped:
        _log.info("resuming: %d of %d jobs already complete", len(plan.skipped), len(plan.jobs))
    for index in sorted(plan.failed):
        _log.warning("job %s failed: %s", plan.jobs[index].id, plan.failed[index]["error"])
    if pool is None:
        setup = worker_setup(debug_file, log_levels or [], traces or [])
        pool = _executor(executor, setup)
    if fail_fast and plan.failed:  # a row already failed while planning: start nothing
        first = plan.jobs[min(plan.failed)].id
        for job in to_run:
            records[job.index] = _not_run_record(job, f"--fail-fast: job {first} failed before the run started")
        to_run = []
    if pool.processes != 1:  # several at once: the largest first, so none starts last and alone
        to_run = _largest_first(to_run)
    plan.outdir.mkdir(parents=True, exist_ok=True)
    status = "interrupted"
    first_failure: list[str | None] = []
    try:
        with pool, progress(len(to_run), desc="jobs", enable=table) as bar:

            def on_result(result: JobResult) -> None:
                job = to_run[result.index]
                record = records[job.index] = _record_of(result, job)
                failed = record.get("status") != "ok"
                bar.update(1, failed=int(failed))
                _copy_remote_log(record, log_handler)
                if failed:
                    first_failure.append(job.id)
                    if table:
                        _log.warning("job %s failed: %s", job.id, record.get("error"))

            def stop_when(result: JobResult) -> bool:
                return bool(first_failure)

            results = pool.map(run_job, to_run, on_result=on_result, stop_when=stop_when if fail_fast else None)
        for result in results:
            if result.cancelled:
                job = to_run[result.index]
                records[job.index] = _not_run_record(job, f"--fail-fast: job {first_failure[0]} failed first")
        status = None
    finally:
        jobs = [records[i] for i in sorted(records)]
        failures = [j for j in jobs if j.get("status") == "failed"]
        not_run = [j for j in jobs if j.get("status") == "not_run"]
        if status is None:
            done = [j for j in jobs if j.get("status") == "ok"]
            status = "ok" if not (failures or not_run) else ("partial" if done or plan.skipped else "failed")
        write_run_record(
            plan.outdir / "run.json", header, jobs, status, start=start, end=utc_now(),
            seconds=round(time.perf_counter() - clock, 6),
            errors=[f"{j['id']}: {j['error']}" if j.get("id") is not None else str(j["error"]) for j in failures],
        )
    if not failures:
        ran = len(to_run)
        _log.info("%d job%s ok in %.2f s; outputs and run.json in %s", ran, "" if ran == 1 else "s",
                  time.perf_counter() - clock, plan.outdir)
        return 0
    if not table:
        record = failures[0]
        code = ERROR_EXIT_CODES.get(record.get("error_kind") or "", EXIT_TASK)
        raise TaskFailure(str(record["error"]), exit_code=code, remote_traceback=record.get("traceback"))
    code = EXIT_TASK if status == "failed" else EXIT_PARTIAL
    first = failures[0]
    skipped_note = f", {len(not_run)} not run (--fail-fast)" if not_run else ""
    msg = (f"{len(failures)} of {len(plan.jobs)} jobs failed{skipped_note} (first: {first['id']}: {first['error']}); "
           f"details in {plan.outdir / 'run.json'}")
    raise TaskFailure(msg, exit_code=code, remote_traceback=first.get("traceback"))

