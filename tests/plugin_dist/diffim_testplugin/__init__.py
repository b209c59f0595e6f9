"""Test plugin for diffim: adds a ``hello`` subcommand to the ``diffim`` CLI."""

from __future__ import annotations

import argparse
from typing import Any

from diffim.framework.plugins import hookimpl

__all__ = ["diffim_add_commands"]


def _hello(args: argparse.Namespace) -> int:
    print(f"hello {args.name} from diffim-testplugin")
    return 0


@hookimpl
def diffim_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``hello`` subcommand."""
    parser = subparsers.add_parser("hello", help="print a greeting (diffim-testplugin)")
    parser.add_argument("--name", default="world", help="who to greet")
    parser.set_defaults(func=_hello)
