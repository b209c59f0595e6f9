"""Built-in kernel basis generators: "alard-lupton" and "delta-function".

Registered through the ``diffim`` entry-point group exactly like a third-party plugin; the
generators themselves live in :mod:`diffim.tasks.kernel.bases`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from diffim.framework.plugins import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.config import Registry


def alard_lupton(config: Any, **kwargs: Any) -> list[Any]:
    """Gaussians times polynomials, sigmas and size scaled by the PSF FWHMs (Alard & Lupton 1998)."""
    from diffim.tasks.kernel.bases import generateAlardLuptonBasisList

    return generateAlardLuptonBasisList(config, **kwargs)


def delta_function(config: Any, **kwargs: Any) -> list[Any]:
    """One basis kernel per pixel of a kernelSize x kernelSize kernel (usually regularized)."""
    from diffim.tasks.kernel.bases import makeDeltaFunctionBasisList

    return makeDeltaFunctionBasisList(config.kernelSize, config.kernelSize)


@hookimpl(tryfirst=True)  # built-ins first, so plugins can replace them by name
def diffim_register_kernel_bases(registry: Registry) -> None:
    registry.register("alard-lupton", alard_lupton)
    registry.register("delta-function", delta_function)
