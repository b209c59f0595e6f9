"""Decorrelation afterburner (DMTN-021): whitening, variance planes, edges, fluxes, modes, the task."""

from __future__ import annotations

import itertools
import math

import diffim.tasks.decorrelate as decorrelate_module
import numpy as np
import pytest
from diffim.tasks import ImagePsfMatchTask
from diffim.tasks.decorrelate import (
    DEFAULT_IGNORE_PLANES,
    DecorrelateALKernelConfig,
    DecorrelateALKernelTask,
    DecorrelationError,
    _whitening,
    clipped_variance,
    decorrelate_difference,
    decorrelate_psf_image,
    decorrelation_kernel,
)
from diffim.tasks.clipped_stats import _clipped_mean_large, _median, _order_statistics, _percentiles
from diffim.tasks.image import Box2I, Exposure, Mask, MaskedImage
from diffim.tasks.kernel import FixedKernel, GaussianKernel, LinearCombinationKernel
from diffim.tasks.kernel.convolve import convolve, convolveAndSubtract
from diffim.tasks.kernel.functions import Chebyshev1Function2
from diffim.tasks.matching.clipping import clipped_mean_std
from diffim.tasks.psf import GaussianPsf, ImagePsf

SIZE = 256
SIGMA_S = 1.0  # science noise
SIGMA_T = 0.7  # template noise
KSUM = 1.2  # photometric scale carried by the matching kernel
#: Interior well away from the NaN border of the difference (kernel half-width 10 + reach of ψ ~20).
INNER = np.s_[32:224, 32:224]
#: Radial frequency bins (cycles/pixel) for the power spectra.
EDGES = (0.0, 0.08, 0.15, 0.25, 0.35, 0.5)


def _kernel() -> FixedKernel:
    return FixedKernel(GaussianKernel(21, 21, 2.0).computeImage() * KSUM)


def _noise(seed: int, sigma: float) -> MaskedImage:
    rng = np.random.default_rng(seed)
    return MaskedImage(rng.normal(0.0, sigma, (SIZE, SIZE)), variance=sigma**2)


def _radial_power(array: np.ndarray) -> np.ndarray:
    """Azimuthally averaged periodogram in the :data:`EDGES` bins (DC excluded)."""
    a = array - array.mean()
    power = np.abs(np.fft.fft2(a)) ** 2 / a.size
    k = np.hypot(np.fft.fftfreq(a.shape[0])[:, None], np.fft.fftfreq(a.shape[1])[None, :])
    return np.array([power[(k > lo) & (k <= hi)].mean() for lo, hi in itertools.pairwise(EDGES)])


def _template_pairs(n: int, kernel=None, sigma_s: float = SIGMA_S, sigma_t: float = SIGMA_T):
    kernel = _kernel() if kernel is None else kernel
    for seed in range(n):
        science, template = _noise(2 * seed, sigma_s), _noise(2 * seed + 1, sigma_t)
        yield convolveAndSubtract(template, science, kernel), kernel


# -- (1)-(3) convolveTemplate: white spectrum, pixel std, variance plane -------------------------
def test_power_spectrum_becomes_flat() -> None:
    before, after = [], []
    for diff, kernel in _template_pairs(12):
        corrected = decorrelate_difference(diff, kernel, science_variance=SIGMA_S**2, template_variance=SIGMA_T**2)
        before.append(_radial_power(diff.image.array[INNER]))
        after.append(_radial_power(corrected.image.array[INNER]))
    before, after = np.mean(before, axis=0), np.mean(after, axis=0)
    # uncorrected: σ_s² + σ_t²|κ̂|², ~1.4x higher at low k than at high k
    assert before[0] / before[-1] > 1.3
    flat = after / after.mean()
    assert np.all(np.abs(flat - 1.0) < 0.04), flat
    assert after.mean() == pytest.approx(SIGMA_S**2 + KSUM**2 * SIGMA_T**2, rel=0.02)


