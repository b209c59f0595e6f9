"""Reader for files written by astropy's ``CCDData.write`` (read without going through CCDData).

The image is in the primary HDU, or the first image HDU with data when the primary is empty.
``UNCERT`` holds the uncertainty, of the kind named by its ``UTYPE`` card (standard deviation when
absent, as astropy assumes); ``MASK`` is boolean (stored as uint8) -> the ``bad_plane`` (BAD), or
integer bit planes when it carries ``MP_*`` cards; ``PSFIMAGE`` holds an optional PSF stamp.
Pixels whose inverse variance is 0 get NO_DATA (infinite variance).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from diffim.tasks.image import MASK_DTYPE, Point2I, mask_planes

from .assemble import RawPlanes
from .cards import merge_headers, xy0_from_header
from .errors import Source
from .fitsfile import find_hdu, hdu_naxis, hdu_source, image_data, is_image_hdu, resolve_hdu
from .masks import planes_from_header, remap_mask
from .psf_file import PSF_HDU_NAMES, psf_from_hdu

__all__ = ["read_ccddata", "UNCERTAINTY_TYPES", "variance_from_uncertainty"]

#: ``UTYPE`` values astropy writes -> power of the stored array giving the variance.
UNCERTAINTY_TYPES = {"StdDevUncertainty": 2, "VarianceUncertainty": 1, "InverseVariance": -1}


def variance_from_uncertainty(array: np.ndarray, utype: str, source: Source) -> tuple[np.ndarray, np.ndarray | None]:
    """Variance from an uncertainty array of an astropy type, and where it says "no data" (1/var = 0).

    Raises
    ------
    FitsReadError
        For an unknown uncertainty type.
    """
    power = UNCERTAINTY_TYPES.get(utype)
    if power is None:
        raise source.error(f"unknown uncertainty type UTYPE = {utype!r}", f"use one of {', '.join(UNCERTAINTY_TYPES)}")
    dtype = array.dtype.newbyteorder("=") if array.dtype.kind == "f" else np.dtype(np.float32)
    if power == 2:
        return np.square(array, dtype=dtype), None
    if power == 1:
        return array.astype(dtype, copy=False), None
    no_data = array == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.reciprocal(array, dtype=dtype), no_data if no_data.any() else None


def mask_from_flags(data: np.ndarray, planes: dict[str, int] | None, source: Source, bad_plane: str) -> np.ndarray:
    """int32 mask from a CCDData mask: bit planes when ``MP_*`` cards name them, else nonzero -> ``bad_plane``."""
    if planes is not None and data.dtype.kind in "iu":
        return remap_mask(data, planes, source)
    bit = np.int32(mask_planes.bitmask(bad_plane))
    return (np.asarray(data) != 0).astype(MASK_DTYPE) * bit


def read_ccddata(hdul: fits.HDUList, path: str, hdu: int | str | None = None) -> RawPlanes:
    """Planes of a CCDData file; ``hdu`` picks the image HDU (default as astropy)."""
    if hdu is not None:
        i_img = resolve_hdu(hdul, hdu, path)
    elif hdu_naxis(hdul[0]) > 0:
        i_img = 0
    else:
        i_img = next((i for i, h in enumerate(hdul) if i and is_image_hdu(h) and hdu_naxis(h) >= 2 and hdu_source(path, hdul, i).name not in ("UNCERT", "MASK")), 0)
    src_img = hdu_source(path, hdul, i_img)
    image = image_data(hdul, i_img, path)
    header = hdul[0].header.copy() if i_img == 0 else merge_headers(hdul[0].header, hdul[i_img].header)
    mask = np.zeros(image.shape, dtype=MASK_DTYPE)
    variance = None
    src_var = None
    i_unc = find_hdu(hdul, "UNCERT")
    if i_unc is not None:
        src_var = hdu_source(path, hdul, i_unc)
        unc = image_data(hdul, i_unc, path, what="uncertainty plane")
        if unc.shape != image.shape:
            raise src_var.error(f"plane has shape {unc.shape} but the image ({src_img}) has shape {image.shape}", "write the planes on the same pixel grid")
        utype = str(hdul[i_unc].header.get("UTYPE", "StdDevUncertainty")).strip()
        variance, no_data = variance_from_uncertainty(unc, utype, src_var)
        if no_data is not None:
            mask[no_data] |= np.int32(mask_planes.bitmask("NO_DATA"))
    i_mask = find_hdu(hdul, "MASK")
    if i_mask is not None:
        src_mask = hdu_source(path, hdul, i_mask)
        flags = image_data(hdul, i_mask, path, what="mask")
        if flags.shape != image.shape:
            raise src_mask.error(f"plane has shape {flags.shape} but the image ({src_img}) has shape {image.shape}", "write the planes on the same pixel grid")
        if flags.dtype.kind not in "biu":
            raise src_mask.error(f"mask holds {flags.dtype} values, not booleans or integer bit planes", "write the mask as integers")
        mask |= mask_from_flags(flags, planes_from_header(hdul[i_mask].header, src_mask), src_mask, "BAD")
    i_psf = next((i for i in (find_hdu(hdul, name) for name in PSF_HDU_NAMES) if i is not None), None)
    return RawPlanes(
        image=image,
        source=src_img,
        header=header,
        xy0=xy0_from_header(header, src_img) or Point2I(0, 0),
        mask=mask,
        variance=variance,
        variance_source=src_var,
        integer_max=None,
        psf=psf_from_hdu(hdul, i_psf, path) if i_psf is not None else None,
    )
