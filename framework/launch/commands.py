"""The launcher's subcommands: ``run``, ``build``, ``tasks`` and ``config``.

Only `argparse` is imported at module level (``diffim --help`` must start fast); each handler
imports what it needs. Options are spelled as LSST's ``pipetask`` users type them.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_launcher_commands", "cmd_build", "cmd_config", "cmd_run", "cmd_tasks"]

_RUN_DESCRIPTION = """Run a task or a pipeline on files.

  diffim run -t ImagePsfMatchTask -i template=t.fits -i science=s.fits -o out/
  diffim run -p pipeline.yaml -c diff:kernel.name=DF -o out/ --inputs-table pairs.csv -j 4

Per task label, OUTDIR receives each declared output (written by the I/O plugins; under
OUTDIR/<label>/ when the pipeline has several tasks), <label>_config.yaml (reloadable with
-C), <label>_metadata.json, <label>_log.jsonl, and run.json (command, versions, plugins,
timings, status, errors). With --inputs-table every row runs into OUTDIR/<id>/."""


def _override(kind: str) -> Any:
    def convert(value: str) -> tuple[str, str]:
        return (kind, value)

    convert.__name__ = f"-{kind} value"
    return convert


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        msg = f"expected a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_pipeline_options(parser: argparse.ArgumentParser, *, task_required: bool = False) -> None:
    group = parser.add_argument_group("pipeline")
    group.add_argument("-p", "--pipeline", metavar="PIPELINE.yaml", help="pipeline document (pipetask format)")
    group.add_argument(
        "-t", "--task", dest="tasks", action="append", metavar="TASK[:LABEL]",
        help="registered task name or class path, optional label (repeatable; after -p's tasks)",
    )
    group.add_argument(
        "-c", "--config", dest="overrides", action="append", type=_override("c"),
        metavar="[LABEL:]KEY=VALUE",
        help="config override, applied in command-line order with -C (LABEL 'parameters' sets a pipeline parameter)",
    )
    group.add_argument(
        "-C", "--config-file", dest="overrides", action="append", type=_override("C"),
        metavar="[LABEL:]FILE", help="config override file: .py, .yaml, .toml or .json (repeatable)",
    )
    group.add_argument(
        "--show", action="append", metavar="ITEM",
        help="print and exit: config[=[LABEL::]PATTERN], history=[LABEL::]FIELD, pipeline, tasks",
    )


def _add_logging_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("logging and debugging")
    group.add_argument(
        "--log-level", dest="log_levels", action="append", default=[], metavar="[LOGGER=]LEVEL",
        help="TRACE, DEBUG, VERBOSE, INFO, WARNING, ERROR (repeatable); without LOGGER it sets "
        "diffim and the plugins' loggers (default INFO); DEBUG also shows tracebacks",
    )
    group.add_argument("--long-log", action="store_true", help="log lines with time, file and line")
    group.add_argument(
        "--trace", dest="traces", action="append", default=[], metavar="LOGGER=N",
        help="enable graded trace loggers TRACE0..N.LOGGER (trace_set_at; repeatable)",
    )
    group.add_argument("--log-file", metavar="PATH", help="append every log record to PATH as JSON lines")
    group.add_argument("--debug", action="store_true", help="load debug.py from the working directory or sys.path")
    group.add_argument("--debug-file", metavar="PATH", help="load this debug file (implies --debug)")


def add_launcher_commands(subparsers: argparse._SubParsersAction[Any], *, version: str | None = None) -> None:
    """Add ``run``, ``build``, ``tasks`` and ``config`` to the ``diffim`` command line.

    Parameters
    ----------
    subparsers : `argparse._SubParsersAction`
        The top-level parser's subparsers.
    version : `str`, optional
        ``diffim --version`` text, also answered by ``diffim run --version``.
    """
    formatter = argparse.RawDescriptionHelpFormatter
    run = subparsers.add_parser(
        "run", help="run a task or pipeline on files", description=_RUN_DESCRIPTION, formatter_class=formatter
    )
    if version is not None:
        run.add_argument("--version", action="version", version=version)
    _add_pipeline_options(run)
    io = run.add_argument_group("inputs and outputs")
    io.add_argument("-i", "--input", dest="inputs", action="append", default=[], metavar="NAME=PATH",
                    help="a declared input of the task(s) (repeatable)")
    io.add_argument("-o", "--output", metavar="OUTDIR", help="output directory")
    io.add_argument("--inputs-table", metavar="FILE.csv",
                    help="one job per row: columns named after the inputs, optional 'id' column")
    io.add_argument("--clobber", action="store_true", help="write into an existing non-empty OUTDIR")
    io.add_argument("--resume", action="store_true",
                    help="skip jobs whose run.json says ok and whose outputs all exist")
    io.add_argument("--fail-fast", action="store_true",
                    help="start no further table row after one fails; the rest are recorded as not run")
    io.add_argument("--dry-run", action="store_true", help="resolve everything, print the plan, write nothing")
    execution = run.add_argument_group("execution")
    execution.add_argument("--executor", metavar="NAME",
                           help="serial (default), process (default with -j > 1), dask, or a plugin's")
    execution.add_argument("-j", "--processes", type=_positive_int, metavar="N", help="parallel workers")
    execution.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (--executor dask)")
    execution.add_argument(
        "--timeout", type=_positive_seconds, metavar="SECONDS",
        help="stop a job running longer and record it as failed (process and dask executors; "
        "picks the process executor unless --executor is given: serial cannot enforce it)",
    )
    _add_logging_options(run)
    run.set_defaults(func=cmd_run)

    build = subparsers.add_parser(
        "build", help="resolve a pipeline or task config without running",
        description="Resolve a pipeline (or -t tasks) with its overrides and contracts; print it, "
        "--show parts of it, or save it with -s.",
    )
    _add_pipeline_options(build)
    build.add_argument("-s", "--save-pipeline", metavar="FILE", help="save the resolved pipeline YAML")
    _add_logging_options(build)
    build.set_defaults(func=cmd_build)

    tasks = subparsers.add_parser("tasks", help="list the registered tasks", description="List the tasks "
                                  "plugins registered, with their classes, inputs and outputs.")
    tasks.add_argument("--json", action="store_true", help="print JSON instead of text")
    tasks.set_defaults(func=cmd_tasks)

    config = subparsers.add_parser("config", help="print a task's default config or its JSON schema",
                                   description="Print the default config of a task as YAML (or its JSON schema).")
    config.add_argument("-t", "--task", required=True, metavar="TASK", help="registered task name or class path")
    config.add_argument("--schema", action="store_true", help="print the JSON schema instead")
    config.set_defaults(func=cmd_config)


# ------------------------------------------------------------------------------- handlers


def _session(args: argparse.Namespace) -> Any:
    from ..plugins import get_plugin_manager
    from .logsetup import logging_session, plugin_logger_names

    return logging_session(
        levels=args.log_levels,
        traces=args.traces,
        log_file=args.log_file,
        long_log=args.long_log,
        default_loggers=plugin_logger_names(get_plugin_manager()),
    )


def _load_debug(args: argparse.Namespace) -> str | None:
    if not (args.debug or args.debug_file):
        return None
    import logging

    from ..config import ConfigError
    from ..debug import DebugFileError, load_debug

    try:
        return load_debug(args.debug_file, log=logging.getLogger("diffim.run"))
    except DebugFileError as err:
        raise ConfigError(str(err)) from err


def _build(args: argparse.Namespace) -> Any:
    from ..pipeline import build_pipeline
    from .show import check_show_items

    check_show_items(args.show or [])
    return build_pipeline(args.pipeline, args.tasks or [], args.overrides or [])


def cmd_build(args: argparse.Namespace) -> int:
    """Handle ``diffim build``: resolve, then print, ``--show`` or ``-s`` save.

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed arguments.

    Returns
    -------
    code : `int`
        0.
    """
    from pathlib import Path

    from .show import show

    with _session(args):
        _load_debug(args)
        pipeline = _build(args)
        if args.show:
            print(show(pipeline, args.show))
        if args.save_pipeline:
            from ..config.persist import write_atomic

            write_atomic(Path(args.save_pipeline), pipeline.to_yaml(), overwrite=True)
        if not args.show and not args.save_pipeline:
            print(pipeline.to_yaml().rstrip("\n"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Handle ``diffim run`` (see `diffim.framework.launch.runner`).

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed arguments.

    Returns
    -------
    code : `int`
        0 on success (failures raise launcher errors carrying their exit code).
    """
    from ..threads import pinned_threads
    from .runner import early_executor, run_command

    # BLAS pinned to one thread before any task imports numpy: serial and parallel runs then
    # compute bit-identical results (and N workers use N cores)
    with pinned_threads(1), _session(args) as log_handler:
        debug_file = _load_debug(args)
        # workers start (and import) while this process resolves the pipeline
        with early_executor(args, debug_file) as executor:
            pipeline = _build(args)
            return run_command(args, pipeline, debug_file=debug_file, log_handler=log_handler, executor=executor)


