"""Registers the built-in candidate visitors (the classes live in :mod:`diffim.plugins.visitors`).

Kept import-light: the plugin manager imports this module at start-up, while numpy and the
visitor classes load only when the visitor registry is first read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffim.framework.plugins import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.config import Registry


@hookimpl(tryfirst=True)  # built-ins first, so plugins can replace them by name
def diffim_register_candidate_visitors(registry: Registry) -> None:
    from . import visitors

    registry.register("buildSingleKernel", visitors.BuildSingleKernelVisitor)
    registry.register("kernelSum", visitors.KernelSumVisitor)
    registry.register("kernelPca", visitors.KernelPcaVisitor)
    registry.register("buildSpatialKernel", visitors.BuildSpatialKernelVisitor)
    registry.register("assessSpatialKernel", visitors.AssessSpatialKernelVisitor)
