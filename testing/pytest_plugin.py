"""pytest plugin of the diffim test kit, auto-loaded through the ``pytest11`` entry point ``diffim``.

Fixtures (all function-scoped, all undone at the end of the test):

``diffim_plugin_manager``
    ``make(*plugins, builtins=True, autoload=False, entry_points=()) -> DiffimPluginManager``:
    a fresh process-wide manager with only the chosen plugins (see
    :func:`diffim.testing.plugin_manager`).
``diffim_hook_recorder``
    ``record(manager=None) -> HookRecorder``: records every hook call on ``manager`` (default:
    the current process-wide manager, so call ``diffim_plugin_manager`` first).
``diffim_image_pair``
    A fresh :class:`~diffim.testing.SyntheticPair` with the default parameters (256² pixels,
    25 stars, a transient, a known kernel).
``diffim_image_pair_factory``
    :func:`~diffim.testing.make_image_pair`, for other parameters.

The module imports nothing from diffim at load time, so pytest start-up stays fast in every
environment where diffim is installed. Disable it with ``pytest -p no:diffim``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.plugins import DiffimPluginManager

    from .images import SyntheticPair
    from .recorder import HookRecorder

__all__ = [
    "diffim_hook_recorder",
    "diffim_image_pair",
    "diffim_image_pair_factory",
    "diffim_plugin_manager",
]


@pytest.fixture
def diffim_plugin_manager() -> Iterator[Callable[..., DiffimPluginManager]]:
    """Factory of process-wide plugin managers holding only chosen plugins.

    Yields
    ------
    make : callable
        ``make(*plugins, builtins=True, autoload=False, entry_points=())`` returns a
        `~diffim.framework.plugins.DiffimPluginManager` that
        `~diffim.framework.plugins.get_plugin_manager` returns until the test ends (or until the
        next ``make`` call); parameters as :func:`diffim.testing.plugin_manager`. The previous
        manager and the plugin-filled registries are restored at teardown.

    Examples
    --------
    ::

        def test_my_basis(diffim_plugin_manager):
            diffim_plugin_manager("my_package.plugin", builtins=False)
            from diffim.tasks.registries import kernel_bases
            assert list(kernel_bases) == ["my-basis"]
    """
    from .managers import plugin_manager

    with contextlib.ExitStack() as stack:

        def make(
            *plugins: object, builtins: bool = True, autoload: bool = False, entry_points: Any = ()
        ) -> DiffimPluginManager:
            return stack.enter_context(
                plugin_manager(*plugins, builtins=builtins, autoload=autoload, entry_points=entry_points)
            )

        yield make


@pytest.fixture
def diffim_hook_recorder() -> Iterator[Callable[..., HookRecorder]]:
    """Factory of hook-call recorders, closed at teardown.

    Yields
    ------
    record : callable
        ``record(manager=None)`` returns a :class:`~diffim.testing.HookRecorder` attached to
        ``manager`` (default: the current process-wide manager).

    Examples
    --------
    ::

        def test_basis_hook_called(diffim_plugin_manager, diffim_hook_recorder):
            pm = diffim_plugin_manager(MyPlugin())
            recorder = diffim_hook_recorder(pm)
            ...  # run a task
            call = recorder.getcall("diffim_register_kernel_bases")
            assert "my-basis" in call.kwargs["registry"]
    """
    from .recorder import HookRecorder

    recorders: list[HookRecorder] = []

    def record(manager: Any = None) -> HookRecorder:
        recorder = HookRecorder(manager)
        recorders.append(recorder)
        return recorder

    yield record
    for recorder in reversed(recorders):  # pluggy restores monitors in reverse order
        recorder.close()


@pytest.fixture
def diffim_image_pair_factory() -> Callable[..., SyntheticPair]:
    """The pair maker :func:`diffim.testing.make_image_pair` (parameters: size, nstars, sigmas...).

    Returns
    -------
    make : callable
        :func:`~diffim.testing.make_image_pair`.
    """
    from .images import make_image_pair

    return make_image_pair


@pytest.fixture
def diffim_image_pair(diffim_image_pair_factory: Callable[..., SyntheticPair]) -> SyntheticPair:
    """A fresh default synthetic pair (256² pixels, 25 stars, one transient, known kernel).

    Returns
    -------
    pair : :class:`~diffim.testing.SyntheticPair`
        Made anew for each test (Exposures are mutable); takes a few milliseconds.
    """
    return diffim_image_pair_factory()