def test_pixel_std_and_variance_plane() -> None:
    expected = math.sqrt(SIGMA_S**2 + KSUM**2 * SIGMA_T**2)
    stds, plane_means = [], []
    for diff, kernel in _template_pairs(4):
        corrected = decorrelate_difference(diff, kernel, science_variance=SIGMA_S**2, template_variance=SIGMA_T**2)
        stds.append(corrected.image.array[INNER].std())
        plane_means.append(corrected.variance.array[INNER].mean())
    measured = float(np.mean(stds))
    assert measured == pytest.approx(expected, rel=0.02)
    assert float(np.mean(plane_means)) == pytest.approx(measured**2, rel=0.03)
    # the uncorrected difference has the smaller per-pixel variance σ_s² + Σκ²σ_t²
    assert diff.variance.array[INNER].mean() < 0.8 * expected**2


@pytest.mark.parametrize("propagation", ["estimate", "weighted", "complete"])
def test_variance_from_input_planes(propagation: str) -> None:
    science, template = _noise(11, SIGMA_S), _noise(12, SIGMA_T)
    kernel = _kernel()
    diff = convolveAndSubtract(template, science, kernel)
    corrected = decorrelate_difference(
        diff, kernel, science_variance=SIGMA_S**2, template_variance=SIGMA_T**2,
        science_variance_plane=science.variance, template_variance_plane=template.variance,
        variance_propagation=propagation,
    )
    expected = SIGMA_S**2 + KSUM**2 * SIGMA_T**2
    assert np.allclose(corrected.variance.array[INNER], expected, rtol=1e-6)
    assert corrected.image.array[INNER].var() == pytest.approx(expected, rel=0.03)


def test_complete_propagation_follows_varying_variance() -> None:
    """Science variance rising 1 → 4 across x: the exact propagation tracks the measured variance."""
    kernel = _kernel()
    ramp = np.broadcast_to(1.0 + 3.0 * np.arange(SIZE) / (SIZE - 1), (SIZE, SIZE))
    var_s, var_t = ramp.copy(), np.full((SIZE, SIZE), SIGMA_T**2)
    v_s, v_t = float(var_s.mean()), SIGMA_T**2
    samples, complete, estimate = [], None, None
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        science = MaskedImage(rng.normal(size=(SIZE, SIZE)) * np.sqrt(var_s), variance=var_s)
        template = MaskedImage(rng.normal(0.0, SIGMA_T, (SIZE, SIZE)), variance=var_t)
        diff = convolveAndSubtract(template, science, kernel)
        kwargs = {
            "science_variance": v_s, "template_variance": v_t,
            "science_variance_plane": var_s, "template_variance_plane": var_t,
        }
        out = decorrelate_difference(diff, kernel, variance_propagation="complete", **kwargs)
        samples.append(out.image.array)
        complete = out.variance.array
        estimate = decorrelate_difference(diff, kernel, variance_propagation="estimate", **kwargs).variance.array
    stack = np.stack(samples)
    # low-variance strip (x in 32..64) where σ²_s/σ²_t is far from its global value
    strip = np.s_[32:224, 32:64]
    measured = float(stack[(slice(None), *strip)].var())
    assert float(complete[strip].mean()) == pytest.approx(measured, rel=0.03)
    # the per-pixel estimate is off there by more than the test tolerance
    assert abs(float(estimate[strip].mean()) / measured - 1.0) > 0.05


# -- (4) NaN edges and holes ------------------------------------------------------------------------
def test_nan_edges_and_holes_stay_put() -> None:
    science, template = _noise(21, SIGMA_S), _noise(22, SIGMA_T)
    kernel = _kernel()
    diff = convolveAndSubtract(template, science, kernel)
    holed = diff.clone()
    hole = np.s_[120:126, 140:147]
    holed.image.array[hole] = np.nan
    holed.mask.array[hole] |= Mask.getPlaneBitMask("NO_DATA")
    kwargs = {"science_variance": SIGMA_S**2, "template_variance": SIGMA_T**2}
    clean = decorrelate_difference(diff, kernel, **kwargs)
    out = decorrelate_difference(holed, kernel, **kwargs)

    bad_in = ~np.isfinite(holed.image.array)
    assert bad_in.sum() == SIZE**2 - 236**2 + 42  # 10-pixel NaN border plus the hole
    assert np.array_equal(~np.isfinite(out.image.array), bad_in)  # no NaN spreads, none is lost
    assert np.all(np.isinf(out.variance.array[:10]))  # edge pixels keep afw's +inf variance
    assert np.array_equal(out.mask.array, holed.mask.array)

    # influence of the filled hole on good pixels: confined to the reach of ψ (away from the border,
    # where the fill level, the median of the good pixels, changed a little with the hole)
    reach = decorrelation_kernel(kernel, **kwargs).shape[0] // 2
    yy, xx = np.mgrid[:SIZE, :SIZE]
    dist = np.maximum(np.maximum(120 - yy, yy - 125), np.maximum(140 - xx, xx - 146))
    border = np.minimum(np.minimum(yy, SIZE - 1 - yy), np.minimum(xx, SIZE - 1 - xx)) - 10
    delta = np.abs(out.image.array - clean.image.array)
    good = np.isfinite(delta) & (border > reach)
    assert delta[good & (dist > reach)].max() < 1e-5 * SIGMA_S
    assert delta[good & (dist > 10)].max() < 1e-3 * SIGMA_S  # beyond the kernel half-width: tiny


