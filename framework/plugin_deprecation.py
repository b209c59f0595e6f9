"""Deprecating a hook, or one argument of a hook, and warning the plugins that still implement it.

The names here are re-exported by :mod:`diffim.framework.plugins`, whose "Deprecating a hook"
section describes the policy; import them from there.
:class:`~diffim.framework.plugins.DiffimPluginManager` consults `DEPRECATED_HOOKS` when it
registers a plugin.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from typing import TYPE_CHECKING

from .plugin_loading import PROJECT_NAME

if TYPE_CHECKING:  # pragma: no cover
    import pluggy

__all__ = [
    "DEPRECATED_HOOKS",
    "HookDeprecation",
    "HookDeprecationWarning",
    "deprecate_hook",
]


class HookDeprecationWarning(DeprecationWarning):
    """A plugin implements a deprecated hook, or a deprecated argument of a hook."""


@dataclasses.dataclass(frozen=True)
class HookDeprecation:
    """A deprecated hook, or a deprecated argument of a hook (see `deprecate_hook`).

    Attributes
    ----------
    hook : `str`
        Hook name.
    since : `str`
        diffim version that deprecated it.
    replacement : `str` or `None`
        What to implement (or accept) instead, e.g. another hook's name.
    removal : `str` or `None`
        diffim version that removes it; `None` means the next minor release.
    argument : `str` or `None`
        The deprecated argument; `None` when the whole hook is deprecated.
    """

    hook: str
    since: str
    replacement: str | None = None
    removal: str | None = None
    argument: str | None = None

    def message(self, plugin: str, origin: str) -> str:
        """Return the one-line warning for ``plugin``.

        Parameters
        ----------
        plugin : `str`
            Plugin name.
        origin : `str`
            Where it comes from, e.g. ``"distribution 'diffim-x' 1.0"``.

        Returns
        -------
        message : `str`
        """
        what = f"hook {self.hook!r}"
        if self.argument is not None:
            what += f" with argument {self.argument!r}"
        removal = f"diffim {self.removal}" if self.removal else "the next minor release"
        if self.replacement and self.argument is not None:
            fix = f"take the argument {self.replacement!r} instead"
        elif self.replacement:
            fix = f"implement {self.replacement!r} instead"
        elif self.argument is not None:
            fix = f"drop the argument {self.argument!r} from the implementation"
        else:
            fix = "stop implementing it"
        return (
            f"plugin {plugin!r} from {origin} implements {what}, deprecated since diffim "
            f"{self.since} and removed in {removal}; {fix}"
        )


#: Registry of deprecated hooks and hook arguments, by ``(hook, argument or None)``;
#: filled by `~diffim.framework.plugins.deprecate_hook` (hookspec modules call it next to the spec).
DEPRECATED_HOOKS: dict[tuple[str, str | None], HookDeprecation] = {}


def deprecate_hook(
    hook: str,
    *,
    since: str,
    replacement: str | None = None,
    removal: str | None = None,
    argument: str | None = None,
) -> HookDeprecation:
    """Mark a hook, or one argument of it, as deprecated.

    From then on, registering a plugin whose implementation of ``hook`` exists (or, with
    ``argument``, accepts that argument) emits a `HookDeprecationWarning` naming the plugin,
    the hook, ``since`` and ``replacement``. Plugins registered earlier are not warned.

    Parameters
    ----------
    hook : `str`
        Hook name (``diffim_`` prefix).
    since : `str`
        diffim version that deprecates it, e.g. ``"0.2"``.
    replacement : `str`, optional
        What plugins should implement instead (a hook name, or an argument name).
    removal : `str`, optional
        Version that removes it; default: the next minor release.
    argument : `str`, optional
        Deprecate only this argument of the hook.

    Returns
    -------
    deprecation : `HookDeprecation`
        The registered entry (replacing an earlier one for the same hook and argument).

    Raises
    ------
    ValueError
        If ``hook`` lacks the ``diffim_`` prefix or ``since`` is empty.

    Examples
    --------
    >>> from diffim.framework.plugins import DEPRECATED_HOOKS, deprecate_hook
    >>> deprecate_hook("diffim_old_hook", since="0.2", replacement="diffim_new_hook").removal is None
    True
    >>> del DEPRECATED_HOOKS["diffim_old_hook", None]
    """
    if not (isinstance(hook, str) and hook.startswith(f"{PROJECT_NAME}_")):
        msg = f"cannot deprecate hook {hook!r}: hook names start with {PROJECT_NAME + '_'!r}"
        raise ValueError(msg)
    if not (isinstance(since, str) and since.strip()):
        msg = f"deprecate_hook({hook!r}) needs the diffim version that deprecates it, got since={since!r}"
        raise ValueError(msg)
    deprecation = HookDeprecation(hook, since.strip(), replacement, removal, argument)
    DEPRECATED_HOOKS[hook, argument] = deprecation
    return deprecation


def _warn_deprecated(impl: pluggy.HookImpl, deprecation: HookDeprecation, origin: str) -> None:
    """Warn at the implementation's source line, so the warning points at the plugin's code."""
    import inspect

    function = inspect.unwrap(impl.function)
    code = getattr(function, "__code__", None)
    filename = code.co_filename if code is not None else "<unknown>"
    lineno = code.co_firstlineno if code is not None else 0
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    registry = vars(module).setdefault("__warningregistry__", {}) if module is not None else None
    warnings.warn_explicit(
        HookDeprecationWarning(deprecation.message(impl.plugin_name, origin)),
        HookDeprecationWarning,
        filename,
        lineno,
        module=getattr(function, "__module__", None),
        registry=registry,
    )
