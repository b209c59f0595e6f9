"""diffim.framework: a light, typed Task/Config framework in the style of LSST's pipe_base.

Nothing heavy is imported here: every public name is resolved lazily on first use, so
``import diffim.framework`` stays fast (see ``benchmarks/framework.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # config
    "Config": "config",
    "Field": "config",
    "Allowed": "config",
    "ConfigChoice": "config",
    "ConfigChoiceField": "config",
    "ConfigurableField": "config",
    "ConfigurableInstance": "config",
    "Registry": "config",
    "RegistryField": "config",
    "RegistryName": "config",
    "ConfigError": "config",
    "FieldValidationError": "config",
    "UnknownFieldError": "config",
    "FrozenConfigError": "config",
    # task
    "Task": "task",
    "TaskError": "task",
    "Struct": "struct",
    "TaskMetadata": "metadata",
    "timeMethod": "timing",
    # logging
    "getLogger": "log",
    "getTraceLogger": "log",
    "trace_set_at": "log",
    "TRACE": "log",
    "VERBOSE": "log",
    # launcher connections
    "Input": "connections",
    "Output": "connections",
    # plugins
    "hookimpl": "plugins",
    "hookspec": "plugins",
    "get_plugin_manager": "plugins",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from .connections import Input, Output
    from .config import (
        Allowed,
        Config,
        ConfigChoice,
        ConfigChoiceField,
        ConfigError,
        ConfigurableField,
        ConfigurableInstance,
        Field,
        FieldValidationError,
        FrozenConfigError,
        Registry,
        RegistryField,
        RegistryName,
        UnknownFieldError,
    )
    from .log import TRACE, VERBOSE, getLogger, getTraceLogger, trace_set_at
    from .metadata import TaskMetadata
    from .plugins import get_plugin_manager, hookimpl, hookspec
    from .struct import Struct
    from .task import Task, TaskError
    from .timing import timeMethod


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("diffim")
    try:
        module = _EXPORTS[name]
    except KeyError:
        msg = f"module 'diffim.framework' has no attribute {name!r}"
        raise AttributeError(msg) from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
