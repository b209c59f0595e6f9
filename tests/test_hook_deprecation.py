"""The versioned hook contract: implementing a deprecated hook (or argument) warns, naming everything."""

from __future__ import annotations

import importlib.metadata
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from diffim.framework import plugins as plugins_mod
from diffim.framework.plugins import (
    DEPRECATED_HOOKS,
    DiffimPluginManager,
    HookDeprecation,
    HookDeprecationWarning,
    deprecate_hook,
    hookimpl,
    hookspec,
)


class Specs:
    """Two versions of one hook: the old one deprecated in favour of the new one."""

    @hookspec
    def diffim_fake_old(self, registry: Any) -> None:
        """Old hook."""

    @hookspec
    def diffim_fake_new(self, registry: Any, options: Any) -> None:
        """New hook."""


class OldPlugin:
    @hookimpl
    def diffim_fake_old(self, registry: Any) -> None:
        pass


class NewPlugin:
    @hookimpl
    def diffim_fake_new(self, registry: Any) -> None:
        pass


class OptionsPlugin:
    @hookimpl
    def diffim_fake_new(self, registry: Any, options: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    saved = dict(DEPRECATED_HOOKS)
    yield
    DEPRECATED_HOOKS.clear()
    DEPRECATED_HOOKS.update(saved)


def _manager() -> DiffimPluginManager:
    pm = DiffimPluginManager()
    pm.add_hookspecs(Specs)
    return pm


def test_implementing_a_deprecated_hook_warns_with_plugin_hook_version_and_replacement() -> None:
    deprecate_hook("diffim_fake_old", since="0.2", replacement="diffim_fake_new", removal="0.3")
    pm = _manager()
    with pytest.warns(HookDeprecationWarning) as record:
        pm.register(OldPlugin(), name="oldie")
    [warning] = record.list
    assert str(warning.message) == (
        "plugin 'oldie' from no distribution (registered in-process) implements hook 'diffim_fake_old', "
        "deprecated since diffim 0.2 and removed in diffim 0.3; implement 'diffim_fake_new' instead"
    )
    assert issubclass(warning.category, DeprecationWarning)
    # the warning points at the plugin's implementation, not at diffim
    assert warning.filename == __file__
    assert warning.lineno == OldPlugin.diffim_fake_old.__code__.co_firstlineno
    assert pm.call("diffim_fake_old", registry=None) == []  # still works during the deprecation


def test_other_hooks_do_not_warn() -> None:
    deprecate_hook("diffim_fake_old", since="0.2")
    pm = _manager()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pm.register(NewPlugin(), name="modern")


def test_a_deprecated_argument_warns_only_implementations_taking_it() -> None:
    entry = deprecate_hook("diffim_fake_new", argument="options", since="0.4")
    assert entry == HookDeprecation("diffim_fake_new", "0.4", argument="options")
    assert DEPRECATED_HOOKS["diffim_fake_new", "options"] is entry
    pm = _manager()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pm.register(NewPlugin(), name="modern")
    with pytest.warns(
        HookDeprecationWarning,
        match=r"^plugin 'opts' .* implements hook 'diffim_fake_new' with argument 'options', deprecated since "
        r"diffim 0.4 and removed in the next minor release; drop the argument 'options' from the implementation$",
    ):
        pm.register(OptionsPlugin(), name="opts")
    deprecate_hook("diffim_fake_new", argument="options", since="0.4", replacement="settings")
    with pytest.warns(HookDeprecationWarning, match=r"; take the argument 'settings' instead$"):
        _manager().register(OptionsPlugin(), name="opts")


def test_entry_point_plugins_are_named_with_their_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeDist:
        def __init__(self) -> None:
            self.metadata = {"Name": "diffim-legacy"}
            self.version = "1.4"
            self.entry_points = [
                importlib.metadata.EntryPoint(name="legacy", value="fake_legacy_plugin", group="diffim")
            ]

    module = types.ModuleType("fake_legacy_plugin")
    module.diffim_fake_old = hookimpl(lambda registry: None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_legacy_plugin", module)
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [FakeDist()])
    monkeypatch.delattr(sys, "_called_from_test", raising=False)
    deprecate_hook("diffim_fake_old", since="0.2", replacement="diffim_fake_new")
    pm = _manager()
    with pytest.warns(HookDeprecationWarning, match=r"^plugin 'legacy' from distribution 'diffim-legacy' 1.4 implements"):
        pm.load(autoload=True)
    assert [info.name for info in pm.list_plugins()] == ["legacy"]


def test_deprecate_hook_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"cannot deprecate hook 'fake_old': hook names start with 'diffim_'"):
        deprecate_hook("fake_old", since="0.2")
    with pytest.raises(ValueError, match=r"needs the diffim version that deprecates it, got since=''"):
        deprecate_hook("diffim_fake_old", since="")
    assert "deprecate_hook" in plugins_mod.__all__ and "HookDeprecationWarning" in plugins_mod.__all__
