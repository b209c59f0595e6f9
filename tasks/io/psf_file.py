"""PSF stamps in FITS files (``*.WebbPSF.fits``, a ``PSF`` extension of an exposure file)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits

from .errors import one_line
from .fitsfile import first_image_hdu, hdu_source, image_data, open_fits, resolve_hdu

if TYPE_CHECKING:  # pragma: no cover
    from diffim.tasks.psf.models import ImagePsf

__all__ = ["read_psf_image", "psf_from_hdu", "PSF_HDU_NAMES"]

#: Extension names holding a PSF stamp: diffim's own, and astropy CCDData's.
PSF_HDU_NAMES = ("PSF", "PSFIMAGE")


def psf_from_hdu(hdul: fits.HDUList, index: int, path: str) -> ImagePsf:
    """An :class:`~diffim.tasks.psf.models.ImagePsf` from one HDU of an open file.

    Raises
    ------
    FitsReadError
        If the stamp is not 2-D numbers, has an even size, holds NaN/inf or does not sum to > 0.
    """
    # lazy: the PSF models are only needed when a PSF is read
    from diffim.tasks.psf.models import ImagePsf, PsfError

    source = hdu_source(path, hdul, index)
    data = image_data(hdul, index, path, what="PSF stamp").astype(np.float64, copy=False)
    height, width = data.shape
    if width % 2 == 0 or height % 2 == 0:
        raise source.error(f"PSF stamp is {width}x{height}: an even size has no central pixel", "crop or pad it to an odd size")
    n_bad = int(np.count_nonzero(~np.isfinite(data)))
    if n_bad:
        raise source.error(f"PSF stamp has {n_bad} NaN/inf pixels", "replace them (e.g. with 0)")
    total = float(data.sum())
    if not total > 0:
        raise source.error(f"PSF stamp sums to {total!r}, it cannot be normalised", "give a stamp with a positive sum")
    try:
        return ImagePsf(data)
    except PsfError as exc:
        raise source.error(one_line(exc), "fix the PSF stamp") from None


def read_psf_image(path: str | os.PathLike[str], *, hdu: int | str | None = None) -> ImagePsf:
    """Read a PSF model from a FITS image (a PSF stamp file, or an extension of another file).

    Parameters
    ----------
    path : str or os.PathLike
        FITS file, e.g. the 205x205 ``*.WebbPSF.fits`` stamps of the JWST example.
    hdu : int or str, optional
        HDU index or EXTNAME; default: the first HDU holding a 2-D image.

    Returns
    -------
    ImagePsf
        The stamp, normalised to unit sum.

    Raises
    ------
    FitsReadError
        For an unreadable file, a missing HDU, an even-sized or non-finite stamp, or a stamp whose
        sum is not positive.
    """
    p = os.fspath(path)
    with open_fits(p) as hdul:
        index = first_image_hdu(hdul, p, "PSF stamp") if hdu is None else resolve_hdu(hdul, hdu, p)
        return psf_from_hdu(hdul, index, p)
