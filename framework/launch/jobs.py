"""One launcher job: read the inputs, run each task label, write its outputs and records.

`run_job` is the function the executors call, possibly in a fresh (spawned) worker process
or on another machine; a `JobSpec` is plain picklable data, so the worker rebuilds the task
classes (by import path) and configs (from plain values) itself. `run_job` never raises: a
failure becomes a record with ``status: "failed"``, a one-line ``error``, an ``error_kind``
(which decides the exit code) and the ``traceback`` text.

Files written per task label, in the job's folder (every one atomically):

* each declared output through the ``diffim_write_output`` hook, at the stem
  ``<folder>/<output name>`` (single-task pipelines) or ``<folder>/<label>/<output name>``
  (several tasks, so two tasks' outputs of the same name cannot collide);
* ``<label>_config.yaml`` (written before the task runs; reloadable with ``-C``),
  ``<label>_metadata.json`` (``task.getFullMetadata()``), ``<label>_log.jsonl`` (the log
  records emitted while the task ran, as JSON lines; written even when the task fails).

While a job runs, `diffim.framework.debug.display_dir` is ``<folder>/debug`` (unless the user's
debug file chose a folder): the debug displays of ``--debug`` write their figures there.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import platform
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_CONFIG, EXIT_ERROR, EXIT_INPUT, EXIT_PLUGIN_ERROR, EXIT_TASK

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from ..task import Task

__all__ = [
    "DISPLAY_SUBDIR",
    "ERROR_EXIT_CODES",
    "JobSpec",
    "TaskSpec",
    "output_stem",
    "run_job",
    "utc_now",
    "warm_task",
]

#: Sub-folder of a job's folder that debug displays write to (`diffim.framework.debug.display_dir`).
DISPLAY_SUBDIR = "debug"

#: ``error_kind`` of a failed job -> exit code.
ERROR_EXIT_CODES: dict[str, int] = {
    "config": EXIT_CONFIG,
    "input": EXIT_INPUT,
    "plugin": EXIT_PLUGIN_ERROR,
    "task": EXIT_TASK,
    "output": EXIT_TASK,
    "timeout": EXIT_TASK,
    "internal": EXIT_ERROR,
}


@dataclasses.dataclass
class TaskSpec:
    """One task label of a job, as plain picklable data.

    Attributes
    ----------
    label : `str`
        The label (also the task's name).
    class_path : `str`
        Dotted import path of the task class.
    config : `dict`
        ``config.to_dict()`` of the resolved config.
    """

    label: str
    class_path: str
    config: dict[str, Any]


@dataclasses.dataclass
class JobSpec:
    """Everything a worker needs to run one job (one row of an inputs table).

    Attributes
    ----------
    index : `int`
        Position of the job (0-based).
    id : `str` or `None`
        Row id (table runs), `None` for a single run.
    directory : `str`
        Folder the job writes to.
    tasks : `list` [`TaskSpec`]
        Labels to run, in order.
    inputs : `dict` [`str`, `str`]
        External input name -> file path.
    input_types : `dict` [`str`, `str`]
        External input name -> data type name (how to read it).
    nested : `bool`
        Put outputs under ``<directory>/<label>/`` (pipelines of several tasks).
    header : `dict` or `None`
        When set, the job writes ``<directory>/run.json`` itself with this header and its own
        record (table runs, so every finished row is resumable even if the run is killed).
    """

    index: int
    id: str | None
    directory: str
    tasks: list[TaskSpec]
    inputs: dict[str, str]
    input_types: dict[str, str]
    nested: bool = False
    header: dict[str, Any] | None = None


class _JobFailure(Exception):
    def __init__(self, kind: str, message: str, tb: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.tb = tb


def utc_now() -> str:
    """Return the current UTC time in ISO 8601 (`str`)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def output_stem(directory: str | os.PathLike[str], label: str, name: str, nested: bool) -> Path:
    """Return the path stem (no suffix) where output ``name`` of ``label`` is written.

    Parameters
    ----------
    directory : `str` or `os.PathLike`
        The job's folder.
    label : `str`
        Task label.
    name : `str`
        Output name.
    nested : `bool`
        Several labels: outputs go under ``<directory>/<label>/``.

    Returns
    -------
    stem : `pathlib.Path`
    """
    base = Path(directory)
    return (base / label / name) if nested else (base / name)


def _task_class(path: str) -> type[Task]:
    from ..config import import_target
    from .registry import _known_classes

    cls = _known_classes.get(path)
    return cls if cls is not None else import_target(path)  # type: ignore[return-value]


def _build_config(cls: type[Task], data: dict[str, Any]) -> Config:
    from ..config.paths import apply_mapping

    config = cls.ConfigClass()
    apply_mapping(config, data)
    config.freeze()
    return config


class _Capture(logging.Handler):
    """Collect every log record emitted while a task runs, as JSON lines."""

    def __init__(self, label: str, job_id: str | None) -> None:
        from ..log import JsonLinesFormatter

        super().__init__(logging.NOTSET)
        self.label = label
        self.job_id = job_id
        self.lines: list[str] = []
        self.setFormatter(JsonLinesFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        # tag the record first (this handler is installed first) so every handler sees the label
        if not hasattr(record, "label"):
            record.label = self.label
            if self.job_id is not None:
                record.job = self.job_id
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the task
            self.handleError(record)


def _write_text(path: Path, text: str) -> None:
    from ..config.persist import write_atomic

    write_atomic(path, text, overwrite=True)


def _read_inputs(spec: JobSpec) -> dict[str, Any]:
    from ..plugins import PluginError, get_plugin_manager

    pm = get_plugin_manager()
    values: dict[str, Any] = {}
    for name, file in spec.inputs.items():
        type_name = spec.input_types[name]
        path = Path(file)
        if not path.is_file():
            raise _JobFailure("input", f"input {name!r}: file '{path}' does not exist")
        try:
            value = pm.diffim_read_input(type_name, path, {})
        except PluginError as err:
            raise _JobFailure(
                "input",
                f"cannot read input {name!r} from '{path}': {_one_line(str(err))}",
                traceback.format_exc(),
            ) from None
        if value is None:
            msg = (
                f"no I/O plugin reads data type {type_name!r} (input {name!r}, file '{path}'); "
                "install a plugin implementing diffim_read_input for it (see 'diffim plugins')"
            )
            raise _JobFailure("plugin", msg)
        values[name] = value
    return values


def _run_label(
    spec: JobSpec, task_spec: TaskSpec, values: dict[str, Any], record: dict[str, Any]
) -> None:
    from ..config import ConfigError
    from ..connections import task_inputs, task_outputs
    from ..task import TaskError

    label = task_spec.label
    directory = Path(spec.directory)
    entry: dict[str, Any] = {"class": task_spec.class_path, "status": "running", "outputs": {}}
    record["tasks"][label] = entry
    files = entry["files"] = {
        "config": str(directory / f"{label}_config.yaml"),
        "metadata": str(directory / f"{label}_metadata.json"),
        "log": str(directory / f"{label}_log.jsonl"),
    }
    try:
        cls = _task_class(task_spec.class_path)
        config = _build_config(cls, task_spec.config)
    except ConfigError as err:
        raise _JobFailure("config", f"task {label!r}: {_one_line(str(err))}", traceback.format_exc()) from None
    config.save(files["config"])

    capture = _Capture(label, spec.id)
    root = logging.getLogger()
    root.handlers.insert(0, capture)
    task: Task | None = None
    start = time.perf_counter()
    try:
        try:
            task = cls(config=config, name=label)
            kwargs = {name: values[name] for name in task_inputs(cls) if name in values}
            result = task.run(**kwargs)
        except Exception as err:  # noqa: BLE001 - a task failure is recorded, never raised
            tb = traceback.format_exc()
            what = _one_line(str(err)) if isinstance(err, TaskError) else f"{type(err).__name__}: {_one_line(str(err))}"
            capture.lines.append(_error_line(label, what, tb))
            raise _JobFailure("task", f"task {label!r} ({task_spec.class_path}) failed: {what}", tb) from None
        finally:
            entry["seconds"] = round(time.perf_counter() - start, 6)
            root.removeHandler(capture)
            _write_text(Path(files["log"]), "".join(line + "\n" for line in capture.lines))
            if task is not None:
                _write_text(Path(files["metadata"]), task.getFullMetadata().to_json() + "\n")
        _write_outputs(spec, label, cls, result, values, entry, task_outputs(cls))
    except _JobFailure:
        entry["status"] = "failed"
        raise
    entry["status"] = "ok"


def _error_line(label: str, what: str, tb: str) -> str:
    import json

    return json.dumps(
        {"time": utc_now(), "level": "ERROR", "name": f"diffim.{label}", "message": f"task failed: {what}",
         "exc_info": tb, "label": label}
    )


def _write_outputs(
    spec: JobSpec,
    label: str,
    cls: type,
    result: Any,
    values: dict[str, Any],
    entry: dict[str, Any],
    declared: dict[str, Any],
) -> None:
    from ..plugins import PluginError, get_plugin_manager

    pm = get_plugin_manager()
    for name, output in declared.items():
        value = getattr(result, name, None)
        if value is None:
            if output.optional:
                continue
            fields = ", ".join(sorted(getattr(result, "__dict__", {}) or {})) or "none"
            msg = (
                f"task {label!r} ({cls.__module__}.{cls.__qualname__}).run() returned no {name!r}, a "
                f"declared output (its result fields: {fields})"
            )
            raise _JobFailure("task", msg)
        if name not in spec.inputs:  # a later task may take it as an input (unless given explicitly)
            values[name] = value
        stem = output_stem(spec.directory, label, name, spec.nested)
        stem.parent.mkdir(parents=True, exist_ok=True)
        try:
            written = pm.diffim_write_output(output.type, value, stem)
        except PluginError as err:
            raise _JobFailure(
                "output",
                f"cannot write output {name!r} of task {label!r}: {_one_line(str(err))}",
                traceback.format_exc(),
            ) from None
        if written is None:
            msg = (
                f"no I/O plugin writes data type {output.type!r} (output {name!r} of task {label!r}); "
                "install a plugin implementing diffim_write_output for it (see 'diffim plugins')"
            )
            raise _JobFailure("plugin", msg)
        entry["outputs"][name] = str(written)


def warm_task(class_path: str) -> None:
    """Import a task class and the modules of its declared input and output types, then call its
    ``warm_up()`` (worker warm-up).

    Called in worker processes before their first job (``diffim run -j N`` starts the workers
    while the launcher resolves the pipeline), so those imports overlap the launcher's work
    instead of delaying the first job. Best effort: a type that does not import is skipped.

    Parameters
    ----------
    class_path : `str`
        Dotted path of the task class (or of its module: then only the module is imported).
    """
    import importlib

    from ..config import import_target
    from ..connections import task_inputs, task_outputs

    try:
        cls = import_target(class_path)
    except Exception:  # noqa: BLE001 - a module path: importing it is all we can do
        importlib.import_module(class_path)
        return
    for declared in (*task_inputs(cls).values(), *task_outputs(cls).values()):
        module = declared.type.rpartition(".")[0]
        if module:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001, S112 - the job reports what it really needs
                continue
    warm_up = getattr(cls, "warm_up", None)
    if callable(warm_up):
        try:
            warm_up()
        except Exception:  # noqa: BLE001 - best effort: the job itself reports real problems
            return


def run_job(spec: JobSpec) -> dict[str, Any]:
    """Run one job and return its record (never raises for job failures).

    Parameters
    ----------
    spec : `JobSpec`
        The job.

    Returns
    -------
    record : `dict`
        ``index``, ``id``, ``directory``, ``status`` (``"ok"`` or ``"failed"``), ``inputs``,
        ``tasks`` (label -> class, status, seconds, outputs, files), ``start``, ``end``,
        ``seconds``, ``host``, ``pid``, ``error``, ``error_kind``, ``traceback``.
    """
    record: dict[str, Any] = {
        "index": spec.index,
        "id": spec.id,
        "directory": spec.directory,
        "status": "running",
        "inputs": dict(spec.inputs),
        "tasks": {},
        "start": utc_now(),
        "host": platform.node(),
        "pid": os.getpid(),
        "error": None,
        "error_kind": None,
        "traceback": None,
    }
    start = time.perf_counter()
    # debug displays (--debug) draw into <job folder>/debug unless the debug file chose a folder
    from .. import debug

    chosen_display_dir = debug.set_display_dir(Path(spec.directory) / DISPLAY_SUBDIR)
    if chosen_display_dir is not None:
        debug.set_display_dir(chosen_display_dir)
    try:
        Path(spec.directory).mkdir(parents=True, exist_ok=True)
        values = _read_inputs(spec)
        for task_spec in spec.tasks:
            _run_label(spec, task_spec, values, record)
        record["status"] = "ok"
    except _JobFailure as failure:
        record.update(status="failed", error=str(failure), error_kind=failure.kind, traceback=failure.tb)
    except Exception as err:  # noqa: BLE001 - e.g. a full disk while writing records
        record.update(
            status="failed",
            error=f"{type(err).__name__}: {_one_line(str(err))}",
            error_kind="internal",
            traceback=traceback.format_exc(),
        )
    finally:
        debug.set_display_dir(chosen_display_dir)
    record["end"] = utc_now()
    record["seconds"] = round(time.perf_counter() - start, 6)
    if spec.header is not None:
        try:
            from .outputs import write_run_record

            write_run_record(Path(spec.directory) / "run.json", spec.header, [record], record["status"])
        except Exception as err:  # noqa: BLE001 - the main process still gets the record
            record["record_error"] = f"{type(err).__name__}: {_one_line(str(err))}"
    return record
