"""What the image-differencing task knows of each input's PSF: FWHM and per-axis widths.

:func:`psf_info` takes them from a given FWHM, the image's PSF model, or a measurement on the
image's stars (:func:`measure_psf`: the star-stack estimate of :func:`~diffim.tasks.psf.estimate_psf`,
else the detection's rough FWHM). :class:`~diffim.tasks.imagePsfMatch.ImagePsfMatchTask` scales
its kernel basis with the FWHMs and chooses the convolution direction from the widths
(:mod:`diffim.tasks.matching.mode`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from diffim.framework.struct import Struct

from ..image import Exposure, MaskedImage
from ..psf.measure import FWHM_PER_SIGMA

__all__ = ["PsfInfo", "known_fwhm", "measure_psf", "psf_info", "psf_measurement_box"]


class PsfInfo(Struct):
    """What is known of one image's PSF.

    Fields: ``fwhm`` (pixels), per-axis Gaussian-equivalent widths ``sigmaX``/``sigmaY``
    (pixels, from the PSF's second moments), ``psf`` (model or None), ``origin`` ("given",
    "psf", "estimated", "detection" or "unknown"), ``beta`` (Moffat index of the estimated
    star stack's profile, None when not estimated).
    """


def psf_info(image: Exposure | MaskedImage, label: str, fwhm: float | None,
             measure: Callable[[], tuple[Any, float, str, float | None] | None]) -> PsfInfo:
    """FWHM and per-axis widths of ``image``'s PSF: given, from its model, or measured.

    Parameters
    ----------
    image : Exposure or MaskedImage
        The image (only an Exposure has a PSF model).
    label : str
        "template" or "science", for the error message.
    fwhm : float or None
        The FWHM given by the caller (pixels), else None.
    measure : callable
        Called without arguments, only when there is neither a FWHM nor a PSF model: returns
        ``(psf, fwhm, origin, beta)`` measured on the image, or None (see :func:`measure_psf`).

    Returns
    -------
    PsfInfo
        What is known of the PSF.

    Raises
    ------
    ValueError
        The FWHM is not a finite number of pixels > 0.
    """
    psf = image.psf if isinstance(image, Exposure) else None
    cx, cy = image.getBBox().getCenter()
    sigma_x = sigma_y = None
    beta = None
    origin = "given" if fwhm is not None else "unknown"
    if psf is not None:
        shape = psf.computeShape(cx, cy)
        sigma_x, sigma_y = math.sqrt(shape.ixx), math.sqrt(shape.iyy)
        if fwhm is None:
            fwhm, origin = float(psf.computeFwhm(cx, cy)), "psf"
    elif fwhm is None:
        estimated = measure()
        if estimated is not None:
            psf, fwhm, origin, beta = estimated
            if psf is not None:
                shape = psf.computeShape()
                sigma_x, sigma_y = math.sqrt(shape.ixx), math.sqrt(shape.iyy)
    if fwhm is not None:
        if not (math.isfinite(fwhm) and fwhm > 0):
            msg = f"{label} PSF FWHM must be a finite number of pixels > 0, got {fwhm!r}"
            raise ValueError(msg)
        if sigma_x is None:
            sigma_x = sigma_y = fwhm / FWHM_PER_SIGMA
    return PsfInfo(fwhm=fwhm, sigmaX=sigma_x, sigmaY=sigma_y, psf=psf, origin=origin, beta=beta)


def known_fwhm(image: Any, fwhm: float | None) -> float | None:
    """The FWHM given, else the PSF model's at the image centre, else None (to be measured)."""
    psf = image.psf if isinstance(image, Exposure) else None
    if fwhm is None and psf is not None:
        cx, cy = image.getBBox().getCenter()
        fwhm = float(psf.computeFwhm(cx, cy))
    return fwhm


def measure_psf(image: Any, label: str, detection: Struct | None, *, threshold: float, box_size: int,
                log: Any) -> tuple[Any, float, str, float | None] | None:
    """``(psf, fwhm, origin, beta)`` measured on an image without a PSF model, or None.

    The star-stack estimate (:func:`~diffim.tasks.psf.estimate_psf`) first, relaxed to 3 stars
    of S/N >= 20 for sparse images, then the detection's rough FWHM (~15 % high) as a last resort.
    ``detection`` holds the image's ``background`` (a Background, made here when None).

    On an image larger than ``1.5 × box_size`` on both sides the stars come from the central
    ``box_size`` box first (where a PSF model is evaluated too, and a quarter or less of the
    detection work), and from the whole image only if the box holds too few usable stars
    (:func:`psf_measurement_box`). Sources are detected at ``threshold`` sigma; what was measured,
    or why nothing could be, goes to ``log``.
    """
    from ..detection import DetectionError, detect_sources, estimate_background
    from ..psf import PsfEstimationError, estimate_psf

    background = detection.background if detection is not None else None
    if background is None:
        background = estimate_background(image)
    regions: list[Any] = [None]
    box = psf_measurement_box(image, box_size)
    if box is not None:
        regions.insert(0, box)
    errors: list[str] = []
    sources = None
    for region in regions:
        data = image if region is None else image[region]
        bg = background if region is None else background.array[region.slices(image.getBBox().getMin())]
        sources = detect_sources(
            data, threshold=threshold, smooth_fwhm=None,
            exclude_mask_planes=("NO_DATA",), background=bg, set_mask=False,
        )
        for options in ({}, {"min_stars": 3, "snr_min": 20.0}):
            try:
                estimate = estimate_psf(data, sources=sources, background=bg, **options)
            except PsfEstimationError as err:
                errors.append(str(err))
                continue
            where = "" if region is None else f" in the central {region.width}x{region.height} box"
            log.info("The %s image has no PSF: measured FWHM %.3f px from %d stars%s", label, estimate.fwhm,
                     estimate.n_stars, where)
            return estimate.psf, float(estimate.fwhm), "estimated", float(estimate.profile.beta)
    try:
        fwhm = float(sources.meta["fwhm"])  # the whole image's detection (the last region)
    except (DetectionError, KeyError, TypeError, ValueError) as err:
        errors.append(str(err))
        fwhm = math.nan
    if math.isfinite(fwhm) and fwhm > 0:
        log.warning("The %s image has no PSF and too few stars to measure one (%s); using the detection's "
                    "rough FWHM %.3f px", label, errors[-1], fwhm)
        return None, fwhm, "detection", None
    log.warning("The %s image has no PSF and none could be measured (%s)", label, "; ".join(errors))
    return None


def psf_measurement_box(image: Any, side: int) -> Any:
    """The central ``side`` box PSFs are measured in first, or None to use the whole image.

    None when ``side`` is 0 or the image is smaller than ``1.5 × side`` on either side.
    """
    from ..image import Box2I

    bbox = image.getBBox()
    if side == 0 or bbox.width < 1.5 * side or bbox.height < 1.5 * side:
        return None
    x0 = bbox.minX + (bbox.width - side) // 2
    y0 = bbox.minY + (bbox.height - side) // 2
    return Box2I((x0, y0), (side, side))
