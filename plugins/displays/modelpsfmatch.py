"""Displays of PSF-model matching (module ``diffim.tasks.modelPsfMatch``).

* `displaySpatialCells` — stage ``"modelPsfMatch.cells"``: the exposure to be convolved with the
  spatial cells and the PSF-model kernel candidates (one per grid position).
"""

from __future__ import annotations

from typing import Any

from .imagepsfmatch import showKernelSpatialCells
from .render import DisplayContext

__all__ = ["displaySpatialCells"]


def displaySpatialCells(maskedImage: Any, cellSet: Any, *, ctx: DisplayContext | None = None) -> Any:  # noqa: N802, N803
    """Draw the exposure's spatial cells and the PSF-model candidates placed in them.

    Parameters
    ----------
    maskedImage : MaskedImage
        The exposure to be convolved.
    cellSet : SpatialCellSet
        The cells and their candidates (PSF-model stamp pairs).
    ctx : DisplayContext, optional
        Caller and flags (``maskTransparency``).

    Returns
    -------
    pathlib.Path
        The PNG file.
    """
    return showKernelSpatialCells(
        maskedImage, cellSet, ctx=ctx, title="Exposure to convolve: PSF-model kernel candidates",
        name="model_spatial_cells", showChi2=False,
        description="Where the PSF models are realized to fit the matching kernel (one candidate per "
                    "grid position), over the exposure to be convolved.",
    )
