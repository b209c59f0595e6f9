"""The difference image in science units, from the PSF-matched image, with its background removed.

:func:`science_units_difference` is the subtraction step of
:class:`~diffim.tasks.imagePsfMatch.ImagePsfMatchTask` (see its class notes): ``S − K ⋆ T`` when
the template was convolved, ``(K ⋆ S − T) / k`` when the science image was, then the fitted
differential background (refitted on the whole difference with ``doRefitBackground``,
:mod:`diffim.tasks.difference_background`) subtracted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from diffim.framework.struct import Struct

from .difference_background import refit_background, subtract_function
from .image import Image, Mask, MaskedImage
from .psfMatch import NoKernelCandidatesError

__all__ = ["science_units_difference"]


def science_units_difference(template: MaskedImage, science: MaskedImage, result: Struct, *,
                             subtract_background: bool, refit: bool, bin_size: int) -> tuple[MaskedImage, Any]:
    """Difference in science units from the matched image, and the background subtracted from it.

    Parameters
    ----------
    template, science : MaskedImage
        The two images on one pixel grid.
    result : Struct
        The matching result: ``matchedImage``, ``convolveTemplate``, ``kernelSum`` and
        ``backgroundModel`` (the fit's ``reference ≈ K ⋆ convolved + bg``).
    subtract_background : bool
        Subtract the fitted background (the kernel fit has ``fitForBackground`` and
        ``doSubtractBackground`` is set).
    refit : bool
        Refit that background on the whole difference first (``doRefitBackground``).
    bin_size : int
        Bin side (pixels) of the refit (``backgroundBinSize``).

    Returns
    -------
    tuple
        The difference (MaskedImage of the science image's pixel type) and the background
        subtracted from it, in its units (a spatial function, or None when none is subtracted).

    Raises
    ------
    NoKernelCandidatesError
        The science image was convolved and the kernel sum is not a finite number > 0.
    """
    matched = result.matchedImage
    bbox = science.getBBox()
    with np.errstate(invalid="ignore"):
        if result.convolveTemplate:
            image = science.image.array - matched.image.array
            variance = science.variance.array + matched.variance.array
            mask = science.mask.array | matched.mask.array
            factor = 1.0
        else:
            norm = result.kernelSum
            if not (math.isfinite(norm) and norm > 0):
                msg = (
                    f"the fitted kernel sum at the image centre is {norm!r}, so the convolved science image "
                    "cannot be put back in science units; check the kernel sources or use mode='convolveTemplate'"
                )
                raise NoKernelCandidatesError(msg)
            image = (matched.image.array - template.image.array) / norm
            variance = (matched.variance.array + template.variance.array) / norm**2
            mask = template.mask.array | matched.mask.array
            factor = -1.0 / norm  # the fit's reference = K * convolved + bg: T - K*S = bg
    background = None
    if subtract_background:
        fitted = result.backgroundModel
        background = fitted.copy_with(np.asarray(fitted.getParameters()) * factor)
        if refit:
            background = refit_background(image, mask, variance, background, bbox, bin_size)
        subtract_function(image, background, bbox)
    dtype = science.image.dtype
    xy0 = bbox.getMin()
    difference = MaskedImage(Image(image.astype(dtype, copy=False), xy0=xy0), Mask(mask, xy0=xy0),
                             Image(variance.astype(dtype, copy=False), xy0=xy0))
    return difference, background
