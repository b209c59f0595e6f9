"""Which layout a FITS file uses: LSST (IMAGE/MASK/VARIANCE), astropy CCDData, or a plain image.

Rules of ``layout="auto"`` (header cards only; no pixel is read):

1. **LSST**: the primary HDU has no data and either (a) HDUs named IMAGE plus MASK and/or VARIANCE
   (by EXTNAME, or LSST's EXTTYPE), or (b) exactly three image HDUs follow, the second with ``MP_*``
   cards. A missing plane is then an error, not a reason to fall back.
2. **CCDData**: an HDU named UNCERT or MASK (what ``CCDData.write`` adds).
3. **plain**: otherwise; the image is the first HDU with 2-D data.
"""

from __future__ import annotations

from astropy.io import fits

from .fitsfile import hdu_name, hdu_naxis, is_image_hdu

__all__ = ["LAYOUTS", "detect_layout", "lsst_by_position"]

#: Layout names accepted by ``read_exposure(layout=...)``.
LAYOUTS = ("auto", "lsst", "ccddata", "plain")

_LSST_PLANES = frozenset({"IMAGE", "MASK", "VARIANCE"})


def lsst_by_position(hdul: fits.HDUList) -> bool:
    """True for an empty primary followed by exactly three image HDUs, the second with ``MP_*`` cards."""
    if len(hdul) != 4 or hdu_naxis(hdul[0]) != 0:
        return False
    if not all(is_image_hdu(h) and hdu_naxis(h) >= 2 for h in hdul[1:]):
        return False
    return any(key.startswith("MP_") for key in hdul[2].header)


def detect_layout(hdul: fits.HDUList) -> str:
    """``"lsst"``, ``"ccddata"`` or ``"plain"`` (see the module docstring)."""
    names = {hdu_name(h) for h in hdul[1:]}
    if hdu_naxis(hdul[0]) == 0:
        found = names & _LSST_PLANES
        if "IMAGE" in found and len(found) >= 2:
            return "lsst"
        if lsst_by_position(hdul):
            return "lsst"
    if {"UNCERT", "MASK"} & names:
        return "ccddata"
    return "plain"
