"""From planes taken out of a file (any layout) to an :class:`~diffim.tasks.image.Exposure`.

The steps every layout shares: non-finite pixels -> NO_DATA, the variance (from the file, a
noise/weight/variance map given by the user, or estimated), its check, saturation, WCS, metadata,
band, calibration and PSF.

No-data convention (as LSST's edge pixels): a pixel without data keeps its image value (NaN when it
was NaN), gets the NO_DATA mask bit, and -- when diffim builds the variance (plain images, noise or
weight maps, estimates) -- an infinite variance. A variance plane read from a file is kept as it is
on such pixels (LSST writes NaN or 0 there), so files round-trip bit for bit: use the mask, not the
variance value, to find them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from diffim.tasks.image import MASK_DTYPE, Exposure, Point2I, mask_planes

from .cards import band_from_header, card_number, clean_metadata, photo_calib_from_header
from .errors import Source
from .fitsfile import first_image_hdu, hdu_source, image_data, open_fits
from .variance import (
    SATURATION_KEYS,
    check_variance,
    estimate_variance,
    variance_from_noise,
    variance_from_weight,
)
from .wcs import wcs_from_header

__all__ = ["RawPlanes", "ReadOptions", "assemble"]


@dataclass
class RawPlanes:
    """What a layout reader found in a file.

    Attributes
    ----------
    image : numpy.ndarray
        Pixels (native, independent of the file; may be integer).
    source : Source
        The image HDU.
    header : astropy.io.fits.Header
        Merged header (primary + image HDU) for metadata and WCS.
    xy0 : Point2I
        Image origin.
    mask : numpy.ndarray or None
        int32 mask in the registry's bits.
    variance : numpy.ndarray or None
        Variance plane from the file.
    variance_source : Source or None
        Where the variance came from.
    zero_variance_ok : bool
        Whether zero variance is acceptable (LSST files).
    card_saturation : bool
        Whether header saturation cards apply (plain images).
    integer_max : float or None
        Default saturation level of an integer image (its dtype maximum).
    wcs : astropy.wcs.WCS or None
        Parent WCS when the reader already has it (CCDData objects); else parsed from ``header``.
    psf : Psf or None
        PSF found with the pixels.
    """

    image: np.ndarray
    source: Source
    header: fits.Header
    xy0: Point2I = Point2I(0, 0)
    mask: np.ndarray | None = None
    variance: np.ndarray | None = None
    variance_source: Source | None = None
    zero_variance_ok: bool = False
    card_saturation: bool = False
    integer_max: float | None = None
    wcs: WCS | None = None
    psf: Any = None


@dataclass(frozen=True)
class ReadOptions:
    """The user's options of :func:`~diffim.tasks.io.read_exposure` that apply to every layout."""

    noise: Any = None
    weight: Any = None
    variance: Any = None
    psf: Any = None
    saturation: float | None = None
    gain: float | None = None
    read_noise: float | None = None
    invalid_variance: str = "raise"


def _aux_plane(value: Any, label: str, shape: tuple[int, int]) -> tuple[np.ndarray, Source]:
    """A noise/weight/variance map given as a path or an array, checked against the image shape."""
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        with open_fits(path) as hdul:
            index = first_image_hdu(hdul, path, f"{label} map")
            source = hdu_source(path, hdul, index)
            array = image_data(hdul, index, path, what=f"{label} map")
    else:
        source = Source(f"<{label} array>")
        array = np.asarray(value)
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise source.error(f"must be a 2-D array of numbers, got shape {array.shape} dtype {array.dtype}", f"pass {label}= a 2-D array or a FITS path")
    if array.shape != shape:
        raise source.error(f"{label} map has shape {array.shape} but the image has shape {shape}", f"give a {label} map on the image's pixel grid")
    return array, source


