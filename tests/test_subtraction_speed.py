"""The speed work on detection, background, PSF estimation, the difference and decorrelation.

Each fast path is checked against the straightforward computation it replaced (written out here),
and the task against its promise to detect each image once per use and to time its stages.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import diffim.tasks.detection.background as bgmod
import diffim.tasks.detection.detect as detmod
import numpy as np
import pytest
import scipy.fft as sfft
from astropy.stats import sigma_clipped_stats
from diffim.tasks import ImagePsfMatchConfig, ImagePsfMatchTask
from diffim.tasks.clipped_stats import _clipped_mean
from diffim.tasks.decorrelate import _whitening
from diffim.tasks.detection import (
    Background,
    BackgroundError,
    detect_sources,
    estimate_background,
    guess_fwhm,
)
from diffim.tasks.detection.background import _clipped_stats_sorted
from diffim.tasks.image import Box2I, Exposure, Mask
from diffim.tasks.imagePsfMatch import (
    _REFIT_BAD_PLANES,
    _evaluate,
    _refit_background,
    _subtract_function,
)
from diffim.tasks.kernel import Chebyshev1Function2
from diffim.tasks.kernel.convolve import convolve
from diffim.tasks.matching.clipping import clipped_mean_std
from diffim.tasks.psf import GaussianPsf
from scipy import ndimage


def _stars(shape: tuple[int, int], n: int, fwhm: float, seed: int, flux: tuple[float, float] = (2e3, 5e4)) -> np.ndarray:
    """Noiseless image of ``n`` Gaussian stars at random positions."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape)
    ys, xs = rng.integers(3, shape[0] - 3, n), rng.integers(3, shape[1] - 3, n)
    np.add.at(img, (ys, xs), rng.uniform(*flux, n))
    return ndimage.gaussian_filter(img, fwhm / 2.3548)


# ------------------------------------------------------------------------------------------ background
def test_sorted_clipping_matches_astropy_sigma_clipped_stats() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(100.0, 10.0, (200, 300))
    rows[:, :15] += rng.uniform(0, 500, (200, 15))  # outliers to clip
    rows[rng.random(rows.shape) < 0.3] = np.nan
    rows[7] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, median, std = sigma_clipped_stats(rows, mask=~np.isfinite(rows), axis=1, sigma=3.0, maxiters=5)
    n_valid = np.count_nonzero(~np.isnan(rows), axis=1)
    got_median, got_std = _clipped_stats_sorted(np.sort(rows, axis=1), n_valid, 3.0, 5)
    expected_median, expected_std = np.ma.filled(median, np.nan), np.ma.filled(std, np.nan)
    assert np.array_equal(np.isnan(got_median), np.isnan(expected_median)) and np.isnan(got_median[7])
    assert np.nanmax(np.abs(got_median - expected_median)) < 1e-12
    assert np.nanmax(np.abs(got_std / expected_std - 1.0)) < 1e-12


def test_background_interpolates_its_planes_only_when_used() -> None:
    img = np.random.default_rng(1).normal(10.0, 2.0, (96, 130)) + np.linspace(0, 5, 130)[None, :]
    bg = estimate_background(img, box=32)
    assert bg._array is None and bg._rms is None and bg.shape == (96, 130)
    yc, xc, ny, nx = bg._grid
    assert np.array_equal(bg.array, bgmod._interpolate(bg.mesh, yc, xc, ny, nx)) and bg._rms is None
    assert np.array_equal(bg.rms, np.maximum(bgmod._interpolate(bg.mesh_rms, yc, xc, ny, nx), 0.0))
    assert bg.array is bg.array  # kept once made
    explicit = Background(np.zeros((2, 3)), np.ones((2, 3)), 1.0, np.zeros((1, 1)), np.ones((1, 1)), 4)
    assert explicit.shape == (2, 3) and explicit.rms.sum() == 6
    with pytest.raises(BackgroundError, match="needs its array and rms"):
        Background(None, None, 1.0, np.zeros((1, 1)), np.ones((1, 1)), 4)


