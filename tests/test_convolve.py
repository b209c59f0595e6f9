"""Whole-image convolution against a slow per-pixel evaluation of afw's definition."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from diffim.tasks.image import Box2I, ImageError, Mask, MaskedImage
from diffim.tasks.kernel import (
    Chebyshev1Function2,
    DeltaFunctionKernel,
    FixedKernel,
    GaussianKernel,
    Kernel,
    KernelError,
    LinearCombinationKernel,
    PolynomialFunction2,
    convolve,
    convolve_array,
    convolveAndSubtract,
)

# the package re-exports the function ``convolve``, which hides the submodule attribute
conv_module = importlib.import_module("diffim.tasks.kernel.convolve")

XY0 = (17, -9)
H, W = 50, 40
NO_DATA = Mask.getPlaneBitMask("NO_DATA")
EDGE = Mask.getPlaneBitMask("EDGE")
SAT = Mask.getPlaneBitMask("SAT")
BAD = Mask.getPlaneBitMask("BAD")


# -- slow references: one kernel realisation per output pixel ----------------------------------
def reference(arr: np.ndarray, kernel: Kernel, xy0=XY0, *, power: int = 1, normalize: bool = False) -> np.ndarray:
    """afw's sum over the non-zero kernel pixels, at each valid output pixel; NaN elsewhere."""
    h, w = arr.shape
    cx, cy = kernel.getCtr()
    out = np.full((h, w), np.nan)
    for y in range(cy, h - (kernel.height - 1 - cy)):
        for x in range(cx, w - (kernel.width - 1 - cx)):
            k = kernel.computeImage(x + xy0[0], y + xy0[1])
            if normalize:
                k = k / k.sum()
            nz = k != 0
            patch = arr[y - cy : y - cy + kernel.height, x - cx : x - cx + kernel.width]
            out[y, x] = np.sum(k[nz] ** power * patch[nz])
    return out


def reference_mask(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """OR of the mask over the footprint at each valid output pixel; -1 elsewhere."""
    kh, kw = footprint.shape
    cy, cx = (kh - 1) // 2, (kw - 1) // 2
    out = np.full(mask.shape, -1, dtype=np.int64)
    for y in range(cy, mask.shape[0] - (kh - 1 - cy)):
        for x in range(cx, mask.shape[1] - (kw - 1 - cx)):
            out[y, x] = np.bitwise_or.reduce(mask[y - cy : y - cy + kh, x - cx : x - cx + kw][footprint])
    return out


def valid_slices(kernel: Kernel, shape=(H, W)) -> tuple[slice, slice]:
    cx, cy = kernel.getCtr()
    return slice(cy, shape[0] - (kernel.height - 1 - cy)), slice(cx, shape[1] - (kernel.width - 1 - cx))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-6) -> None:
    scale = np.nanmax(np.abs(expected[np.isfinite(expected)]))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-12 * scale)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260715)


@pytest.fixture
def masked(rng: np.random.Generator) -> MaskedImage:
    image = rng.normal(100.0, 10.0, size=(H, W))
    variance = rng.uniform(50.0, 150.0, size=(H, W))
    mask = np.zeros((H, W), dtype=np.int32)
    return MaskedImage(image, mask, variance, xy0=XY0)


def asymmetric_kernel(rng: np.random.Generator, shape=(7, 5)) -> FixedKernel:
    return FixedKernel(rng.normal(size=shape) + np.arange(shape[1]) * 0.3)


def spatial_kernel(rng: np.random.Generator, function, size: int = 9) -> LinearCombinationKernel:
    basis = [GaussianKernel(size, size, s1, s2, a) for s1, s2, a in ((1.0, 1.0, 0.0), (1.5, 2.5, 0.6), (3.0, 1.2, 2.0))]
    kernel = LinearCombinationKernel(basis, spatialFunction=function)
    params = rng.normal(0.0, 0.3, size=(3, function.getNParameters()))
    params[:, 0] = (1.0, 0.4, -0.2)
    if isinstance(function, PolynomialFunction2):  # raw pixel coordinates: keep the variation moderate
        params[:, 1:] *= 0.01
    kernel.setSpatialParameters(params)
    return kernel


def bbox() -> Box2I:
    return Box2I(XY0, (W, H))


