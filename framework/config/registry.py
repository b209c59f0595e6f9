"""Registries: named things (kernel bases, executors, ...) filled by plugins."""

from __future__ import annotations

import difflib
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .allowed import _LazyAllowed

if TYPE_CHECKING:
    from .base import Config

__all__ = ["Registry", "RegistryEntry", "RegistryName", "refresh_plugin_registries"]


#: Weak references to every registry filled by a ``populate`` callback (plugin hooks), for
#: `refresh_plugin_registries` (a Mapping is unhashable, so not a WeakSet).
_PLUGIN_FILLED: list[weakref.ref[Registry]] = []


def refresh_plugin_registries() -> list[str]:
    """Make every plugin-filled registry forget its entries, so it asks the plugins again.

    Called when the process-wide plugin manager is swapped
    (:func:`~diffim.framework.plugins.isolated_plugin_manager`).

    Returns
    -------
    names : `list` [`str`]
        Names of the registries refreshed.
    """
    alive = [registry for ref in _PLUGIN_FILLED if (registry := ref()) is not None]
    _PLUGIN_FILLED[:] = [weakref.ref(registry) for registry in alive]
    for registry in alive:
        registry.refresh()
    return sorted(registry.name for registry in alive)


@dataclass(frozen=True)
class RegistryEntry:
    """One registered item.

    Attributes
    ----------
    name : str
        Name users select it by.
    target : callable
        What :meth:`Registry.make` calls.
    ConfigClass : type[Config] or None
        Config of the item; its instance is passed as ``config=`` when present.
    doc : str
        One-line description shown in error messages, ``--show config`` and the docs.
    """

    name: str
    target: Callable[..., Any]
    ConfigClass: type[Config] | None = None  # noqa: N815 - LSST name
    doc: str = ""


class Registry(Mapping[str, RegistryEntry]):
    """A name -> item mapping whose entries come from plugins.

    Parameters
    ----------
    name : str
        What the registry holds, e.g. ``"kernel basis"``; used in messages.
    doc : str, optional
        Longer description.
    populate : callable, optional
        Called once with the registry on first read; domain packages pass a function that
        calls their plugin hook (e.g. ``diffim_register_kernel_bases(registry=...)``), so the
        registry fills itself from plugins only when it is needed.
    """

    def __init__(
        self, name: str, doc: str = "", *, populate: Callable[[Registry], None] | None = None
    ) -> None:
        self.name = name
        self.doc = doc
        self._populate = populate
        self._populated = populate is None
        self._entries: dict[str, RegistryEntry] = {}
        self._lock = threading.RLock()
        if populate is not None:
            _PLUGIN_FILLED.append(weakref.ref(self))

    def register(
        self,
        name: str,
        target: Callable[..., Any],
        *,
        ConfigClass: type[Config] | None = None,  # noqa: N803 - LSST name
        doc: str | None = None,
        replace: bool = False,
    ) -> RegistryEntry:
        """Add an item; registering a taken name raises unless ``replace=True``."""
        if not isinstance(name, str) or not name or name in ("name", "active"):
            msg = f"invalid {self.name} registry name {name!r}: use a non-empty string other than 'name'/'active'"
            raise ValueError(msg)
        if doc is None:
            doc = (getattr(target, "__doc__", None) or "").strip().split("\n")[0]
        with self._lock:
            if name in self._entries and not replace:
                old = self._entries[name].target
                msg = (
                    f"{self.name} {name!r} is already registered (by {_qualname(old)}); "
                    "pick another name, or pass replace=True to override it on purpose"
                )
                raise ValueError(msg)
            entry = RegistryEntry(name, target, ConfigClass, doc)
            self._entries[name] = entry
        return entry

    def _ensure(self) -> None:
        if self._populated:
            return
        with self._lock:
            if not self._populated:
                self._populated = True  # set first: a populate that reads us must not recurse
                assert self._populate is not None
                try:
                    self._populate(self)
                except BaseException:
                    # an interrupted or failing populate (a broken plugin, a job timeout) must not
                    # leave a half-filled registry for good: the next read tries again
                    self.refresh()
                    raise

    def refresh(self) -> None:
        """Forget plugin-provided entries; they are collected again on the next read."""
        with self._lock:
            if self._populate is not None:
                self._entries.clear()
                self._populated = False

    def __getitem__(self, name: str) -> RegistryEntry:
        self._ensure()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """Message for an unknown name, with close matches and every registered name."""
        self._ensure()
        close = difflib.get_close_matches(str(name), list(self._entries), n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        return (
            f"no {self.name} called {name!r}; {hint}registered: "
            f"{', '.join(map(repr, self._entries)) or 'none (is the plugin providing it installed?)'}"
        )

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._ensure()
        return len(self._entries)

    def docs(self) -> dict[str, str]:
        """Name -> doc of every entry."""
        self._ensure()
        return {name: entry.doc for name, entry in self._entries.items()}

    def make(self, name: str, /, *args: Any, config: Config | None = None, **kwargs: Any) -> Any:
        """Build the named item: ``target(*args, config=config, **kwargs)``.

        When the entry has a ConfigClass and no config is given, a default one is made.
        """
        entry = self[name]
        if entry.ConfigClass is not None:
            kwargs["config"] = config if config is not None else entry.ConfigClass()
        return entry.target(*args, **kwargs)

    def __repr__(self) -> str:
        state = ", ".join(self._entries) if self._populated else "not yet populated"
        return f"Registry({self.name!r}: {state})"

    def __reduce__(self) -> Any:
        # entries may hold local objects; a registry travels to worker processes by content
        self._ensure()
        return (_rebuild_registry, (self.name, self.doc, self._populate, dict(self._entries)))


def _rebuild_registry(
    name: str, doc: str, populate: Any, entries: dict[str, RegistryEntry]
) -> Registry:
    registry = Registry(name, doc, populate=populate)
    registry._entries.update(entries)
    registry._populated = True
    return registry


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def RegistryName(registry: Registry) -> Any:  # noqa: N802 - reads like a type
    """Annotation metadata: a string field whose allowed values are the registry's names.

    Examples
    --------
    ``kernelBasisSet: Annotated[str, RegistryName(kernelBases)] = Field("alard-lupton", ...)``
    """
    return _LazyAllowed(registry.docs, registry.name)
