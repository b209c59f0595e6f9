"""Tests for diffim.framework.plugins: registration, calling, entry-point loading, isolation."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from diffim.framework import plugins as plugins_mod
from diffim.framework.cli import main
from diffim.framework.plugins import (
    DiffimPluginManager,
    PluginError,
    PluginInfo,
    get_plugin_manager,
    hookimpl,
    hookspec,
    isolated_plugin_manager,
    reset_plugin_manager,
)

PLUGIN_DIST = Path(__file__).parent / "plugin_dist"


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _clean_plugin_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Known environment and a fresh singleton for every test."""
    for var in ("DIFFIM_DISABLE_PLUGIN_AUTOLOAD", "DIFFIM_BLOCK_PLUGINS", "DIFFIM_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delattr(sys, "_called_from_test", raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


class FakeDist:
    """Stand-in for `importlib.metadata.Distribution` (pluggy's own test pattern)."""

    def __init__(self, name: str, version: str, entry_points: list[tuple[str, str, str]]) -> None:
        self.metadata = {"Name": name}
        self.name = name
        # importlib.metadata.entry_points() (called by pydantic's plugin loader when a test
        # first imports pydantic meanwhile) de-duplicates distributions by this attribute
        self._normalized_name = name.lower().replace("-", "_").replace(".", "_")
        self.version = version
        self.entry_points = [
            importlib.metadata.EntryPoint(name=ep_name, value=value, group=group)
            for group, ep_name, value in entry_points
        ]


def _module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> types.ModuleType:
    """Create an importable module ``name`` holding ``attrs``."""
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


@pytest.fixture
def fake_dists(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Replace the installed distributions by the given fake ones."""

    def install(*dists: FakeDist) -> None:
        monkeypatch.setattr(importlib.metadata, "distributions", lambda: list(dists))

    return install


@pytest.fixture
def fake_world(monkeypatch: pytest.MonkeyPatch, fake_dists: Callable[..., None]) -> None:
    """A diffim distribution with a hookspec module and a built-in, plus a third-party plugin."""

    class Specs:
        @hookspec(firstresult=True)
        def diffim_fake_pick(self, value: int) -> int | None:
            """Pick a result (firstresult)."""

    @hookimpl(trylast=True)
    def builtin_pick(value: int) -> int:
        return value

    @hookimpl
    def third_pick(value: int) -> int:
        return value * 100

    @hookimpl
    def third_commands(subparsers: Any) -> None:
        pass

    _module(monkeypatch, "fake_diffim_specs", Specs=Specs)
    _module(monkeypatch, "fake_diffim_builtin", diffim_fake_pick=builtin_pick)
    _module(
        monkeypatch,
        "fake_third_party",
        diffim_fake_pick=third_pick,
        diffim_add_commands=third_commands,
    )
    fake_dists(
        FakeDist(
            "diffim-extra",
            "2.5",
            [("diffim", "third", "fake_third_party")],
        ),
        FakeDist(
            "diffim",
            "0.1.0",
            [
                ("diffim.hookspecs", "fake", "fake_diffim_specs:Specs"),
                ("diffim", "builtin", "fake_diffim_builtin"),
            ],
        ),
    )


# ------------------------------------------------------------------- in-process plugins


class Collector:
    """Plugin appending to the registry it is given."""

    @hookimpl
    def diffim_register_executors(self, registry: list[str]) -> None:
        registry.append("serial")


def test_register_and_call_hook() -> None:
    pm = DiffimPluginManager()
    plugin = Collector()
    assert pm.register(plugin, name="collector") == "collector"
    assert pm.is_registered(plugin)
    assert pm.get_plugin("collector") is plugin
    registry: list[str] = []
    assert pm.call("diffim_register_executors", registry=registry) == []
    pm.diffim_register_executors(registry)  # typed convenience method
    assert registry == ["serial", "serial"]
    assert pm.unregister(plugin) is plugin
    assert not pm.is_registered(plugin)
    assert pm.list_plugins() == []


def test_framework_hookspecs_are_declared() -> None:
    pm = DiffimPluginManager()
    from diffim.framework import hookspecs

    declared = sorted(name for name in hookspecs.__all__ if name.startswith("diffim_"))
    assert pm.hook_names() == declared
    assert {"diffim_add_commands", "diffim_register_executors"} <= set(declared)
    assert pm.hook.diffim_add_commands.spec.argnames == ("subparsers",)
    assert pm.hook.diffim_register_executors.spec.argnames == ("registry",)


def test_call_error_names_plugin_and_hook() -> None:
    def helper() -> None:
        raise KeyError("no such executor")

    class Broken:
        @hookimpl
        def diffim_register_executors(self, registry: list[str]) -> None:
            helper()  # the failure happens one frame below the hookimpl

    pm = DiffimPluginManager()
    pm.register(Broken(), name="broken")
    pm.register(Collector(), name="good")  # registered last, so called first
    with pytest.raises(PluginError) as info:
        pm.call("diffim_register_executors", registry=[])
    msg = str(info.value)
    assert msg.startswith("plugin 'broken' failed in hook 'diffim_register_executors'")
    assert "KeyError" in msg and "no such executor" in msg
    assert "good" not in msg
    assert isinstance(info.value.__cause__, KeyError)
    assert (info.value.plugin, info.value.hook) == ("broken", "diffim_register_executors")
    assert isinstance(info.value, RuntimeError)


def test_call_error_through_wrapper_names_the_raising_plugin() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def diffim_register_executors(self, registry: list[str]) -> Any:
            return (yield)

    class Broken:
        @hookimpl
        def diffim_register_executors(self, registry: list[str]) -> None:
            raise OSError("disk full")

    pm = DiffimPluginManager()
    pm.register(Broken(), name="broken")
    pm.register(Wrapper(), name="wrapper")
    with pytest.raises(PluginError, match=r"^plugin 'broken' failed in hook"):
        pm.call("diffim_register_executors", registry=[])


def test_call_unknown_hook_lists_close_matches() -> None:
    pm = DiffimPluginManager()
    with pytest.raises(
        PluginError, match=r"unknown hook 'diffim_add_command'; did you mean 'diffim_add_commands'"
    ):
        pm.call("diffim_add_command", subparsers=None)
    with pytest.raises(
        PluginError, match=r"known hooks: diffim_add_commands, .*diffim_register_executors"
    ):
        pm.call("zzz")


def test_register_unknown_hook_after_load_is_rejected() -> None:
    class Typo:
        @hookimpl
        def diffim_register_executor(self, registry: Any) -> None:
            pass

    pm = DiffimPluginManager()
    pm.load(autoload=False, builtins=False)
    plugin = Typo()
    with pytest.raises(
        PluginError,
        match=r"unknown hook 'diffim_register_executor' "
        r"\(did you mean 'diffim_register_executors'\?\)",
    ):
        pm.register(plugin, name="typo")
    assert not pm.is_registered(plugin)


def test_register_duplicate_name_is_plugin_error() -> None:
    pm = DiffimPluginManager()
    pm.register(Collector(), name="x")
    with pytest.raises(
        PluginError, match=r"cannot register plugin 'x': Plugin name already registered"
    ):
        pm.register(Collector(), name="x")


def test_register_bad_signature_is_plugin_error() -> None:
    class BadArgs:
        @hookimpl
        def diffim_add_commands(self, parser: Any) -> None:
            pass

    pm = DiffimPluginManager()
    with pytest.raises(PluginError, match=r"plugin 'bad' is invalid: .*parser"):
        pm.register(BadArgs(), name="bad")


def test_block_by_name() -> None:
    pm = DiffimPluginManager()
    first = Collector()
    pm.register(first, name="collector")
    pm.block("collector")
    assert pm.is_blocked("collector")
    assert not pm.is_registered(first)
    assert pm.register(Collector(), name="collector") is None
    assert pm.list_plugins() == []


def test_block_env_var(monkeypatch: pytest.MonkeyPatch, fake_world: None) -> None:
    monkeypatch.setenv("DIFFIM_BLOCK_PLUGINS", " third , other")
    pm = DiffimPluginManager()
    pm.load(autoload=True)
    assert [info.name for info in pm.list_plugins()] == ["builtin"]
    assert pm.call("diffim_fake_pick", value=3) == 3


# ------------------------------------------------------------ entry points (fake dists)


def test_load_order_and_list_plugins(fake_world: None) -> None:
    pm = DiffimPluginManager()
    pm.load(autoload=True)
    # the third-party plugin is registered after the built-in, so it wins the firstresult hook
    assert pm.call("diffim_fake_pick", value=3) == 300
    assert pm.list_plugins() == [
        PluginInfo(
            name="builtin", distribution="diffim", version="0.1.0", hooks=["diffim_fake_pick"]
        ),
        PluginInfo(
            name="third",
            distribution="diffim-extra",
            version="2.5",
            hooks=["diffim_add_commands", "diffim_fake_pick"],
        ),
    ]
    assert pm.loaded
    pm.load(autoload=True)  # idempotent
    assert len(pm.list_plugins()) == 2


def test_autoload_disabled_by_env_var(monkeypatch: pytest.MonkeyPatch, fake_world: None) -> None:
    monkeypatch.setenv("DIFFIM_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = DiffimPluginManager()
    pm.load()
    assert [info.name for info in pm.list_plugins()] == ["builtin"]
    assert "diffim_fake_pick" in pm.hook_names()  # diffim's own hookspecs still load
    explicit = DiffimPluginManager()
    explicit.load(autoload=True)  # an explicit argument wins over the environment
    assert [info.name for info in explicit.list_plugins()] == ["builtin", "third"]


def test_autoload_disabled_under_test_flag(
    monkeypatch: pytest.MonkeyPatch, fake_world: None
) -> None:
    assert plugins_mod.autoload_enabled()
    monkeypatch.setattr(sys, "_called_from_test", True, raising=False)
    assert not plugins_mod.autoload_enabled()
    assert [info.name for info in get_plugin_manager().list_plugins()] == ["builtin"]


def test_plugin_import_failure_is_one_line_plugin_error(
    monkeypatch: pytest.MonkeyPatch, fake_dists: Callable[..., None]
) -> None:
    fake_dists(
        FakeDist("diffim-broken", "1.0", [("diffim", "broken", "diffim_no_such_module_xyz")])
    )
    pm = DiffimPluginManager()
    with pytest.raises(PluginError) as info:
        pm.load(autoload=True)
    msg = str(info.value)
    assert "\n" not in msg
    assert "cannot load plugin 'broken'" in msg
    assert "distribution 'diffim-broken' 1.0" in msg
    assert "ModuleNotFoundError" in msg
    assert "pip uninstall diffim-broken" in msg and "DIFFIM_BLOCK_PLUGINS=broken" in msg
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    # the advertised fix works
    monkeypatch.setenv("DIFFIM_BLOCK_PLUGINS", "broken")
    fixed = DiffimPluginManager()
    fixed.load(autoload=True)
    assert fixed.list_plugins() == []


def test_plugin_with_unknown_hook_fails_check_pending(
    monkeypatch: pytest.MonkeyPatch, fake_dists: Callable[..., None]
) -> None:
    @hookimpl
    def typo(subparsers: Any) -> None:
        pass

    _module(monkeypatch, "fake_typo_plugin", diffim_add_comands=typo)
    fake_dists(FakeDist("diffim-typo", "0.3", [("diffim", "typo", "fake_typo_plugin")]))
    with pytest.raises(PluginError) as info:
        DiffimPluginManager().load(autoload=True)
    msg = str(info.value)
    assert msg.startswith(
        "plugin 'typo' from distribution 'diffim-typo' 0.3 "
        "implements unknown hook 'diffim_add_comands'"
    )
    assert "did you mean 'diffim_add_commands'?" in msg
    assert "pip uninstall diffim-typo" in msg
    assert (info.value.plugin, info.value.hook) == ("typo", "diffim_add_comands")


def test_optional_unknown_hook_is_allowed(
    monkeypatch: pytest.MonkeyPatch, fake_dists: Callable[..., None]
) -> None:
    @hookimpl(optionalhook=True)
    def future(x: int) -> None:
        pass

    _module(monkeypatch, "fake_future_plugin", diffim_future_hook=future)
    fake_dists(FakeDist("diffim-future", "1.0", [("diffim", "future", "fake_future_plugin")]))
    pm = DiffimPluginManager()
    pm.load(autoload=True)
    assert pm.list_plugins()[0].hooks == ["diffim_future_hook"]


def test_broken_hookspec_module_is_plugin_error(fake_dists: Callable[..., None]) -> None:
    fake_dists(
        FakeDist("diffim-specs", "1.0", [("diffim.hookspecs", "specs", "diffim_missing_specs_xyz")])
    )
    with pytest.raises(
        PluginError, match=r"cannot load hookspec module 'specs'.*pip uninstall diffim-specs"
    ):
        DiffimPluginManager().load(autoload=True)
    DiffimPluginManager().load(autoload=False)  # third-party hookspecs are skipped too


def test_name_clash_between_distributions(
    monkeypatch: pytest.MonkeyPatch, fake_dists: Callable[..., None]
) -> None:
    _module(monkeypatch, "fake_clash_a")
    _module(monkeypatch, "fake_clash_b")
    fake_dists(
        FakeDist("diffim-a", "1", [("diffim", "same", "fake_clash_a")]),
        FakeDist(
            "diffim-a", "1", [("diffim", "same", "fake_clash_a")]
        ),  # same dist twice on sys.path
        FakeDist("diffim-b", "2", [("diffim", "same", "fake_clash_b")]),
    )
    with pytest.raises(
        PluginError, match=r"plugin name 'same' from distribution 'diffim-b' 2 clashes"
    ):
        DiffimPluginManager().load(autoload=True)


def test_trace_env_var_prints_hook_calls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIFFIM_TRACE_PLUGINS", "1")
    pm = DiffimPluginManager()
    pm.register(Collector(), name="collector")
    pm.call("diffim_register_executors", registry=[])
    err = capsys.readouterr().err
    assert "diffim_register_executors:" in err
    assert "'collector'" in err and "Results:" in err


# --------------------------------------------------------------- singleton and isolation


def test_get_plugin_manager_is_a_lazy_singleton(fake_world: None) -> None:
    pm = get_plugin_manager()
    assert pm is get_plugin_manager()
    assert pm.loaded
    reset_plugin_manager()
    assert get_plugin_manager() is not pm


def test_isolated_plugin_manager_restores_singleton(fake_world: None) -> None:
    original = get_plugin_manager()
    plugin = Collector()
    with pytest.raises(ZeroDivisionError):
        with isolated_plugin_manager(plugin, builtins=False) as pm:
            assert get_plugin_manager() is pm
            assert pm is not original
            assert pm.is_registered(plugin) and not original.is_registered(plugin)
            assert len(pm.list_plugins()) == 1  # no built-ins
            1 / 0  # noqa: B018 - the singleton must be restored on errors too
    assert get_plugin_manager() is original
    with isolated_plugin_manager() as pm:
        assert [info.name for info in pm.list_plugins()] == ["builtin"]  # built-ins, no third party


# ------------------------------------------------------------ one real installed plugin


@pytest.fixture(scope="module")
def installed_testplugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install tests/plugin_dist with pip into a --target folder; return that folder."""
    work = tmp_path_factory.mktemp("plugin_dist")
    source = work / "src"
    # Build from a copy: setuptools writes build/ and *.egg-info next to pyproject.toml.
    shutil.copytree(
        PLUGIN_DIST, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    target = work / "site"
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(source),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return target


def test_real_installed_plugin_distribution(
    installed_testplugin: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dist_infos = list(installed_testplugin.glob("diffim_testplugin-0.0.1.dist-info"))
    assert dist_infos and (dist_infos[0] / "entry_points.txt").is_file()
    monkeypatch.syspath_prepend(str(installed_testplugin))
    monkeypatch.delitem(sys.modules, "diffim_testplugin", raising=False)
    try:
        with isolated_plugin_manager(autoload=True) as pm:
            [info] = [info for info in pm.list_plugins() if info.name == "testplugin"]
            assert info == PluginInfo(
                "testplugin", "diffim-testplugin", "0.0.1", ["diffim_add_commands"]
            )
            assert main(["hello", "--name", "tester"]) == 0
            assert capsys.readouterr().out == "hello tester from diffim-testplugin\n"
            assert main(["plugins"]) == 0
            row = [
                line
                for line in capsys.readouterr().out.splitlines()
                if line.startswith("testplugin")
            ]
            assert row and row[0].split() == [
                "testplugin",
                "diffim-testplugin",
                "0.0.1",
                "diffim_add_commands",
            ]
    finally:
        sys.modules.pop("diffim_testplugin", None)