# -- (5) fluxes -------------------------------------------------------------------------------------
def test_point_source_flux_is_kept() -> None:
    kernel = _kernel()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    source = 1.0e4 * np.exp(-0.5 * ((xx - 128) ** 2 + (yy - 128) ** 2) / 2.5**2) / (2 * np.pi * 2.5**2)
    aperture = np.hypot(xx - 128, yy - 128) <= 15
    kwargs = {"science_variance": SIGMA_S**2, "template_variance": SIGMA_T**2}

    noiseless = decorrelate_difference(MaskedImage(source, variance=1.0), kernel, **kwargs).image.array
    assert noiseless.sum() == pytest.approx(source.sum(), rel=1e-9)  # φ(0) = 1
    assert noiseless[aperture].sum() == pytest.approx(source[aperture].sum(), rel=0.01)
    assert noiseless.max() > source.max()  # ψ sharpens the PSF

    diff = next(_template_pairs(1))[0]
    diff.image.array[:] += source
    out = decorrelate_difference(diff, kernel, **kwargs).image.array
    assert out[aperture].sum() == pytest.approx(diff.image.array[aperture].sum(), rel=0.01)


# -- (6) convolveScience ----------------------------------------------------------------------------
@pytest.mark.parametrize("normalization", ["difference", "matched"])
def test_convolve_science_mode(normalization: str) -> None:
    kernel = _kernel()
    n = KSUM  # what the difference was divided by
    before, after, stds = [], [], []
    for seed in range(6):
        science, template = _noise(40 + 2 * seed, SIGMA_S), _noise(41 + 2 * seed, SIGMA_T)
        if normalization == "difference":  # legacy ImagePsfMatchTask: (κ⋆S − T)/n
            diff = convolveAndSubtract(science, template, kernel, invert=False)
            diff *= 1.0 / n
        else:  # HEAD AlardLuptonSubtractTask: κ⋆S/n − T
            diff = convolveAndSubtract(science, template, FixedKernel(kernel.array / n), invert=False)
        corrected = decorrelate_difference(
            diff, kernel, science_variance=SIGMA_S**2, template_variance=SIGMA_T**2,
            mode="convolveScience", kernel_sum=n, normalization=normalization,
        )
        before.append(_radial_power(diff.image.array[INNER]))
        after.append(_radial_power(corrected.image.array[INNER]))
        stds.append(corrected.image.array[INNER].std())
    if normalization == "difference":
        expected = (SIGMA_T**2 + KSUM**2 * SIGMA_S**2) / n**2
    else:
        expected = SIGMA_T**2 + (KSUM / n) ** 2 * SIGMA_S**2
    before, after = np.mean(before, axis=0), np.mean(after, axis=0)
    assert before[0] / before[-1] > 2.0
    assert np.all(np.abs(after / after.mean() - 1.0) < 0.03), after / after.mean()
    assert float(np.mean(stds)) == pytest.approx(math.sqrt(expected), rel=0.02)
    assert float(corrected.variance.array[INNER].mean()) == pytest.approx(expected, rel=0.03)


def test_modes_differ_when_variances_differ() -> None:
    diff, kernel = next(_template_pairs(1))
    kwargs = {"science_variance": SIGMA_S**2, "template_variance": SIGMA_T**2, "normalization": "none"}
    a = decorrelate_difference(diff, kernel, mode="convolveTemplate", **kwargs)
    b = decorrelate_difference(diff, kernel, mode="convolveScience", **kwargs)
    assert np.nanmax(np.abs(a.image.array - b.image.array)) > 0.05


