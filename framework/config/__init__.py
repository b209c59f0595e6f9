"""Typed configs with pex_config's habits, on pydantic v2.

See :class:`Config` for the base class; :func:`ConfigChoiceField`, :func:`ConfigurableField`,
:func:`RegistryField`, :func:`ConfigField` declare structured fields; :class:`Allowed` and
:func:`RegistryName` restrict plain values.
"""

from __future__ import annotations

from .allowed import Allowed
from .base import Config, ConfigField, Field
from .choice import ConfigChoice, ConfigChoiceField, RegistryField
from .errors import (
    ConfigError,
    ConfigRetargetWarning,
    FieldValidationError,
    FrozenConfigError,
    UnknownFieldError,
)
from .history import MAX_HISTORY, HistoryEntry, history_source
from .registry import Registry, RegistryEntry, RegistryName
from .subtask import ConfigurableField, ConfigurableInstance, import_target, target_name

# rarely needed at import time: loaded on first use to keep `import` fast
_LAZY = {
    "diff": "compare",
    "apply_override": "overrides",
    "load_override_file": "overrides",
    "parse_value": "overrides",
    "load_config": "persist",
    "write_atomic": "persist",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'diffim.framework.config' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "MAX_HISTORY",
    "Allowed",
    "Config",
    "ConfigChoice",
    "ConfigChoiceField",
    "ConfigError",
    "ConfigField",
    "ConfigRetargetWarning",
    "ConfigurableField",
    "ConfigurableInstance",
    "Field",
    "FieldValidationError",
    "FrozenConfigError",
    "HistoryEntry",
    "Registry",
    "RegistryEntry",
    "RegistryField",
    "RegistryName",
    "UnknownFieldError",
    "apply_override",
    "diff",
    "history_source",
    "import_target",
    "load_config",
    "load_override_file",
    "parse_value",
    "target_name",
    "write_atomic",
]
