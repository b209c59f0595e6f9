"""``--show`` items (as pipetask's): print something about the resolved pipeline and exit.

Items
-----
``config``
    Every config value of every task, as the YAML ``<label>_config.yaml`` would hold.
``config=[LABEL::]PATTERN[:NOIGNORECASE]``
    Only the fields whose dotted name matches the glob ``PATTERN`` (case-insensitive unless
    ``:NOIGNORECASE``), one ``label: path = value`` line each.
``history=[LABEL::]FIELD``
    Where each value of one field came from (default, pipeline, ``-C`` file:line, ``-c``).
``pipeline``
    The resolved pipeline document (what ``diffim build -s`` saves; reloadable with ``-p``).
``tasks``
    Labels, task classes and their declared inputs and outputs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import Pipeline, PipelineTask

__all__ = ["SHOW_ITEMS", "check_show_items", "format_task_io", "show"]

SHOW_ITEMS = ("config", "history", "pipeline", "tasks")


def check_show_items(items: Sequence[str]) -> None:
    """Validate ``--show`` values before any work is done.

    Parameters
    ----------
    items : sequence of `str`
        The values as typed.

    Raises
    ------
    ValueError
        For an unknown item (usage error, exit code 2) or ``history`` without a field.
    """
    for item in items:
        name, sep, value = item.partition("=")
        if name not in SHOW_ITEMS:
            msg = f"unknown --show item {item!r}; use one of: config[=PATTERN], history=FIELD, pipeline, tasks"
            raise ValueError(msg)
        if name == "history" and not value.strip():
            msg = "--show history needs a field: --show history=[LABEL::]dotted.field"
            raise ValueError(msg)
        if name in ("pipeline", "tasks") and sep:
            msg = f"--show {name} takes no value (got {item!r})"
            raise ValueError(msg)


def _split_label(value: str, pipeline: Pipeline) -> tuple[list[PipelineTask], str]:
    if "::" in value:
        label, _, rest = value.partition("::")
        return [pipeline.task_for(label, f"--show {value}")], rest
    return list(pipeline.tasks.values()), value


def _show_config(pipeline: Pipeline, value: str | None) -> str:
    if not value:
        parts = []
        for task in pipeline.tasks.values():
            parts.append(f"### Configuration for task '{task.label}' ({task.class_path})")
            parts.append(task.config.dumps().rstrip("\n"))
        return "\n".join(parts)
    tasks, pattern = _split_label(value, pipeline)
    ignore_case = True
    if pattern.endswith(":NOIGNORECASE"):
        pattern, ignore_case = pattern[: -len(":NOIGNORECASE")], False
    lines = []
    for task in tasks:
        for path, item in task.config.items_flat():
            matched = (
                fnmatch.fnmatchcase(path.lower(), pattern.lower()) if ignore_case else fnmatch.fnmatchcase(path, pattern)
            )
            if matched:
                lines.append(f"{task.label}: {path} = {item!r}")
    if not lines:
        labels = ", ".join(t.label for t in tasks)
        return f"(no config field of {labels} matches {pattern!r}; try a glob such as '*{pattern}*')"
    return "\n".join(lines)


def _show_history(pipeline: Pipeline, value: str) -> str:
    tasks, field = _split_label(value, pipeline)
    parts = []
    for task in tasks:
        try:
            parts.append(f"{task.label}: {task.config.formatHistory(field)}")
        except ConfigError as err:
            msg = f"--show history={value}: task {task.label!r}: {err}"
            raise type(err)(msg) from None
    return "\n".join(parts)


def format_task_io(task_class: type) -> list[str]:
    """Describe a task class's declared inputs and outputs, one per line.

    Parameters
    ----------
    task_class : `type`
        A task class.

    Returns
    -------
    lines : `list` [`str`]
        ``input NAME (TYPE[, optional]): doc`` and ``output ...`` lines.
    """
    from ..connections import task_inputs, task_outputs

    lines = []
    for kind, declared in (("input", task_inputs(task_class)), ("output", task_outputs(task_class))):
        for name, item in declared.items():
            optional = ", optional" if item.optional else ""
            lines.append(f"{kind} {name} ({item.type}{optional}): {' '.join(item.doc.split())}")
    return lines


def show(pipeline: Pipeline, items: Sequence[str]) -> str:
    """Return the text for the ``--show`` items, in the order given.

    Parameters
    ----------
    pipeline : `~diffim.framework.pipeline.Pipeline`
        The resolved pipeline.
    items : sequence of `str`
        Validated items (see `check_show_items`).

    Returns
    -------
    text : `str`

    Raises
    ------
    ConfigError
        Unknown label or field in ``history=``/``config=``.
    """
    parts = []
    for item in items:
        name, _, value = item.partition("=")
        if name == "config":
            parts.append(_show_config(pipeline, value.strip() or None))
        elif name == "history":
            parts.append(_show_history(pipeline, value.strip()))
        elif name == "pipeline":
            parts.append(pipeline.to_yaml().rstrip("\n"))
        else:
            for task in pipeline.tasks.values():
                parts.append(f"{task.label}: {task.class_path}")
                parts.extend(f"  {line}" for line in format_task_io(task.task_class))
    return "\n".join(parts)