# -- (7) spatially varying kernel realised at the centre --------------------------------------------
def test_spatially_varying_kernel_realised_at_centre() -> None:
    bbox = Box2I((0, 0), (SIZE, SIZE))
    basis = [FixedKernel(GaussianKernel(21, 21, s).computeImage(doNormalize=True)) for s in (1.0, 2.0, 3.0)]
    lck = LinearCombinationKernel(basis, spatialFunction=Chebyshev1Function2.from_bbox(1, bbox))
    lck.setSpatialParameters([[0.3, 0.1, 0.0], [0.7, 0.0, 0.1], [0.2, -0.05, 0.0]])  # 1, x', y'
    cx, cy = bbox.getCenter()
    centre_sum = lck.computeSum(cx, cy)
    kwargs = {"science_variance": SIGMA_S**2, "template_variance": SIGMA_T**2}
    stds, after = [], []
    for diff, _ in _template_pairs(12, kernel=lck):
        corrected = decorrelate_difference(diff, lck, **kwargs)
        fixed = decorrelate_difference(diff, FixedKernel(lck.computeImage(cx, cy)), **kwargs)
        assert np.array_equal(corrected.image.array, fixed.image.array, equal_nan=True)
        stds.append(corrected.image.array[96:160, 96:160].std())
        after.append(_radial_power(corrected.image.array[INNER]))
    corner = decorrelate_difference(diff, lck, kernel_position=(0.0, 0.0), **kwargs)
    assert np.nanmax(np.abs(corner.image.array - corrected.image.array)) > 1e-3
    assert float(np.mean(stds)) == pytest.approx(math.sqrt(SIGMA_S**2 + centre_sum**2 * SIGMA_T**2), rel=0.02)
    after = np.mean(after, axis=0)
    assert np.all(np.abs(after / after.mean() - 1.0) < 0.04)


# -- (6b) convolveScience: the variance plane near bright stars ------------------------------------
def _bright_star_pair(seed: int, size: int = 256, ratio: float = 1.3) -> tuple[MaskedImage, MaskedImage, FixedKernel, np.ndarray]:
    """Sharp science (σ 1.2 px, sky-limited) and broad deep template (σ 2 px, 4-exposure stack) of
    16 bright stars, the template exactly κ⋆science (κ sums to 1/ratio), noise with Poisson
    variance; and the apertures (1.5 template FWHM) around the stars."""
    yy, xx = np.mgrid[:size, :size]
    centres = [(y, x) for y in range(40, size - 30, 58) for x in range(40, size - 30, 58)]
    science_model = np.zeros((size, size))
    for y, x in centres:
        science_model += ratio * 2e5 * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / 1.2**2) / (2 * np.pi * 1.2**2)
    shape = GaussianKernel(15, 15, math.sqrt(2.0**2 - 1.2**2)).computeImage()
    kernel = FixedKernel(shape / shape.sum() / ratio)
    template_model = np.nan_to_num(convolve(MaskedImage(science_model, variance=0.0), kernel).image.array)
    var_s, var_t = 100.0 + science_model, 4.0 + template_model / 4.0
    rng = np.random.default_rng(seed)
    science = MaskedImage(science_model + rng.normal(size=(size, size)) * np.sqrt(var_s), variance=var_s)
    template = MaskedImage(template_model + rng.normal(size=(size, size)) * np.sqrt(var_t), variance=var_t)
    apertures = np.zeros((size, size), dtype=bool)
    for y, x in centres:
        apertures |= np.hypot(xx - x, yy - y) <= 1.5 * 2.3548 * 2.0
    return science, template, kernel, apertures


