"""Header cards: which ones are kept as metadata, and the few diffim reads (band, zero point, xy0).

Cards are sorted into three kinds when a file is read:

- *structural* cards (``SIMPLE``, ``BITPIX``, ``NAXISn``, ``EXTEND``, ``XTENSION``, ``PCOUNT``,
  ``GCOUNT``, ``BZERO``, ``BSCALE``, ``BLANK``, ``EXTNAME``, ``EXTTYPE``, ``EXTVER``, ``INHERIT``,
  ``CHECKSUM``, ``DATASUM``): dropped, astropy rewrites them;
- *WCS* cards (the FITS WCS keywords of every alternate WCS, SIP coefficients, and IRAF's
  ``WAT``/``LTV``/``LTM``/``WCSDIM``): parsed into ``exposure.wcs`` (the primary WCS) or ``xy0``
  (LSST's ``A`` cards), then dropped, since a sub-image or a shifted origin would make them stale;
- mask plane cards ``MP_*``: turned into the mask plane mapping, then dropped.

Every other card (``DATE-OBS``, ``EXPTIME``, ``FILTER``, ``GAIN``, ``BUNIT``, ``COMMENT``,
``HISTORY``...) is kept in ``exposure.metadata`` and written back to the IMAGE HDU.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import TYPE_CHECKING, Any

from astropy.io import fits

from diffim.tasks.image import PhotoCalib, Point2I

from .errors import FitsReadWarning, Source

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable

__all__ = [
    "STRUCTURAL_KEYS",
    "is_wcs_key",
    "is_kept_key",
    "clean_metadata",
    "merge_headers",
    "card_number",
    "band_from_header",
    "photo_calib_from_header",
    "photo_calib_cards",
    "xy0_from_header",
    "xy0_cards",
]

STRUCTURAL_KEYS = frozenset(
    {
        "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "BZERO", "BSCALE",
        "BLANK", "EXTNAME", "EXTTYPE", "EXTVER", "EXTLEVEL", "INHERIT", "CHECKSUM", "DATASUM", "END",
    }
)  # fmt: skip

_NAXIS_RE = re.compile(r"^NAXIS\d+$")
# FITS WCS keywords (with an optional alternate-WCS letter), SIP, and IRAF's WCS bookkeeping.
_WCS_RE = re.compile(
    r"^(?:WCSAXES|WCSNAME|CRPIX\d+|CRVAL\d+|CDELT\d+|CTYPE\d+|CUNIT\d+|CROTA\d+|CRDER\d+|CSYER\d+"
    r"|CD\d+_\d+|PC\d+_\d+|PV\d+_\d+|PS\d+_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH)[A-Z]?$"
    r"|^(?:A|B|AP|BP)_(?:ORDER|DMAX|\d+_\d+)$"
    r"|^(?:WAT\d+_\d+|LTV\d+|LTM\d+_\d+|WCSDIM)$"
)
# cfitsio/astropy boilerplate in primary headers: not worth keeping as metadata.
_BOILERPLATE = (
    "FITS (Flexible Image Transport System) format is defined",
    "and Astrophysics', volume 376, page 359",
)

#: Cards giving a magnitude zero point (mag = -2.5 log10(counts) + ZP), in order of preference.
ZERO_POINT_KEYS = ("MAGZERO", "MAGZPT", "ZP", "PHOTZP")
ZERO_POINT_ERR_KEYS = ("MAGZERR", "MAGZPTER", "ZPERR", "PHOTZPER")


def is_wcs_key(key: str) -> bool:
    """True for a WCS keyword (any alternate WCS, SIP, IRAF WCS bookkeeping)."""
    return _WCS_RE.match(key) is not None


def is_kept_key(key: str) -> bool:
    """True for a card kept in ``exposure.metadata`` (not structural, WCS or ``MP_*``)."""
    return bool(key) and key not in STRUCTURAL_KEYS and not _NAXIS_RE.match(key) and not key.startswith("MP_") and not is_wcs_key(key)


def _is_boilerplate(card: fits.Card) -> bool:
    return card.keyword == "COMMENT" and str(card.value).lstrip().startswith(_BOILERPLATE)


def clean_metadata(header: fits.Header) -> fits.Header:
    """The cards of ``header`` worth keeping as metadata (see the module docstring)."""
    return fits.Header([c for c in header.cards if is_kept_key(c.keyword) and not _is_boilerplate(c)])


def merge_headers(primary: fits.Header | None, extension: fits.Header) -> fits.Header:
    """Non-structural cards of a primary header overlaid by those of an extension (INHERIT-style).

    Extension cards win; COMMENT/HISTORY cards of both are kept.
    """
    def usable(cards: Iterable[fits.Card]) -> list[fits.Card]:
        return [c for c in cards if c.keyword and c.keyword not in STRUCTURAL_KEYS and not _NAXIS_RE.match(c.keyword)]

    merged = fits.Header(usable(primary.cards) if primary is not None else [])
    merged.extend(usable(extension.cards), update=True)
    return merged


def card_number(header: fits.Header, keys: Iterable[str], source: Source) -> tuple[str, float] | None:
    """First of ``keys`` present in ``header`` as ``(key, float value)``; None when none is there.

    Raises
    ------
    FitsReadError
        If the card holds something that is not a finite number.
    """
    for key in keys:
        if key in header:
            value = header[key]
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, bool) or not math.isfinite(number):
                msg_problem = f"header card {key} = {value!r} is not a finite number"
                raise source.error(msg_problem, f"fix the card or pass the value as an option (e.g. {key.lower()}=...)")
            return key, number
    return None


def band_from_header(header: fits.Header) -> str | None:
    """Band from ``BAND``, else the first word of ``FILTER`` (``'i DECam SDSS c0003'`` -> ``'i'``)."""
    for key in ("BAND", "FILTER"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return value.split()[0]
    return None


def photo_calib_from_header(header: fits.Header, source: Source) -> PhotoCalib | None:
    """Calibration from a zero-point card (``MAGZERO``/``MAGZPT``/``ZP``/``PHOTZP``) or LSST's ``FLUXMAG0``.

    A card that does not give a usable calibration is ignored with a :class:`FitsReadWarning`.
    """
    for key in ZERO_POINT_KEYS:
        if key in header:
            err = next((header[k] for k in ZERO_POINT_ERR_KEYS if k in header), 0.0)
            try:
                return PhotoCalib.from_zero_point(float(header[key]), float(err))
            except (TypeError, ValueError):
                _warn_ignored(source, key, header[key])
                return None
    if "FLUXMAG0" in header:
        value = header["FLUXMAG0"]
        try:
            flux0 = float(value)
            if flux0 > 0 and math.isfinite(flux0):
                return PhotoCalib.from_zero_point(2.5 * math.log10(flux0))
        except (TypeError, ValueError):
            pass
        _warn_ignored(source, "FLUXMAG0", value)
    return None


def _warn_ignored(source: Source, key: str, value: Any) -> None:
    msg = f"{source}: ignoring header card {key} = {value!r}, not a usable photometric zero point"
    warnings.warn(msg, FitsReadWarning, stacklevel=4)


def photo_calib_cards(photo: PhotoCalib) -> list[fits.Card]:
    """``MAGZERO`` (and ``MAGZERR``) cards for a calibration (read back by :func:`photo_calib_from_header`)."""
    cards = [fits.Card("MAGZERO", photo.zeroPoint, "AB mag of one count (diffim PhotoCalib)")]
    if photo.calibrationErr > 0:
        cards.append(fits.Card("MAGZERR", 2.5 / math.log(10.0) * photo.calibrationErr / photo.calibrationMean, "zero point error"))
    return cards


def xy0_from_header(header: fits.Header, source: Source) -> Point2I | None:
    """Image origin from LSST's alternate ``A`` WCS (``CTYPE1A = 'LINEAR'``); None when absent.

    LSST maps FITS pixel ``p`` (1-based) to parent ``x = CRVAL1A + (p - CRPIX1A)``, so the first
    array column (``p = 1``) is at ``x0 = CRVAL1A + 1 - CRPIX1A``.
    """
    if "CRVAL1A" not in header or "CRVAL2A" not in header:
        return None
    ctype = str(header.get("CTYPE1A", "LINEAR")).strip().upper()
    if ctype != "LINEAR":
        return None
    origin = []
    for axis in ("1", "2"):
        try:
            value = float(header[f"CRVAL{axis}A"]) + 1.0 - float(header.get(f"CRPIX{axis}A", 1.0))
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or abs(value - round(value)) > 1e-6:
            msg = f"{source}: ignoring the 'A' WCS cards, they do not give an integer image origin (axis {axis}: {value!r})"
            warnings.warn(msg, FitsReadWarning, stacklevel=3)
            return None
        origin.append(int(round(value)))
    return Point2I(origin[0], origin[1])


def xy0_cards(xy0: tuple[int, int]) -> list[fits.Card]:
    """LSST's ``A`` WCS cards carrying the image origin ``xy0`` (parent coordinates of array[0, 0])."""
    x0, y0 = int(xy0[0]), int(xy0[1])
    return [
        fits.Card("CTYPE1A", "LINEAR", "parent pixel coordinates (LSST xy0)"),
        fits.Card("CTYPE2A", "LINEAR", "parent pixel coordinates (LSST xy0)"),
        fits.Card("CRPIX1A", 1, "first array pixel"),
        fits.Card("CRPIX2A", 1, "first array pixel"),
        fits.Card("CRVAL1A", x0, "x0: parent x of the first column"),
        fits.Card("CRVAL2A", y0, "y0: parent y of the first row"),
        fits.Card("CUNIT1A", "pixel"),
        fits.Card("CUNIT2A", "pixel"),
    ]
