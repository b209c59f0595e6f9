"""Registries filled by plugins through a hook, as kernel bases and executors will be."""

from __future__ import annotations

from typing import Annotated

import pytest

from diffim.framework.config import (
    Config,
    ConfigChoice,
    Field,
    FieldValidationError,
    Registry,
    RegistryField,
    RegistryName,
)
from diffim.framework.plugins import PluginError, get_plugin_manager, hookimpl, isolated_plugin_manager


def _populate(registry: Registry) -> None:
    get_plugin_manager().diffim_register_executors(registry=registry)


class ThreadConfig(Config):
    """Thread pool options."""

    threads: int = Field(4, ge=1, description="Number of threads.")


class ThreadExecutor:
    """Run jobs on threads."""

    def __init__(self, config: ThreadConfig) -> None:
        self.config = config


class ThreadPlugin:
    @hookimpl
    def diffim_register_executors(self, registry: Registry) -> None:
        registry.register("threads", ThreadExecutor, ConfigClass=ThreadConfig)


class BrokenPlugin:
    @hookimpl
    def diffim_register_executors(self, registry: Registry) -> None:
        raise RuntimeError("boom")


def test_registry_names_come_from_registered_plugins() -> None:
    executors = Registry("executor", populate=_populate)

    class RunConfig(Config):
        executor: ConfigChoice = RegistryField(executors, default="threads", description="Executor.")
        executorName: Annotated[str, RegistryName(executors)] = Field("threads", description="By name.")

    with isolated_plugin_manager(ThreadPlugin(), builtins=False):
        config = RunConfig()
        config.executor["threads"].threads = 8
        built = config.executor.apply()
        assert isinstance(built, ThreadExecutor) and built.config.threads == 8
        with pytest.raises(FieldValidationError, match="'dask' is not allowed; choose one of: 'threads' \\(Run jobs on threads.\\)"):
            config.executorName = "dask"


def test_a_broken_plugin_is_named() -> None:
    executors = Registry("executor", populate=_populate)
    with isolated_plugin_manager(BrokenPlugin(), builtins=False), pytest.raises(PluginError, match="plugin .*BrokenPlugin. failed in hook 'diffim_register_executors': RuntimeError: boom"):
        list(executors)


def test_a_failed_populate_is_retried_not_left_half_filled() -> None:
    calls = []

    def populate(registry: Registry) -> None:
        calls.append(1)
        registry.register("serial", lambda: None, doc="first")
        if len(calls) == 1:
            raise KeyboardInterrupt  # e.g. a job timeout interrupting the first read
        registry.register("process", lambda: None, doc="second")

    registry = Registry("executor", populate=populate)
    with pytest.raises(KeyboardInterrupt):
        registry["serial"]
    assert sorted(registry) == ["process", "serial"]  # the second read populates again, fully
    assert len(calls) == 2
