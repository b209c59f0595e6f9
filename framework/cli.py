"""The ``diffim`` command line (minimal launcher: ``--version``, ``plugins`` and plugin commands).

Plugins add subcommands through the ``diffim_add_commands(subparsers)`` hook; each added
parser must call ``set_defaults(func=handler)`` with ``handler(args) -> int | None``.

Exit codes: 0 success, 1 unexpected error, 2 usage error (bad arguments or a `ValueError`
from a command), 3 plugin error (`~diffim.framework.plugins.PluginError`), 130 interrupted.
Errors print one ``diffim: error: ...`` line on stderr; the traceback is added with
``--traceback`` or ``DIFFIM_TRACEBACK=1``.

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

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PLUGIN_ERROR",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PLUGIN_ERROR = 3
EXIT_INTERRUPTED = 130

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
    from .plugins import PluginError

    parser = argparse.ArgumentParser(
        prog="diffim", description="PSF matching and image subtraction on a light Task framework."
    )
    parser.add_argument("--version", action="version", version=f"diffim {_version()}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help=f"show the full traceback on errors (also {TRACEBACK_ENV}=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"diffim: error: {text}", file=sys.stderr)


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
    from .plugins import PluginError, get_plugin_manager

    args_list = sys.argv[1:] if argv is None else list(argv)
    # Known before parsing, so failures while building the parser honour it too.
    options = args_list[: args_list.index("--")] if "--" in args_list else args_list
    show_traceback = "--traceback" in options or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
    try:
        parser = build_parser(get_plugin_manager())
        args = parser.parse_args(args_list)
        result = args.func(args)
        return EXIT_OK if result is None else int(result)
    except SystemExit as exc:  # argparse errors, --help, --version, or a command's sys.exit
        return _exit_code(exc)
    except KeyboardInterrupt:
        print("diffim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PluginError as exc:
        _error(exc, show_traceback)
        return EXIT_PLUGIN_ERROR
    except ValueError as exc:
        _error(exc, show_traceback)
        return EXIT_USAGE
    except Exception as exc:
        _error(exc, show_traceback)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
