"""Unpack what detection accepts (Exposure, MaskedImage, Image, 2-D array) into plain arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from diffim.tasks.image import Exposure, Image, Mask, MaskedImage, Point2I

__all__ = ["Pixels", "unpack_pixels"]


@dataclass(frozen=True)
class Pixels:
    """The planes of an input, as arrays sharing memory with it where possible.

    Attributes
    ----------
    image : numpy.ndarray
        Pixel values, indexed ``[y - y0, x - x0]``.
    variance : numpy.ndarray or None
        Variance plane, None for a bare image or array.
    mask : Mask or None
        Mask plane (the caller's object, so planes set on it reach the input), None if absent.
    xy0 : Point2I
        Parent coordinates of ``image[0, 0]``.
    psf : object or None
        The exposure's PSF model, if any.
    metadata : object or None
        The exposure's header (for ``SATURATE``), if it has one.
    """

    image: np.ndarray
    variance: np.ndarray | None
    mask: Mask | None
    xy0: Point2I
    psf: Any = None
    metadata: Any = None


def unpack_pixels(data: Any, what: str = "data") -> Pixels:
    """Return the planes of an Exposure, MaskedImage, Image or 2-D array.

    Parameters
    ----------
    data : Exposure, MaskedImage, Image or array_like
        The pixels.
    what : str, optional
        Name used in error messages.

    Returns
    -------
    Pixels
        The planes.

    Raises
    ------
    TypeError
        If ``data`` is none of the accepted kinds or not 2-D.
    """
    if isinstance(data, Exposure):
        mi = data.maskedImage
        # Only look at a header that exists: reading .metadata would create an empty one.
        meta = data._metadata  # noqa: SLF001 - avoid creating a header just to look at it
        return Pixels(mi.image.array, mi.variance.array, mi.mask, mi.getXY0(), data.psf, meta)
    if isinstance(data, MaskedImage):
        return Pixels(data.image.array, data.variance.array, data.mask, data.getXY0())
    if isinstance(data, Image) and not isinstance(data, Mask):
        return Pixels(data.array, None, None, data.getXY0())
    arr = np.asarray(data) if not isinstance(data, Mask) else None
    if arr is None or arr.ndim != 2 or arr.dtype.kind not in "fiu":
        msg = (
            f"{what} must be an Exposure, MaskedImage, Image or 2-D numeric array, "
            f"got {type(data).__name__}{'' if arr is None else f' with shape {arr.shape}'}"
        )
        raise TypeError(msg)
    return Pixels(arr, None, None, Point2I(0, 0))