def _describe_task(name: str, target: Any, doc: str) -> dict[str, Any]:
    from .registry import class_path, resolve_task

    spelled = target if isinstance(target, str) else class_path(target)
    info: dict[str, Any] = {"name": name, "class": spelled, "doc": doc}
    try:
        from ..connections import task_inputs, task_outputs

        cls = resolve_task(name)
        for key, declared in (("inputs", task_inputs(cls)), ("outputs", task_outputs(cls))):
            info[key] = {k: {"type": v.type, "doc": v.doc, "optional": v.optional} for k, v in declared.items()}
    except Exception as err:  # noqa: BLE001 - one broken task must not hide the others
        info["error"] = " ".join(f"{type(err).__name__}: {err}".split())
    return info


def cmd_tasks(args: argparse.Namespace) -> int:
    """Handle ``diffim tasks``: registered task names with class, inputs and outputs.

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed arguments.

    Returns
    -------
    code : `int`
        0.
    """
    from .registry import task_registry

    registry = task_registry()
    infos = [_describe_task(name, registry[name].target, registry[name].doc) for name in sorted(registry)]
    if args.json:
        import json

        print(json.dumps(infos, indent=2))
        return 0
    if not infos:
        print("(no tasks registered; plugins add them with the diffim_register_tasks hook)")
    for info in infos:
        print(f"{info['name']}  {info['class']}")
        if info["doc"]:
            print(f"    {info['doc']}")
        if "error" in info:
            print(f"    (cannot load: {info['error']})")
            continue
        for kind in ("inputs", "outputs"):
            for io_name, item in info[kind].items():
                optional = ", optional" if item["optional"] else ""
                print(f"    {kind[:-1]} {io_name} ({item['type']}{optional}): {' '.join(item['doc'].split())}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Handle ``diffim config -t TASK [--schema]``.

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed arguments.

    Returns
    -------
    code : `int`
        0.
    """
    from .registry import resolve_task

    cls = resolve_task(args.task)
    if args.schema:
        import json

        print(json.dumps(cls.ConfigClass.json_schema(), indent=2))
    else:
        print(cls.ConfigClass().dumps().rstrip("\n"))
    return 0
