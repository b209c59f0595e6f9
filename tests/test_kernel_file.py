"""Kernel and background-model FITS files round-trip exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffim.tasks.image import Box2I
from diffim.tasks.io import FitsReadError, read_kernel, read_spatial_function, write_kernel, write_spatial_function
from diffim.tasks.kernel import Chebyshev1Function2, GaussianKernel, LinearCombinationKernel, PolynomialFunction2


def _basis() -> list:
    return [GaussianKernel(11, 11, 1.5), GaussianKernel(11, 11, 2.0, 3.0, 0.4), GaussianKernel(11, 11, 3.0)]


def test_spatial_kernel_round_trip(tmp_path: Path) -> None:
    function = Chebyshev1Function2.from_bbox(2, Box2I((10, 20), (300, 200)))
    kernel = LinearCombinationKernel(_basis(), spatialFunction=function)
    kernel.setSpatialParameters(np.arange(18, dtype=float).reshape(3, 6) / 7.0)
    path = write_kernel(kernel, tmp_path / "psfMatchingKernel.fits")
    back = read_kernel(path)
    assert back.isSpatiallyVarying()
    assert np.array_equal(back.getSpatialParameters(), kernel.getSpatialParameters())
    assert back.getSpatialFunction().xy_range == function.xy_range
    for x, y in ((10.0, 20.0), (150.5, 99.0)):
        assert np.array_equal(back.computeImage(x, y), kernel.computeImage(x, y))


def test_fixed_kernel_round_trip(tmp_path: Path) -> None:
    kernel = LinearCombinationKernel(_basis(), [1.0, -0.2, 0.05])
    back = read_kernel(write_kernel(kernel, tmp_path / "k.fits"))
    assert not back.isSpatiallyVarying()
    assert np.array_equal(back.getKernelParameters(), kernel.getKernelParameters())
    assert np.array_equal(back.computeImage(), kernel.computeImage())


def test_background_round_trip_and_errors(tmp_path: Path) -> None:
    background = PolynomialFunction2(2, [1.0, 2e-3, -1e-3, 1e-6, 2e-6, 3e-6])
    back = read_spatial_function(write_spatial_function(background, tmp_path / "bg.fits"))
    assert back == background and back(120.0, 40.0) == background(120.0, 40.0)
    (tmp_path / "junk.fits").write_bytes(b"not fits at all")
    with pytest.raises(FitsReadError, match="not a diffim kernel file"):
        read_kernel(tmp_path / "junk.fits")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_kernel(LinearCombinationKernel(_basis(), [1, 0, 0]), tmp_path / "k2.fits")
        write_kernel(LinearCombinationKernel(_basis(), [1, 0, 0]), tmp_path / "k2.fits", overwrite=False)
