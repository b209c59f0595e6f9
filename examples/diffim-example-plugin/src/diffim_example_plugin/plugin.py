"""The plugin module diffim loads through the entry point ``example``.

Each function is a hook implementation: marked with ``@hookimpl`` and named after a hook of
``diffim.tasks.hookspecs``. diffim imports this module at start-up, so it stays light: the
basis, visitor and display modules (numpy, matplotlib) are imported inside the hooks, the first
time diffim fills a registry or draws a display.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from diffim.framework.plugins import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.config import Registry

__all__ = [
    "diffim_debug_display",
    "diffim_register_candidate_visitors",
    "diffim_register_kernel_bases",
]


@hookimpl
def diffim_register_kernel_bases(registry: Registry) -> None:
    """Register the ``"gauss-hermite"`` basis, a value of ``kernelBasisSet``."""
    from . import basis

    registry.register(basis.NAME, basis.gauss_hermite_basis,
                      doc="Gaussians times Hermite polynomials, orthonormalised (example plugin).")


@hookimpl
def diffim_register_candidate_visitors(registry: Registry) -> None:
    """Register the ``"residualChi2"`` QA visitor, a value of ``qaVisitors``."""
    from . import qa

    registry.register(qa.NAME, qa.ResidualChi2Visitor,
                      doc="Reduced chi2 of each candidate under the final spatial kernel (example plugin).")


@hookimpl
def diffim_debug_display(stage: str, debug: Any, data: Mapping[str, Any]) -> None:
    """Write a PNG of the kernel at ``stage`` when the ``exampleKernelPng`` flag is set."""
    # an implementation may take any subset of the hook's arguments: module and task are unused
    from . import display

    display.show(stage, debug, data)
