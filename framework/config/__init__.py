"""Typed configs with pex_config's habits, on pydantic v2.

See :class:`Config` for the base class; :func:`ConfigChoiceField`, :func:`ConfigurableField`,
:func:`RegistryField`, :func:`ConfigField` declare structured fields; :class:`Allowed` and
:func:`RegistryName` restrict plain values.
"""

from __future__ import annotations

from .allowed import Allowed
from .base import Config, ConfigField, Field
from .choice import ConfigChoice, ConfigChoiceField, RegistryField
from .compare import diff
from .errors import (
    ConfigError,
    ConfigRetargetWarning,
    FieldValidationError,
    FrozenConfigError,
    UnknownFieldError,
)
from .history import MAX_HISTORY, HistoryEntry, history_source
from .overrides import apply_override, load_override_file, parse_value
from .persist import load_config, write_atomic
from .registry import Registry, RegistryEntry, RegistryName
from .subtask import ConfigurableField, ConfigurableInstance, import_target, target_name

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
