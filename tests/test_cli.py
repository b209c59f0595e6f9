"""Tests for the ``diffim`` command line (diffim.framework.cli)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from diffim.framework.cli import EXIT_ERROR, EXIT_PLUGIN_ERROR, EXIT_USAGE, main
from diffim.framework.plugins import hookimpl, isolated_plugin_manager, reset_plugin_manager


@pytest.fixture(autouse=True)
def _clean_plugin_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "DIFFIM_DISABLE_PLUGIN_AUTOLOAD",
        "DIFFIM_BLOCK_PLUGINS",
        "DIFFIM_TRACE_PLUGINS",
        "DIFFIM_TRACEBACK",
    ):
        monkeypatch.delenv(var, raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


class Greeter:
    """Plugin adding ``greet`` (prints, exit 0), ``fail-value`` and ``fail-other``."""

    @hookimpl
    def diffim_add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        greet = subparsers.add_parser("greet", help="print a greeting")
        greet.add_argument("--code", type=int, default=None)
        greet.set_defaults(func=self.greet)
        bad = subparsers.add_parser("fail-value")
        bad.set_defaults(func=self.fail_value)
        other = subparsers.add_parser("fail-other")
        other.set_defaults(func=self.fail_other)

    @staticmethod
    def greet(args: argparse.Namespace) -> int | None:
        print("greetings")
        return args.code

    @staticmethod
    def fail_value(args: argparse.Namespace) -> int:
        msg = "bad option value 'x' for --y;\nuse a number"
        raise ValueError(msg)

    @staticmethod
    def fail_other(args: argparse.Namespace) -> int:
        msg = "something broke"
        raise RuntimeError(msg)


class Exploding:
    @hookimpl
    def diffim_add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        msg = "cannot add commands"
        raise RuntimeError(msg)


def _single_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("diffim: error: ")
    return lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_plugin_manager():
        assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"diffim {importlib.metadata.version('diffim')}\n"


def test_plugins_listing_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_plugin_manager(builtins=False) as pm:
        pm.register(Greeter(), name="greeter")
        assert main(["plugins"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["name", "distribution", "version", "hooks"]
        assert lines[1].split() == ["greeter", "-", "-", "diffim_add_commands"]
        assert main(["plugins", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
    assert data == [
        {"name": "greeter", "distribution": None, "version": None, "hooks": ["diffim_add_commands"]}
    ]


def test_plugins_listing_empty(capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_plugin_manager(builtins=False):
        assert main(["plugins"]) == 0
    assert "(no plugins registered)" in capsys.readouterr().out


def test_unknown_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_plugin_manager():
        assert main(["no-such-command"]) == EXIT_USAGE
        assert "invalid choice: 'no-such-command'" in capsys.readouterr().err
        assert main([]) == EXIT_USAGE
        assert "required: COMMAND" in capsys.readouterr().err


def test_plugin_added_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_plugin_manager(Greeter()):
        assert main(["greet"]) == 0  # handler returning None means success
        assert capsys.readouterr().out == "greetings\n"
        assert main(["greet", "--code", "4"]) == 4
        assert main(["--help"]) == 0
        assert "greet" in capsys.readouterr().out


def test_command_errors_map_to_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_plugin_manager(Greeter()):
        assert main(["fail-value"]) == EXIT_USAGE
        line = _single_error_line(capsys.readouterr().err)
        assert line == "diffim: error: bad option value 'x' for --y; use a number"
        assert main(["fail-other"]) == EXIT_ERROR
        assert _single_error_line(capsys.readouterr().err) == "diffim: error: something broke"


def test_plugin_raising_in_add_commands_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with isolated_plugin_manager() as pm:
        pm.register(Exploding(), name="exploding")
        assert main(["plugins"]) == EXIT_PLUGIN_ERROR
    line = _single_error_line(capsys.readouterr().err)
    assert "plugin 'exploding' failed in hook 'diffim_add_commands'" in line
    assert "cannot add commands" in line


def test_traceback_flag_and_env_var(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with isolated_plugin_manager() as pm:
        pm.register(Exploding(), name="exploding")
        assert main(["--traceback", "plugins"]) == EXIT_PLUGIN_ERROR
        err = capsys.readouterr().err
        assert "Traceback" in err and "RuntimeError: cannot add commands" in err
        assert err.splitlines()[-1].startswith("diffim: error: plugin 'exploding'")
        monkeypatch.setenv("DIFFIM_TRACEBACK", "1")
        assert main(["plugins"]) == EXIT_PLUGIN_ERROR
        assert "Traceback" in capsys.readouterr().err


def test_subcommand_clash_and_missing_handler(capsys: pytest.CaptureFixture[str]) -> None:
    class Clash:
        @hookimpl
        def diffim_add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
            subparsers.add_parser("plugins")

    class NoFunc:
        @hookimpl
        def diffim_add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
            subparsers.add_parser("lonely")

    with isolated_plugin_manager() as pm:
        pm.register(Clash(), name="clash")
        assert main(["plugins"]) == EXIT_PLUGIN_ERROR
        line = _single_error_line(capsys.readouterr().err)
        assert "plugin 'clash' failed" in line and "conflicting subparser: plugins" in line
    with isolated_plugin_manager(NoFunc()):
        assert main(["lonely"]) == EXIT_PLUGIN_ERROR
        line = _single_error_line(capsys.readouterr().err)
        assert "subcommand 'lonely'" in line and "set_defaults(func=...)" in line


def test_plugin_load_failure_in_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Dist:
        def __init__(self) -> None:
            self.metadata = {"Name": "diffim-broken"}
            self.version = "9.9"
            self.entry_points = [
                importlib.metadata.EntryPoint("broken", "diffim_no_such_module_xyz", "diffim")
            ]

    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [Dist()])
    monkeypatch.delattr(sys, "_called_from_test", raising=False)
    assert main(["plugins"]) == EXIT_PLUGIN_ERROR
    line = _single_error_line(capsys.readouterr().err)
    assert "cannot load plugin 'broken'" in line and "DIFFIM_BLOCK_PLUGINS=broken" in line
    monkeypatch.setenv("DIFFIM_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["plugins"]) == 0  # the escape hatch works from the command line
