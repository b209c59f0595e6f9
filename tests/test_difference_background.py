"""Differential background helpers: block medians, separable evaluation, banded subtraction, refit.

Each is checked against the straightforward computation (a loop over bins with ``np.median``, the
function called on the whole grid, the refit written out bin by bin).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from diffim.tasks import difference_background as db
from diffim.tasks.image import Box2I, Mask
from diffim.tasks.kernel.functions import Chebyshev1Function2, PolynomialFunction2


def _reference_bins(values: np.ndarray, good: np.ndarray, size: int) -> tuple[list[int], list[float]]:
    """Count and ``np.median`` of the good pixels of each ``size``-wide bin (NaN when none)."""
    counts, medians = [], []
    for c0 in range(0, values.shape[1], size):
        block, ok = values[:, c0 : c0 + size], good[:, c0 : c0 + size]
        counts.append(int(ok.sum()))
        medians.append(np.median(block[ok]) if ok.any() else math.nan)
    return counts, medians


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bin_medians_equal_np_median_per_bin(dtype: Any) -> None:
    rng = np.random.default_rng(1)
    rows, width, size = 24, 203, 16  # a 11-pixel-wide last bin
    values = (rng.normal(5.0, 2.0, (rows, width)) + np.linspace(0, 3, width)).astype(dtype)
    values[:, 40:44] = np.round(values[:, 40:44])  # ties
    good = rng.random((rows, width)) > 0.2
    good[:, 16:32] = False  # an empty bin
    good[:, 32:48] &= np.arange(rows)[:, None] < 3  # a bin with few pixels
    good[0, 48] = False  # odd and even counts side by side
    values[~good] = np.nan  # bad pixels may hold anything
    counts, medians = db.bin_medians(values, good, size)
    ref_counts, ref_medians = _reference_bins(values, good, size)
    assert counts.tolist() == ref_counts
    assert medians.dtype == dtype
    assert np.array_equal(medians, np.array(ref_medians, dtype=dtype), equal_nan=True)
    assert np.isnan(medians[1]) and counts[1] == 0
    # all pixels good: one partition per band
    full_counts, full_medians = db.bin_medians(np.nan_to_num(values), np.ones_like(good), size)
    ref = _reference_bins(np.nan_to_num(values), np.ones_like(good), size)
    assert full_counts.tolist() == ref[0] and np.array_equal(full_medians, np.array(ref[1], dtype=dtype))


@pytest.mark.parametrize("kind", ["chebyshev", "polynomial", "other"])
def test_evaluate_matches_the_function_and_bands_match_the_whole(kind: str) -> None:
    bbox = Box2I((-30, 17), (97, 61))
    if kind == "chebyshev":
        function: Any = Chebyshev1Function2.from_bbox(2, bbox, [1.0, 0.3, -0.2, 0.05, 0.0, -0.02])
    elif kind == "polynomial":
        function = PolynomialFunction2(2, [1.0, 1e-2, -2e-2, 1e-4, 3e-5, 0.0])
    else:
        def function(x: Any, y: Any) -> Any:
            return np.sin(0.1 * x) + 0.01 * y
    whole = db.evaluate(function, bbox)
    xs = bbox.minX + np.arange(bbox.width, dtype=float)
    ys = bbox.minY + np.arange(bbox.height, dtype=float)
    assert whole.shape == (61, 97) and whole.dtype == np.float64
    assert whole == pytest.approx(np.broadcast_to(function(xs[None, :], ys[:, None]), whole.shape), abs=1e-12)
    band = Box2I((bbox.minX, bbox.minY + 20), (bbox.width, 7))
    out = np.empty((7, 97))
    assert db.evaluate(function, band, out=out) is out
    assert np.array_equal(out, whole[20:27])
    with pytest.raises(ValueError, match="float64 array of the box's shape"):
        db.evaluate(function, band, out=np.empty((7, 96)))


def test_subtract_function_equals_the_whole_grid_difference() -> None:
    bbox = Box2I((5, -3), (70, 301))  # more rows than a band, a partial last band
    function = Chebyshev1Function2.from_bbox(2, bbox, [1.0, 0.3, -0.2, 0.05, 0.01, -0.02])
    image = np.random.default_rng(0).normal(0, 1, (301, 70)).astype(np.float32)
    expected = (image - db.evaluate(function, bbox)).astype(np.float32)
    db.subtract_function(image, function, bbox)
    assert np.array_equal(image, expected)


def _reference_refit(image: np.ndarray, mask: np.ndarray, variance: np.ndarray, base: Any, bbox: Box2I,
                     bin_size: int) -> np.ndarray:
    """The refit written out: a loop over bins with np.median, then the two weighted fits."""
    from diffim.tasks.image.mask_planes import mask_planes

    resid = image - db.evaluate(base, bbox)
    bits = Mask.getPlaneBitMask([p for p in db.REFIT_BAD_PLANES if p in mask_planes])
    with np.errstate(invalid="ignore"):
        good = ((mask & bits) == 0) & np.isfinite(resid) & np.isfinite(variance) & (variance > 0)
    h, w = image.shape
    size = int(max(8, min(bin_size, h // 2, w // 2)))
    xs, ys, values, weights = [], [], [], []
    for r0 in range(0, h, size):
        for c0 in range(0, w, size):
            ok = good[r0 : r0 + size, c0 : c0 + size]
            n = int(ok.sum())
            if n < max(16, ok.size // 4):
                continue
            rr, cc = np.nonzero(ok)
            xs.append(bbox.minX + c0 + cc.mean())
            ys.append(bbox.minY + r0 + rr.mean())
            values.append(float(np.median(resid[r0 : r0 + size, c0 : c0 + size][ok])))
            var = variance[r0 : r0 + size, c0 : c0 + size][ok]
            weights.append(n / (0.5 * math.pi * float(np.median(var))))
    v, wt = np.array(values), np.array(weights)
    design = np.asarray(base.term_values(np.array(xs), np.array(ys))).reshape(v.size, -1)
    keep = np.ones(v.size, dtype=bool)
    for _ in range(2):
        sw = np.sqrt(wt[keep])
        params = np.linalg.lstsq(design[keep] * sw[:, None], v[keep] * sw, rcond=None)[0]
        new_keep = np.abs((v - design @ params) * np.sqrt(wt)) <= 5.0
        if new_keep.sum() < 2 * v.size or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return np.asarray(base.getParameters()) + params


def test_refit_background_matches_the_plain_bin_loop_and_finds_the_background() -> None:
    rng = np.random.default_rng(4)
    bbox = Box2I((100, 200), (250, 190))  # bins of 32 divide neither side
    truth = Chebyshev1Function2.from_bbox(1, bbox, [3.0, 0.8, -0.5])
    base = truth.copy_with([2.5, 0.0, 0.0])  # the kernel fit's estimate, off by a plane
    variance = (1.0 + rng.uniform(0, 0.2, (190, 250))).astype(np.float32)
    image = (db.evaluate(truth, bbox) + rng.normal(size=(190, 250)) * np.sqrt(variance)).astype(np.float32)
    image[60:66, 30:200] = np.nan  # a bad stripe
    mask = np.zeros(image.shape, dtype=np.int32)
    mask[:, :40] |= Mask.getPlaneBitMask("SAT") * (rng.random((190, 40)) < 0.8)  # bins with few pixels
    refit = db.refit_background(image, mask, variance, base, bbox, 32)
    expected = _reference_refit(image, mask, variance, base, bbox, 32)
    assert np.asarray(refit.getParameters()) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert np.asarray(refit.getParameters()) == pytest.approx([3.0, 0.8, -0.5], abs=0.05)
    # too few usable bins: the base comes back unchanged
    assert db.refit_background(image, np.full_like(mask, Mask.getPlaneBitMask("BAD")), variance, base, bbox, 32) is base


def test_refit_background_survives_one_bin_far_off_the_others() -> None:
    rng = np.random.default_rng(5)
    bbox = Box2I((0, 0), (256, 160))
    truth = Chebyshev1Function2.from_bbox(1, bbox, [3.0, 0.8, -0.5])
    base = truth.copy_with([2.5, 0.0, 0.0])
    variance = np.ones((160, 256), dtype=np.float32)
    image = (db.evaluate(truth, bbox) + rng.normal(size=(160, 256))).astype(np.float32)
    image[64:92, 100:126] += 500.0  # most of one 32x32 bin: a bright unmasked residual
    mask = np.zeros(image.shape, dtype=np.int32)
    refit = db.refit_background(image, mask, variance, base, bbox, 32)
    assert np.asarray(refit.getParameters()) == pytest.approx([3.0, 0.8, -0.5], abs=0.05)
    # a real gradient is not mistaken for outliers: a steep plane is still recovered
    steep = truth.copy_with([3.0, 40.0, -25.0])
    image = (db.evaluate(steep, bbox) + rng.normal(size=(160, 256))).astype(np.float32)
    refit = db.refit_background(image, mask, variance, base, bbox, 32)
    assert np.asarray(refit.getParameters()) == pytest.approx([3.0, 40.0, -25.0], abs=0.05)


def test_image_psf_match_uses_these_helpers() -> None:
    from diffim.tasks import imagePsfMatch

    assert imagePsfMatch._refit_background is db.refit_background
    assert imagePsfMatch._subtract_function is db.subtract_function
    assert imagePsfMatch._evaluate is db.evaluate
