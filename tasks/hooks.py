"""Typed calls of the diffim.tasks hooks (the only way tasks/ reaches plugins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffim.framework.plugins import get_plugin_manager

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.config import Registry

    from .image.mask_planes import MaskPlaneRegistry

__all__ = ["add_mask_planes", "register_kernel_bases", "register_candidate_visitors"]


def add_mask_planes(registry: MaskPlaneRegistry) -> None:
    """Let every plugin add its mask planes to ``registry``."""
    get_plugin_manager().call("diffim_add_mask_planes", registry=registry)


def register_kernel_bases(registry: Registry) -> None:
    """Let every plugin register its kernel basis generators."""
    get_plugin_manager().call("diffim_register_kernel_bases", registry=registry)


def register_candidate_visitors(registry: Registry) -> None:
    """Let every plugin register (or replace) candidate visitors."""
    get_plugin_manager().call("diffim_register_candidate_visitors", registry=registry)
