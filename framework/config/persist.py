"""Saving and loading complete configs (YAML with field docs as comments, or JSON)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .base import Config
from .errors import ConfigError
from .node import Node

__all__ = ["config_to_yaml", "save_config", "load_config", "write_atomic"]


def _scalar(value: Any) -> str:
    import yaml

    # a one-element flow sequence gives the exact inline YAML of any value ("[3.0]" -> "3.0")
    return yaml.safe_dump([value], default_flow_style=True, width=1 << 30).strip()[1:-1]


def config_to_yaml(config: Config) -> str:
    """Every value of ``config`` as YAML, each field preceded by its description."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        diffim_version = version("diffim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        diffim_version = "unknown"
    cls = type(config)
    lines = [
        f"# {cls.__name__} written by diffim {diffim_version}; reload with Config.load / -C",
        f"__class__: {cls.__module__}.{cls.__qualname__}",
    ]
    _emit(config, config._to_data(), 0, lines)
    return "\n".join(lines) + "\n"


def _emit(node: Node | None, data: dict[str, Any], indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    for key, value in data.items():
        doc = _doc_of(node, key)
        if doc:
            lines.extend(f"{pad}# {line}" for line in _wrap(doc))
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{_scalar(key)}:")
            child = node._child(key) if node is not None and key not in ("target", "name") else None
            _emit(child, value, indent + 1, lines)
        else:
            lines.append(f"{pad}{_scalar(key)}: {_scalar(value)}")


def _doc_of(node: Node | None, key: str) -> str:
    value = getattr(node, "value", None)
    if isinstance(value, Config) and key != "target":  # a subtask field documents its config
        node = value
    if isinstance(node, Config):
        info = type(node).model_fields.get(key)
        return info.description or "" if info else ""
    if key == "target":
        return "Task class built for this subtask."
    if key == "name":
        return "Selected alternative."
    return ""


def _wrap(text: str, width: int = 96) -> list[str]:
    import textwrap

    return textwrap.wrap(" ".join(text.split()), width) or [""]


def write_atomic(path: Path, text: str, *, overwrite: bool) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    if path.exists() and not overwrite:
        msg = f"'{path}' already exists; remove it or pass overwrite=True (--clobber)"
        raise FileExistsError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_config(config: Config, path: str | Path, *, overwrite: bool = True) -> None:
    """Save to ``.yaml``/``.yml`` (commented) or ``.json``; atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        text = config_to_yaml(config)
    elif suffix == ".json":
        cls = type(config)
        payload = {"__class__": f"{cls.__module__}.{cls.__qualname__}", **config._to_data()}
        text = json.dumps(payload, indent=2) + "\n"
    else:
        msg = f"cannot save a config as '{path.suffix}': use .yaml or .json"
        raise ConfigError(msg)
    write_atomic(path, text, overwrite=overwrite)


def load_config(path: str | Path, *, expected: type[Config] | None = None) -> Config:
    """Build the config saved in ``path`` (its ``__class__`` decides the class)."""
    from .overrides import load_override_file, read_data_file
    from .subtask import import_target

    path = Path(path)
    if not path.is_file():
        msg = f"config file '{path}' does not exist"
        raise ConfigError(msg)
    data, _ = read_data_file(path)
    class_path = data.get("__class__")
    if class_path is None:
        if expected is None:
            msg = f"config file '{path}' has no __class__ line; load it into a config with config.load()"
            raise ConfigError(msg)
        cls: type[Config] = expected
    else:
        cls = import_target(str(class_path))
        if expected is not None and not issubclass(cls, expected):
            msg = f"config file '{path}' holds a {class_path}, not a {expected.__module__}.{expected.__qualname__}"
            raise ConfigError(msg)
    config = cls()
    load_override_file(config, path)
    return config
