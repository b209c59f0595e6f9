"""Built-in task names for ``diffim run -t NAME`` (the task modules load only when used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffim.framework.plugins import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.config import Registry


@hookimpl(tryfirst=True)  # built-ins first, so plugins can replace them by name
def diffim_register_tasks(registry: Registry) -> None:
    registry.register(
        "ImagePsfMatchTask",
        "diffim.tasks.imagePsfMatch.ImagePsfMatchTask",
        doc="PSF-match a template to a science exposure and subtract them (Alard-Lupton / delta-function kernels).",
    )
    registry.register(
        "ModelPsfMatchTask",
        "diffim.tasks.modelPsfMatch.ModelPsfMatchTask",
        doc="Convolve an exposure so that its PSF model matches a reference PSF model.",
    )
