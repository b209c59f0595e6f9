"""Where diffim's plugins come from: entry-point groups, distribution origins and the environment switches.

The names here are re-exported by :mod:`diffim.framework.plugins`, which documents the load order
and the environment variables; import them from there. This module only reads what is installed:
:class:`~diffim.framework.plugins.DiffimPluginManager` does the registering.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from importlib.metadata import Distribution, EntryPoint

__all__ = [
    "BLOCK_ENV",
    "DISABLE_AUTOLOAD_ENV",
    "DISTRIBUTION",
    "HOOKSPEC_GROUP",
    "PLUGIN_GROUP",
    "PROJECT_NAME",
    "TRACE_ENV",
    "autoload_enabled",
]

#: pluggy project name; hook functions carry the ``diffim_`` prefix.
PROJECT_NAME = "diffim"
#: Distribution whose entry points count as built-in.
DISTRIBUTION = "diffim"
#: Entry-point group of plugin modules.
PLUGIN_GROUP = "diffim"
#: Entry-point group of hookspec modules contributed by domain packages.
HOOKSPEC_GROUP = "diffim.hookspecs"
#: Environment variable that turns off third-party entry-point loading.
DISABLE_AUTOLOAD_ENV = "DIFFIM_DISABLE_PLUGIN_AUTOLOAD"
#: Environment variable holding a comma-separated list of plugin names to block.
BLOCK_ENV = "DIFFIM_BLOCK_PLUGINS"
#: Environment variable that turns on hook-call tracing to stderr.
TRACE_ENV = "DIFFIM_TRACE_PLUGINS"

_FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})


def _env_flag(name: str) -> bool:
    """Return whether environment variable ``name`` is set to a true-ish value."""
    return os.environ.get(name, "").strip().lower() not in _FALSE_VALUES


def autoload_enabled() -> bool:
    """Return whether third-party plugins are loaded by default.

    Returns
    -------
    enabled : `bool`
        `False` when ``DIFFIM_DISABLE_PLUGIN_AUTOLOAD`` is set or when running under a test
        suite that set ``sys._called_from_test`` (datasette's convention), `True` otherwise.
    """
    return not (_env_flag(DISABLE_AUTOLOAD_ENV) or getattr(sys, "_called_from_test", False))


def _canonical_dist_name(name: str) -> str:
    # PEP 503 normalisation, so "Diffim" or "diffim_x" compare equal to their spellings.
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclasses.dataclass(frozen=True)
class _Origin:
    """Where a registered plugin came from."""

    distribution: str
    version: str

    @property
    def builtin(self) -> bool:
        return _canonical_dist_name(self.distribution) == DISTRIBUTION


def _origin_of(dist: Distribution) -> _Origin:
    name = dist.metadata["Name"] or "unknown"
    return _Origin(distribution=name, version=str(dist.version))


#: One entry point of a scanned group, with its distribution and that distribution's origin.
_Entry = tuple["EntryPoint", "Distribution", _Origin]


def _entry_points(*groups: str) -> dict[str, list[_Entry]]:
    """List the entries of each of ``groups`` in import-path order, scanning installed distributions once.

    Parameters
    ----------
    *groups : `str`
        Entry-point group names.

    Returns
    -------
    entries : `dict` [`str`, `list`]
        ``(entry point, distribution, origin)`` triples by group; every group is a key.
    """
    # Looked up at call time so tests can monkeypatch importlib.metadata.distributions
    # (pluggy's own test pattern).
    import importlib.metadata

    found: dict[str, list[_Entry]] = {group: [] for group in groups}
    for dist in list(importlib.metadata.distributions()):
        origin: _Origin | None = None  # reading it parses METADATA: once per distribution, when needed
        for ep in dist.entry_points:
            entries = found.get(ep.group)
            if entries is not None:
                if origin is None:
                    origin = _origin_of(dist)
                entries.append((ep, dist, origin))
    return found


def _split_builtin(entries: list[_Entry]) -> tuple[list[_Entry], list[_Entry]]:
    """Split entries into (diffim's own, third-party), keeping their order."""
    builtin = [entry for entry in entries if entry[2].builtin]
    external = [entry for entry in entries if not entry[2].builtin]
    return builtin, external