def test_convolve_science_variance_plane_follows_bright_stars() -> None:
    """Whitening boosts the template's noise (Σψ² ≈ 6 here): the variance plane must say so.

    D/sqrt(V) around bright stars has unit scatter with the weighted (default) and complete
    propagations; LSST's estimate var_T + s²var_S is far too low there.
    """
    ratio = 1.3
    n = 1.0 / ratio  # the kernel sum the difference is divided by: science units
    chi: dict[str, list[np.ndarray]] = {"estimate": [], "weighted": [], "complete": []}
    for seed in range(4):
        science, template, kernel, apertures = _bright_star_pair(seed, ratio=ratio)
        diff = convolveAndSubtract(science, template, kernel, invert=False)
        diff *= 1.0 / n
        kwargs = {
            "science_variance": clipped_variance(science), "template_variance": clipped_variance(template),
            "mode": "convolveScience", "kernel_sum": n, "normalization": "difference",
            "science_variance_plane": science.variance, "template_variance_plane": template.variance,
        }
        for propagation, values in chi.items():
            out = decorrelate_difference(diff, kernel, variance_propagation=propagation, **kwargs)
            values.append(out.image.array[apertures] / np.sqrt(out.variance.array[apertures]))
    std = {name: float(np.concatenate(values).std()) for name, values in chi.items()}
    assert std["weighted"] == pytest.approx(1.0, abs=0.05), std
    assert std["complete"] == pytest.approx(1.0, abs=0.05), std
    assert std["estimate"] > 1.5, std
    filt = _whitening(kernel, science_variance=100.0, template_variance=4.0, mode="convolveScience",
                      position=(128.0, 128.0), kernel_sum=n, normalization="difference")
    assert filt.unconvolved_gain > 4.0  # the template's noise, amplified


@pytest.mark.parametrize(("mode", "normalization"), [("convolveTemplate", "none"), ("convolveScience", "difference"),
                                                     ("convolveScience", "matched")])
def test_noise_gains_are_those_of_the_filters(mode: str, normalization: str) -> None:
    kernel = _kernel()
    filt = _whitening(kernel, science_variance=1.0, template_variance=0.3, mode=mode, position=(0.0, 0.0),
                      kernel_sum=1.1, normalization=normalization)
    shape = (256, 256)
    psi = decorrelate_module._fft.irfft2(filt.phi(shape), s=shape)
    h = decorrelate_module._fft.irfft2(filt.convolved_transfer(shape), s=shape)
    assert filt.unconvolved_gain == pytest.approx(float(np.sum(psi**2)), rel=1e-6)
    assert filt.convolved_gain == pytest.approx(filt.gain**2 * float(np.sum(h**2)), rel=1e-6)
    white = filt.beta**2 * (filt.unconvolved_gain * filt.v_u + filt.convolved_gain * filt.v_c)
    assert white == pytest.approx(filt.white_variance, rel=1e-12)


def test_task_variance_on_a_generated_convolve_science_pair() -> None:
    """ImagePsfMatchTask, template broader than the science (mode auto: convolveScience), with
    doDecorrelation: D/sqrt(V) around bright stars has unit scatter (LSST's estimate: ~1.7)."""
    size, ratio, sigma_s, sigma_t = 256, 1.3, 1.3, 2.0
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    xs, ys = rng.uniform(20, size - 20, 30), rng.uniform(20, size - 20, 30)
    fluxes = 10 ** rng.uniform(3.5, 5.5, 30)

    def render(sigma: float, scale: float) -> np.ndarray:
        image = np.zeros((size, size))
        for x, y, flux in zip(xs, ys, fluxes, strict=True):
            image += scale * flux * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2) / (2 * np.pi * sigma**2)
        return image

    science_model, template_model = render(sigma_s, ratio) + 200.0, render(sigma_t, 1.0) + 50.0
    var_s, var_t = 25.0 + science_model, 4.0 + template_model / 4.0
    science = Exposure(MaskedImage((science_model + rng.normal(size=(size, size)) * np.sqrt(var_s)).astype(np.float32),
                                   variance=var_s.astype(np.float32)))
    template = Exposure(MaskedImage((template_model + rng.normal(size=(size, size)) * np.sqrt(var_t)).astype(np.float32),
                                    variance=var_t.astype(np.float32)))
    config = ImagePsfMatchTask.ConfigClass()
    config.doDecorrelation = True
    config.doQa = False
    config.kernel.active.spatialKernelOrder = 0  # the truth: one kernel, no background
    config.kernel.active.spatialBgOrder = 0
    task = ImagePsfMatchTask(config=config)
    result = task.subtractExposures(template, science)
    assert task.metadata["mode"] == "convolveScience"
    diff = result.subtractedExposure
    image, variance = diff.image.array.astype(float), diff.variance.array.astype(float)
    apertures = np.zeros((size, size), dtype=bool)
    for x, y in zip(xs[fluxes * ratio > 3e4], ys[fluxes * ratio > 3e4], strict=True):
        apertures |= np.hypot(xx - x, yy - y) <= 1.5 * 2.3548 * sigma_s
    good = apertures & np.isfinite(image) & (variance > 0)
    assert good.sum() > 500
    assert float(np.std(image[good] / np.sqrt(variance[good]))) == pytest.approx(1.0, abs=0.1)


