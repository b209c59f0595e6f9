"""Resolve the diffim names quoted by the docs' LSST migration tables (no Sphinx needed).

Used twice: by the ``diffim-migration`` directive of :mod:`diffim_docs` (a name that does not
resolve is a build warning, so an error under ``-W``) and by ``tests/test_docs.py`` (which reads
the same tables from ``docs/migrating.rst``).

A migration table is a directive whose content has one row per line, cells separated by ``|``::

    .. diffim-migration:: Modules
       :kind: module

       lsst.ip.diffim.psfMatch | diffim.tasks.psfMatch | configs and PsfMatchTask

The columns are the LSST name (``-`` for a diffim-only name), the diffim name (``-`` when there
is no equivalent: say why in the notes) and notes. Every diffim name must resolve for the
table's kind (`KINDS`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["KINDS", "MigrationRow", "NameError_", "parse_migration_tables", "resolve"]

NO_EQUIVALENT = "-"


class NameError_(LookupError):
    """A diffim name quoted by the docs does not exist."""


@dataclasses.dataclass(frozen=True)
class MigrationRow:
    """One row of a migration table.

    Attributes
    ----------
    kind : str
        The table's kind (a key of `KINDS`).
    lsst : str
        The LSST name.
    diffim : str
        The diffim name, or ``-``.
    notes : str
        Free text (reStructuredText).
    line : int
        1-based line of the row in its source file.
    """

    kind: str
    lsst: str
    diffim: str
    notes: str
    line: int


# --------------------------------------------------------------------------- resolvers
def _import_object(path: str) -> Any:
    """Import ``pkg.module.Name.attr`` (the longest importable module prefix, then attributes)."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and module_name.startswith(err.name):
                continue
            raise
        for attr in parts[split:]:
            if not hasattr(obj, attr):
                msg = f"{path!r}: {module_name!r} has no attribute {'.'.join(parts[split:])!r}"
                raise NameError_(msg)
            obj = getattr(obj, attr)
        return obj
    msg = f"{path!r}: no module {parts[0]!r}"
    raise NameError_(msg)