# -- fixed kernels -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 5), (4, 6), (1, 3)])
def test_fixed_kernel_matches_per_pixel_correlation(masked, rng, shape):
    kernel = asymmetric_kernel(rng, shape)  # asymmetric and (4, 6) even: catches flips and off-by-ones
    result = convolve(masked, kernel)
    assert_close(result.image.array, reference(masked.image.array, kernel))
    assert_close(result.variance.array[valid_slices(kernel)], reference(masked.variance.array, kernel, power=2)[valid_slices(kernel)])
    assert result.getBBox() == masked.getBBox()


@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 2)])
def test_engine_methods_agree_with_reference(masked, rng, method, shape, monkeypatch):
    kernel = asymmetric_kernel(rng, shape)
    monkeypatch.setattr(conv_module, "_DIRECT_MAX_AREA", 10**6 if method == "direct" else 0)
    assert_close(convolve_array(masked.image.array, kernel, xy0=XY0), reference(masked.image.array, kernel))


def test_many_fft_tiles_match_reference(rng, monkeypatch):
    # small tiles force several tiles per axis (including partial ones) on a 100x90 image
    monkeypatch.setattr(conv_module, "_FFT_TILE", 24)
    image = rng.normal(size=(100, 90))
    kernel = spatial_kernel(rng, Chebyshev1Function2.from_bbox(2, Box2I(XY0, (90, 100))), size=7)
    expected = reference(image, kernel)
    for workers in (1, 2):
        assert_close(convolve_array(image, kernel, xy0=XY0, workers=workers), expected)


# -- spatially varying kernels ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["chebyshev2", "polynomial1"])
def test_spatial_kernel_image_and_exact_variance(masked, rng, kind):
    function = Chebyshev1Function2.from_bbox(2, bbox()) if kind == "chebyshev2" else PolynomialFunction2(1)
    kernel = spatial_kernel(rng, function)
    result = convolve(masked, kernel)
    valid = valid_slices(kernel)
    assert_close(result.image.array, reference(masked.image.array, kernel))
    assert_close(result.variance.array[valid], reference(masked.variance.array, kernel, power=2)[valid])


def test_spatial_kernel_direct_path(masked, rng, monkeypatch):
    monkeypatch.setattr(conv_module, "_DIRECT_MAX_AREA", 10**6)
    kernel = spatial_kernel(rng, Chebyshev1Function2.from_bbox(2, bbox()), size=3)
    result = convolve(masked, kernel)
    valid = valid_slices(kernel)
    assert_close(result.image.array, reference(masked.image.array, kernel))
    assert_close(result.variance.array[valid], reference(masked.variance.array, kernel, power=2)[valid])


@pytest.mark.parametrize("function", [Chebyshev1Function2.from_bbox(2, Box2I(XY0, (W, H))), PolynomialFunction2(2)])
def test_exact_variance_regroups_order2_pairs_into_15(rng, function):
    # 21 products P_j P_j' span only the 15 order-4 terms: 15 correlations, still exact
    kernel = spatial_kernel(rng, function)
    terms = conv_module._kernel_terms(kernel, XY0, H - 8, W - 8)
    assert terms.m == 6
    squared = conv_module._square_terms(terms, H - 8, W - 8)
    assert squared.m == 15
    for x, y in ((0, 0), (31, 41), (12, 7)):
        expected = kernel.computeImage(XY0[0] + x, XY0[1] + y) ** 2  # grid origin = XY0
        realised = np.tensordot(squared.weights(y, y + 1, x, x + 1)[:, 0, 0], squared.kernels, axes=1)
        np.testing.assert_allclose(realised, expected, rtol=1e-9, atol=1e-12 * expected.max())


def test_center_variance_uses_kernel_at_image_centre(masked, rng):
    kernel = spatial_kernel(rng, Chebyshev1Function2.from_bbox(2, bbox()))
    result = convolve(masked, kernel, variance="center")
    centre = FixedKernel(kernel.computeImage(*bbox().getCenter()))
    valid = valid_slices(kernel)
    assert_close(result.variance.array[valid], reference(masked.variance.array, centre, power=2)[valid])
    exact = convolve(masked, kernel).variance.array[valid]
    assert not np.allclose(result.variance.array[valid], exact, rtol=1e-6)  # an approximation
    fixed = asymmetric_kernel(rng)
    np.testing.assert_array_equal(convolve(masked, fixed, variance="center").variance.array, convolve(masked, fixed).variance.array)


