"""The pixel data model: boxes, mask planes, images, masked images and exposures."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from diffim.framework.plugins import hookimpl, isolated_plugin_manager
from diffim.tasks import Box2I, Exposure, Image, ImageError, Mask, MaskedImage, PhotoCalib, Point2I
from diffim.tasks.image import DEFAULT_MASK_PLANES, MaskPlaneRegistry, mask_planes
from diffim.tasks.image.mask_planes import _populate_from_plugins


def test_box_geometry() -> None:
    box = Box2I((10, 20), (5, 3))
    assert (box.minX, box.minY, box.maxX, box.maxY) == (10, 20, 14, 22)
    assert box.shape == (3, 5) and box.getCenter() == (12.0, 21.0)
    assert box.contains((14, 22)) and not box.contains((15, 22))
    assert box.slices((8, 18)) == (slice(2, 5), slice(2, 7))
    assert Box2I.from_corners((10, 20), (14, 22)) == box
    assert box.clippedTo(Box2I((13, 0), (10, 21))) == Box2I.from_corners((13, 20), (14, 20))
    assert box.clippedTo(Box2I((100, 100), (2, 2))).isEmpty()
    assert box.dilatedBy(1) == Box2I((9, 19), (7, 5))
    with pytest.raises(ValueError, match=">= 0"):
        Box2I((0, 0), (-1, 2))


def test_default_mask_planes_in_lsst_order() -> None:
    expected = ["BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT", "NO_DATA"]
    assert [name for name, _ in DEFAULT_MASK_PLANES] == expected
    assert mask_planes.names()[: len(expected)] == expected
    assert Mask.getPlaneBitMask(["SAT", "NO_DATA"]) == (1 << 1) | (1 << 8)
    assert all(plane.doc for plane in mask_planes)
    with pytest.raises(KeyError, match="did you mean 'SAT'"):
        Mask.getPlaneBitMask("SATT")


def test_plugins_add_mask_planes_by_name() -> None:
    class StreakPlugin:
        @hookimpl
        def diffim_add_mask_planes(self, registry: MaskPlaneRegistry) -> None:
            registry.add("STREAK", "Pixel on a satellite trail.")

    with isolated_plugin_manager(StreakPlugin()):
        registry = MaskPlaneRegistry(populate=_populate_from_plugins)
        assert registry["STREAK"].bit == len(DEFAULT_MASK_PLANES)
        assert registry.bitmask("STREAK") == 1 << len(DEFAULT_MASK_PLANES)
    with pytest.raises(ValueError, match="UPPER_CASE"):
        registry.add("streak")


def test_image_dtypes_and_views() -> None:
    assert Image(np.zeros((3, 4), dtype=np.int16)).dtype == np.float32
    assert Image(np.zeros((3, 4), dtype=">f8")).dtype == np.float64
    with pytest.raises(ImageError, match="2-D array, got shape \\(3,\\)"):
        Image(np.zeros(3))
    with pytest.raises(ImageError, match="must be numbers"):
        Image(np.array([["a"]]))
    image = Image(np.arange(20.0).reshape(4, 5), xy0=(100, 50))
    sub = image[Box2I((101, 51), (2, 2))]
    assert sub.getXY0() == Point2I(101, 51)
    sub.array[:] = -1
    assert image.array[1, 1] == -1 and image.array[2, 2] == -1  # shared memory
    with pytest.raises(ImageError, match="not inside"):
        image[Box2I((0, 0), (2, 2))]


def test_mask_planes_on_a_mask() -> None:
    mask = Mask(np.zeros((4, 4), dtype=np.int32))
    mask.set_plane("SAT", np.eye(4, dtype=bool))
    mask.set_plane("CR", np.eye(4, dtype=bool)[::-1])
    assert mask.plane("SAT").sum() == 4 and mask.plane(["SAT", "CR"]).sum() == 8
    assert mask.plane_names_set() == ["SAT", "CR"]
    mask.clear_plane("SAT")
    assert mask.plane("SAT").sum() == 0
    assert (Mask(np.ones((2, 2), dtype=bool)).array == Mask.getPlaneBitMask("BAD")).all()
    with pytest.raises(ImageError, match="integers"):
        Mask(np.zeros((2, 2)))


def test_masked_image_construction_and_arithmetic() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 3.0, (200, 200))
    mi = MaskedImage(image, xy0=(5, 6))
    assert mi.getXY0() == (5, 6) and mi.mask.getXY0() == (5, 6)
    assert mi.variance.array[0, 0] == pytest.approx(9.0, rel=0.05)  # robust sky variance by default
    other = MaskedImage(np.ones((200, 200)), variance=2.0, xy0=(5, 6))
    other.mask.set_plane("BAD", np.ones((200, 200), dtype=bool))
    diff = mi.clone()
    diff -= other
    assert np.allclose(diff.image.array, image - 1)
    assert np.allclose(diff.variance.array, mi.variance.array + 2.0)
    assert diff.mask.plane("BAD").all()
    scaled = other.clone()
    scaled *= 3.0
    assert np.allclose(scaled.variance.array, 18.0)
    with pytest.raises(ImageError, match="different pixel grids"):
        diff -= MaskedImage(np.ones((200, 200)), variance=1.0)
    with pytest.raises(ImageError, match="variance plane has shape"):
        MaskedImage(np.ones((3, 3)), variance=np.ones((3, 4)))
    with pytest.raises(ImageError, match="no finite pixels"):
        MaskedImage(np.full((3, 3), np.nan))


def test_exposure_from_arrays_and_subimages() -> None:
    exposure = Exposure(image=np.zeros((10, 12)), variance=np.ones((10, 12)), xy0=(100, 200), band="i",
                        photoCalib=PhotoCalib.from_zero_point(27.0))
    assert exposure.getXY0() == Point2I(100, 200)
    assert exposure.getBBox() == Box2I((100, 200), (12, 10))
    assert exposure.photoCalib.zeroPoint == pytest.approx(27.0)
    assert exposure.photoCalib.instFluxToMagnitude(1.0) == pytest.approx(27.0)
    sub = exposure[Box2I((101, 201), (3, 3))]
    sub.image.array[:] = 5.0
    assert exposure.image.array[1:4, 1:4].sum() == 45.0 and sub.band == "i"
    clone = exposure.clone()
    clone.image.array[:] = 0.0
    assert exposure.image.array.sum() == 45.0
    assert pickle.loads(pickle.dumps(exposure)).maskedImage == exposure.maskedImage
    with pytest.raises(ValueError, match="needs pixels"):
        Exposure()
    with pytest.raises(ValueError, match="not both"):
        Exposure(exposure.maskedImage, image=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="positive finite"):
        PhotoCalib(-1.0)
