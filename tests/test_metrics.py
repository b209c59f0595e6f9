"""Substamp quality metrics: N(0,1) residuals score well, biased or wide ones do not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from diffim.framework.metadata import TaskMetadata
from diffim.tasks.image import Mask, MaskedImage
from diffim.tasks.matching.metrics import (
    METRIC_PLANES,
    aggregate_metrics,
    anderson_darling_normal,
    kernel_shape_metrics,
    residual_metrics,
)


def _stamp(values: np.ndarray, variance: float = 4.0) -> MaskedImage:
    return MaskedImage(values * math.sqrt(variance), variance=variance)


def test_normal_residuals_look_normal() -> None:
    rng = np.random.default_rng(3)
    m = residual_metrics(_stamp(rng.normal(size=(60, 60))), n_parameters=10)
    assert abs(m["KCDiffimMean_LOCAL"]) < 0.1
    assert m["KCDiffimStDev_LOCAL"] == pytest.approx(1.0, abs=0.05)
    assert m["KCDiffimIQR_LOCAL"] == pytest.approx(1.349, abs=0.08)
    assert m["KCDiffimKSProb_LOCAL"] > 0.01 and m["KCDiffimADSig_LOCAL"] > 0.01
    assert m["KCDiffimChiSq_LOCAL"] == pytest.approx(1.0, abs=0.06)


def test_biased_or_wide_residuals_are_flagged() -> None:
    rng = np.random.default_rng(4)
    biased = residual_metrics(_stamp(rng.normal(0.5, 1.0, size=(60, 60))), suffix="SPATIAL")
    assert biased["KCDiffimKSProb_SPATIAL"] < 1e-6 and biased["KCDiffimADSig_SPATIAL"] < 1e-6
    assert biased["KCDiffimMseResids_SPATIAL"] == pytest.approx(1.25, abs=0.1)
    wide = residual_metrics(_stamp(rng.normal(0.0, 2.0, size=(60, 60))))
    assert wide["KCDiffimChiSq_LOCAL"] == pytest.approx(4.0, rel=0.1)


def test_masked_pixels_are_excluded() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(30, 30))
    values[0, :] = 1e6
    stamp = _stamp(values)
    stamp.mask.set_plane("SAT", np.eye(30, dtype=bool)[:, ::-1] | (np.arange(30)[:, None] == 0))
    assert residual_metrics(stamp)["KCDiffimStDev_LOCAL"] < 2.0
    assert math.isnan(residual_metrics(MaskedImage(np.full((3, 3), np.nan), variance=1.0))["KCDiffimMean_LOCAL"])


def test_anderson_darling_matches_scipy_for_the_fully_specified_null() -> None:
    from scipy import stats

    rng = np.random.default_rng(6)
    z = rng.normal(size=400)
    a2, p = anderson_darling_normal(z)
    reference = stats.goodness_of_fit(stats.norm, z, known_params={"loc": 0, "scale": 1},
                                      statistic="ad", n_mc_samples=500, rng=rng)
    assert a2 == pytest.approx(reference.statistic, rel=1e-9)
    assert p == pytest.approx(reference.pvalue, abs=0.06)


def test_kernel_shape() -> None:
    y, x = np.mgrid[-10:11, -10:11]
    kernel = np.exp(-0.5 * ((x - 1) ** 2 / 4.0 + y**2 / 9.0))
    m = kernel_shape_metrics(kernel)
    assert m["KCKernelCentX_LOCAL"] == pytest.approx(1.0, abs=1e-3)
    assert m["KCKernelStdX_LOCAL"] == pytest.approx(2.0, abs=1e-2)
    assert m["KCKernelStdY_LOCAL"] == pytest.approx(3.0, abs=2e-2)


def test_aggregate_writes_lsst_keys() -> None:
    md = TaskMetadata()
    rows = [{"KCDiffimMean_LOCAL": v, "KCDiffimChiSq_SPATIAL": 1.0} for v in (0.1, 0.3, float("nan"))]
    written = aggregate_metrics(rows, md)
    assert md["KCDiffimMean_LOCAL_MEAN"] == pytest.approx(0.2)
    assert md["KCDiffimMean_LOCAL_MEDIAN"] == pytest.approx(0.2)
    assert md["KCDiffimMean_LOCAL_STDEV"] == pytest.approx(math.sqrt(0.02))
    assert md["KCDiffimChiSq_SPATIAL_MEAN"] == 1.0
    assert "KCDiffimMedian_LOCAL_MEAN" not in written


# ------------------------------------------------------------------------------------------------
# Equivalence of the fast paths with straightforward references (scipy.stats.kstest, np.percentile,
# convolveAndSubtract, Kernel.computeImage): same values, most of them to the last bit.
# ------------------------------------------------------------------------------------------------
_NAMES = ("Mean", "Median", "IQR", "StDev", "KSD", "KSProb", "ADA2", "ADSig", "ChiSq", "MseResids")


def _reference_metrics(z: np.ndarray, n_parameters: int, suffix: str) -> dict[str, float]:
    """The metrics the plain way: one scipy/numpy call per quantity."""
    from scipy import special, stats

    out = {f"KCDiffim{name}_{suffix}": math.nan for name in _NAMES}
    if z.size < 2:
        return out
    q25, median, q75 = np.percentile(z, [25, 50, 75])
    ks = stats.kstest(z, "norm")
    x = np.sort(z.astype(float))
    n = x.size
    i = np.arange(1, n + 1)
    log_cdf = np.log(np.clip(special.ndtr(x), 1e-300, 1.0))
    log_sf = np.log(np.clip(special.ndtr(-x[::-1]), 1e-300, 1.0))
    a2 = float(-n - np.sum((2 * i - 1) * (log_cdf + log_sf)) / n)
    values = {
        "Mean": z.mean(), "Median": median, "IQR": q75 - q25, "StDev": z.std(), "KSD": ks.statistic,
        "KSProb": ks.pvalue, "ADA2": a2, "ADSig": anderson_darling_normal(z)[1],
        "ChiSq": np.sum(z * z) / max(n - n_parameters, 1), "MseResids": np.mean(z * z),
    }
    out.update({f"KCDiffim{k}_{suffix}": float(v) for k, v in values.items()})
    return out


def _assert_same_metrics(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        elif "Prob" in key or "Sig" in key:
            assert got[key] == pytest.approx(value, abs=1e-12, rel=0), key
        else:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=0), key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ks_normal_matches_scipy_kstest(dtype: type) -> None:
    from diffim.tasks.matching.metrics import ks_normal
    from scipy import stats

    rng = np.random.default_rng(11)
    # sizes and shifts across the regimes of scipy's kstwo.sf (small n, Durbin, Pelz-Good, 2 x smirnov, 0)
    for n in (2, 3, 7, 60, 141, 529, 4000):
        for shift in (0.0, 0.05, 0.3, 1.5):
            z = (rng.normal(size=n) + shift).astype(dtype)
            d, p = ks_normal(z)
            reference = stats.kstest(z, "norm")
            assert d == float(reference.statistic)
            assert p == pytest.approx(float(reference.pvalue), abs=1e-12, rel=0)
    assert all(math.isnan(v) for v in ks_normal(np.zeros(1, dtype=dtype)) + ks_normal(np.zeros(0, dtype=dtype)))
    assert ks_normal(np.array([0, 1]))[0] == float(stats.kstest(np.array([0, 1]), "norm").statistic)


def test_ks_pvalues_equal_scipy_kstwo_in_every_regime() -> None:
    from diffim.tasks.matching.metrics import _ks_pvalues, _kstwo_sf_float32
    from scipy import stats

    d, n = [], []
    for size in (50, 141, 529, 1500):  # D from below 1/2n to above 1/2: every branch of kstwo.sf
        grid = np.geomspace(0.4 / size, 0.7, 100)
        d += list(grid)
        n += [size] * grid.size
    d += list(np.geomspace(1e-4, 0.0038, 20))  # n > 100000: Pelz-Good whatever n D^1.5, down to tiny sqrt(n) D
    n += [150000] * 20
    d, n = np.array(d), np.array(n)
    exact = stats.kstwo.sf(d, n)
    as32 = np.clip(exact.astype(np.float32), 0.0, 1.0).astype(float)
    assert np.array_equal(_ks_pvalues(d, n, [np.dtype(np.float32)] * d.size), as32)
    assert np.array_equal(_ks_pvalues(d, n, [np.dtype(np.float64)] * d.size), np.clip(exact, 0.0, 1.0))
    fast = _kstwo_sf_float32(d, n)
    assert 0.3 < np.isfinite(fast).mean() < 0.9  # many tests computed here, the rest left to scipy


def test_anderson_darling_matches_the_textbook_formula() -> None:
    from scipy import stats

    rng = np.random.default_rng(12)
    for n in (2, 5, 100, 1000):
        x = np.sort(rng.normal(0.1, 1.2, size=n))
        i = np.arange(1, n + 1)
        textbook = -n - np.mean((2 * i - 1) * (stats.norm.logcdf(x) + stats.norm.logsf(x[::-1])))
        assert anderson_darling_normal(rng.permutation(x))[0] == pytest.approx(textbook, rel=1e-10)
    assert all(math.isnan(v) for v in anderson_darling_normal(np.array([0.3])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_residual_metrics_match_the_plain_computation(dtype: type) -> None:
    rng = np.random.default_rng(13)
    for shape in ((1, 1), (1, 2), (2, 2), (5, 7), (23, 23), (60, 40)):
        values = rng.normal(0.1, 1.1, size=shape)
        variance = rng.uniform(0.5, 4.0, size=shape)
        stamp = MaskedImage((values * np.sqrt(variance)).astype(dtype), variance=variance.astype(dtype))
        masked = rng.uniform(size=shape) < 0.1
        stamp.mask.set_plane("BAD", masked)
        stamp.image.array[rng.uniform(size=shape) < 0.05] = np.nan  # NaN pixels are dropped, not NaN metrics
        good = ~masked & np.isfinite(stamp.image.array)
        z = stamp.image.array[good] / np.sqrt(stamp.variance.array[good])
        for suffix, n_par in (("LOCAL", 3), ("SPATIAL", 0)):
            _assert_same_metrics(residual_metrics(stamp, n_parameters=n_par, suffix=suffix),
                                 _reference_metrics(z, n_par, suffix))


def test_batched_residual_metrics_equal_one_by_one() -> None:
    from diffim.tasks.matching.metrics import residual_metrics_of

    rng = np.random.default_rng(14)
    zs = [rng.normal(size=n).astype(t) for n, t in ((0, np.float32), (1, np.float64), (2, np.float32), (9, np.float64),
                                                      (529, np.float32), (517, np.float32), (1200, np.float64))]
    n_par = list(range(len(zs)))
    suffixes = ["LOCAL", "SPATIAL"] * 3 + ["LOCAL"]
    rows = residual_metrics_of(zs, n_par, suffixes)
    for z, n, s, row in zip(zs, n_par, suffixes, rows):
        _assert_same_metrics(row, _reference_metrics(z, n, s))
        assert row == residual_metrics_of([z], [n], [s])[0]  # the batch changes nothing, to the bit
    with pytest.raises(ValueError, match="one n_parameters and one suffix"):
        residual_metrics_of(zs, n_par[:2], suffixes)


def _stamp_pair(rng: np.random.Generator, size: int, dtype: type) -> tuple[MaskedImage, MaskedImage]:
    template = MaskedImage(rng.normal(100.0, 10.0, size=(size, size)).astype(dtype),
                           variance=rng.uniform(80.0, 120.0, size=(size, size)).astype(dtype))
    science = MaskedImage(rng.normal(100.0, 10.0, size=(size, size)).astype(dtype),
                          variance=rng.uniform(80.0, 120.0, size=(size, size)).astype(dtype))
    return template, science


def test_difference_residuals_equal_convolve_and_subtract() -> None:
    from diffim.tasks.kernel.convolve import convolveAndSubtract
    from diffim.tasks.kernel.kernels import FixedKernel
    from diffim.tasks.matching.diagnostics import difference_residuals
    from diffim.tasks.matching.metrics import METRIC_PLANES, normalized_residuals

    rng = np.random.default_rng(15)
    stamps, kernels, backgrounds = [], [], []
    for k in range(14):  # more stamps of one shape than one block holds
        dtype = np.float64 if k == 8 else np.float32
        template, science = _stamp_pair(rng, 31 if k in (7, 8) else 43, dtype)
        if k == 1:  # masked template pixels are smeared over the kernel's non-zero pixels only
            template.mask.set_plane("SAT", rng.uniform(size=(43, 43)) < 0.003)
            template.mask.set_plane("DETECTED", rng.uniform(size=(43, 43)) < 0.05)  # not a metric plane
        if k == 2:
            science.mask.set_plane("BAD", rng.uniform(size=(43, 43)) < 0.05)
            science.image.array[5, 20] = np.nan
            science.variance.array[20, 5] = np.inf
        if k in (3, 12):  # convolve treats non-finite template pixels apart: the fallback path
            template.image.array[21, 21] = np.nan
        if k == 13:
            template.variance.array[0, 0] = np.inf
        ksize = 3 if k == 4 else 21  # a 3x3 kernel goes through convolve's direct path: fallback too
        local = rng.normal(size=(ksize, ksize))
        local[:, :4] = 0.0  # a footprint narrower than the box
        spatial = np.exp(-0.5 * (np.arange(ksize) - ksize // 2) ** 2 / 4.0)[:, None] * np.ones(ksize)
        stamps.append((template, science))
        kernels.append([local, spatial / spatial.sum()])
        backgrounds.append([float(rng.normal()), 0.0])
    bits = Mask.getPlaneBitMask(METRIC_PLANES)
    residuals = difference_residuals(stamps, kernels, backgrounds)
    for (template, science), ks, bgs, got in zip(stamps, kernels, backgrounds, residuals):
        for kernel, background, z in zip(ks, bgs, got):
            diffim = convolveAndSubtract(template, science, FixedKernel(kernel), background)
            want = normalized_residuals(diffim.image.array, diffim.variance.array, (diffim.mask.array & bits) != 0)
            assert z.dtype == want.dtype and np.array_equal(z, want)
    with pytest.raises(ValueError, match="one background per kernel"):
        difference_residuals(stamps[:1], kernels[:1], [[0.0]])


@pytest.mark.parametrize("family", ["polynomial", "chebyshev1"])
def test_spatial_models_realised_in_one_go_equal_compute_image(family: str) -> None:
    from diffim.tasks.image import Box2I
    from diffim.tasks.kernel.bases import makeAlardLuptonBasisList
    from diffim.tasks.kernel.functions import make_spatial_function
    from diffim.tasks.kernel.kernels import GaussianKernel, LinearCombinationKernel
    from diffim.tasks.matching.diagnostics import _function_values_at, _kernel_images_at

    rng = np.random.default_rng(16)
    bbox = Box2I((0, 0), (2048, 2048))
    kernel = LinearCombinationKernel(makeAlardLuptonBasisList(10, 2, [1.5, 3.0], [2, 1]),
                                     spatialFunction=make_spatial_function(family, 2, bbox))
    kernel.setSpatialParameters(rng.normal(size=kernel.getSpatialParameters().shape) * 1e-3)
    background = make_spatial_function(family, 1, bbox)
    background.setParameters(rng.normal(size=background.getNParameters()))
    xs, ys = list(rng.uniform(0, 2047, size=25)), list(rng.uniform(0, 2047, size=25))
    for image, x, y in zip(_kernel_images_at(kernel, xs, ys), xs, ys):
        assert np.array_equal(image, kernel.computeImage(x, y))
    assert _function_values_at(background, xs, ys) == [float(background(x, y)) for x, y in zip(xs, ys)]
    fixed = GaussianKernel(5, 5, 1.0)  # anything else goes through computeImage itself
    assert all(np.array_equal(a, fixed.computeImage()) for a in _kernel_images_at(fixed, xs[:2], ys[:2]))


def test_candidate_metrics_equal_the_per_candidate_computation() -> None:
    from diffim.tasks.image import Box2I
    from diffim.tasks.kernel.bases import makeAlardLuptonBasisList
    from diffim.tasks.kernel.convolve import convolve, convolveAndSubtract
    from diffim.tasks.kernel.functions import PolynomialFunction2
    from diffim.tasks.kernel.kernels import (
        FixedKernel,
        GaussianKernel,
        LinearCombinationKernel,
    )
    from diffim.tasks.matching.candidate import KernelCandidate
    from diffim.tasks.matching.diagnostics import candidate_metrics
    from diffim.tasks.psfMatch import PsfMatchTaskConfig

    rng = np.random.default_rng(17)
    config = PsfMatchTaskConfig().kernel.active
    config.kernelSize, config.scaleByFwhm = 11, False
    config.alardNGauss, config.alardSigGauss, config.alardDegGauss = 1, [1.5], [2]
    size, x, y = 64, 32, 32
    template = np.zeros((size, size))
    template[y, x] = 5e4
    from scipy.ndimage import correlate

    template = correlate(template, GaussianKernel(15, 15, 1.5).computeImage(doNormalize=True), mode="constant")
    template_mi = MaskedImage((template + rng.normal(0, 3.0, template.shape)).astype(np.float32), variance=9.0)
    science_mi = convolve(template_mi, GaussianKernel(11, 11, 1.2), doNormalize=True)
    inner = science_mi.image.array[np.isfinite(science_mi.image.array)]
    science_mi.image.array[~np.isfinite(science_mi.image.array)] = float(np.median(inner))
    science_mi.variance.array[:] = 9.0
    science_mi.mask.array[:] = 0
    half = 2 * config.kernelSize
    box = Box2I((x - half, y - half), (2 * half + 1, 2 * half + 1))
    candidate = KernelCandidate(x, y, template_mi[box], science_mi[box], config)
    basis = makeAlardLuptonBasisList(config.kernelSize // 2, 1, [1.5], [2])
    candidate.build(basis)
    spatial = LinearCombinationKernel(basis, spatialFunction=PolynomialFunction2(1))
    params = np.zeros(spatial.getSpatialParameters().shape)
    params[:, 0] = candidate.getKernel().getKernelParameters() * 1.01
    spatial.setSpatialParameters(params)
    background = PolynomialFunction2(1, [0.5, 0.0, 0.0])

    got = candidate_metrics(candidate, spatial, background)
    n_local = len(basis) + (1 if candidate.getBackground() != 0 else 0)
    bits = Mask.getPlaneBitMask(METRIC_PLANES)

    def z_of(diffim: MaskedImage) -> np.ndarray:
        bad = (diffim.mask.array & bits) != 0
        good = ~bad & np.isfinite(diffim.image.array) & np.isfinite(diffim.variance.array) & (diffim.variance.array > 0)
        return diffim.image.array[good] / np.sqrt(diffim.variance.array[good])

    want = _reference_metrics(z_of(candidate.getDifferenceImage()), n_local, "LOCAL")
    spatial_image = spatial.computeImage(x, y)
    spatial_diffim = convolveAndSubtract(template_mi[box], science_mi[box], FixedKernel(spatial_image),
                                         background(x, y))
    want.update(_reference_metrics(z_of(spatial_diffim), 0, "SPATIAL"))
    for key, value in want.items():
        assert (math.isnan(got[key]) and math.isnan(value)) or got[key] == value, key
    assert got["KCDiffimMseKernel_SPATIAL"] == float(np.mean((spatial_image - candidate.getKernelImage()) ** 2))
    assert kernel_shape_metrics(spatial_image, suffix="SPATIAL").items() <= got.items()