def _resolve_module(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        msg = f"module {name!r} does not exist ({err})"
        raise NameError_(msg) from None


def _resolve_object(name: str) -> None:
    _import_object(name)


def _resolve_config(name: str) -> None:
    """``pkg.module.ConfigClass:field.path`` (or just ``pkg.module.ConfigClass``)."""
    from diffim.framework.config import Config
    from diffim.framework.config.errors import UnknownFieldError
    from diffim.framework.config.paths import resolve

    class_path, _, field_path = name.partition(":")
    cls = _import_object(class_path)
    if not (isinstance(cls, type) and issubclass(cls, Config)):
        msg = f"{class_path!r} is not a Config class"
        raise NameError_(msg)
    if field_path:
        try:
            resolve(cls(), field_path)
        except UnknownFieldError as err:
            raise NameError_(f"{class_path}: {err}") from None


@functools.cache
def _debug_flags() -> dict[str, set[str]]:
    """Debug name -> flags read from it, as declared by the built-in displays and tasks."""
    from diffim.plugins.displays import DISPLAYS
    from diffim.plugins.displays.render import DisplayContext, DisplayOptions

    flags: dict[str, set[str]] = {}
    # flags every display context reads from its module (e.g. maskTransparency, showBadCandidates)
    context_flags = {
        name for name, value in vars(DisplayContext).items()
        if isinstance(value, property) and name[0].islower() and name not in ("stage", "module")
    }
    for stage, entries in DISPLAYS.items():
        module = "diffim.tasks." + stage.split(".")[0]
        flags.setdefault(module, {"display"} | context_flags).update(flag for flag, _ in entries)
    flags["diffim.plugins.displays"] = {f.name for f in dataclasses.fields(DisplayOptions)}
    return flags


def _resolve_debug(name: str) -> None:
    """``debug.name:flag`` (or just ``debug.name``), diffim or LSST spelling of the name."""
    import diffim.tasks  # noqa: F401 - registers the lsst.ip.diffim aliases
    from diffim.framework.debug import debug_aliases

    module, _, flag = name.partition(":")
    for lsst, ours in debug_aliases().items():
        if module == lsst or module.startswith(lsst + "."):
            module = ours + module[len(lsst):]
    flags = _debug_flags()
    if module not in flags:
        msg = f"{module!r} is not a debug name diffim reads; known: {sorted(flags)}"
        raise NameError_(msg)
    if flag and flag not in flags[module]:
        msg = f"{module!r} has no debug flag {flag!r}; its flags: {sorted(flags[module])}"
        raise NameError_(msg)


@functools.cache
def _task_loggers() -> dict[str, type]:
    """Logger name -> task class, for the trees of the registered built-in tasks."""
    from diffim.tasks.imagePsfMatch import ImagePsfMatchTask
    from diffim.tasks.modelPsfMatch import ModelPsfMatchTask

    out: dict[str, type] = {}
    for cls in (ImagePsfMatchTask, ModelPsfMatchTask):
        for task in cls().getTaskDict().values():
            out[task.log.name] = type(task)
    return out


def _child_loggers(cls: type) -> set[str]:
    """Names passed to ``self.log.getChild(...)`` in the task class and its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("diffim."):
            try:
                source = inspect.getsource(klass)
            except (OSError, TypeError):
                continue
            names.update(re.findall(r"""\.log\.getChild\(["'](\w+)["']\)""", source))
    return names


def _resolve_logger(name: str) -> None:
    """A diffim logger: the root, a task's logger (or a child it makes), or a module's logger."""
    import diffim.tasks  # noqa: F401 - registers the lsst.ip.diffim logger alias
    from diffim.framework.log import ROOT_LOGGER_NAME, logger_aliases

    for lsst, ours in logger_aliases().items():
        if name == lsst or name.startswith(lsst + "."):
            name = ours + name[len(lsst):]
    if name == ROOT_LOGGER_NAME:
        return
    tasks = _task_loggers()
    if name in tasks:
        return
    parent, _, child = name.rpartition(".")
    if parent in tasks and child in _child_loggers(tasks[parent]):
        return
    if name.startswith(ROOT_LOGGER_NAME + "."):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            pass
        else:
            return
    msg = (
        f"{name!r} is not a diffim logger: neither {ROOT_LOGGER_NAME!r}, a task logger ({sorted(tasks)}), "
        "a child logger a task makes, nor a module's logger"
    )
    raise NameError_(msg)


def _resolve_trace(name: str) -> None:
    """``TRACE<n>.<logger>`` with ``0 <= n <= MAX_TRACE_LEVEL``."""
    from diffim.framework.log import MAX_TRACE_LEVEL

    match = re.fullmatch(r"TRACE(\d)\.(.+)", name)
    if match is None or int(match.group(1)) > MAX_TRACE_LEVEL:
        msg = f"{name!r} is not a graded trace logger name TRACE<0..{MAX_TRACE_LEVEL}>.<logger>"
        raise NameError_(msg)
    _resolve_logger(match.group(2))


@functools.cache
def _parser() -> Any:
    from diffim.framework.cli import build_parser
    from diffim.framework.plugins import get_plugin_manager

    return build_parser(get_plugin_manager())


def _resolve_command(name: str) -> None:
    """``diffim SUBCOMMAND [--option]``: the subcommand and its options exist."""
    import argparse

    words = name.split()
    if not words or words[0] != "diffim":
        msg = f"{name!r}: a command starts with 'diffim'"
        raise NameError_(msg)
    parser = _parser()
    for word in words[1:]:
        if word.startswith("-"):
            if not any(word in action.option_strings for action in parser._actions):
                msg = f"{name!r}: {parser.prog!r} has no option {word!r}"
                raise NameError_(msg)
            continue
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers or word not in subparsers[0].choices:
            msg = f"{name!r}: {parser.prog!r} has no subcommand {word!r}"
            raise NameError_(msg)
        parser = subparsers[0].choices[word]


#: Table kinds and how their diffim names resolve.
KINDS: dict[str, Callable[[str], None]] = {
    "module": _resolve_module,
    "object": _resolve_object,
    "config": _resolve_config,
    "debug": _resolve_debug,
    "logger": _resolve_logger,
    "trace": _resolve_trace,
    "command": _resolve_command,
}


def resolve(kind: str, name: str) -> None:
    """Check that a diffim name exists.

    Parameters
    ----------
    kind : str
        One of `KINDS`.
    name : str
        The diffim name; ``-`` (no equivalent) always resolves.

    Raises
    ------
    NameError_
        If the name does not exist; the message says what is missing.
    ValueError
        If ``kind`` is unknown.
    """
    if kind not in KINDS:
        msg = f"unknown migration table kind {kind!r}; use one of {sorted(KINDS)}"
        raise ValueError(msg)
    if name == NO_EQUIVALENT:
        return
    KINDS[kind](name)


# --------------------------------------------------------------------------- parsing
_DIRECTIVE = re.compile(r"^\.\. diffim-migration::")
_KIND = re.compile(r"^\s+:kind:\s*(\w+)\s*$")


def split_row(text: str) -> tuple[str, str, str]:
    """Split one content line into (LSST name, diffim name, notes).

    Parameters
    ----------
    text : str
        ``LSST | diffim | notes`` (the notes may be empty or contain ``|`` themselves).

    Returns
    -------
    cells : tuple of str
        The three stripped cells; literal markup (double backquotes) is removed from the names.

    Raises
    ------
    ValueError
        If the line has fewer than two ``|``.
    """
    cells = text.split("|", 2)
    if len(cells) != 3:
        msg = f"migration row {text.strip()!r} needs three cells: LSST name | diffim name | notes"
        raise ValueError(msg)
    lsst, diffim, notes = (c.strip() for c in cells)
    return lsst.strip("`"), diffim.strip("`"), notes


def parse_migration_tables(lines: Iterable[str]) -> list[MigrationRow]:
    """Every row of every ``diffim-migration`` directive in a reStructuredText source.

    Parameters
    ----------
    lines : iterable of str
        The source lines.

    Returns
    -------
    rows : list of MigrationRow
        In source order.

    Raises
    ------
    ValueError
        If a directive has no ``:kind:`` option or a row is malformed.
    """
    rows: list[MigrationRow] = []
    kind: str | None = None
    inside = False
    for number, line in enumerate(lines, start=1):
        if _DIRECTIVE.match(line):
            inside, kind = True, None
            continue
        if not inside:
            continue
        if line.strip() and not line[0].isspace():
            inside = False  # the directive's indented block ended
            continue
        option = _KIND.match(line)
        if option:
            kind = option.group(1)
            continue
        if not line.strip() or line.lstrip().startswith(":"):
            continue
        if kind is None:
            msg = f"line {number}: diffim-migration table without a :kind: option"
            raise ValueError(msg)
        lsst, diffim, notes = split_row(line)
        rows.append(MigrationRow(kind, lsst, diffim, notes, number))
    return rows
