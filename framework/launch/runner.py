"""``diffim run`` after the pipeline is resolved: ``--show``, plan, ``--dry-run``, execute, record.

Executors come from `diffim.framework.executors.get_executor`: ``serial`` unless ``--executor``
is given, or ``process`` when ``-j N`` (N > 1) is given without ``--executor``. Jobs are
`~diffim.framework.launch.jobs.JobSpec` objects run by `~diffim.framework.launch.jobs.run_job`.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping
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
    from ..executors import JobResult
    from ..pipeline import Pipeline
    from .plan import Plan

__all__ = ["choose_executor", "run_command", "run_plan"]

_log = logging.getLogger("diffim.run")


def choose_executor(name: str | None, processes: int | None) -> str:
    """Return the executor name for ``--executor``/``-j``.

    Parameters
    ----------
    name : `str` or `None`
        ``--executor``.
    processes : `int` or `None`
        ``-j``.

    Returns
    -------
    name : `str`
        ``name`` if given, else ``"process"`` for ``-j`` > 1, else ``"serial"``.
    """
    if name:
        return name
    return "process" if processes is not None and processes > 1 else "serial"


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

    Returns
    -------
    code : `int`
        0; failures raise `LaunchError` subclasses carrying the exit code.
    """
    from ..plugins import get_plugin_manager
    from .outputs import check_output_dir, is_complete, run_header
    from .plan import format_plan, make_plan, parse_input_args
    from .show import show

    if args.show:
        print(show(pipeline, args.show))
        return 0
    _check_runnable(pipeline)
    executor = {"name": choose_executor(args.executor, args.processes), "processes": args.processes,
                "scheduler": args.scheduler}
    _check_executor_name(executor["name"])
    outdir = Path(args.output) if args.output else None
    if outdir is None and not args.dry_run:
        msg = "diffim run needs an output directory: -o OUTDIR (or --dry-run to only print the plan)"
        raise OutputDirError(msg)
    if args.resume and args.clobber:
        msg = "--resume and --clobber contradict each other: --resume keeps finished jobs, --clobber redoes them"
        raise OutputDirError(msg)
    table = Path(args.inputs_table) if args.inputs_table else None
    header = run_header(
        getattr(args, "command_argv", []), get_plugin_manager(), executor=executor,
        pipeline={label: task.class_path for label, task in pipeline.tasks.items()},
    )
    plan = make_plan(pipeline, inputs=parse_input_args(args.inputs), outdir=outdir, table=table,
                     header=header if table is not None else None)
    if args.resume:
        plan.skipped = {
            job.index for job in plan.jobs
            if job.index not in plan.failed and is_complete(Path(job.directory), pipeline.labels, job.id)
        }
    if args.dry_run:
        print(format_plan(plan, executor))
        return 0
    assert outdir is not None
    check_output_dir(outdir, clobber=args.clobber, resume=args.resume)
    return run_plan(plan, header, executor, debug_file=debug_file, log_levels=args.log_levels,
                    traces=args.traces, log_handler=log_handler)


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
    else:  # the job function itself failed (pickling, a dead worker, ...)
        record = _empty_record(job, "failed")
        record.update(error=result.error or "job failed", error_kind="internal", traceback=result.traceback)
    record["worker"] = result.worker
    return record


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


def _executor(name: str, processes: int | None, scheduler: str | None, setup: Any) -> Any:
    from ..executors import get_executor

    options: dict[str, Any] = {"processes": processes, "worker_setup": setup}
    if scheduler:
        options["scheduler"] = scheduler
    try:
        return get_executor(name, **options)
    except TypeError as err:
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
) -> int:
    """Run the plan's jobs, write ``OUTDIR/run.json`` and report.

    Parameters
    ----------
    plan : `~diffim.framework.launch.plan.Plan`
        The plan (its ``outdir`` is set).
    header : `~collections.abc.Mapping`
        ``run.json`` header.
    executor : `~collections.abc.Mapping`
        ``name``, ``processes``, ``scheduler``.
    debug_file : `str`, optional
        Debug file for the workers.
    log_levels, traces : `list` [`str`], optional
        ``--log-level`` and ``--trace`` values for the workers.
    log_handler : `logging.Handler`, optional
        ``--log-file`` handler.

    Returns
    -------
    code : `int`
        0 when every job succeeded (or was skipped).

    Raises
    ------
    TaskFailure
        The single job failed (exit code by error kind: 3, 4, 5 or 6), or some rows of a table
        failed (7; 6 when all did).
    """
    from ..executors import WorkerSetup, progress
    from ..plugins import get_plugin_manager
    from .logsetup import plugin_logger_names, worker_log_levels
    from .outputs import write_run_record

    assert plan.outdir is not None
    records: dict[int, dict[str, Any]] = dict(plan.failed)
    for index in sorted(plan.skipped):
        records[index] = _skipped_record(plan.jobs[index])
    to_run = [job for job in plan.jobs if job.index not in records]
    defaults = plugin_logger_names(get_plugin_manager())
    setup = WorkerSetup(debug_file=debug_file,
                        log_levels=worker_log_levels(log_levels or [], traces or [], defaults))
    start, clock = utc_now(), time.perf_counter()
    table = plan.table is not None
    if plan.skipped:
        _log.info("resuming: %d of %d jobs already complete", len(plan.skipped), len(plan.jobs))
    for index in sorted(plan.failed):
        _log.warning("job %s failed: %s", plan.jobs[index].id, plan.failed[index]["error"])
    pool = _executor(executor["name"], executor.get("processes"), executor.get("scheduler"), setup)
    plan.outdir.mkdir(parents=True, exist_ok=True)
    status = "interrupted"
    try:
        with pool, progress(len(to_run), desc="jobs", enable=table) as bar:

            def on_result(result: JobResult) -> None:
                job = to_run[result.index]
                record = records[job.index] = _record_of(result, job)
                failed = record.get("status") != "ok"
                bar.update(1, failed=int(failed))
                _copy_remote_log(record, log_handler)
                if failed and table:
                    _log.warning("job %s failed: %s", job.id, record.get("error"))

            pool.map(run_job, to_run, on_result=on_result)
        status = None
    finally:
        jobs = [records[i] for i in sorted(records)]
        failures = [j for j in jobs if j.get("status") != "ok" and j.get("status") != "skipped"]
        if status is None:
            done = [j for j in jobs if j.get("status") == "ok"]
            status = "ok" if not failures else ("partial" if done or plan.skipped else "failed")
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
    msg = (f"{len(failures)} of {len(plan.jobs)} jobs failed (first: {first['id']}: {first['error']}); "
           f"details in {plan.outdir / 'run.json'}")
    raise TaskFailure(msg, exit_code=code, remote_traceback=first.get("traceback"))

