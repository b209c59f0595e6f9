"""Interoperability with astropy's :class:`~astropy.nddata.CCDData`, both ways.

``exposure_to_ccddata`` gives a CCDData whose ``data`` and ``uncertainty`` (a
``VarianceUncertainty``) share the exposure's arrays, whose boolean ``mask`` is True where any of
the *bad* planes is set, and whose ``flags`` keep the full int32 bit mask (with the ``MP_*`` cards
naming the bits in ``meta``), so that ``exposure_from_ccddata`` restores the mask exactly. The WCS
is made relative to the array, as CCDData expects, and ``xy0`` travels in ``meta`` as LSST's ``A``
cards. ``CCDData.write`` does not write ``flags`` (unless asked with ``hdu_flags=``), so a CCDData
*file* keeps only the boolean mask, read back as the BAD plane.

Default bad planes: every LSST default plane except DETECTED and DETECTED_NEGATIVE, which mark
sources, not defects: BAD, SAT, INTRP, CR, EDGE, SUSPECT, NO_DATA.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from diffim.tasks.image import MASK_DTYPE, Exposure, Point2I, mask_planes

from .assemble import RawPlanes, ReadOptions, assemble
from .cards import clean_metadata, photo_calib_cards, xy0_cards, xy0_from_header
from .errors import Source
from .masks import mask_plane_cards, planes_from_header
from .read_ccddata import mask_from_flags, variance_from_uncertainty
from .wcs import shift_wcs, wcs_from_header

if TYPE_CHECKING:  # pragma: no cover
    from astropy.nddata import CCDData

__all__ = ["DEFAULT_BAD_PLANES", "exposure_to_ccddata", "exposure_from_ccddata"]

#: Planes that make a pixel "bad" in the boolean CCDData mask.
DEFAULT_BAD_PLANES = ("BAD", "SAT", "INTRP", "CR", "EDGE", "SUSPECT", "NO_DATA")

# astropy.nddata is imported in the functions: it adds ~0.1 s to importing diffim.tasks.io.
_UTYPES = ("StdDevUncertainty", "VarianceUncertainty", "InverseVariance")


def _unit(exposure: Exposure, unit: str | u.UnitBase | None) -> u.UnitBase:
    from astropy.nddata import CCDData

    if unit is not None:
        return u.Unit(unit)
    bunit = exposure.metadata.get("BUNIT")
    if not isinstance(bunit, str) or not bunit.strip():
        return u.adu
    text = bunit.strip()
    text = CCDData.known_invalid_fits_unit_strings.get(text, text.lower() if text.lower() == "adu" else text)
    try:
        return u.Unit(text)
    except ValueError:
        msg = f"BUNIT {bunit!r} of the exposure is not a unit astropy knows; pass unit=... to exposure_to_ccddata"
        raise ValueError(msg) from None


def exposure_to_ccddata(
    exposure: Exposure,
    *,
    bad_planes: Iterable[str] = DEFAULT_BAD_PLANES,
    unit: str | u.UnitBase | None = None,
) -> CCDData:
    """An astropy CCDData view of an exposure.

    Parameters
    ----------
    exposure : Exposure
        Source; its image and variance arrays are shared, not copied.
    bad_planes : iterable of str, optional
        Planes making a pixel True in the boolean ``mask`` (default :data:`DEFAULT_BAD_PLANES`).
    unit : str or astropy.units.Unit, optional
        Data unit; default ``BUNIT`` from the metadata, else ``adu``.

    Returns
    -------
    astropy.nddata.CCDData
        ``data``, ``uncertainty`` (VarianceUncertainty), ``mask`` (bool), ``flags`` (int32 bit
        mask), ``wcs`` (array coordinates), ``meta`` (metadata + ``MP_*`` + ``A`` cards + BAND and
        MAGZERO) and ``psf`` (kernel image of a PSF constant over the image).
    """
    from astropy.nddata import CCDData, VarianceUncertainty

    xy0 = exposure.getXY0()
    meta = clean_metadata(exposure.metadata)
    meta.extend(mask_plane_cards(), update=True)
    meta.extend(xy0_cards(xy0), update=True)
    if exposure.band is not None:
        meta["BAND"] = str(exposure.band)
    if exposure.photoCalib is not None:
        meta.extend(photo_calib_cards(exposure.photoCalib), update=True)
    psf = exposure.psf
    psf_image = None
    if psf is not None and not getattr(psf, "positionDependent", False) and hasattr(psf, "computeImage"):
        psf_image = np.asarray(psf.computeImage(), dtype=np.float64)
    return CCDData(
        exposure.image.array,
        unit=_unit(exposure, unit),
        uncertainty=VarianceUncertainty(exposure.variance.array, copy=False),
        mask=exposure.mask.plane(tuple(bad_planes)),
        flags=exposure.mask.array.copy(),
        wcs=shift_wcs(exposure.wcs, xy0, -1) if exposure.wcs is not None else None,
        meta=meta,
        psf=psf_image,
        copy=False,
    )


def exposure_from_ccddata(
    ccd: CCDData,
    *,
    bad_plane: str = "BAD",
    gain: float | None = None,
    read_noise: float | None = None,
    invalid_variance: str = "raise",
) -> Exposure:
    """An exposure from an astropy CCDData.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        Source; its arrays are copied.
    bad_plane : str, optional
        Plane set where the boolean ``mask`` is True (default BAD). Ignored when ``flags`` holds
        an integer bit mask and ``meta`` has ``MP_*`` cards naming its bits (what
        :func:`exposure_to_ccddata` produces): that mask is restored exactly.
    gain, read_noise : float, optional
        Used to estimate the variance when ``uncertainty`` is None (as for plain images).
    invalid_variance : {"raise", "flag"}, optional
        As in :func:`~diffim.tasks.io.read_exposure`.

    Returns
    -------
    Exposure
        ``xy0`` from the ``A`` cards of ``meta`` (default (0, 0)), the WCS moved to parent
        coordinates, ``BUNIT`` from the unit, band/calibration/metadata from ``meta``, the PSF from
        ``psf``.

    Raises
    ------
    FitsReadError
        For data that are not 2-D numbers, planes of another shape, or unusable uncertainties.
    """
    source = Source("<CCDData>")
    data = np.asarray(ccd.data)
    data = np.array(data, dtype=data.dtype.newbyteorder("=") if data.dtype.kind in "biuf" else None)
    if data.ndim != 2 or data.dtype.kind not in "biuf":
        raise source.error(f"data must be a 2-D array of numbers, got shape {data.shape} dtype {data.dtype}", "give a 2-D image")
    if data.dtype.kind == "b":
        data = data.astype(np.float32)
    meta = ccd.meta if isinstance(ccd.meta, fits.Header) else fits.Header(list(dict(ccd.meta).items()))
    header = meta.copy()
    if ccd.unit is not None and ccd.unit != u.dimensionless_unscaled:
        header["BUNIT"] = ccd.unit.to_string()
    xy0 = xy0_from_header(header, source) or Point2I(0, 0)

    mask = np.zeros(data.shape, dtype=MASK_DTYPE)
    flags = ccd.flags
    if isinstance(flags, np.ndarray) and flags.shape == data.shape and flags.dtype.kind in "iu" and planes_from_header(header, source):
        mask |= mask_from_flags(flags, planes_from_header(header, source), Source("<CCDData.flags>"), bad_plane)
    elif ccd.mask is not None:
        mask |= mask_from_flags(np.asarray(ccd.mask), None, Source("<CCDData.mask>"), bad_plane)

    variance = None
    var_source = Source("<CCDData.uncertainty>")
    unc = ccd.uncertainty
    if unc is not None:
        utype = next((cls.__name__ for cls in type(unc).__mro__ if cls.__name__ in _UTYPES), None)
        if utype is None:
            raise var_source.error(f"uncertainty of type {type(unc).__name__} has no variance", f"use one of {', '.join(_UTYPES)}")
        array = np.array(unc.array)
        if array.shape != data.shape:
            raise var_source.error(f"has shape {array.shape} but the data have shape {data.shape}", "give an uncertainty on the data's grid")
        variance, no_data = variance_from_uncertainty(array, utype, var_source)  # array is a copy
        if no_data is not None:
            mask[no_data] |= np.int32(mask_planes.bitmask("NO_DATA"))

    if isinstance(ccd.wcs, WCS):
        wcs = shift_wcs(ccd.wcs, xy0, +1)
    else:  # none, or a non-FITS (e.g. gwcs) one diffim cannot shift: fall back on the cards of meta
        wcs = wcs_from_header(header, xy0, source)
    psf = ccd.psf if getattr(ccd, "psf", None) is not None else None
    raw = RawPlanes(
        image=data,
        source=source,
        header=header,
        xy0=xy0,
        mask=mask,
        variance=variance,
        variance_source=var_source,
        wcs=wcs,
        psf=None,
    )
    return assemble(raw, ReadOptions(psf=psf, gain=gain, read_noise=read_noise, invalid_variance=invalid_variance))
