"""A process-wide plugin manager holding only chosen plugins, for tests.

diffim reads its plugins through one process-wide manager
(:func:`diffim.framework.plugins.get_plugin_manager`), and the registries that plugins fill
(kernel bases, candidate visitors, executors, runnable tasks) cache what they collected on first
read. :func:`plugin_manager` swaps in a fresh manager *and* empties those caches on the way in and
out, so a test sees exactly the plugins it asked for and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.plugins import DiffimPluginManager

__all__ = ["plugin_manager", "refresh_registries"]

def refresh_registries() -> list[str]:
    """Forget what the plugin-filled registries collected, so they ask the plugins again.

    The framework's :func:`~diffim.framework.config.registry.refresh_plugin_registries` (which
    :func:`~diffim.framework.plugins.isolated_plugin_manager` also calls when it swaps managers).
    The mask plane registry is not refreshed: bits once assigned stay valid for the process.

    Returns
    -------
    refreshed : `list` [`str`]
        Names of the registries refreshed.
    """
    from diffim.framework.config.registry import refresh_plugin_registries

    return refresh_plugin_registries()


def _resolve(plugin: object) -> object:
    """Import a plugin given as a dotted module name; return other objects unchanged."""
    if not isinstance(plugin, str):
        return plugin
    try:
        return importlib.import_module(plugin)
    except ImportError as exc:
        msg = (
            f"cannot import plugin module {plugin!r}: {exc}; give an importable dotted module name, "
            "or the plugin object itself"
        )
        raise ValueError(msg) from exc


def _load_entry_points(manager: DiffimPluginManager, names: Iterable[str]) -> None:
    """Register the ``diffim`` entry-point plugins called ``names`` (installed distributions)."""
    import importlib.metadata

    from diffim.framework.plugins import PLUGIN_GROUP

    available = {ep.name: ep for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)}
    for name in names:
        ep = available.get(name)
        if ep is None:
            msg = (
                f"no installed diffim plugin has the entry-point name {name!r}; installed: "
                f"{', '.join(map(repr, sorted(available))) or 'none'} (pip install the plugin first)"
            )
            raise ValueError(msg)
        if ep.dist is None:  # an entry point made by hand, not read from a distribution
            manager.register(ep.load(), name=ep.name)
            continue
        # the manager's own loader: same origin bookkeeping, blocking and one-line errors as load()
        manager._load_plugin_entry(ep, ep.dist)


@contextlib.contextmanager
def plugin_manager(
    *plugins: object,
    builtins: bool = True,
    autoload: bool = False,
    entry_points: Iterable[str] = (),
) -> Iterator[DiffimPluginManager]:
    """Make a fresh process-wide plugin manager holding only the chosen plugins.

    Built on :func:`diffim.framework.plugins.isolated_plugin_manager`; the plugin-filled
    registries are refreshed on entry and on exit.

    Parameters
    ----------
    *plugins : `object` or `str`
        Extra plugins: modules, classes or instances with ``@hookimpl`` functions, or dotted
        module names (imported). Registered last, so they are called first.
    builtins : `bool`, optional
        Load diffim's built-in plugins (the ``alard-lupton`` basis, the visitors, the displays...).
    autoload : `bool`, optional
        Load every installed third-party plugin too (off: a known plugin set).
    entry_points : iterable of `str`, optional
        Names of installed ``diffim`` entry-point plugins to load without autoloading the others,
        e.g. ``["example"]`` to test a plugin through its real entry point.

    Yields
    ------
    manager : `~diffim.framework.plugins.DiffimPluginManager`
        The manager, which `~diffim.framework.plugins.get_plugin_manager` returns meanwhile.

    Raises
    ------
    ValueError
        If a plugin module cannot be imported or an entry-point name is not installed.
    diffim.framework.plugins.PluginError
        If a plugin cannot be registered (unknown hook, bad signature, name clash).

    Examples
    --------
    >>> from diffim.framework.plugins import hookimpl
    >>> from diffim.testing import plugin_manager
    >>> class Hello:
    ...     @hookimpl
    ...     def diffim_register_executors(self, registry):
    ...         pass
    >>> with plugin_manager(Hello(), builtins=False) as pm:
    ...     len(pm.list_plugins())
    1
    """
    from diffim.framework.plugins import isolated_plugin_manager

    resolved = [_resolve(plugin) for plugin in plugins]
    # isolated_plugin_manager refreshes the plugin-filled registries on the way in and out
    with isolated_plugin_manager(builtins=builtins, autoload=autoload) as manager:
        _load_entry_points(manager, entry_points)
        for plugin in resolved:
            manager.register(plugin)
        refresh_registries()  # in case a registry was read while the plugins were added
        yield manager
