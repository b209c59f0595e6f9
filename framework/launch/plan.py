"""Turn a resolved pipeline plus ``-i``/``--inputs-table``/``-o`` into job specs (and a printable plan).

Inputs
------
The *external* inputs of a pipeline are the declared inputs of its tasks, except an input that
is not given and is an output (of the same data type) of an earlier task: that one is passed
along in memory. An input name declared by several tasks must have one data type; it is read
once per job and given to every task declaring it.

Inputs table (``--inputs-table FILE.csv``)
------------------------------------------
A CSV file with a header row: one column per external input, plus an optional ``id`` column
(default ids are the row numbers, zero-padded). Values given with ``-i`` apply to every row
(a column of the same name wins). Relative paths are taken from the table file's folder. An
empty cell leaves an optional input out. Each row runs into ``OUTDIR/<id>/``; a row whose input
is missing or whose file does not exist fails alone (recorded in ``run.json``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .jobs import JobSpec, TaskSpec, output_stem, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from ..connections import Input
    from ..pipeline import Pipeline

__all__ = ["Plan", "external_inputs", "format_plan", "make_plan", "parse_input_args"]

ID_COLUMN = "id"


@dataclasses.dataclass
class Plan:
    """What a ``diffim run`` will do.

    Attributes
    ----------
    pipeline : `~diffim.framework.pipeline.Pipeline`
        The resolved pipeline.
    outdir : `pathlib.Path` or `None`
        The ``-o`` folder.
    inputs : `dict` [`str`, `~diffim.framework.connections.Input`]
        External inputs.
    jobs : `list` [`~diffim.framework.launch.jobs.JobSpec`]
        Jobs to run (or skip, see `skipped`), in order.
    failed : `dict` [`int`, `dict`]
        Job index -> record of a row that failed before running (bad inputs).
    skipped : `set` [`int`]
        Job indices already complete (``--resume``).
    table : `pathlib.Path` or `None`
        The inputs table, if any.
    """

    pipeline: Pipeline
    outdir: Path | None
    inputs: dict[str, Input]
    jobs: list[JobSpec]
    failed: dict[int, dict[str, Any]]
    skipped: set[int] = dataclasses.field(default_factory=set)
    table: Path | None = None


def external_inputs(pipeline: Pipeline, given: Sequence[str] = ()) -> tuple[dict[str, Input], set[str]]:
    """Return the pipeline's external inputs and the names of the required ones.

    Parameters
    ----------
    pipeline : `~diffim.framework.pipeline.Pipeline`
        The resolved pipeline.
    given : sequence of `str`, optional
        Input names given explicitly (never taken from an earlier task's output).

    Returns
    -------
    inputs : `dict` [`str`, `~diffim.framework.connections.Input`]
        Name -> declaration (the first task's).
    required : `set` [`str`]
        Names some task needs (declared without ``optional``).

    Raises
    ------
    InputError
        If two tasks declare one input name with different data types.
    """
    from ..connections import task_inputs, task_outputs

    produced: dict[str, str] = {}
    inputs: dict[str, Input] = {}
    required: set[str] = set()
    for label, task in pipeline.tasks.items():
        for name, declared in task_inputs(task.task_class).items():
            if name not in given and produced.get(name) == declared.type:
                continue
            previous = inputs.get(name)
            if previous is not None and previous.type != declared.type:
                msg = (
                    f"input {name!r} is declared with two data types ({previous.type!r} and "
                    f"{declared.type!r} by task {label!r}); the tasks cannot share it"
                )
                raise InputError(msg)
            inputs.setdefault(name, declared)
            if not declared.optional:
                required.add(name)
        for name, output in task_outputs(task.task_class).items():
            produced[name] = output.type
    return inputs, required


def parse_input_args(values: Sequence[str]) -> dict[str, str]:
    """Parse ``-i NAME=PATH`` values.

    Parameters
    ----------
    values : sequence of `str`
        As typed.

    Returns
    -------
    inputs : `dict` [`str`, `str`]

    Raises
    ------
    InputError
        For a value without ``=`` or a name given twice.
    """
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            msg = f"bad input {value!r}: expected -i NAME=PATH, e.g. -i science=calexp.fits"
            raise InputError(msg)
        if name in parsed:
            msg = f"input {name!r} is given twice (-i {name}={parsed[name]} and -i {value})"
            raise InputError(msg)
        parsed[name] = path
    return parsed


def _unknown_input(name: str, inputs: Mapping[str, Input], where: str) -> InputError:
    close = difflib.get_close_matches(name, list(inputs), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    declared = ", ".join(f"{n} ({i.type})" for n, i in inputs.items()) or "none"
    return InputError(f"{where}: unknown input {name!r}; {hint}the pipeline's inputs are: {declared}")


def _missing_input(name: str, decl: Input) -> str:
    return f"missing input {name!r} ({decl.doc.rstrip('.')}); give -i {name}=PATH"


def _read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    import csv

    if not path.is_file():
        msg = f"inputs table '{path}' does not exist"
        raise InputError(msg)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = []
        for row in reader:
            if None in row:
                msg = f"inputs table '{path}' line {reader.line_num}: more cells than columns"
                raise InputError(msg)
            rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
    if not columns:
        msg = f"inputs table '{path}' has no header row; the first line names the inputs (and 'id')"
        raise InputError(msg)
    rows = [row for row in rows if any(row.values())]
    if not rows:
        msg = f"inputs table '{path}' has no rows"
        raise InputError(msg)
    return columns, rows


def _check_id(job_id: str, path: Path, number: int) -> None:
    if not job_id or job_id in (".", "..") or "/" in job_id or "\\" in job_id:
        msg = (
            f"inputs table '{path}' row {number}: id {job_id!r} cannot name a folder; "
            "use letters, digits, '-', '_' or '.'"
        )
        raise InputError(msg)


def make_plan(
    pipeline: Pipeline,
    *,
    inputs: Mapping[str, str],
    outdir: Path | None,
    table: Path | None = None,
    header: Mapping[str, Any] | None = None,
) -> Plan:
    """Check the inputs and build the jobs.

    Parameters
    ----------
    pipeline : `~diffim.framework.pipeline.Pipeline`
        The resolved pipeline.
    inputs : `~collections.abc.Mapping` [`str`, `str`]
        ``-i`` values.
    outdir : `pathlib.Path` or `None`
        The ``-o`` folder (`None` only for a dry run).
    table : `pathlib.Path`, optional
        ``--inputs-table`` file.
    header : `~collections.abc.Mapping`, optional
        ``run.json`` header for the per-row records of a table run.

    Returns
    -------
    plan : `Plan`

    Raises
    ------
    InputError
        Unknown or missing inputs, a missing input file (single run), a malformed table.
    """
    from .registry import register_class

    given = list(inputs)
    columns: list[str] = []
    rows: list[dict[str, str]] = []
    if table is not None:
        columns, rows = _read_table(table)
        given += [c for c in columns if c != ID_COLUMN]
    declared, required = external_inputs(pipeline, given)
    for name in inputs:
        if name not in declared:
            raise _unknown_input(name, declared, f"-i {name}={inputs[name]}")
    for name in columns:
        if name != ID_COLUMN and name not in declared:
            raise _unknown_input(name, declared, f"inputs table '{table}' column")
    base = Path(outdir) if outdir is not None else Path("OUTDIR")
    specs = [TaskSpec(label, register_class(t.task_class), t.config.to_dict()) for label, t in pipeline.tasks.items()]
    nested = len(specs) > 1
    types = {name: decl.type for name, decl in declared.items()}
    jobs: list[JobSpec] = []
    failed: dict[int, dict[str, Any]] = {}
    if table is None:
        for name in sorted(required - set(inputs)):
            raise InputError(_missing_input(name, declared[name]))
        for name, file in inputs.items():
            if not Path(file).is_file():
                reason = "is not a file" if Path(file).exists() else "does not exist"
                msg = f"input {name!r}: file '{file}' {reason}"
                raise InputError(msg)
        jobs.append(JobSpec(0, None, str(base), specs, dict(inputs), types, nested))
        return Plan(pipeline, outdir, declared, jobs, failed)

    for name in sorted(required - set(given)):
        msg = f"{_missing_input(name, declared[name])} or add a column {name!r} to the inputs table '{table}'"
        raise InputError(msg)
    width = len(str(len(rows) - 1))
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        number = index + 1
        job_id = row.get(ID_COLUMN) if ID_COLUMN in columns else f"{index:0{width}d}"
        job_id = (job_id or "").strip()
        _check_id(job_id, table, number)
        if job_id in seen:
            msg = f"inputs table '{table}' row {number}: id {job_id!r} repeats row {seen[job_id]}"
            raise InputError(msg)
        seen[job_id] = number
        row_inputs = dict(inputs)
        for name in declared:
            cell = row.get(name, "")
            if cell:
                cell_path = Path(cell).expanduser()
                row_inputs[name] = str(cell_path if cell_path.is_absolute() else table.parent / cell_path)
        job = JobSpec(index, job_id, str(base / job_id), specs, row_inputs, types, nested, dict(header or {}))
        jobs.append(job)
        problems = [_missing_input(n, declared[n]) for n in sorted(required - set(row_inputs))]
        problems += [
            f"input {n!r}: file '{f}' does not exist" for n, f in row_inputs.items() if not Path(f).is_file()
        ]
        if problems:
            failed[index] = _failed_record(job, problems[0])
    return Plan(pipeline, outdir, declared, jobs, failed, table=table)


def _failed_record(job: JobSpec, error: str) -> dict[str, Any]:
    now = utc_now()
    return {
        "index": job.index,
        "id": job.id,
        "directory": job.directory,
        "status": "failed",
        "inputs": dict(job.inputs),
        "tasks": {},
        "start": now,
        "end": now,
        "seconds": 0.0,
        "error": error,
        "error_kind": "input",
        "traceback": None,
    }


def format_plan(plan: Plan, executor: Mapping[str, Any]) -> str:
    """Return the ``--dry-run`` description of a plan.

    Parameters
    ----------
    plan : `Plan`
        The plan.
    executor : `~collections.abc.Mapping`
        Executor name and options.

    Returns
    -------
    text : `str`
    """
    from ..connections import task_outputs

    pipeline = plan.pipeline
    options = ", ".join(f"{k}={v}" for k, v in executor.items() if k != "name" and v is not None)
    summary = (
        f"dry run (nothing is written): {len(pipeline.tasks)} task(s), {len(plan.jobs)} job(s), "
        f"executor {executor.get('name')}{f' ({options})' if options else ''}"
    )
    lines = [
        summary,
        f"output directory: {plan.outdir if plan.outdir is not None else '(none given: -o OUTDIR)'}",
        f"pipeline: {pipeline.source}",
    ]
    for label, task in pipeline.tasks.items():
        lines.append(f"  {label}: {task.class_path}")
    lines.append("inputs: " + (", ".join(f"{n} ({i.type})" for n, i in plan.inputs.items()) or "none"))
    for job in plan.jobs:
        where = f" [{job.id}]" if job.id is not None else ""
        state = ""
        if job.index in plan.failed:
            state = f"  FAILS: {plan.failed[job.index]['error']}"
        elif job.index in plan.skipped:
            state = "  SKIPPED: complete (--resume)"
        lines.append(f"job {job.index}{where} -> {job.directory}{state}")
        for name, file in job.inputs.items():
            lines.append(f"  read {name} <- {file}")
        for spec in job.tasks:
            task = pipeline.tasks[spec.label]
            for name, output in task_outputs(task.task_class).items():
                stem = output_stem(job.directory, spec.label, name, job.nested)
                optional = ", optional" if output.optional else ""
                lines.append(f"  write {spec.label}.{name} -> {stem}.* ({output.type}{optional})")
            lines.append(
                f"  write {spec.label}_config.yaml, {spec.label}_metadata.json, {spec.label}_log.jsonl"
            )
        lines.append("  write run.json")
    return "\n".join(lines)
