"""``write_exposure``: the LSST layout, written atomically.

Layout: an empty primary HDU, then ``IMAGE`` (the image dtype, float32 or float64), ``MASK`` (int32
with an ``MP_<NAME> = bit`` card for every registered plane, HIERARCH for long names) and
``VARIANCE``; each with ``EXTNAME`` and LSST's ``EXTTYPE``, the WCS relative to the array and LSST's
``A`` cards carrying ``xy0``. The IMAGE HDU also carries the metadata cards (``BUNIT`` included),
``BAND`` and ``MAGZERO``. A PSF that does not vary over the image is written as its kernel image in
a ``PSF`` extension, which :func:`~diffim.tasks.io.read_exposure` reads back as an ``ImagePsf``.

The file is first written to a temporary file in the target directory, then renamed over the target
(``os.replace``, atomic on POSIX and Windows), so that readers never see a partial file and a failure
leaves nothing behind. Without ``overwrite`` the final step is a hard link, which fails atomically if
the target appeared meanwhile. No ``fsync`` is done (it would double the cost of a write); after a
power cut the file may be absent or empty, never a mix of old and new.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from diffim.tasks.image import MASK_DTYPE, Exposure

from .cards import clean_metadata, photo_calib_cards, xy0_cards
from .masks import mask_plane_cards
from .wcs import wcs_to_header

__all__ = ["write_exposure", "exposure_hdulist"]


def _psf_hdu(exposure: Exposure) -> fits.ImageHDU | None:
    psf = exposure.psf
    if psf is None:
        return None
    if getattr(psf, "positionDependent", False) or not hasattr(psf, "computeImage"):
        msg = f"PSF of type {type(psf).__name__} is not written: only PSFs constant over the image are stored (as a PSF image)"
        warnings.warn(msg, UserWarning, stacklevel=4)
        return None
    header = fits.Header([fits.Card("EXTTYPE", "PSF"), fits.Card("PSFTYPE", type(psf).__name__, "PSF model written as its kernel image")])
    return fits.ImageHDU(np.asarray(psf.computeImage(), dtype=np.float64), header=header, name="PSF")


def exposure_hdulist(exposure: Exposure) -> fits.HDUList:
    """The HDUs :func:`write_exposure` writes (the pixel arrays are not copied)."""
    xy0 = exposure.getXY0()
    common = fits.Header(xy0_cards(xy0))
    if exposure.wcs is not None:
        common.extend(wcs_to_header(exposure.wcs, xy0))

    image_header = fits.Header([fits.Card("EXTTYPE", "IMAGE")])
    image_header.extend(clean_metadata(exposure.metadata))
    if exposure.band is not None:
        image_header["BAND"] = (str(exposure.band), "band (filter) name")
    if exposure.photoCalib is not None:
        image_header.extend(photo_calib_cards(exposure.photoCalib), update=True)
    image_header.extend(common, update=True)

    mask_header = fits.Header([fits.Card("EXTTYPE", "MASK")])
    mask_header.extend(mask_plane_cards())
    mask_header.extend(common)
    variance_header = fits.Header([fits.Card("EXTTYPE", "VARIANCE")])
    variance_header.extend(common)

    mask = exposure.mask.array
    hdus = [
        fits.PrimaryHDU(),
        fits.ImageHDU(exposure.image.array, header=image_header, name="IMAGE"),
        fits.ImageHDU(mask if mask.dtype == MASK_DTYPE else mask.astype(MASK_DTYPE), header=mask_header, name="MASK"),
        fits.ImageHDU(exposure.variance.array, header=variance_header, name="VARIANCE"),
    ]
    psf_hdu = _psf_hdu(exposure)
    if psf_hdu is not None:
        hdus.append(psf_hdu)
    return fits.HDUList(hdus)


def _new_file_mode() -> int:
    """Permissions a newly created file would get (0o666 minus the umask); mkstemp uses 0o600."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # no other portable way to read it
    os.umask(umask)
    return 0o666 & ~umask


def _exists_error(path: Path) -> FileExistsError:
    msg = f"{path}: file exists; pass overwrite=True (--clobber on the command line) to replace it"
    return FileExistsError(msg)


def write_exposure(exposure: Exposure, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write an exposure in the LSST layout (IMAGE/MASK/VARIANCE), atomically.

    Parameters
    ----------
    exposure : Exposure
        What to write.
    path : str or os.PathLike
        Target file; its directory must exist.
    overwrite : bool, optional
        Replace an existing file (default False: refuse).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    TypeError
        If ``exposure`` is not an Exposure.
    OSError
        If the file cannot be written; no partial or temporary file is left behind.

    Notes
    -----
    See the module docstring for the layout. ``read_exposure`` gives back the same pixels (bit for
    bit), mask planes, ``xy0``, WCS, band, calibration, metadata and PSF image.
    """
    if not isinstance(exposure, Exposure):
        msg = f"write_exposure needs an Exposure, got {type(exposure).__name__}"
        raise TypeError(msg)
    return write_hdulist_atomic(exposure_hdulist(exposure), Path(os.fspath(path)), overwrite=overwrite)


def write_hdulist_atomic(hdul: fits.HDUList, target: Path, *, overwrite: bool) -> Path:
    """Write ``hdul`` to ``target`` through a temporary file in the same directory.

    Refuses an existing ``target`` unless ``overwrite``; never leaves a partial or temporary file.
    """
    if not overwrite and target.exists():
        raise _exists_error(target)
    if not target.parent.is_dir():
        msg = f"{target}: directory {str(target.parent)!r} does not exist; create it first"
        raise FileNotFoundError(msg)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else _new_file_mode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            hdul.writeto(stream, output_verify="silentfix")
        os.chmod(tmp_name, mode)
        if overwrite:
            os.replace(tmp_name, target)
        else:
            try:
                os.link(tmp_name, target)  # fails atomically if the target appeared meanwhile
            except FileExistsError:
                raise _exists_error(target) from None
            except OSError:  # file system without hard links
                if target.exists():
                    raise _exists_error(target) from None
                os.replace(tmp_name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    return target