@pytest.mark.parametrize("spatial", [False, True])
def test_do_normalize(masked, rng, spatial):
    kernel = spatial_kernel(rng, PolynomialFunction2(1)) if spatial else asymmetric_kernel(rng)
    result = convolve(masked, kernel, doNormalize=True)
    valid = valid_slices(kernel)
    assert_close(result.image.array, reference(masked.image.array, kernel, normalize=True))
    expected_var = reference(masked.variance.array, kernel, power=2, normalize=True)
    assert_close(result.variance.array[valid], expected_var[valid])


def test_zero_sum_kernel_cannot_be_normalized(masked):
    kernel = FixedKernel(np.array([[1.0, 0.0, -1.0]]))
    with pytest.raises(KernelError, match="sum is 0"):
        convolve(masked, kernel, doNormalize=True)


# -- edges ---------------------------------------------------------------------------------------
def test_edge_pixels_are_nan_nodata_inf(masked, rng):
    masked.mask.array[:, :] = SAT
    kernel = asymmetric_kernel(rng)
    result = convolve(masked, kernel)
    edge = np.ones((H, W), dtype=bool)
    edge[valid_slices(kernel)] = False
    assert np.isnan(result.image.array[edge]).all()
    assert np.isposinf(result.variance.array[edge]).all()
    assert (result.mask.array[edge] == NO_DATA).all()
    assert (result.mask.array[~edge] == SAT).all()
    assert np.isfinite(result.image.array[~edge]).all()


def test_do_copy_edge_copies_input_and_sets_edge(masked, rng):
    masked.mask.array[0, :] = BAD
    kernel = asymmetric_kernel(rng)
    result = convolve(masked, kernel, doCopyEdge=True)
    edge = np.ones((H, W), dtype=bool)
    edge[valid_slices(kernel)] = False
    np.testing.assert_array_equal(result.image.array[edge], masked.image.array[edge])
    np.testing.assert_array_equal(result.variance.array[edge], masked.variance.array[edge])
    np.testing.assert_array_equal(result.mask.array[edge], masked.mask.array[edge] | EDGE)
    assert (result.mask.array[0] == BAD | EDGE).all()
    assert not (result.mask.array[~edge] & EDGE).any()
    assert_close(result.image.array[~edge], reference(masked.image.array, kernel)[~edge])


# -- masks and non-finite pixels -----------------------------------------------------------------
def sparse_kernel() -> FixedKernel:
    image = np.zeros((5, 7))
    image[0, 1], image[2, 3], image[4, 6], image[1, 5] = 1.0, 2.0, -1.0, 0.5
    return FixedKernel(image)


def touched(kernel_image: np.ndarray, px: int, py: int) -> set[tuple[int, int]]:
    """Output array pixels whose non-zero kernel pixels reach input pixel (px, py)."""
    kh, kw = kernel_image.shape
    cy, cx = (kh - 1) // 2, (kw - 1) // 2
    return {(px + cx - kx, py + cy - ky) for ky, kx in zip(*np.nonzero(kernel_image))}


def test_single_mask_bit_smears_over_exact_footprint(masked):
    kernel = sparse_kernel()
    px, py = 20, 25
    masked.mask.array[py, px] = SAT
    result = convolve(masked, kernel)
    got = {(x, y) for y, x in zip(*np.nonzero(result.mask.array & SAT))}
    assert got == touched(kernel.array, px, py)


def test_mask_of_spatial_kernel_uses_contributing_pixels(masked):
    basis = [DeltaFunctionKernel(5, 5, (0, 0)), DeltaFunctionKernel(5, 5, (4, 3)), DeltaFunctionKernel(5, 5, (2, 1))]
    kernel = LinearCombinationKernel(basis, spatialFunction=PolynomialFunction2(1))
    kernel.setSpatialParameters([[1.0, 0.001, 0.0], [0.5, 0.0, -0.002], [0.0, 0.0, 0.0]])  # basis 2 unused
    masked.mask.array[rng_bits := (np.arange(H)[:, None] * 7 + np.arange(W)) % 11 == 0] = SAT
    assert rng_bits.any()
    result = convolve(masked, kernel)
    footprint = np.zeros((5, 5), dtype=bool)
    footprint[0, 0] = footprint[3, 4] = True
    expected = reference_mask(masked.mask.array, footprint)
    valid = valid_slices(kernel)
    np.testing.assert_array_equal(result.mask.array[valid], expected[valid])


