"""Kernel-candidate stamps of image differencing: their size, contaminants, and their cell set.

:func:`stamp_half_size` sizes the stamps (LSST's ``2·kernelSize+1``, or smaller with
``fitRegionFwhmScaling``), :func:`contamination` gathers what zero-weighting contaminated pixels
needs (:mod:`diffim.tasks.matching.contamination`), and :func:`build_cell_set` cuts the stamps
around kernel sources into a :class:`~diffim.tasks.matching.cells.SpatialCellSet` of
:class:`~diffim.tasks.matching.candidate.KernelCandidate` (the body of
``ImagePsfMatchTask._buildCellSet``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from diffim.framework.struct import Struct

from ..image import MaskedImage

__all__ = ["build_cell_set", "contamination", "stamp_half_size"]


def stamp_half_size(kernel_size: int, reference_fwhm: float | None, scaling: float, kernel_size_min: int) -> int:
    """Half-size of the candidates' stamps: half the kernel plus half the fitted region.

    The region is ``2·ceil(scaling·FWHM)+1`` pixels, clamped to ``[kernel_size_min + 2,
    kernel_size + 2]``; LSST's ``kernelSize`` (region ``kernel_size + 2``) with ``scaling``
    (``fitRegionFwhmScaling``) 0 or an unknown FWHM. The stamp side is ``2·half + 1`` and the
    fitted region's ``2·half + 2 - kernel_size``.
    """
    region = kernel_size + 2
    if scaling > 0 and reference_fwhm is not None and math.isfinite(reference_fwhm):
        wanted = 2 * math.ceil(scaling * reference_fwhm) + 1
        region = min(region, max(kernel_size_min + 2, wanted))
    return (kernel_size - 1) // 2 + (region - 1) // 2


def contamination(selection: Struct, reference_fwhm: float | None, basis: Any, sel_config: Any) -> Struct | None:
    """What :func:`build_cell_set` needs to zero-weight contaminated pixels (None: nothing to do).

    ``selection`` is the kernel-source selection (its ``contaminants`` points) and
    ``sel_config`` the selection's config (``maskContaminants``, ``contaminantRadiusFwhm``,
    ``counterpartRadiusPix``, ``maxContaminatedFraction``); an unknown FWHM counts as 3 pixels.
    """
    points = getattr(selection, "contaminants", None)
    if points is None or not len(points) or not sel_config.maskContaminants:
        return None
    fwhm = reference_fwhm if reference_fwhm is not None and math.isfinite(reference_fwhm) else 3.0
    return Struct(points=np.asarray(points, dtype=float), radius=sel_config.contaminantRadiusFwhm * fwhm,
                  skipRadius=sel_config.counterpartRadiusPix, kernelWidth=int(basis[0].getWidth()),
                  maxFraction=sel_config.maxContaminatedFraction)


def build_cell_set(templateMaskedImage: MaskedImage, scienceMaskedImage: MaskedImage,  # noqa: N803 - LSST names
                   candidateList: Any, half: int, config: Any,  # noqa: N803
                   contaminants: Struct | None = None) -> tuple[Any, int, int]:
    """SpatialCellSet of kernel candidates with stamps of side ``2·half+1``.

    Parameters
    ----------
    templateMaskedImage, scienceMaskedImage : MaskedImage
        The image to convolve and the image matched to.
    candidateList : astropy.table.Table
        Sources with ``x``, ``y`` and optionally ``rating`` (else ``snr``, else 1).
    half : int
        Stamp half-size (pixels).
    config : PsfMatchConfig
        The active kernel config (cell sizes; a frozen copy goes to every candidate).
    contaminants : Struct, optional
        ``points`` (``(n, 2)`` x, y), ``radius``, ``skipRadius``, ``kernelWidth`` and
        ``maxFraction`` (see :func:`contamination`): the pixels of the image matched to within
        ``radius`` of a point get zero weight; a candidate losing more than ``maxFraction`` of
        its fitted region is left out.

    Returns
    -------
    tuple
        The cell set, the number of stamps with zero-weighted pixels and the number of
        candidates left out as too contaminated.
    """
    from ..image import Box2I
    from .candidate import KernelCandidate
    from .cells import SpatialCellSet
    from .contamination import contaminated_pixels, mask_contaminated_pixels

    # one frozen copy shared by every candidate (each would otherwise deep-copy the config)
    shared = config.copy()
    shared.freeze()
    region = templateMaskedImage.getBBox().clippedTo(scienceMaskedImage.getBBox())
    cell_set = SpatialCellSet(region, config.sizeCellX, config.sizeCellY)
    side = 2 * half + 1
    names = candidateList.colnames
    rating_col = "rating" if "rating" in names else ("snr" if "snr" in names else None)
    n_masked = n_rejected = 0
    for row in candidateList:
        x, y = float(row["x"]), float(row["y"])
        bbox = Box2I((math.floor(x + 0.5) - half, math.floor(y + 0.5) - half), (side, side))
        if not region.contains(bbox):
            continue
        rating = float(row[rating_col]) if rating_col is not None else 1.0
        science_stamp = scienceMaskedImage[bbox]
        if contaminants is not None:
            hit = contaminated_pixels(bbox, contaminants.points, contaminants.radius, centre=(x, y),
                                      skip_radius=contaminants.skipRadius)
            if hit is not None:
                border = contaminants.kernelWidth // 2
                fitted = hit[border:side - border, border:side - border]
                if fitted.size == 0 or fitted.mean() > contaminants.maxFraction:
                    n_rejected += 1
                    continue
                science_stamp = mask_contaminated_pixels(science_stamp, hit)
                n_masked += 1
        candidate = KernelCandidate(x, y, templateMaskedImage[bbox], science_stamp, shared,
                                    source=row, rating=rating)
        cell_set.insertCandidate(candidate)
    return cell_set, n_masked, n_rejected
