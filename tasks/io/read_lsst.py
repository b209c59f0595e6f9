"""Reader for LSST's MaskedImage/Exposure layout: empty primary, IMAGE, MASK, VARIANCE.

The planes are found by EXTNAME or EXTTYPE (LSST's test files have only EXTTYPE), or by position
(HDUs 1-3) when the file has exactly three image HDUs with ``MP_*`` cards on the second. The mask
may be any integer type (LSST's older files: int16 with BZERO 32768); its bits are remapped by name.
The origin ``xy0`` is the IMAGE HDU's (``A`` cards); a different one on MASK or VARIANCE is ignored
with a warning, as afw does.
Metadata are the primary header's cards overlaid by the IMAGE HDU's (LSST keeps most in the primary).
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.io import fits

from diffim.tasks.image import Point2I

from .assemble import RawPlanes
from .cards import merge_headers, xy0_from_header
from .errors import FitsReadWarning, Source
from .fitsfile import find_hdu, hdu_source, image_data, list_hdus
from .layouts import lsst_by_position
from .masks import planes_from_header, remap_mask
from .psf_file import PSF_HDU_NAMES, psf_from_hdu

__all__ = ["read_lsst"]


def _plane_indices(hdul: fits.HDUList, path: str) -> tuple[int, int, int]:
    found = {name: find_hdu(hdul, name) for name in ("IMAGE", "MASK", "VARIANCE")}
    if all(index is None for index in found.values()) and lsst_by_position(hdul):
        return 1, 2, 3
    missing = [name for name, index in found.items() if index is None]
    if missing:
        problem = f"LSST layout without a {' or '.join(missing)} HDU (HDUs: {list_hdus(hdul)})"
        raise Source(path).error(problem, "write all of IMAGE, MASK and VARIANCE, or pass layout='plain' to read the image alone")
    return found["IMAGE"], found["MASK"], found["VARIANCE"]  # type: ignore[return-value]


def read_lsst(hdul: fits.HDUList, path: str, hdu: int | str | None = None) -> RawPlanes:
    """Planes of an LSST-layout file (``hdu`` must be None: the layout fixes the HDUs)."""
    if hdu is not None:
        msg = f"hdu={hdu!r} does not apply to LSST-layout files (their planes are IMAGE/MASK/VARIANCE); drop it or pass layout='plain'"
        raise ValueError(msg)
    i_img, i_mask, i_var = _plane_indices(hdul, path)
    src_img, src_mask, src_var = (hdu_source(path, hdul, i) for i in (i_img, i_mask, i_var))
    image = image_data(hdul, i_img, path)
    mask_raw = image_data(hdul, i_mask, path, what="mask")
    variance = image_data(hdul, i_var, path, what="variance plane")
    for source, plane in ((src_mask, mask_raw), (src_var, variance)):
        if plane.shape != image.shape:
            problem = f"plane has shape {plane.shape} but the image ({src_img}) has shape {image.shape}"
            raise source.error(problem, "write the three planes on the same pixel grid")
    if mask_raw.dtype.kind not in "biu":
        raise src_mask.error(f"mask holds {mask_raw.dtype} values, not integer bit planes", "write the mask as integers")
    if variance.dtype.kind != "f":
        variance = variance.astype(np.float32)
    xy0 = xy0_from_header(hdul[i_img].header, src_img) or Point2I(0, 0)
    for i, source in ((i_mask, src_mask), (i_var, src_var)):
        other = xy0_from_header(hdul[i].header, source)
        if other is not None and other != xy0:
            # LSST's own test template has this (IMAGE at (24, 24), MASK at (9, 9)); afw reads it with
            # the image's origin, and so do we, but say so.
            msg = f"{source}: plane origin xy0={tuple(other)} differs from the image's {tuple(xy0)}; using the image's"
            warnings.warn(msg, FitsReadWarning, stacklevel=4)
    mask = remap_mask(mask_raw, planes_from_header(hdul[i_mask].header, src_mask), src_mask)
    i_psf = next((i for i in (find_hdu(hdul, name) for name in PSF_HDU_NAMES) if i is not None), None)
    return RawPlanes(
        image=image,
        source=src_img,
        header=merge_headers(hdul[0].header, hdul[i_img].header),
        xy0=xy0,
        mask=mask,
        variance=variance,
        variance_source=src_var,
        zero_variance_ok=True,
        psf=psf_from_hdu(hdul, i_psf, path) if i_psf is not None else None,
    )