def test_mask_with_many_planes_and_full_footprint(masked, rng):
    bits = rng.integers(0, 1 << 20, size=(H, W)).astype(np.int32) * (rng.random((H, W)) < 0.05)
    masked.mask.array[:, :] = bits
    kernel = GaussianKernel(9, 7, 1.5)
    result = convolve(masked, kernel)
    expected = reference_mask(bits, np.ones((7, 9), dtype=bool))
    valid = valid_slices(kernel)
    np.testing.assert_array_equal(result.mask.array[valid], expected[valid])


def test_nan_and_inf_stay_local(masked):
    kernel = sparse_kernel()
    masked.image.array[25, 20] = np.nan
    masked.variance.array[10, 30] = np.inf
    masked.variance.array[40, 8] = np.nan
    result = convolve(masked, kernel)
    nan_pixels = {(x, y) for y, x in zip(*np.nonzero(np.isnan(result.image.array)))}
    edge = {(x, y) for y, x in zip(*np.nonzero(np.isnan(reference(np.zeros((H, W)), kernel))))}
    assert nan_pixels - edge == touched(kernel.array, 20, 25)
    # the rest is unaffected: the reference sums only non-zero kernel pixels, as afw does
    assert_close(result.image.array, reference(masked.image.array, kernel))
    valid = valid_slices(kernel)
    expected_var = reference(masked.variance.array, kernel, power=2)
    assert_close(result.variance.array[valid], expected_var[valid])
    assert {(x, y) for y, x in zip(*np.nonzero(np.isposinf(result.variance.array[valid])))} == {
        (x - valid[1].start, y - valid[0].start) for x, y in touched(kernel.array, 30, 10)
    }


# -- convolve_array ------------------------------------------------------------------------------
def test_convolve_array_matches_masked_convolve_and_types(masked, rng):
    kernel = spatial_kernel(rng, Chebyshev1Function2.from_bbox(2, bbox()))
    array = convolve_array(masked.image.array, kernel, xy0=XY0, workers=2)
    np.testing.assert_array_equal(array, convolve(masked, kernel).image.array)
    ints = convolve_array(np.arange(30 * 30).reshape(30, 30), GaussianKernel(5, 5, 1.0))
    assert ints.dtype == np.float64 and np.isnan(ints[0, 0]) and np.isfinite(ints[2, 2])
    single = convolve(MaskedImage(masked.image.array.astype(np.float32), None, 1.0, xy0=XY0), kernel)
    assert single.image.dtype == np.float32 and single.variance.dtype == np.float32
    assert single.getXY0() == XY0


# -- convolveAndSubtract -------------------------------------------------------------------------
def science_for(masked: MaskedImage, rng: np.random.Generator) -> MaskedImage:
    science = MaskedImage(
        rng.normal(100.0, 10.0, size=(H, W)), np.zeros((H, W), dtype=np.int32), rng.uniform(1, 2, size=(H, W)), xy0=XY0
    )
    science.mask.array[3, 4] = BAD
    return science


@pytest.mark.parametrize("background", ["scalar", "function", "callable"])
def test_convolve_and_subtract(masked, rng, background):
    kernel = spatial_kernel(rng, Chebyshev1Function2.from_bbox(2, bbox()))
    science = science_for(masked, rng)
    masked.mask.array[30, 15] = SAT
    if background == "scalar":
        bg, bg_values = 12.5, 12.5
    else:
        bg = Chebyshev1Function2.from_bbox(1, bbox(), [3.0, 0.5, -0.25])
        if background == "callable":
            bg = lambda x, y: 3.0 + 0.01 * x - 0.02 * y  # noqa: E731 - a plain callable background
        ys, xs = np.mgrid[XY0[1] : XY0[1] + H, XY0[0] : XY0[0] + W]
        bg_values = bg(xs, ys)
    diff = convolveAndSubtract(masked, science, kernel, bg)
    valid = valid_slices(kernel)
    expected = science.image.array - (reference(masked.image.array, kernel) + bg_values)
    assert_close(diff.image.array, expected)
    expected_var = science.variance.array + reference(masked.variance.array, kernel, power=2)
    assert_close(diff.variance.array[valid], expected_var[valid])
    expected_mask = science.mask.array | reference_mask(masked.mask.array, np.ones((9, 9), dtype=bool))
    np.testing.assert_array_equal(diff.mask.array[valid], expected_mask[valid])
    edge = np.ones((H, W), dtype=bool)
    edge[valid] = False
    assert np.isposinf(diff.variance.array[edge]).all()
    np.testing.assert_array_equal(diff.mask.array[edge], science.mask.array[edge] | NO_DATA)
    assert diff.mask.array[3, 4] == BAD | NO_DATA


