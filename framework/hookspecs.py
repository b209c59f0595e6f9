"""Framework-level hook specifications of diffim.

Only hooks that concern the framework itself live here (the command line and the
execution machinery). Domain packages contribute their own hookspec modules through the
``diffim.hookspecs`` entry-point group, e.g. ``tasks = "diffim.tasks.hookspecs"``.

Conventions (pluggy's, as in pytest and tox):

- every hook name carries the ``diffim_`` prefix;
- an implementation may accept any subset of the arguments, so new arguments can be added
  without breaking existing plugins;
- unless a docstring says "``firstresult``", every implementation is called, most recently
  registered first (third-party plugins before built-ins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .plugins import hookspec

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from collections.abc import Mapping
    from pathlib import Path

    from .config import Registry

__all__ = [
    "diffim_add_commands",
    "diffim_read_input",
    "diffim_register_executors",
    "diffim_register_tasks",
    "diffim_write_output",
]


# --------------------------------------------------------------------------- command line


@hookspec
def diffim_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add subcommands to the ``diffim`` command line.

    Called once while the ``diffim`` argument parser is built, before the arguments are
    parsed. All implementations are called; return values are ignored.

    .. versionadded:: 0.1

    Parameters
    ----------
    subparsers : `argparse._SubParsersAction`
        The object returned by ``parser.add_subparsers()`` of the top-level ``diffim``
        parser. Add a command with ``subparsers.add_parser(name, help=...)``.

    Notes
    -----
    Contract: every parser added must call ``set_defaults(func=handler)`` where
    ``handler(args: argparse.Namespace) -> int | None`` runs the command and returns its
    exit code (`None` means 0). Raise `ValueError` for bad user input (exit code 2) and
    let other exceptions propagate; the CLI prints them as one ``diffim: error:`` line.
    Command names must be unique: reusing one (including the built-in ``plugins``) is an
    error reported against the plugin.

    Examples
    --------
    >>> from diffim.framework.plugins import hookimpl
    >>> @hookimpl
    ... def diffim_add_commands(subparsers):
    ...     parser = subparsers.add_parser("hello", help="print a greeting")
    ...     parser.add_argument("--name", default="world")
    ...     parser.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)
    """


# ------------------------------------------------------------------------------ execution


@hookspec
def diffim_register_executors(registry: Registry) -> None:
    """Register named executors (serial, process pool, dask, ...) that run task work.

    Called once when the executor registry is first needed. All implementations are
    called; return values are ignored. Built-in executors are registered by the diffim
    distribution's own plugins through this same hook.

    .. versionadded:: 0.1

    Parameters
    ----------
    registry : `diffim.framework.config.Registry`
        Registry mapping executor names to executor factories; add entries with its
        registration method. Names must be unique across plugins.
    """


# ------------------------------------------------------------------------------- launcher


@hookspec
def diffim_register_tasks(registry: Registry) -> None:
    """Register runnable tasks by name, for ``diffim run -t NAME`` and ``diffim tasks``.

    Called once when the task registry is first needed. All implementations are called;
    return values are ignored.

    .. versionadded:: 0.1

    Parameters
    ----------
    registry : `diffim.framework.config.Registry`
        Call ``registry.register(name, TaskClass)``. The target may also be the class's dotted
        import path (a `str`, imported only when the task is used; pass ``doc=`` then), which
        keeps ``diffim tasks`` fast when the task module is heavy. Runnable tasks declare
        ``inputs`` and ``outputs`` (see `diffim.framework.connections`).

    Examples
    --------
    >>> from diffim.framework.plugins import hookimpl
    >>> @hookimpl
    ... def diffim_register_tasks(registry):
    ...     registry.register("MyTask", "mypkg.tasks.MyTask", doc="Measure things.")
    """


@hookspec(firstresult=True)
def diffim_read_input(type_name: str, path: Path, options: Mapping[str, Any]) -> object | None:
    """Read the file ``path`` as a value of data type ``type_name`` (``firstresult``).

    The launcher calls it for each declared input of a task. The first implementation that
    returns something other than `None` wins; plugins registered later (third-party) are
    asked before the built-ins, so a plugin can take over a type.

    .. versionadded:: 0.1

    Parameters
    ----------
    type_name : `str`
        Dotted type name from the task's `~diffim.framework.connections.Input` declaration.
    path : `pathlib.Path`
        The file given on the command line (``-i NAME=PATH``) or in the inputs table.
    options : `~collections.abc.Mapping`
        Reader options (currently empty; reserved for per-input options).

    Returns
    -------
    value : `object` or `None`
        The value read, or `None` when this plugin does not handle ``type_name`` (or this
        file's format). Raise an exception with a one-line message when the file is handled
        but cannot be read.
    """


@hookspec(firstresult=True)
def diffim_write_output(type_name: str, value: object, path: Path) -> Path | None:
    """Write ``value`` (of data type ``type_name``) next to the stem ``path`` (``firstresult``).

    .. versionadded:: 0.1

    Parameters
    ----------
    type_name : `str`
        Dotted type name from the task's `~diffim.framework.connections.Output` declaration.
    value : `object`
        The output value returned by the task.
    path : `pathlib.Path`
        Target path *without* suffix (e.g. ``OUTDIR/subtractedExposure``); the plugin adds
        the suffix of its format, writes atomically (a temporary file then `os.replace`) and
        overwrites an existing file.

    Returns
    -------
    written : `pathlib.Path` or `None`
        The path written, or `None` when this plugin does not handle ``type_name``.
    """