# ------------------------------------------------------------------------------------------- detection
def _significant_peaks_reference(sm: np.ndarray, px: np.ndarray, py: np.ndarray, val: np.ndarray, sig: np.ndarray,
                                 nsigma: float) -> list[int]:
    """The original saddle test: one np.linspace line per (candidate, accepted) pair."""
    accepted = [0]
    for k in range(1, px.size):
        saddle = -np.inf
        for j in accepted:
            n = int(math.ceil(2 * math.hypot(px[k] - px[j], py[k] - py[j]))) + 2
            xs = np.rint(np.linspace(px[k], px[j], n)).astype(np.intp)
            ys = np.rint(np.linspace(py[k], py[j], n)).astype(np.intp)
            saddle = max(saddle, float(sm[ys, xs].min()))
        if val[k] - saddle >= nsigma * sig[k]:
            accepted.append(k)
    return accepted


@pytest.mark.parametrize("sign", [1, -1])
def test_vectorised_saddle_test_equals_the_pairwise_loop(sign: int) -> None:
    rng = np.random.default_rng(11 if sign > 0 else 12)
    img = sign * (_stars((90, 90), 60, 2.5, seed=5) + rng.normal(0, 3.0, (90, 90)))
    peaks = np.argwhere(ndimage.maximum_filter(sign * img, size=3) == sign * img)
    values = sign * img[peaks[:, 0], peaks[:, 1]]
    order = np.argsort(-values, kind="stable")[:70]
    py, px, val = peaks[order, 0], peaks[order, 1], values[order]
    sig = np.full(val.size, 2.0)
    for nsigma in (0.5, 3.0, 20.0):
        got = detmod._significant_peaks(img, sign, px, py, val, sig, nsigma)
        expected = _significant_peaks_reference(sign * img, px, py, val, sig, nsigma)
        assert got.tolist() == expected
    assert 8 < len(expected) < val.size  # the case has both outcomes


def test_crowded_badly_subtracted_field_is_no_longer_quadratic() -> None:
    # one footprint holding hundreds of significant peaks (what a failed subtraction gives)
    rng = np.random.default_rng(2)
    img = _stars((200, 200), 400, 3.0, seed=9, flux=(3e3, 3e4)) + 400.0 + rng.normal(0, 1.0, (200, 200))
    table = detect_sources(img - 400.0 * 0.9, background=0.0, smooth_fwhm=3.0, polarity="both", set_mask=False)
    assert table["n_peaks"].max() > 100


def test_guess_fwhm_without_a_snr_map_gives_the_same_answer() -> None:
    rng = np.random.default_rng(4)
    var = np.full((160, 160), 25.0)
    resid = _stars((160, 160), 40, 3.5, seed=4) + rng.normal(0, 5.0, (160, 160))
    usable = np.ones(resid.shape, dtype=bool)
    usable[50:60, :] = False
    snr = resid / np.sqrt(var)
    # the original full-image version: 5x5 maximum and minimum filters
    local_max = snr == ndimage.maximum_filter(snr, size=5, mode="nearest")
    interior = np.zeros_like(usable)
    interior[10:-10, 10:-10] = True
    clean = ndimage.minimum_filter(usable.astype(np.uint8), size=5, mode="constant") > 0
    yi, xi = np.nonzero(local_max & interior & clean & (snr > 20.0))
    order = np.argsort(-snr[yi, xi])[:200]
    from diffim.tasks.detection import adaptive_sigma, cutouts

    sig, _, _ = adaptive_sigma(cutouts(resid, xi[order], yi[order], 10))
    expected = float(2.3548200450309493 * np.median(sig[np.isfinite(sig)]))
    assert guess_fwhm(resid, snr, usable) == pytest.approx(expected, rel=1e-12)
    assert guess_fwhm(resid, None, usable, variance=var) == pytest.approx(expected, rel=1e-12)
    assert 3.0 < expected < 4.5
    with pytest.raises(ValueError, match="needs the S/N map or the variance"):
        guess_fwhm(resid, None, usable)


