"""Typed calls of the diffim.tasks hooks (the only way tasks/ reaches plugins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
from typing import Any

from diffim.framework.plugins import PluginError, get_plugin_manager

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
    """Run the display plugins for ``stage``; a failing display is reported once and skipped."""
    try:
        get_plugin_manager().call(
            "diffim_debug_display", stage=stage, module=module, debug=debug, task=task, data=data
        )
    except PluginError as err:
        key = f"{err.plugin}:{stage}"
        if key not in _reported_display_failures:
            _reported_display_failures.add(key)
            logging.getLogger("diffim.display").warning("debug display failed and is skipped: %s", err)
