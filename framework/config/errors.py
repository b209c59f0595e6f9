"""Exceptions raised by the config system.

Each one subclasses :class:`ValueError` (and :class:`AttributeError` for unknown fields) so
callers can catch the builtin, and each message is one line naming the field and the fix.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FieldValidationError",
    "FrozenConfigError",
    "UnknownFieldError",
    "ConfigRetargetWarning",
]


class ConfigError(ValueError):
    """Base class of every config error."""


class FieldValidationError(ConfigError):
    """A value (or a combination of values) is not allowed for a config field."""


class UnknownFieldError(ConfigError, AttributeError):
    """A dotted path names a field that does not exist."""


class FrozenConfigError(ConfigError):
    """An assignment was attempted on a frozen config."""


class ConfigRetargetWarning(UserWarning):
    """An override could not be carried over when a subtask was retargeted."""
