"""Pixel containers in LSST's shape: ``Image``, ``Mask`` and ``MaskedImage``.

Each wraps a 2-D numpy array (``.array``, row = y, column = x) with an origin ``xy0`` so that
pixel ``(x, y)`` in parent coordinates is ``array[y - y0, x - x0]``. Sub-images taken with a
:class:`Box2I` are views sharing memory with the parent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .geom import Box2I, Extent2I, Point2I
from .mask_planes import mask_planes

__all__ = ["Image", "Mask", "MaskedImage", "ImageError", "MASK_DTYPE"]

#: dtype of mask arrays (LSST's MaskPixel).
MASK_DTYPE = np.int32


class ImageError(ValueError):
    """Pixel data that cannot be used as given (shape, dtype, values)."""


def _as_xy0(xy0: Any) -> Point2I:
    try:
        x, y = xy0
        return Point2I(int(x), int(y))
    except (TypeError, ValueError):
        msg = f"xy0 must be a pair of integers (x0, y0), got {xy0!r}"
        raise ImageError(msg) from None


class Image:
    """A 2-D array of pixels with an origin (LSST's ``ImageF``/``ImageD``).

    Parameters
    ----------
    array : array_like
        2-D pixel values; float32 and float64 are kept as they are, integers become float32.
    xy0 : tuple of int, optional
        Parent coordinates of ``array[0, 0]``.
    dtype : numpy dtype, optional
        Force a dtype.
    """

    __slots__ = ("_array", "_xy0")

    _default_dtype: Any = None

    def __init__(self, array: Any, *, xy0: tuple[int, int] = (0, 0), dtype: Any = None) -> None:
        self._array = self._coerce(array, dtype)
        self._xy0 = _as_xy0(xy0)

    def _coerce(self, array: Any, dtype: Any) -> np.ndarray:
        arr = np.asarray(array)
        if arr.ndim != 2:
            msg = f"{type(self).__name__} needs a 2-D array, got shape {arr.shape}"
            raise ImageError(msg)
        if dtype is not None:
            return arr.astype(dtype, copy=False)
        if arr.dtype.kind == "f":
            if arr.dtype.itemsize < 4:
                return arr.astype(np.float32)
            return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
        if arr.dtype.kind in "iub":
            return arr.astype(np.float32)
        msg = f"{type(self).__name__} pixels must be numbers, got dtype {arr.dtype}"
        raise ImageError(msg)

    # -- LSST-style accessors ---------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """The pixels, indexed ``[y - y0, x - x0]``."""
        return self._array

    @array.setter
    def array(self, value: Any) -> None:
        value = np.asarray(value)
        if value.shape != self._array.shape:
            self._array = self._coerce(value, None)  # a new array for this image
        else:
            self._array[...] = value

    def getXY0(self) -> Point2I:  # noqa: N802 - LSST name
        """Parent coordinates ``(x0, y0)`` of ``array[0, 0]``."""
        return self._xy0

    def setXY0(self, xy0: tuple[int, int]) -> None:  # noqa: N802 - LSST name
        self._xy0 = _as_xy0(xy0)

    def getBBox(self) -> Box2I:  # noqa: N802 - LSST name
        """Bounding box in parent coordinates."""
        h, w = self._array.shape
        return Box2I(self._xy0, (w, h))

    def getDimensions(self) -> Extent2I:  # noqa: N802 - LSST name
        h, w = self._array.shape
        return Extent2I(w, h)

    def getWidth(self) -> int:  # noqa: N802 - LSST name
        return self._array.shape[1]

    def getHeight(self) -> int:  # noqa: N802 - LSST name
        return self._array.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def shape(self) -> tuple[int, int]:
        return self._array.shape  # type: ignore[return-value]

    def _slices(self, bbox: Box2I) -> tuple[slice, slice]:
        if not self.getBBox().contains(bbox):
            msg = f"sub-image box {bbox} is not inside the image box {self.getBBox()}"
            raise ImageError(msg)
        return bbox.slices(self._xy0)

    def __getitem__(self, bbox: Box2I) -> Image:
        if not isinstance(bbox, Box2I):
            msg = f"index an image with a Box2I in parent coordinates (or use .array), got {bbox!r}"
            raise TypeError(msg)
        return type(self)(self._array[self._slices(bbox)], xy0=bbox.getMin())

    def __setitem__(self, bbox: Box2I, value: Any) -> None:
        target = self._array[self._slices(bbox)]
        target[...] = value.array if isinstance(value, Image) else value

    def clone(self) -> Image:
        """A deep copy."""
        return type(self)(self._array.copy(), xy0=self._xy0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        return self._xy0 == other._xy0 and np.array_equal(self._array, other._array, equal_nan=self._array.dtype.kind == "f")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.getBBox()}, dtype={self._array.dtype})"

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self._array, tuple(self._xy0)))


def _rebuild(cls: type, array: np.ndarray, xy0: tuple[int, int]) -> Any:
    return cls(array, xy0=xy0)


class Mask(Image):
    """Integer bit planes per pixel (LSST's ``Mask``); planes are named in :data:`mask_planes`.

    Examples
    --------
    >>> m = Mask(np.zeros((4, 4), dtype=np.int32))
    >>> m.set_plane("SAT", m.array.shape and np.eye(4, dtype=bool))
    >>> int(m.plane("SAT").sum())
    4
    """

    __slots__ = ()

    def _coerce(self, array: Any, dtype: Any) -> np.ndarray:
        arr = np.asarray(array)
        if arr.ndim != 2:
            msg = f"Mask needs a 2-D array, got shape {arr.shape}"
            raise ImageError(msg)
        if arr.dtype.kind == "b":
            return arr.astype(MASK_DTYPE) * np.int32(mask_planes.bitmask("BAD"))
        if arr.dtype.kind not in "iu":
            msg = f"Mask pixels must be integers (bit planes) or booleans, got dtype {arr.dtype}"
            raise ImageError(msg)
        return arr.astype(MASK_DTYPE, copy=False)

    @staticmethod
    def getPlaneBitMask(names: str | Iterable[str]) -> int:  # noqa: N802 - LSST name
        """OR of the bits of the named planes."""
        return mask_planes.bitmask(names)

    @staticmethod
    def getMaskPlane(name: str) -> int:  # noqa: N802 - LSST name
        """Bit index of a plane."""
        return mask_planes[name].bit

    @staticmethod
    def addMaskPlane(name: str, doc: str = "") -> int:  # noqa: N802 - LSST name
        """Register a plane by name (idempotent) and return its bit index."""
        return mask_planes.add(name, doc).bit

    @staticmethod
    def getMaskPlaneDict() -> dict[str, int]:  # noqa: N802 - LSST name
        """Name -> bit index of every plane."""
        return mask_planes.bit_dict()

    def plane(self, names: str | Iterable[str]) -> np.ndarray:
        """Boolean array: pixels with any of the named planes set."""
        return (self._array & self.getPlaneBitMask(names)) != 0

    def set_plane(self, name: str, where: Any) -> None:
        """Set a plane's bit where ``where`` (boolean array of the mask's shape) is true."""
        self._array[np.asarray(where, dtype=bool)] |= np.int32(self.getPlaneBitMask(name))

    def clear_plane(self, name: str) -> None:
        """Clear a plane's bit everywhere."""
        self._array &= ~np.int32(self.getPlaneBitMask(name))

    def present_bits(self) -> int:
        """OR of every pixel's bits: the planes set somewhere (one fast pass over the mask)."""
        return int(np.bitwise_or.reduce(self._array, axis=None)) if self._array.size else 0

    def plane_names_set(self) -> list[str]:
        """Names of the planes set somewhere in this mask."""
        present = self.present_bits()
        return [p.name for p in mask_planes if present & p.bitmask]


class MaskedImage:
    """Image, mask and variance on one pixel grid (LSST's ``MaskedImage``).

    Parameters
    ----------
    image : array_like or Image
        Pixel values.
    mask : array_like or Mask, optional
        Bit planes (int) or a boolean "bad" mask; default all zero.
    variance : array_like, Image or float, optional
        Per-pixel variance; a scalar fills the plane. Default: a constant equal to the
        robust (sigma-clipped) variance of the image, a sky-noise estimate.
    xy0 : tuple of int, optional
        Origin, when the planes are given as arrays.
    """

    __slots__ = ("_image", "_mask", "_variance")

    def __init__(
        self,
        image: Any,
        mask: Any = None,
        variance: Any = None,
        *,
        xy0: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(image, Image):
            img = image if xy0 is None else Image(image.array, xy0=xy0)
        else:
            img = Image(image, xy0=xy0 or (0, 0))
        origin = img.getXY0()
        shape = img.shape
        if mask is None:
            msk = Mask(np.zeros(shape, dtype=MASK_DTYPE), xy0=origin)
        else:
            msk = Mask(mask.array if isinstance(mask, Image) else mask, xy0=origin)
        if variance is None:
            variance = _sky_variance(img.array)
        if np.isscalar(variance):
            var = Image(np.full(shape, variance, dtype=img.dtype), xy0=origin)
        else:
            var = Image(variance.array if isinstance(variance, Image) else variance, xy0=origin, dtype=img.dtype)
        for label, plane in (("mask", msk), ("variance", var)):
            if plane.shape != shape:
                msg = f"{label} plane has shape {plane.shape} but the image has shape {shape}"
                raise ImageError(msg)
        self._image, self._mask, self._variance = img, msk, var

    @property
    def image(self) -> Image:
        return self._image

    @property
    def mask(self) -> Mask:
        return self._mask  # type: ignore[return-value]

    @property
    def variance(self) -> Image:
        return self._variance

    def getImage(self) -> Image:  # noqa: N802 - LSST name
        return self._image

    def getMask(self) -> Mask:  # noqa: N802 - LSST name
        return self._mask  # type: ignore[return-value]

    def getVariance(self) -> Image:  # noqa: N802 - LSST name
        return self._variance

    def getXY0(self) -> Point2I:  # noqa: N802 - LSST name
        return self._image.getXY0()

    def setXY0(self, xy0: tuple[int, int]) -> None:  # noqa: N802 - LSST name
        for plane in (self._image, self._mask, self._variance):
            plane.setXY0(xy0)

    def getBBox(self) -> Box2I:  # noqa: N802 - LSST name
        return self._image.getBBox()

    def getDimensions(self) -> Extent2I:  # noqa: N802 - LSST name
        return self._image.getDimensions()

    def getWidth(self) -> int:  # noqa: N802 - LSST name
        return self._image.getWidth()

    def getHeight(self) -> int:  # noqa: N802 - LSST name
        return self._image.getHeight()

    @property
    def shape(self) -> tuple[int, int]:
        return self._image.shape

    @property
    def dtype(self) -> np.dtype:
        return self._image.dtype

    def __getitem__(self, bbox: Box2I) -> MaskedImage:
        new = MaskedImage.__new__(MaskedImage)
        new._image, new._mask, new._variance = self._image[bbox], self._mask[bbox], self._variance[bbox]
        return new

    def clone(self) -> MaskedImage:
        """A deep copy."""
        new = MaskedImage.__new__(MaskedImage)
        new._image, new._mask, new._variance = self._image.clone(), self._mask.clone(), self._variance.clone()
        return new

    # -- arithmetic with variance propagation ----------------------------------------------
    def _check_same_grid(self, other: MaskedImage) -> None:
        if other.getBBox() != self.getBBox():
            msg = f"masked images are on different pixel grids: {self.getBBox()} vs {other.getBBox()}"
            raise ImageError(msg)

    def __iadd__(self, other: Any) -> MaskedImage:
        if isinstance(other, MaskedImage):
            self._check_same_grid(other)
            self._image.array += other.image.array
            self._variance.array += other.variance.array
            self._mask.array |= other.mask.array
        else:
            self._image.array += other
        return self

    def __isub__(self, other: Any) -> MaskedImage:
        if isinstance(other, MaskedImage):
            self._check_same_grid(other)
            self._image.array -= other.image.array
            self._variance.array += other.variance.array
            self._mask.array |= other.mask.array
        else:
            self._image.array -= other
        return self

    def __imul__(self, scale: float) -> MaskedImage:
        self._image.array *= scale
        self._variance.array *= scale * scale
        return self

    def scaledMinus(self, scale: float, other: MaskedImage) -> None:  # noqa: N802 - LSST name
        """``self -= scale * other`` with variance ``+= scale² · var(other)``."""
        self._check_same_grid(other)
        self._image.array -= scale * other.image.array
        self._variance.array += scale * scale * other.variance.array
        self._mask.array |= other.mask.array

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MaskedImage):
            return NotImplemented
        return self._image == other._image and self._mask == other._mask and self._variance == other._variance

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MaskedImage({self.getBBox()}, dtype={self.dtype})"

    def __reduce__(self) -> tuple:
        return (MaskedImage, (self._image, self._mask, self._variance))


def _sky_variance(array: np.ndarray) -> float:
    """Robust variance of the sky: (1.4826 · MAD)² of the finite pixels."""
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        msg = "cannot estimate a variance: the image has no finite pixels"
        raise ImageError(msg)
    mad = np.median(np.abs(finite - np.median(finite)))
    return float((1.4826 * mad) ** 2)
