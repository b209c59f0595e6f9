"""The diffim plugin system: pluggy markers, a typed manager facade and the process-wide singleton.

Writing a plugin
----------------
A plugin is a module (or any object) whose functions are marked with :data:`hookimpl` and
named after a hook from :mod:`diffim.framework.hookspecs` (or from a domain package's hookspec
module)::

    # my_diffim_plugin.py
    from diffim.framework.plugins import hookimpl

    @hookimpl
    def diffim_add_commands(subparsers):
        parser = subparsers.add_parser("hello", help="say hello")
        parser.set_defaults(func=lambda args: print("hello") or 0)

and is advertised in the plugin distribution's ``pyproject.toml``::

    [project.entry-points.diffim]
    my_plugin = "my_diffim_plugin"

An implementation may accept any subset of the hook's arguments.

Load order
----------
:meth:`DiffimPluginManager.load` registers, in this order:

1. the framework hookspecs (:mod:`diffim.framework.hookspecs`);
2. hookspec modules from the ``diffim.hookspecs`` entry-point group (the diffim distribution's
   own first, then third-party ones);
3. built-in plugins: entries of the ``diffim`` group that belong to the ``diffim`` distribution;
4. third-party plugins: every other entry of the ``diffim`` group;
5. a check that every registered implementation names a known hook.

pluggy calls implementations last-registered-first, so a third-party plugin runs before the
built-ins and can override them in ``firstresult`` hooks.

Environment variables
---------------------
``DIFFIM_DISABLE_PLUGIN_AUTOLOAD=1``
    Skip third-party entry points (steps 2 and 4 for distributions other than ``diffim``);
    built-ins still load. Also implied when ``sys._called_from_test`` is set.
``DIFFIM_BLOCK_PLUGINS=a,b``
    Never register the plugins with these entry-point names (see :meth:`DiffimPluginManager.block`).
``DIFFIM_TRACE_PLUGINS=1``
    Print every hook call, its arguments, implementations and results to stderr.

Deprecating a hook
------------------
The hook contract is versioned: hooks only gain arguments, and a hook (or one of its
arguments) that is to go away is first marked with :func:`deprecate_hook`, for at least one
release. Registering a plugin that implements it then emits a `HookDeprecationWarning` (a
`DeprecationWarning`) pointing at the implementation and naming the plugin, its distribution,
the hook, the version that deprecated it and the replacement::

    deprecate_hook("diffim_old_hook", since="0.2", replacement="diffim_new_hook", removal="0.3")
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

# The public names of the sibling modules are re-exported here (they are part of this
# module's API); their private helpers serve the manager below.
from .plugin_deprecation import (
    DEPRECATED_HOOKS,
    HookDeprecation,
    HookDeprecationWarning,
    _warn_deprecated,
    deprecate_hook,
)
from .plugin_errors import (
    PluginError,
    _astuple,
    _close_matches,
    _culprit,
    _dist_label,
    _fix_hint,
    _one_line,
)
from .plugin_loading import (
    BLOCK_ENV,
    DISABLE_AUTOLOAD_ENV,
    DISTRIBUTION,
    HOOKSPEC_GROUP,
    PLUGIN_GROUP,
    PROJECT_NAME,
    TRACE_ENV,
    _entry_points,
    _env_flag,
    _Origin,
    _origin_of,
    _split_builtin,
    autoload_enabled,
)

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from importlib.metadata import Distribution, EntryPoint
    from pathlib import Path
    from types import ModuleType

    from .config import Registry

__all__ = [
    "BLOCK_ENV",
    "DEPRECATED_HOOKS",
    "DISABLE_AUTOLOAD_ENV",
    "DISTRIBUTION",
    "HOOKSPEC_GROUP",
    "PLUGIN_GROUP",
    "PROJECT_NAME",
    "TRACE_ENV",
    "DiffimPluginManager",
    "HookDeprecation",
    "HookDeprecationWarning",
    "PluginError",
    "PluginInfo",
    "autoload_enabled",
    "deprecate_hook",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "isolated_plugin_manager",
    "reset_plugin_manager",
]

#: Marker for hook specifications (used by ``hookspecs`` modules).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marker for hook implementations (used by plugins).
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Description of one registered plugin, as shown by ``diffim plugins``.

    Attributes
    ----------
    name : `str`
        Registration name (the entry-point name for installed plugins).
    distribution : `str` or `None`
        Name of the distribution that provides the plugin (``"diffim"`` for built-ins),
        `None` for plugins registered in-process.
    version : `str` or `None`
        Version of that distribution.
    hooks : `list` [`str`]
        Sorted names of the hooks the plugin implements.
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: list[str]



class DiffimPluginManager:
    """Typed facade over ``pluggy.PluginManager("diffim")``.

    It owns the load order, turns pluggy and plugin failures into one-line
    `PluginError` messages naming the plugin, and offers one typed method per
    framework-level hook.

    Parameters
    ----------
    trace : `bool` or `None`, optional
        Print every hook call to stderr. `None` reads ``DIFFIM_TRACE_PLUGINS``.

    Notes
    -----
    The framework hookspecs are added at construction, so in-process plugins can be
    registered and called before (or without) :meth:`load`.
    """

    def __init__(self, *, trace: bool | None = None) -> None:
        from . import hookspecs

        self.manager = pluggy.PluginManager(PROJECT_NAME)
        self._loaded = False
        self._origins: dict[str, _Origin] = {}
        self._hookspec_modules: set[int] = set()
        self.add_hookspecs(hookspecs)
        for name in os.environ.get(BLOCK_ENV, "").split(","):
            if name.strip():
                self.block(name.strip())
        if _env_flag(TRACE_ENV) if trace is None else trace:
            self._enable_trace()

    # ------------------------------------------------------------------ loading

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run (`bool`)."""
        return self._loaded

    def load(self, autoload: bool | None = None, *, builtins: bool = True) -> None:
        """Load hookspecs and plugins from entry points, in the documented order.

        Calling it again is a no-op.

        Parameters
        ----------
        autoload : `bool` or `None`, optional
            Load third-party entry points. `None` uses `autoload_enabled`.
        builtins : `bool`, optional
            Register the diffim distribution's own plugins (hookspec modules of the
            diffim distribution are always added).

        Raises
        ------
        PluginError
            If a plugin or hookspec module fails to import or register, or implements an
            unknown hook. The message names the plugin and its distribution.
        """
        if self._loaded:
            return
        if autoload is None:
            autoload = autoload_enabled()
        found = _entry_points(HOOKSPEC_GROUP, PLUGIN_GROUP)
        builtin_specs, external_specs = _split_builtin(found[HOOKSPEC_GROUP])
        builtin_plugins, external_plugins = _split_builtin(found[PLUGIN_GROUP])
        # All hookspecs first, so every plugin is verified against its spec at registration.
        for ep, dist, origin in builtin_specs + (external_specs if autoload else []):
            self._load_hookspec_entry(ep, origin)
        for ep, dist, origin in (builtin_plugins if builtins else []) + (
            external_plugins if autoload else []
        ):
            self._load_plugin_entry(ep, dist, origin)
        self.check_pending()
        self._loaded = True

    def _load_hookspec_entry(self, ep: EntryPoint, origin: _Origin) -> None:
        # Built-in hookspecs are essential: blocking them would orphan every implementation.
        if not origin.builtin and self.manager.is_blocked(ep.name):
            return
        try:
            module = ep.load()
            self.add_hookspecs(module)
        except Exception as exc:
            msg = (
                f"cannot load hookspec module {ep.name!r} ({ep.value!r}) from "
                f"{_dist_label(origin.distribution, origin.version)}: "
                f"{type(exc).__name__}: {_one_line(str(exc))}; {_fix_hint(ep.name, origin)}"
            )
            raise PluginError(msg, plugin=ep.name) from exc

    def _load_plugin_entry(
        self, ep: EntryPoint, dist: Distribution, origin: _Origin | None = None
    ) -> None:
        # ``origin`` saves re-reading the distribution's METADATA; diffim.testing passes only
        # ``(ep, dist)`` for a single entry point.
        if origin is None:
            origin = _origin_of(dist)
        if self.manager.is_blocked(ep.name):
            return
        existing = self._origins.get(ep.name)
        if self.manager.has_plugin(ep.name):
            if existing is not None and existing.distribution == origin.distribution:
                return  # the same distribution seen twice on sys.path
            msg = (
                f"plugin name {ep.name!r} from {_dist_label(origin.distribution, origin.version)} "
                f"clashes with an already registered plugin of that name from "
                f"{_dist_label(*_astuple(existing))}; "
                f"fix: pip uninstall {origin.distribution}, or set {BLOCK_ENV}={ep.name}"
            )
            raise PluginError(msg, plugin=ep.name)
        try:
            plugin = ep.load()
        except Exception as exc:
            msg = (
                f"cannot load plugin {ep.name!r} ({ep.value!r}) from "
                f"{_dist_label(origin.distribution, origin.version)}: "
                f"{type(exc).__name__}: {_one_line(str(exc))}; {_fix_hint(ep.name, origin)}"
            )
            raise PluginError(msg, plugin=ep.name) from exc
        self._origins[ep.name] = origin
        try:
            self._register(plugin, ep.name)
        except PluginError:
            del self._origins[ep.name]
            raise

    # ------------------------------------------------------------- registration

    def add_hookspecs(self, module_or_class: ModuleType | type | object) -> None:
        """Add the hook specifications marked with :data:`hookspec` in ``module_or_class``.

        Adding the same module or class twice is a no-op.

        Parameters
        ----------
        module_or_class : module, class or instance
            Namespace holding ``@hookspec`` functions.

        Raises
        ------
        PluginError
            If it holds no diffim hookspec, redefines an existing hook, or already
            registered implementations do not match the new specs.
        """
        if id(module_or_class) in self._hookspec_modules:
            return
        try:
            self.manager.add_hookspecs(module_or_class)
        except pluggy.PluginValidationError as exc:
            name = self.manager.get_name(exc.plugin)
            msg = (
                f"plugin {name!r} does not match the hookspecs of {module_or_class!r}: "
                f"{_one_line(str(exc))}"
            )
            raise PluginError(msg, plugin=name) from exc
        except ValueError as exc:
            msg = f"cannot add hookspecs from {module_or_class!r}: {_one_line(str(exc))}"
            raise PluginError(msg) from exc
        self._hookspec_modules.add(id(module_or_class))

    def _readable_name(self, plugin: object) -> str:
        # pluggy names an instance by its id(); messages read better with the class path
        name = getattr(plugin, "__name__", None)
        if not isinstance(name, str):
            cls = type(plugin)
            name = f"{cls.__module__}.{cls.__qualname__}"
        existing = self.manager.get_plugin(name)
        if existing is not None and existing is not plugin:  # two instances of one class
            name = f"{name}-{id(plugin)}"
        return name

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (a module, class or instance with ``@hookimpl`` functions).

        Parameters
        ----------
        plugin : `object`
            The plugin.
        name : `str` or `None`, optional
            Registration name; default is the plugin's ``__name__`` (modules, classes) or its
            class path (instances).

        Returns
        -------
        name : `str` or `None`
            The registration name, or `None` if ``name`` is blocked.

        Raises
        ------
        PluginError
            If the name or object is already registered, an implementation does not match
            its spec, or (once :meth:`load` has run) it implements an unknown hook.
        """
        return self._register(plugin, name)

    def _register(self, plugin: object, name: str | None) -> str | None:
        if name is None:
            name = self._readable_name(plugin)
        label = name
        try:
            registered = self.manager.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            origin = self._origins.get(label)
            msg = f"plugin {label!r} is invalid: {_one_line(str(exc))}; {_fix_hint(label, origin)}"
            raise PluginError(msg, plugin=label) from exc
        except ValueError as exc:
            msg = f"cannot register plugin {label!r}: {_one_line(str(exc).splitlines()[0])}"
            raise PluginError(msg, plugin=label) from exc
        if registered is not None and self._loaded:
            # Before load() hookspecs from entry points may still arrive; check_pending covers it.
            try:
                self._check_plugin(plugin)
            except PluginError:
                self.manager.unregister(plugin)
                raise
        if registered is not None and DEPRECATED_HOOKS:
            self._check_deprecated(plugin, registered)
        return registered

    def _check_deprecated(self, plugin: object, name: str) -> None:
        """Warn once per implementation of a deprecated hook or hook argument."""
        origin = _dist_label(*_astuple(self._origins.get(name)))
        for caller in self.manager.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                for argument in (None, *impl.argnames, *impl.kwargnames):
                    deprecation = DEPRECATED_HOOKS.get((caller.name, argument))
                    if deprecation is not None:
                        _warn_deprecated(impl, deprecation, origin)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """Unregister a plugin given the object or its name.

        Parameters
        ----------
        plugin : `object`, optional
            The plugin object.
        name : `str`, optional
            Its registration name.

        Returns
        -------
        plugin : `object` or `None`
            The unregistered plugin, `None` if it was not registered.
        """
        if plugin is None and name is not None and not self.manager.has_plugin(name):
            return None
        if plugin is not None and not self.manager.is_registered(plugin):
            return None
        if name is None:
            name = self.manager.get_name(plugin)
        removed = self.manager.unregister(plugin=plugin, name=name)
        if name is not None:
            self._origins.pop(name, None)
        return removed

    def block(self, name: str) -> None:
        """Block the plugin registered (or to be registered) under ``name``.

        A registered plugin of that name is unregistered; later registrations under that
        name are silently ignored.

        Parameters
        ----------
        name : `str`
            Plugin (entry-point) name.
        """
        self.manager.set_blocked(name)
        self._origins.pop(name, None)

    def is_blocked(self, name: str) -> bool:
        """Return whether ``name`` is blocked.

        Parameters
        ----------
        name : `str`
            Plugin name.

        Returns
        -------
        blocked : `bool`
        """
        return self.manager.is_blocked(name)

    def is_registered(self, plugin: object) -> bool:
        """Return whether ``plugin`` (the object) is registered.

        Parameters
        ----------
        plugin : `object`
            Plugin object.

        Returns
        -------
        registered : `bool`
        """
        return self.manager.is_registered(plugin)

    def get_plugin(self, name: str) -> Any | None:
        """Return the plugin registered under ``name``, or `None`.

        Parameters
        ----------
        name : `str`
            Plugin name.

        Returns
        -------
        plugin : `object` or `None`
        """
        return self.manager.get_plugin(name)

    def list_plugins(self) -> list[PluginInfo]:
        """Describe every registered plugin, sorted by name.

        Returns
        -------
        plugins : `list` [`PluginInfo`]
        """
        infos = []
        for name, plugin in self.manager.list_name_plugin():
            if plugin is None:  # blocked placeholder
                continue
            origin = self._origins.get(name)
            callers = self.manager.get_hookcallers(plugin) or []
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=origin.distribution if origin else None,
                    version=origin.version if origin else None,
                    hooks=sorted({caller.name for caller in callers}),
                )
            )
        return sorted(infos, key=lambda info: info.name)

    def check_pending(self) -> None:
        """Verify every registered implementation names a known hook.

        Implementations marked ``optionalhook=True`` are exempt.

        Raises
        ------
        PluginError
            Naming the first plugin that implements an unknown hook, with close matches.
        """
        for _, plugin in self.manager.list_name_plugin():
            if plugin is not None:
                self._check_plugin(plugin)
        self.manager.check_pending()  # belt and braces: our loop mirrors pluggy's

    def _check_plugin(self, plugin: object) -> None:
        for caller in self.manager.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    name = impl.plugin_name
                    origin = self._origins.get(name)
                    matches = _close_matches(caller.name, self.hook_names(), n=1)
                    hint = f" (did you mean {matches[0]!r}?)" if matches else ""
                    msg = (
                        f"plugin {name!r} from {_dist_label(*_astuple(origin))} implements "
                        f"unknown hook {caller.name!r}{hint}; {_fix_hint(name, origin)}"
                    )
                    raise PluginError(msg, plugin=name, hook=caller.name)

    # ------------------------------------------------------------------ calling

    @property
    def hook(self) -> pluggy.HookRelay:
        """The raw pluggy hook relay (``pm.hook.<name>(**kwargs)``), for advanced use.

        Errors raised through it are not wrapped in `PluginError`.
        """
        return self.manager.hook

    def hook_names(self) -> list[str]:
        """Return the sorted names of all hooks that have a specification.

        Returns
        -------
        names : `list` [`str`]
        """
        return sorted(
            name
            for name, caller in vars(self.manager.hook).items()
            if not name.startswith("_") and caller.has_spec()
        )

    def call(self, hook_name: str, /, **kwargs: Any) -> Any:
        """Call hook ``hook_name`` with keyword arguments.

        Parameters
        ----------
        hook_name : `str`
            Name of a specified hook.
        **kwargs
            The hook's arguments (all of them, by keyword).

        Returns
        -------
        result : `list` or `object`
            The list of non-`None` results, or the first one for ``firstresult`` hooks.

        Raises
        ------
        PluginError
            If the hook is unknown, or an implementation raised; the message names the
            plugin and the hook, and the original exception is chained (``__cause__``).
        """
        caller = getattr(self.manager.hook, hook_name, None)
        if caller is None or not caller.has_spec():
            known = self.hook_names()
            matches = _close_matches(hook_name, known, n=3)
            if matches:
                hint = f"did you mean {' or '.join(map(repr, matches))}?"
            else:
                hint = f"known hooks: {', '.join(known)}"
            msg = f"unknown hook {hook_name!r}; {hint}"
            raise PluginError(msg, hook=hook_name)
        try:
            return caller(**kwargs)
        except Exception as exc:
            culprit = _culprit(caller.get_hookimpls(), exc.__traceback__)
            msg = (
                f"plugin {culprit!r} failed in hook {hook_name!r}: "
                f"{type(exc).__name__}: {_one_line(str(exc))}"
            )
            raise PluginError(msg, plugin=culprit, hook=hook_name) from exc

    # ----------------------------------------------------- framework-level hooks

    def diffim_add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        """Let plugins add subcommands to the ``diffim`` CLI (see the hookspec).

        Parameters
        ----------
        subparsers : `argparse._SubParsersAction`
            The CLI's subparsers action.
        """
        self.call("diffim_add_commands", subparsers=subparsers)

    def diffim_register_executors(self, registry: Registry) -> None:
        """Let plugins add named executors to ``registry`` (see the hookspec).

        Parameters
        ----------
        registry : `diffim.framework.config.Registry`
            The executor registry.
        """
        self.call("diffim_register_executors", registry=registry)

    def diffim_register_tasks(self, registry: Registry) -> None:
        """Let plugins add named runnable tasks to ``registry`` (see the hookspec).

        Parameters
        ----------
        registry : `diffim.framework.config.Registry`
            The task registry.
        """
        self.call("diffim_register_tasks", registry=registry)

    def diffim_read_input(
        self, type_name: str, path: Path, options: Mapping[str, Any] | None = None
    ) -> object | None:
        """Ask the I/O plugins to read ``path`` as a ``type_name`` (see the hookspec).

        Parameters
        ----------
        type_name : `str`
            Dotted data type name.
        path : `pathlib.Path`
            File to read.
        options : `~collections.abc.Mapping`, optional
            Reader options.

        Returns
        -------
        value : `object` or `None`
            The value, or `None` when no plugin handles the type.
        """
        return self.call(
            "diffim_read_input", type_name=type_name, path=path, options=dict(options or {})
        )

    def diffim_write_output(self, type_name: str, value: object, path: Path) -> Path | None:
        """Ask the I/O plugins to write ``value`` at the stem ``path`` (see the hookspec).

        Parameters
        ----------
        type_name : `str`
            Dotted data type name.
        value : `object`
            Value to write.
        path : `pathlib.Path`
            Target path without suffix.

        Returns
        -------
        written : `pathlib.Path` or `None`
            The written file, or `None` when no plugin handles the type.
        """
        return self.call("diffim_write_output", type_name=type_name, value=value, path=path)

    # ------------------------------------------------------------------ tracing

    def _enable_trace(self) -> Callable[[], None]:
        # datasette's DATASETTE_TRACE_PLUGINS output, to stderr so stdout stays clean.
        from pprint import pformat

        def before(
            hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]
        ) -> None:
            print(f"\n{hook_name}:", file=sys.stderr)
            print(pformat(dict(kwargs), width=40, indent=4), file=sys.stderr)
            print("Hook implementations:", file=sys.stderr)
            print(
                pformat([impl.plugin_name for impl in impls], width=40, indent=4), file=sys.stderr
            )

        def after(
            outcome: pluggy.Result[object],
            hook_name: str,
            impls: Sequence[pluggy.HookImpl],
            kwargs: Mapping[str, object],
        ) -> None:
            if outcome.exception is not None:
                print(f"Raised: {outcome.exception!r}", file=sys.stderr)
                return
            print("Results:", file=sys.stderr)
            print(pformat(outcome.get_result(), width=40, indent=4), file=sys.stderr)

        return self.manager.add_hookcall_monitoring(before, after)


# ---------------------------------------------------------------------- singleton

_lock = threading.RLock()
_manager: DiffimPluginManager | None = None


def get_plugin_manager() -> DiffimPluginManager:
    """Return the process-wide plugin manager, creating and loading it on first use.

    Returns
    -------
    manager : `DiffimPluginManager`

    Raises
    ------
    PluginError
        If loading fails (the next call tries again).
    """
    global _manager
    with _lock:
        if _manager is None:
            manager = DiffimPluginManager()
            manager.load()
            _manager = manager
        return _manager


def reset_plugin_manager() -> None:
    """Drop the process-wide manager; the next `get_plugin_manager` builds a new one."""
    global _manager
    with _lock:
        _manager = None


@contextlib.contextmanager
def isolated_plugin_manager(
    *plugins: object, builtins: bool = True, autoload: bool = False
) -> Iterator[DiffimPluginManager]:
    """Temporarily replace the process-wide manager with a fresh one.

    Parameters
    ----------
    *plugins : `object`
        Plugins registered (after loading, so they run before the built-ins).
    builtins : `bool`, optional
        Load the diffim distribution's built-in plugins.
    autoload : `bool`, optional
        Also load third-party entry points (off by default for a known plugin set).

    Yields
    ------
    manager : `DiffimPluginManager`
        The temporary manager, also returned by `get_plugin_manager` meanwhile.

    Examples
    --------
    >>> from diffim.framework.plugins import isolated_plugin_manager
    >>> with isolated_plugin_manager(builtins=False) as pm:
    ...     pm.list_plugins()
    []
    """
    from .config.registry import refresh_plugin_registries

    global _manager
    manager = DiffimPluginManager()
    manager.load(autoload=autoload, builtins=builtins)
    for plugin in plugins:
        manager.register(plugin)
    with _lock:
        previous, _manager = _manager, manager
    # the registries that plugins fill cache what they collected: make them ask this manager
    refresh_plugin_registries()
    try:
        yield manager
    finally:
        with _lock:
            _manager = previous
        refresh_plugin_registries()
