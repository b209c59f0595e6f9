"""`PluginError` and the helpers that word its one-line messages.

Every plugin failure the manager reports names the culprit plugin, where it comes from and the
fix; the wording lives here so loading, registering and hook calls say it the same way.
:class:`PluginError` is re-exported by :mod:`diffim.framework.plugins`; import it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .plugin_loading import BLOCK_ENV

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    import pluggy

    from .plugin_loading import _Origin

__all__ = ["PluginError"]


class PluginError(RuntimeError):
    """A plugin could not be loaded, registered or failed inside a hook.

    Parameters
    ----------
    msg : `str`
        One-line message naming the plugin and the fix.
    plugin : `str` or `None`, optional
        Name of the culprit plugin, when known.
    hook : `str` or `None`, optional
        Name of the hook involved, when relevant.
    """

    def __init__(self, msg: str, *, plugin: str | None = None, hook: str | None = None) -> None:
        super().__init__(msg)
        self.plugin = plugin
        self.hook = hook


def _close_matches(word: str, candidates: list[str], n: int) -> list[str]:
    # difflib only matters on error paths; keep it out of the import cost.
    import difflib

    return difflib.get_close_matches(word, candidates, n=n)


def _one_line(text: str) -> str:
    # Messages go to a one-line CLI error; exception texts may carry newlines.
    return " ".join(text.split())


def _dist_label(dist_name: str | None, version: str | None) -> str:
    if dist_name is None:
        return "no distribution (registered in-process)"
    return f"distribution {dist_name!r} {version}"


def _astuple(origin: _Origin | None) -> tuple[str | None, str | None]:
    return (origin.distribution, origin.version) if origin else (None, None)


def _fix_hint(name: str, origin: _Origin | None) -> str:
    if origin is None:
        return "fix the plugin code"
    if origin.builtin:
        return f"this is a bug in diffim, please report it; set {BLOCK_ENV}={name} to skip it"
    return f"fix: pip uninstall {origin.distribution}, or set {BLOCK_ENV}={name}"


def _culprit(impls: Sequence[pluggy.HookImpl], tb: TracebackType | None) -> str:
    """Name the plugin whose implementation raised, by matching traceback code objects."""
    import inspect

    owners: dict[object, str] = {}
    for impl in impls:
        function = inspect.unwrap(impl.function)
        code = getattr(function, "__code__", None)
        if code is not None:
            owners[code] = impl.plugin_name
    culprit = "unknown plugin"
    # The innermost matching frame is where the failure happened; outer ones can be
    # wrappers (wrapper=True) that the exception passed through.
    while tb is not None:
        owner = owners.get(tb.tb_frame.f_code)
        if owner is not None:
            culprit = owner
        tb = tb.tb_next
    return culprit
