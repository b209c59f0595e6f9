"""Config overrides: ``-c path=value`` strings and override files (.py, YAML, TOML, JSON)."""

from __future__ import annotations

import ast
import json
import re
import tomllib
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .history import history_source
from .node import Node, _join
from .paths import apply_mapping, apply_path

__all__ = ["parse_value", "apply_override", "load_override_file", "read_data_file"]


def parse_value(text: str) -> Any:
    """Parse a command-line value: a Python literal if it is one, else the string itself.

    ``3`` -> 3, ``[1, 2]`` -> [1, 2], ``None`` -> None, ``DF`` -> "DF", ``'DF'`` -> "DF".
    """
    stripped = text.strip()
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return stripped


def apply_override(config: Node, spec: str, *, source: str | None = None) -> None:
    """Apply one ``dotted.path=value`` override (as ``-c`` does).

    Raises
    ------
    ConfigError
        Malformed spec, unknown path (with suggestions) or invalid value (quoting it).
    """
    path, sep, text = spec.partition("=")
    if not sep or not path.strip():
        msg = f"bad config override {spec!r}: expected dotted.path=value, e.g. kernel.name=DF"
        raise ConfigError(msg)
    with history_source(source or f"-c {spec}"):
        apply_path(config, path.strip(), parse_value(text))


def read_data_file(path: Path) -> tuple[Mapping[str, Any], Callable[[str], str]]:
    """Read a YAML/TOML/JSON override file: ``(data, source_of(dotted key) -> 'file:line')``."""
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    lines: dict[str, int] = {}
    if suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
        if isinstance(data, Mapping):
            _yaml_lines(yaml.compose(text), "", lines)
    elif suffix == ".toml":
        data = tomllib.loads(text)
    elif suffix == ".json":
        data = json.loads(text)
    else:
        msg = f"config file '{path}' has an unknown type; use .py, .yaml, .yml, .toml or .json"
        raise ConfigError(msg)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        msg = f"config file '{path}' must hold a mapping of field names to values, not {type(data).__name__}"
        raise ConfigError(msg)
    text_lines = text.splitlines()

    def source_of(key: str) -> str:
        line = lines.get(key) or _search_line(text_lines, key)
        return f"{path}:{line}" if line else str(path)

    return data, source_of


def _yaml_lines(node: Any, prefix: str, out: dict[str, int]) -> None:
    from yaml import MappingNode

    if not isinstance(node, MappingNode):
        return
    for key_node, value_node in node.value:
        key = _join(prefix, str(key_node.value))
        out[key] = key_node.start_mark.line + 1
        _yaml_lines(value_node, key, out)


def _search_line(lines: list[str], key: str) -> int | None:
    last = re.escape(key.rsplit(".", 1)[-1])
    pattern = re.compile(rf"""^\s*["']?(?:[\w.\[\]'"-]*\.)?{last}["']?\s*[=:]""")
    for number, line in enumerate(lines, start=1):
        if pattern.search(line):
            return number
    return None


def load_override_file(config: Node, path: str | Path) -> None:
    """Apply an override file to ``config``.

    * ``.py``: executed with ``config`` bound, as LSST's ``-C`` files (``config.kernel.name = "AL"``);
      trusted code, like any Python you run.
    * ``.yaml``/``.yml``/``.toml``/``.json``: nested or dotted keys, parsed safely; each value's
      history records ``file:line``. A ``__class__`` key (written by ``save``) is checked elsewhere
      and ignored here.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"config file '{path}' does not exist"
        raise ConfigError(msg)
    if path.suffix == ".py":
        _exec_python_file(config, path)
        return
    data, source_of = read_data_file(path)
    data = {k: v for k, v in data.items() if k != "__class__"}
    try:
        apply_mapping(config, data, source_of=source_of)
    except ConfigError as err:
        raise type(err)(f"config file '{path}': {err}") from None


def _exec_python_file(config: Node, path: Path) -> None:
    code_text = path.read_text(encoding="utf-8")
    namespace = {"config": config, "__file__": str(path), "__name__": "__config__"}
    try:
        code = compile(code_text, str(path), "exec")
        exec(code, namespace)  # noqa: S102 - LSST-compatible executable config files
    except ConfigError as err:
        line = _line_in(err, path)
        raise type(err)(f"config file '{path}'{line}: {err}") from None
    except SyntaxError as err:
        msg = f"config file '{path}' line {err.lineno}: SyntaxError: {err.msg}"
        raise ConfigError(msg) from None
    except Exception as err:  # noqa: BLE001 - one clear line for any failure in user code
        line = _line_in(err, path)
        msg = f"config file '{path}'{line}: {type(err).__name__}: {err}"
        raise ConfigError(msg) from err


def _line_in(err: BaseException, path: Path) -> str:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == str(path):
            return f" line {frame.lineno}"
    return ""
