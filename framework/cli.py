"""The ``diffim`` command line: ``run``, ``build``, ``tasks``, ``config``, ``plugins`` and plugin commands.

The launcher subcommands live in :mod:`diffim.framework.launch` (``run`` runs a task or a
pipeline on files, pipetask style). Plugins add subcommands through the
``diffim_add_commands(subparsers)`` hook; each added parser must call
``set_defaults(func=handler)`` with ``handler(args) -> int | None``.

Exit codes
----------
0 success (also ``--help``, ``--show``, ``--dry-run``); 1 unexpected error; 2 usage error (bad
arguments, unknown task, output directory exists without ``--clobber``, or a `ValueError` from
a command); 3 plugin error (`~diffim.framework.plugins.PluginError`, or no plugin handles a data
type); 4 config error (bad override or config file, pipeline document, failed contract, debug
file); 5 input error (unknown or missing input, missing or unreadable input file, bad inputs
table); 6 task failure (or every row of an inputs table failed); 7 partial failure (some rows
of an inputs table failed); 130 interrupted.

Errors print one ``diffim: error: ...`` line on stderr; the traceback is added with
``--traceback``, ``DIFFIM_TRACEBACK=1`` or a ``--log-level`` of DEBUG (or TRACE) for diffim.

Only argparse is imported at module level so that ``diffim --help`` starts fast; the
plugin manager is loaded inside `main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .plugins import DiffimPluginManager, PluginInfo

from .launch.errors import (
    EXIT_CODES_HELP,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_PLUGIN_ERROR,
    EXIT_TASK,
    EXIT_USAGE,
    LaunchError,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_PLUGIN_ERROR",
    "EXIT_TASK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

TRACEBACK_ENV = "DIFFIM_TRACEBACK"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffim")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser(pm: DiffimPluginManager) -> argparse.ArgumentParser:
    """Build the ``diffim`` argument parser, including plugin-added subcommands.

    Parameters
    ----------
    pm : `~diffim.framework.plugins.DiffimPluginManager`
        Manager whose ``diffim_add_commands`` implementations are called.

    Returns
    -------
    parser : `argparse.ArgumentParser`

    Raises
    ------
    PluginError
        If a plugin fails while adding commands, or adds one without ``func``.
    """
    from .launch.commands import add_launcher_commands
    from .plugins import PluginError

    parser = argparse.ArgumentParser(
        prog="diffim",
        description="PSF matching and image subtraction on a light Task framework.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    version = f"diffim {_version()}"
    parser.add_argument("--version", action="version", version=version)
    parser.add_argument(
        "--traceback",
        action="store_true",
        help=f"show the full traceback on errors (also {TRACEBACK_ENV}=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_launcher_commands(subparsers, version=version)

    plugins = subparsers.add_parser(
        "plugins", help="list registered plugins", description="List registered plugins."
    )
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plugins.set_defaults(func=lambda args: _cmd_plugins(pm, args))

    pm.diffim_add_commands(subparsers)

    for name, sub in subparsers.choices.items():
        if sub.get_default("func") is None:
            msg = (
                f"subcommand {name!r} added by a plugin has no handler; the plugin must call "
                f"set_defaults(func=...) on its parser (see 'diffim plugins' for installed plugins)"
            )
            raise PluginError(msg, hook="diffim_add_commands")
    return parser


def _cmd_plugins(pm: DiffimPluginManager, args: argparse.Namespace) -> int:
    """Print the registered plugins as a table or as JSON."""
    infos = pm.list_plugins()
    if args.json:
        import dataclasses
        import json

        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return EXIT_OK
    print(_format_table(infos))
    return EXIT_OK


def _format_table(infos: Sequence[PluginInfo]) -> str:
    header = ("name", "distribution", "version", "hooks")
    rows = [header] + [
        (info.name, info.distribution or "-", info.version or "-", ", ".join(info.hooks) or "-")
        for info in infos
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    if not infos:
        lines.append("(no plugins registered)")
    return "\n".join(lines)


def _error(exc: BaseException, show_traceback: bool) -> None:
    if show_traceback:
        remote = getattr(exc, "remote_traceback", None)
        if remote:  # the failure happened inside a job (possibly in a worker process)
            print(remote.rstrip(), file=sys.stderr)
        else:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"diffim: error: {text}", file=sys.stderr)


def _exit_code_of(exc: Exception) -> int:
    """Map an exception from a command to the documented exit code."""
    from .plugins import PluginError

    if isinstance(exc, PluginError):
        return EXIT_PLUGIN_ERROR
    if isinstance(exc, LaunchError):
        return exc.exit_code
    # only look at modules already imported: an exception cannot come from one that is not
    errors = sys.modules.get("diffim.framework.config.errors")
    if errors is not None and isinstance(exc, errors.ConfigError):
        return EXIT_CONFIG
    debug = sys.modules.get("diffim.framework.debug")
    if debug is not None and isinstance(exc, debug.DebugFileError):
        return EXIT_CONFIG
    if isinstance(exc, ValueError):
        return EXIT_USAGE
    return EXIT_ERROR


def _debug_logging_requested(options: Sequence[str]) -> bool:
    """Whether a ``--log-level`` asks for DEBUG (or finer) on diffim: then tracebacks are shown."""
    from .log import DEBUG, parse_log_level_spec

    values = []
    for i, option in enumerate(options):
        if option == "--log-level" and i + 1 < len(options):
            values.append(options[i + 1])
        elif option.startswith("--log-level="):
            values.append(option.partition("=")[2])
    for value in values:
        try:
            component, level = parse_log_level_spec(value)
        except ValueError:
            continue
        if component in (None, "", "diffim") and level <= DEBUG:
            return True
    return False


def _exit_code(exc: SystemExit) -> int:
    code: Any = exc.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") convention
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    """Run the ``diffim`` command line.

    Parameters
    ----------
    argv : `list` [`str`] or `None`, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    code : `int`
        Process exit code (see the module docstring). `main` never raises `SystemExit`,
        so it can be called in-process.
    """
    from .plugins import get_plugin_manager

    args_list = sys.argv[1:] if argv is None else list(argv)
    # Known before parsing, so failures while building the parser honour it too.
    options = args_list[: args_list.index("--")] if "--" in args_list else args_list
    show_traceback = (
        "--traceback" in options
        or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
        or _debug_logging_requested(options)
    )
    try:
        parser = build_parser(get_plugin_manager())
        args = parser.parse_args(args_list)
        args.command_argv = args_list  # recorded in run.json
        result = args.func(args)
        return EXIT_OK if result is None else int(result)
    except SystemExit as exc:  # argparse errors, --help, --version, or a command's sys.exit
        return _exit_code(exc)
    except KeyboardInterrupt:
        print("diffim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error becomes one line and an exit code
        _error(exc, show_traceback)
        return _exit_code_of(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
