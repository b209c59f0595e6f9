"""Decorrelation afterburner (DMTN-021): whitening, variance planes, edges, fluxes, modes, the task."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from diffim.tasks.decorrelate import (
    DecorrelateALKernelConfig,
    DecorrelateALKernelTask,
    DecorrelationError,
    clipped_variance,
    decorrelate_difference,
    decorrelate_psf_image,
    decorrelation_kernel,
)
from diffim.tasks.image import Box2I, Exposure, Mask, MaskedImage
from diffim.tasks.kernel import FixedKernel, GaussianKernel, LinearCombinationKernel
from diffim.tasks.kernel.convolve import convolveAndSubtract
from diffim.tasks.kernel.functions import Chebyshev1Function2
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


@pytest.mark.parametrize("propagation", ["estimate", "complete"])
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