def test_convolve_and_subtract_invert_flag(masked, rng):
    kernel = asymmetric_kernel(rng)
    science = science_for(masked, rng)
    plus = convolveAndSubtract(masked, science, kernel, 4.0, invert=True)
    minus = convolveAndSubtract(masked, science, kernel, 4.0, invert=False)
    np.testing.assert_allclose(minus.image.array, -plus.image.array, rtol=1e-12)
    np.testing.assert_array_equal(minus.variance.array, plus.variance.array)
    np.testing.assert_array_equal(minus.mask.array, plus.mask.array)


def test_convolve_and_subtract_image_template_copies_science_planes(masked, rng):
    kernel = asymmetric_kernel(rng)
    science = science_for(masked, rng)
    diff = convolveAndSubtract(masked.image, science, kernel, 1.0)
    assert_close(diff.image.array, science.image.array - reference(masked.image.array, kernel) - 1.0)
    np.testing.assert_array_equal(diff.mask.array, science.mask.array)
    np.testing.assert_array_equal(diff.variance.array, science.variance.array)


def test_convolve_and_subtract_needs_same_box(masked, rng):
    science = science_for(masked, rng)
    science.setXY0((0, 0))
    with pytest.raises(ImageError, match="differs from science box"):
        convolveAndSubtract(masked, science, asymmetric_kernel(rng))


@pytest.mark.parametrize("bg", [0.0, 10.0])
@pytest.mark.parametrize("spatial", [False, True])
def test_legacy_image_subtract_gives_minus_background(rng, bg, spatial):
    # LSST test_imageSubtract: S = T ⋆ G, then convolveAndSubtract(T, S, G, bg) = -bg
    template = MaskedImage(rng.normal(100.0, 10.0, size=(H, W)), None, 100.0, xy0=XY0)
    kernel = spatial_kernel(rng, Chebyshev1Function2.from_bbox(2, bbox())) if spatial else GaussianKernel(9, 9, 2.0)
    science = convolve(template, kernel)
    diff = convolveAndSubtract(template, science, kernel, bg)
    valid = valid_slices(kernel)
    np.testing.assert_almost_equal(diff.image.array[valid], -bg, decimal=3)


@pytest.mark.parametrize("order", [0, 2])
def test_legacy_zero_function_background(rng, order):
    template = MaskedImage(rng.normal(100.0, 10.0, size=(H, W)), None, 100.0, xy0=XY0)
    kernel = GaussianKernel(9, 9, 2.0)
    science = convolve(template, kernel)
    diff = convolveAndSubtract(template, science, kernel, PolynomialFunction2(order))
    np.testing.assert_almost_equal(diff.image.array[valid_slices(kernel)], 0.0, decimal=4)


# -- argument errors -----------------------------------------------------------------------------
class _OtherVaryingKernel(Kernel):
    def isSpatiallyVarying(self) -> bool:  # noqa: N802
        return True

    def _image(self, x: float, y: float) -> np.ndarray:
        return np.ones((3, 3))


def test_argument_errors(masked, rng):
    with pytest.raises(KernelError, match="smaller than"):
        convolve(masked, FixedKernel(np.ones((H + 1, 3))))
    with pytest.raises(ValueError, match="'bogus'"):
        convolve(masked, asymmetric_kernel(rng), variance="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        convolve(masked, asymmetric_kernel(rng), workers=0)
    with pytest.raises(KernelError, match="LinearCombinationKernel"):
        convolve(masked, _OtherVaryingKernel(3, 3))
    with pytest.raises(TypeError, match="MaskedImage"):
        convolve(masked.image, asymmetric_kernel(rng))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Kernel"):
        convolve(masked, np.ones((3, 3)))  # type: ignore[arg-type]