def _nonfinite(image: np.ndarray) -> np.ndarray | None:
    """Boolean map of NaN/inf pixels, or None when there is none (one fast pass in the usual case)."""
    if image.dtype.kind != "f":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(image.sum()):
            return None
    bad = ~np.isfinite(image)
    return bad if bad.any() else None


def _psf(psf: Any) -> Any:
    """A PSF given as a stamp file or array -> ImagePsf; a Psf object (or None) as it is."""
    if isinstance(psf, (str, os.PathLike)):
        from .psf_file import read_psf_image

        return read_psf_image(psf)
    if isinstance(psf, np.ndarray):
        from diffim.tasks.psf.models import ImagePsf

        return ImagePsf(psf)
    return psf


def _saturation_level(raw: RawPlanes, options: ReadOptions) -> float | None:
    if options.saturation is not None:
        return float(options.saturation)
    if raw.card_saturation:
        found = card_number(raw.header, SATURATION_KEYS, raw.source)
        if found:
            return found[1]
        return raw.integer_max
    return None


def assemble(raw: RawPlanes, options: ReadOptions) -> Exposure:
    """Finish a read: masks, variance, saturation, WCS, metadata, PSF -> Exposure."""
    psf = _psf(options.psf if options.psf is not None else raw.psf)  # first: cheap to check
    image = raw.image
    no_data_bit = np.int32(mask_planes.bitmask("NO_DATA"))
    mask = raw.mask if raw.mask is not None else np.zeros(image.shape, dtype=MASK_DTYPE)
    bad = _nonfinite(image)
    if bad is not None:
        if bad.all():
            raise raw.source.error("the image has no finite pixel (all NaN/inf)", "check the HDU (or pass hdu=)")
        mask[bad] |= no_data_bit

    # -- variance --------------------------------------------------------------------------
    built = True  # diffim made the variance (so no-data pixels get +inf)
    zero_ok = False
    what = "variance"
    given = [(label, value) for label, value in (("noise", options.noise), ("weight", options.weight), ("variance", options.variance)) if value is not None]
    if given:
        label, value = given[0]
        array, var_source = _aux_plane(value, label, image.shape)
        if label == "noise":
            variance = variance_from_noise(array)
            what = "variance (noise map squared, sign kept)"
        elif label == "weight":
            variance, zero_weight = variance_from_weight(array)
            what = "variance (1 / weight)"
            mask[zero_weight] |= no_data_bit
        else:
            variance = array.astype(array.dtype if array.dtype.kind == "f" else np.float32, copy=True)
    elif raw.variance is not None:
        variance, var_source = raw.variance, raw.variance_source or raw.source
        built, zero_ok = False, raw.zero_variance_ok
    else:
        variance = estimate_variance(image, raw.header, raw.source, gain=options.gain, read_noise=options.read_noise)
        var_source = raw.source
    if variance.dtype.kind != "f":
        variance = variance.astype(np.float32)
    if built:
        no_data = (mask & no_data_bit) != 0
        if no_data.any():
            variance[no_data] = np.inf
    check_variance(variance, mask, zero_ok=zero_ok, policy=options.invalid_variance, source=var_source, xy0=raw.xy0, what=what)

    # -- saturation ------------------------------------------------------------------------
    level = _saturation_level(raw, options)
    if level is not None:
        with np.errstate(invalid="ignore"):
            saturated = image >= level
        if saturated.any():
            mask[saturated] |= np.int32(mask_planes.bitmask("SAT"))

    # -- what describes the pixels ---------------------------------------------------------
    wcs = raw.wcs if raw.wcs is not None else wcs_from_header(raw.header, raw.xy0, raw.source)
    metadata = clean_metadata(raw.header)
    return Exposure(
        image=image,
        mask=mask,
        variance=variance,
        xy0=raw.xy0,
        wcs=wcs,
        psf=psf,
        photoCalib=photo_calib_from_header(raw.header, raw.source),
        band=band_from_header(raw.header),
        metadata=metadata,
    )
