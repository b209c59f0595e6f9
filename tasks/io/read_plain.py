"""Reader for plain images: one 2-D HDU, no mask or variance plane.

The mask starts empty (NaN -> NO_DATA and saturation are added later); the variance is estimated
(see :mod:`.variance`) unless a noise, weight or variance map is given. Saturation comes from the
``ESATUR``/``SATURATE``/``SATLEVEL`` cards, else for integer images (e.g. uint16 camera frames stored
with BZERO 32768 and no SATURATE card) the largest value of the type, 65535 for uint16.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from diffim.tasks.image import Point2I

from .assemble import RawPlanes
from .cards import merge_headers, xy0_from_header
from .fitsfile import find_hdu, first_image_hdu, hdu_source, image_data, resolve_hdu
from .psf_file import PSF_HDU_NAMES, psf_from_hdu

__all__ = ["read_plain"]


def read_plain(hdul: fits.HDUList, path: str, hdu: int | str | None = None) -> RawPlanes:
    """Image of HDU ``hdu`` (default: the first with 2-D data), with its header merged over the primary's."""
    index = first_image_hdu(hdul, path) if hdu is None else resolve_hdu(hdul, hdu, path)
    source = hdu_source(path, hdul, index)
    image = image_data(hdul, index, path)
    header = hdul[0].header.copy() if index == 0 else merge_headers(hdul[0].header, hdul[index].header)
    i_psf = next((i for i in (find_hdu(hdul, name) for name in PSF_HDU_NAMES) if i is not None and i != index), None)
    return RawPlanes(
        image=image,
        source=source,
        header=header,
        xy0=xy0_from_header(header, source) or Point2I(0, 0),
        card_saturation=True,
        integer_max=float(np.iinfo(image.dtype).max) if image.dtype.kind in "iu" else None,
        psf=psf_from_hdu(hdul, i_psf, path) if i_psf is not None else None,
    )
