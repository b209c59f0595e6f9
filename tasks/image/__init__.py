"""Pixel data model: geometry, mask planes, images, masked images and exposures."""

from __future__ import annotations

from .exposure import AB_NJY_ZERO_POINT, Exposure, PhotoCalib
from .geom import Box2I, Extent2I, Point2I
from .images import MASK_DTYPE, Image, ImageError, Mask, MaskedImage
from .mask_planes import DEFAULT_MASK_PLANES, MaskPlane, MaskPlaneRegistry, mask_planes

__all__ = [
    "AB_NJY_ZERO_POINT",
    "DEFAULT_MASK_PLANES",
    "MASK_DTYPE",
    "Box2I",
    "Exposure",
    "Extent2I",
    "Image",
    "ImageError",
    "Mask",
    "MaskPlane",
    "MaskPlaneRegistry",
    "MaskedImage",
    "PhotoCalib",
    "Point2I",
    "mask_planes",
]