# -- clipped statistics on large arrays -----------------------------------------------------------
def _large_samples() -> list[np.ndarray]:
    rng = np.random.default_rng(8)
    n = 300_000
    base = rng.normal(100.0, 5.0, n)
    outliers = base.copy()
    outliers[: n // 20] += rng.uniform(0, 1e6, n // 20)  # far outliers (e.g. stars' variance)
    holes = base.copy()
    holes[::7] = np.nan
    holes[3::11] = np.inf
    skewed = rng.gamma(2.0, 10.0, n)
    # a period equal to the sampling stride: the strided sample sees one value only
    stride = n // 32768
    periodic = np.tile(np.arange(stride, dtype=float), n // stride + 1)[:n] + rng.normal(0.0, 1e-3, n)
    return [base.astype(np.float32), np.round(base), outliers, outliers.astype(np.float32), holes, skewed,
            periodic, np.full(n, 42.0, dtype=np.float32)]


def test_large_array_statistics_match_the_straightforward_ones() -> None:
    for values in _large_samples():
        finite = values[np.isfinite(values)]
        assert _clipped_mean_large(values) == pytest.approx(clipped_mean_std(values)[0], rel=1e-12)
        ranks = [0, 17, finite.size // 3, finite.size // 3 + 1, finite.size - 1]
        assert np.array_equal(_order_statistics(finite, ranks), np.sort(finite)[ranks])
        assert _percentiles(finite, [25.0, 50.0, 75.0]) == pytest.approx(
            np.percentile(finite.astype(np.float64), [25.0, 50.0, 75.0]), rel=1e-15)
        assert _median(finite) == float(np.median(finite))
        assert _median(finite[1:]) == float(np.median(finite[1:]))  # the other parity


def test_clipped_variance_of_a_large_image_matches_the_plain_clipping() -> None:
    rng = np.random.default_rng(9)
    mi = MaskedImage(np.zeros((600, 600), dtype=np.float32),
                     variance=rng.normal(50.0, 2.0, (600, 600)).astype(np.float32))
    mi.variance.array[100:140] += 1e4  # bright stars, flagged
    mi.mask.set_plane("DETECTED", np.arange(600)[:, None] + np.zeros((1, 600), dtype=int) < 130)
    mi.variance.array[500, :300] = 3e3  # unflagged outliers: clipped
    bits = Mask.getPlaneBitMask(list(DEFAULT_IGNORE_PLANES))
    reference = clipped_mean_std(mi.variance.array[(mi.mask.array & bits) == 0])[0]
    assert clipped_variance(mi) == pytest.approx(reference, rel=1e-12)
    assert clipped_variance(mi) == pytest.approx(50.0, rel=0.01)


# -- FFT grid and precision -----------------------------------------------------------------------
def test_border_frame_replaces_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NaN frame of a convolved difference stands in for FFT padding, to the tail tolerance."""
    diff, kernel = next(_template_pairs(1))
    kwargs = {"science_variance": SIGMA_S**2, "template_variance": SIGMA_T**2}
    framed = decorrelate_difference(diff, kernel, **kwargs)
    monkeypatch.setattr(decorrelate_module, "_excluded_frame", lambda excluded, reach: (0, 0))
    padded = decorrelate_difference(diff, kernel, **kwargs)
    assert np.nanmax(np.abs(framed.image.array - padded.image.array)) < 1e-5 * SIGMA_S
    assert np.array_equal(np.isnan(framed.image.array), np.isnan(padded.image.array))


def test_float32_difference_in_single_precision() -> None:
    diff, kernel = next(_template_pairs(1))
    single = MaskedImage(diff.image.array.astype(np.float32), Mask(diff.mask.array.copy()),
                         diff.variance.array.astype(np.float32))
    kwargs = {"science_variance": SIGMA_S**2, "template_variance": SIGMA_T**2}
    out64 = decorrelate_difference(diff, kernel, **kwargs)
    out32 = decorrelate_difference(single, kernel, **kwargs)
    assert out32.image.array.dtype == np.float32
    assert np.nanmax(np.abs(out32.image.array - out64.image.array)) < 1e-5 * SIGMA_S


# -- clipped variance, kernel and PSF helpers -------------------------------------------------------
def test_clipped_variance_ignores_masked_pixels() -> None:
    mi = _noise(60, 1.0)
    mi.variance.array[:] = np.random.default_rng(61).normal(4.0, 0.1, (SIZE, SIZE))
    mi.variance.array[:50] = 1.0e6
    mi.mask.set_plane("DETECTED", np.arange(SIZE)[:, None] < 50 + np.zeros((1, SIZE), dtype=int))
    mi.variance.array[200, 200] = np.nan
    assert clipped_variance(mi) == pytest.approx(4.0, rel=0.01)
    assert clipped_variance(Exposure(mi), bad_planes=[]) == pytest.approx(4.0, rel=0.01)  # clipping alone
    mi.mask.array[:] |= Mask.getPlaneBitMask("BAD")
    with pytest.raises(DecorrelationError, match="no usable variance"):
        clipped_variance(mi)


def test_decorrelation_kernel_and_psf() -> None:
    kernel = _kernel()
    psi = decorrelation_kernel(kernel, science_variance=SIGMA_S**2, template_variance=SIGMA_T**2)
    assert psi.shape[0] % 2 == 1 and psi.shape[0] >= 11
    assert psi.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(psi, psi[::-1, ::-1])  # point-symmetric: convolution = correlation
    psf = GaussianPsf(25, 25, 2.5).computeImage()
    out = decorrelate_psf_image(psf, psi)
    assert out.shape == psf.shape and out.sum() == pytest.approx(1.0)
    assert out[12, 12] > psf[12, 12]
    assert np.unravel_index(np.argmax(out), out.shape) == (12, 12)


def test_errors() -> None:
    diff, kernel = next(_template_pairs(1))
    ok = {"science_variance": 1.0, "template_variance": 1.0}
    with pytest.raises(DecorrelationError, match="mode"):
        decorrelate_difference(diff, kernel, mode="auto", **ok)
    with pytest.raises(DecorrelationError, match="template_variance"):
        decorrelate_difference(diff, kernel, science_variance=1.0, template_variance=0.0)
    with pytest.raises(DecorrelationError, match="needs science_variance_plane"):
        decorrelate_difference(diff, kernel, variance_propagation="complete", **ok)
    with pytest.raises(DecorrelationError, match="shape"):
        decorrelate_difference(
            diff, kernel, science_variance_plane=np.ones((3, 3)), template_variance_plane=np.ones((3, 3)), **ok
        )
    with pytest.raises(TypeError, match="MaskedImage or an Exposure"):
        decorrelate_difference(diff.image.array, kernel, **ok)


# -- the task -------------------------------------------------------------------------------------
@pytest.mark.parametrize("complete", [False, True])
def test_task_run(complete: bool) -> None:
    kernel = _kernel()
    science = Exposure(_noise(70, SIGMA_S), psf=GaussianPsf(25, 25, 2.5))
    template = Exposure(_noise(71, SIGMA_T), psf=GaussianPsf(25, 25, 1.5))
    diff = Exposure(convolveAndSubtract(template.maskedImage, science.maskedImage, kernel), psf=science.psf, band="r")
    config = DecorrelateALKernelConfig(completeVarPlanePropagation=complete)
    task = DecorrelateALKernelTask(config=config)
    result = task.run(science, template, diff, kernel, mode="convolveTemplate")
    corrected = result.correctedExposure
    assert isinstance(corrected, Exposure) and corrected.band == "r"
    expected = SIGMA_S**2 + KSUM**2 * SIGMA_T**2
    assert float(corrected.variance.array[INNER].mean()) == pytest.approx(expected, rel=0.01)
    assert float(corrected.image.array[INNER].var()) == pytest.approx(expected, rel=0.03)
    assert task.metadata["scienceVarianceMean"] == pytest.approx(SIGMA_S**2)
    assert task.metadata["decorrelationKernelSum"] == pytest.approx(kernel.array.sum())
    assert isinstance(corrected.psf, ImagePsf)
    assert corrected.psf.computeImage().max() > science.psf.computeImage().max()
    assert diff.psf is science.psf  # input untouched
