"""WCS in files (relative to the array) <-> ``exposure.wcs`` (relative to parent pixels).

diffim follows LSST: ``exposure.wcs`` maps *parent* pixel positions (0-based, ``xy0`` included) to
the sky, while a FITS file stores the WCS of its array so that ds9 and astropy agree with it. Array
pixel ``i`` (0-based) is FITS pixel ``i + 1`` and parent pixel ``i + x0``, so the parent WCS is the
file WCS with ``CRPIXn`` increased by the origin. The shift is applied to header cards (not to
``wcs.wcs.crpix``) so that SIP and other distortions, defined relative to CRPIX, move with it.
"""

from __future__ import annotations

import warnings

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from .cards import is_wcs_key
from .errors import FitsReadWarning, Source, one_line

__all__ = ["has_wcs", "wcs_from_header", "wcs_to_header", "shift_wcs"]

# A header describes a (primary) WCS when it has any of these.
_WCS_MARKERS = ("CTYPE1", "CTYPE2", "CRVAL1", "CD1_1", "PC1_1")


def has_wcs(header: fits.Header) -> bool:
    """True when ``header`` has primary WCS cards."""
    return any(key in header for key in _WCS_MARKERS)


def _shift_crpix(header: fits.Header, xy0: tuple[int, int], sign: int) -> None:
    for axis, offset in (("1", xy0[0]), ("2", xy0[1])):
        if offset:
            header[f"CRPIX{axis}"] = float(header.get(f"CRPIX{axis}", 0.0)) + sign * int(offset)


def wcs_from_header(header: fits.Header, xy0: tuple[int, int], source: Source) -> WCS | None:
    """Parent-coordinate WCS from a file header whose array starts at ``xy0``.

    Returns None when the header has no WCS. A WCS astropy cannot parse is ignored with a
    :class:`~diffim.tasks.io.errors.FitsReadWarning` (the pixels are still usable).
    """
    if not has_wcs(header):
        return None
    cards = fits.Header([c for c in header.cards if is_wcs_key(c.keyword) or c.keyword in _TIME_KEYS])
    _shift_crpix(cards, xy0, +1)
    try:
        with warnings.catch_warnings():
            # astropy "fixes" many harmless things (DATE-OBS format, RADECSYS...) and says so loudly.
            warnings.simplefilter("ignore", FITSFixedWarning)
            return WCS(cards, naxis=2)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "no usable WCS"
        msg = f"{source}: ignoring WCS cards astropy cannot parse ({one_line(exc)})"
        warnings.warn(msg, FitsReadWarning, stacklevel=3)
        return None


# Time cards astropy's WCS reads (for its time axes and date fixes); passed along, never written.
_TIME_KEYS = frozenset({"DATE-OBS", "MJD-OBS", "DATEREF", "MJDREF", "MJDREFI", "MJDREFF", "DATE-AVG", "MJD-AVG"})


def wcs_to_header(wcs: WCS, xy0: tuple[int, int]) -> fits.Header:
    """FITS cards of a parent-coordinate WCS, relative to an array starting at ``xy0``.

    Only WCS keywords are returned (astropy's date and observatory cards are left to the metadata).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        full = wcs.to_header(relax=True)
    cards = fits.Header([c for c in full.cards if is_wcs_key(c.keyword)])
    _shift_crpix(cards, xy0, -1)
    return cards


def shift_wcs(wcs: WCS, xy0: tuple[int, int], sign: int) -> WCS:
    """A copy of ``wcs`` with its reference pixel moved by ``sign * xy0`` (+1: array -> parent)."""
    header = wcs_to_header(wcs, (0, 0))
    _shift_crpix(header, xy0, sign)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header, naxis=2)