def test_plateaus_keep_their_first_pixel() -> None:
    peaks = np.array([5 * 10 + 5, 5 * 10 + 6, 7 * 10 + 2])  # two touching pixels and a lone one
    assert detmod._one_pixel_per_plateau(peaks, 10, 10).tolist() == [55, 72]
    assert detmod._one_pixel_per_plateau(np.array([0, 99]), 10, 10).tolist() == [0, 99]


# ------------------------------------------------------------------------------------------ difference
def _refit_reference(image: np.ndarray, mask: np.ndarray, variance: np.ndarray, base: Any, bbox: Any,
                     bin_size: int) -> list[tuple[float, float, float, float]]:
    """The bins of the original per-bin loop: (x, y, median, weight)."""
    from diffim.tasks.image.mask_planes import mask_planes

    image = image - _evaluate(base, bbox)
    bits = Mask.getPlaneBitMask([p for p in _REFIT_BAD_PLANES if p in mask_planes])
    good = ((mask & bits) == 0) & np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    h, w = image.shape
    size = int(max(8, min(bin_size, max(h // 2, 1), max(w // 2, 1))))
    out = []
    for r0 in range(0, h, size):
        for c0 in range(0, w, size):
            g = good[r0:r0 + size, c0:c0 + size]
            n = int(g.sum())
            if n < max(16, g.size // 4):
                continue
            rr, cc = np.nonzero(g)
            out.append((bbox.minX + c0 + cc.mean(), bbox.minY + r0 + rr.mean(),
                        float(np.median(image[r0:r0 + size, c0:c0 + size][g])),
                        n / (0.5 * math.pi * float(np.median(variance[r0:r0 + size, c0:c0 + size][g])))))
    return out


def test_band_wise_background_refit_uses_the_same_bins(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    bbox = Box2I((100, 200), (150, 110))  # bins of 32 do not divide the box
    base = Chebyshev1Function2.from_bbox(1, bbox)
    base.setParameters([0.5, 0.2, -0.1])
    image = (rng.normal(3.0, 2.0, (110, 150)) + np.linspace(0, 1, 150)[None, :]).astype(np.float32)
    image[40:44, 60:100] = np.nan
    variance = np.full(image.shape, 4.0, dtype=np.float32) + rng.uniform(0, 1, image.shape).astype(np.float32)
    mask = np.zeros(image.shape, dtype=np.int32)
    mask[:, :70] |= Mask.getPlaneBitMask("SAT") * (rng.random((110, 70)) < 0.5)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    real_lstsq = np.linalg.lstsq

    def spy(a: np.ndarray, b: np.ndarray, rcond: Any = None) -> Any:
        seen.append((a, b))
        return real_lstsq(a, b, rcond=rcond)

    monkeypatch.setattr(np.linalg, "lstsq", spy)
    refit = _refit_background(image, mask, variance, base, bbox, 32)
    bins = _refit_reference(image, mask, variance, base, bbox, 32)
    xs, ys, medians, weights = (np.array(c) for c in zip(*bins, strict=True))
    design = np.asarray(base.term_values(xs, ys)).reshape(len(bins), -1)
    sw = np.sqrt(weights)
    assert np.array_equal(seen[0][0], design * sw[:, None]) and np.array_equal(seen[0][1], medians * sw)
    assert len(refit.getParameters()) == 3


def test_band_wise_background_subtraction_equals_the_whole_grid() -> None:
    bbox = Box2I((-30, 17), (300, 301))
    function = Chebyshev1Function2.from_bbox(2, bbox)
    function.setParameters([1.0, 0.3, -0.2, 0.05, 0.01, -0.02])
    image = np.random.default_rng(0).normal(0, 1, (301, 300)).astype(np.float32)
    expected = (image - _evaluate(function, bbox)).astype(np.float32)
    _subtract_function(image, function, bbox)
    assert np.array_equal(image, expected)


# ---------------------------------------------------------------------------------------- decorrelation
def test_lean_clipped_mean_is_bit_identical() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 37, 50_000):
        values = rng.normal(100.0, 5.0, n).astype(np.float32)
        values[: n // 10] += 500.0
        values[-1] = np.nan
        assert _clipped_mean(values) == clipped_mean_std(values)[0]
    assert math.isnan(_clipped_mean(np.array([np.nan, np.inf])))


def test_in_place_phi_is_bit_identical_to_the_plain_expression() -> None:
    from diffim.tasks.kernel import GaussianKernel

    filt = _whitening(GaussianKernel(15, 15, 1.7), science_variance=30.0, template_variance=8.0,
                      mode="convolveTemplate", position=(0.0, 0.0), kernel_sum=None, normalization=None)
    shape = (100, 90)
    power = np.abs(sfft.rfft2(filt.kernel, s=shape)) ** 2
    g2 = filt.gain**2
    expected = np.sqrt((filt.v_u + g2 * filt.kernel_sum**2 * filt.v_c) / (filt.v_u + g2 * filt.v_c * power))
    assert np.array_equal(filt.phi(shape), expected)


# ------------------------------------------------------------------------------------------------ task
def _pair_with_psfs(seed: int = 1) -> tuple[Exposure, Exposure]:
    rng = np.random.default_rng(seed)
    shape = (256, 256)
    rngs = np.random.default_rng(7)
    ys, xs = rngs.uniform(20, 236, 60), rngs.uniform(20, 236, 60)
    flux = rngs.uniform(5e3, 5e4, 60)
    out = []
    for fwhm, scale, sky in ((2.5, 1.0, 4.0), (3.5, 1.3, 9.0)):
        img = np.zeros(shape)
        np.add.at(img, (np.round(ys).astype(int), np.round(xs).astype(int)), flux * scale)
        img = ndimage.gaussian_filter(img, fwhm / 2.3548) + rng.normal(0, math.sqrt(sky), shape)
        out.append(Exposure(image=img.astype(np.float32), variance=np.full(shape, sky, dtype=np.float32),
                            psf=GaussianPsf(15, 15, fwhm / 2.3548)))
    return out[0], out[1]


def test_each_image_gets_one_background_and_one_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"background": 0, "detect": 0}
    real_bg, real_detect = detmod.estimate_background, detmod.detect_sources

    def count_bg(*args: Any, **kwargs: Any) -> Any:
        calls["background"] += 1
        return real_bg(*args, **kwargs)

    def count_detect(*args: Any, **kwargs: Any) -> Any:
        calls["detect"] += 1
        return real_detect(*args, **kwargs)

    import diffim.tasks.detection as detection_package

    monkeypatch.setattr(detection_package, "estimate_background", count_bg)
    monkeypatch.setattr(detection_package, "detect_sources", count_detect)
    template, science = _pair_with_psfs()
    task = ImagePsfMatchTask(config=ImagePsfMatchConfig())
    result = task.subtractExposures(template, science)
    # PSFs given: one background and one catalog per image, one QA detection on the difference
    assert calls == {"background": 2, "detect": 3}
    assert result.referenceSources is not None and result.convolvedSources is not None
    md = task.metadata
    for stage in ("registration", "detection", "psfEstimation", "selection", "fit", "convolve", "difference",
                  "decorrelate", "qa"):
        assert md[f"{stage}Duration"] >= 0.0, stage


def test_convolution_variance_auto_follows_decorrelation() -> None:
    template, science = _pair_with_psfs(2)
    results = {}
    for decorrelate in (True, False):
        config = ImagePsfMatchConfig()
        config.doDecorrelation = decorrelate
        config.doQa = False
        task = ImagePsfMatchTask(config=config)
        assert task._convolution_variance() == ("center" if decorrelate else "exact")
        results[decorrelate] = task.matchExposures(template, science)
    off = results[False]
    exact = convolve(template.maskedImage, off.psfMatchingKernel, variance="exact")
    assert np.array_equal(off.matchedImage.variance.array, exact.variance.array, equal_nan=True)
    config = ImagePsfMatchConfig()
    config.convolutionVariance = "exact"
    assert ImagePsfMatchTask(config=config)._convolution_variance() == "exact"
