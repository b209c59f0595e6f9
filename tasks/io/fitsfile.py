"""Opening FITS files and taking image data out of them, with one-line errors for every failure.

Files are opened memory-mapped and each plane is *copied* into a native-endian array: one pass over
the bytes (faster than reading into memory and then byte-swapping), and the returned arrays do not
keep the file open.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from math import prod

import numpy as np
from astropy.io import fits

from .errors import Source, one_line

__all__ = [
    "open_fits",
    "hdu_name",
    "hdu_source",
    "is_image_hdu",
    "hdu_naxis",
    "resolve_hdu",
    "first_image_hdu",
    "find_hdu",
    "image_data",
    "list_hdus",
]

_IMAGE_TYPES = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)


def hdu_name(hdu: fits.hdu.base._BaseHDU) -> str:
    """EXTNAME, else LSST's EXTTYPE, else ``"PRIMARY"`` for HDU 0's header, upper case."""
    header = hdu.header
    for key in ("EXTNAME", "EXTTYPE"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().upper()
    return "PRIMARY" if isinstance(hdu, fits.PrimaryHDU) else ""


def hdu_source(path: str, hdul: fits.HDUList, index: int) -> Source:
    """:class:`Source` naming HDU ``index`` of ``hdul``."""
    return Source(path, index, hdu_name(hdul[index]))


def is_image_hdu(hdu: fits.hdu.base._BaseHDU) -> bool:
    """True for a primary, image or tile-compressed image HDU."""
    return isinstance(hdu, _IMAGE_TYPES)


def hdu_naxis(hdu: fits.hdu.base._BaseHDU) -> int:
    """Number of data axes from the header (0 for a header-only HDU)."""
    return int(hdu.header.get("NAXIS", 0) or 0)


def list_hdus(hdul: fits.HDUList) -> str:
    """``"0 PRIMARY (no data), 1 IMAGE 193x193, ..."`` for error messages."""
    parts = []
    for i, hdu in enumerate(hdul):
        naxis = hdu_naxis(hdu)
        shape = "x".join(str(hdu.header.get(f"NAXIS{k}", 0)) for k in range(1, naxis + 1)) if naxis else "no data"
        kind = "" if is_image_hdu(hdu) else " table"
        parts.append(f"{i} {hdu_name(hdu) or '-'} ({shape}{kind})")
    return ", ".join(parts)


def _data_nbytes(header: fits.Header) -> int:
    naxis = int(header.get("NAXIS", 0) or 0)
    if naxis == 0:
        return 0
    npix = prod(int(header.get(f"NAXIS{k}", 0) or 0) for k in range(1, naxis + 1))
    return abs(int(header.get("BITPIX", 8))) // 8 * int(header.get("GCOUNT", 1) or 1) * (int(header.get("PCOUNT", 0) or 0) + npix)


@contextmanager
def open_fits(path: str | os.PathLike[str]) -> Iterator[fits.HDUList]:
    """Open a FITS file read-only (memory-mapped), checking that it is whole.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    FitsReadError
        If it is not a FITS file, cannot be parsed, or is truncated (names the first HDU whose
        data run past the end of the file).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        msg = f"{p}: no such file; check the path"
        raise FileNotFoundError(msg)
    source = Source(p)
    if os.path.isdir(p):
        raise source.error("is a directory, not a FITS file", "give the path of a .fits file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(p, mode="readonly", lazy_load_hdus=False)  # memmap where it can (not for scaled data)
        except Exception as exc:  # noqa: BLE001 - astropy raises OSError, ValueError, VerifyError...
            raise source.error(f"not a readable FITS file ({one_line(exc)})", "check that the file is FITS and complete") from None
    truncated = damaged = ""
    for w in caught:
        text = one_line(w.message)
        if "truncated" in text:
            truncated = text
        elif "Error validating header for HDU" in text:  # garbage or a cut header after the last good HDU
            damaged = text
        else:  # pass the others on
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    try:
        size = os.path.getsize(p)
        for i, hdu in enumerate(hdul):
            if isinstance(hdu, fits.CompImageHDU):  # its header describes the image, not the stored table
                continue
            # HDUList.fileinfo() re-serialises every header to detect edits (ms per HDU); the offset
            # astropy recorded while reading is the same number.
            offset = getattr(hdu, "_data_offset", None)
            if offset is None:  # pragma: no cover - older/newer astropy without the attribute
                offset = hdul.fileinfo(i)["datLoc"]
            end = offset + _data_nbytes(hdu.header)
            if end > size:
                problem = f"file is truncated: this HDU's data end at byte {end} but the file has {size} bytes"
                raise hdu_source(p, hdul, i).error(problem, "copy or write the file again")
        if damaged:  # cut inside a header: the HDUs astropy found are whole, the rest is lost
            problem = f"the header after HDU {len(hdul) - 1} is cut short or damaged ({size} bytes; astropy: {damaged})"
            raise source.error(problem, "copy or write the file again")
        if truncated:  # only the padding of the last HDU is missing
            raise source.error(f"file is truncated ({truncated})", "copy or write the file again")
        yield hdul
    finally:
        hdul.close()


def resolve_hdu(hdul: fits.HDUList, hdu: int | str, path: str) -> int:
    """Index of the HDU given by index or EXTNAME (case-insensitive)."""
    if isinstance(hdu, bool) or not isinstance(hdu, (int, str)):
        msg = f"hdu must be an HDU index (int) or EXTNAME (str), got {hdu!r}"
        raise TypeError(msg)
    if isinstance(hdu, int):
        if -len(hdul) <= hdu < len(hdul):
            return hdu % len(hdul)
    else:
        for i, h in enumerate(hdul):
            if hdu_name(h) == hdu.strip().upper():
                return i
    raise Source(path).error(f"has no HDU {hdu!r} (HDUs: {list_hdus(hdul)})", "pass hdu= one of those")


def find_hdu(hdul: fits.HDUList, *names: str) -> int | None:
    """Index of the first HDU named (EXTNAME/EXTTYPE) one of ``names``; None if there is none."""
    wanted = {n.upper() for n in names}
    for i, h in enumerate(hdul):
        if hdu_name(h) in wanted:
            return i
    return None


def first_image_hdu(hdul: fits.HDUList, path: str, what: str = "image") -> int:
    """Index of the first image HDU with (at least) 2-D data."""
    for i, h in enumerate(hdul):
        if is_image_hdu(h) and hdu_naxis(h) >= 2:
            return i
    raise Source(path).error(f"has no HDU with a 2-D {what} (HDUs: {list_hdus(hdul)})", "check the file or pass hdu=")


def image_data(hdul: fits.HDUList, index: int, path: str, *, what: str = "image") -> np.ndarray:
    """The 2-D data of an image HDU as a new native-endian array.

    Leading axes of length 1 (``(1, ny, nx)`` cubes) are dropped.

    Raises
    ------
    FitsReadError
        If the HDU is a table, has no data, is not 2-D, or holds non-numeric values.
    """
    hdu = hdul[index]
    source = hdu_source(path, hdul, index)
    if not is_image_hdu(hdu):
        raise source.error(f"is a {type(hdu).__name__} (a table), not an {what}", "pass the HDU holding the pixels")
    naxis = hdu_naxis(hdu)
    if naxis == 0:
        raise source.error(f"has no data, expected a 2-D {what}", "pass the HDU holding the pixels")
    try:
        data = hdu.data
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data: astropy raises various types
        raise source.error(f"cannot read the data ({one_line(exc)})", "copy or write the file again") from None
    if data is None:
        raise source.error(f"has no data, expected a 2-D {what}", "pass the HDU holding the pixels")
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise source.error(f"holds {data.ndim}-D data of shape {data.shape}, expected a 2-D {what}", "pass a 2-D image HDU")
    if data.dtype.kind not in "biuf":
        raise source.error(f"holds non-numeric data (dtype {data.dtype})", "pass an HDU holding numbers")
    return data.astype(data.dtype.newbyteorder("="), copy=True)
