"""Typed calls of the diffim.tasks hooks (the only way tasks/ reaches plugins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
from typing import Any

from diffim.framework.plugins import get_plugin_manager

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.config import Registry

    from .image.mask_planes import MaskPlaneRegistry

__all__ = ["add_mask_planes", "register_kernel_bases", "register_candidate_visitors", "debug_display"]


def add_mask_planes(registry: MaskPlaneRegistry) -> None:
    """Let every plugin add its mask planes to ``registry``."""
    get_plugin_manager().call("diffim_add_mask_planes", registry=registry)


def register_kernel_bases(registry: Registry) -> None:
    """Let every plugin register its kernel basis generators."""
    get_plugin_manager().call("diffim_register_kernel_bases", registry=registry)


def register_candidate_visitors(registry: Registry) -> None:
    """Let every plugin register (or replace) candidate visitors."""
    get_plugin_manager().call("diffim_register_candidate_visitors", registry=registry)


_reported_display_failures: set[str] = set()


def debug_display(stage: str, module: str, debug: Any, task: Any, **data: Any) -> None:
    """Run every display plugin for ``stage``; a failing display is reported once and skipped.

    Each implementation is called on its own (not through one pluggy call), so one broken
    display cannot hide the others.
    """
    kwargs = {"stage": stage, "module": module, "debug": debug, "task": task, "data": data}
    caller = get_plugin_manager().hook.diffim_debug_display
    for impl in reversed(caller.get_hookimpls()):  # pluggy's own call order
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception as err:  # noqa: BLE001 - a display must never break a fit
            key = f"{impl.plugin_name}:{stage}"
            if key not in _reported_display_failures:
                _reported_display_failures.add(key)
                logging.getLogger("diffim.display").warning(
                    "debug display plugin %r failed at %r and is skipped: %s: %s",
                    impl.plugin_name, stage, type(err).__name__, err,
                )
