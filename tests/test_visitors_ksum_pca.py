"""KernelSumVisitor (spec §5.2, §1.7) and KernelPcaVisitor / KernelPca (spec §5.3).

Ports LSST's test_kernelSumVisitor and test_kernelPca on delta-pair candidates (DF basis), plus
diffim's deliberate kernel-sum floor (spec §11.6) and the PCA on noisy Gaussian kernels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import math

import numpy as np
import pytest
from diffim.plugins.visitors import (
    KSUM_RELATIVE_FLOOR,
    KernelPcaVisitor,
    KernelSumVisitor,
)
from diffim.tasks.image import Box2I
from diffim.tasks.kernel import GaussianKernel
from diffim.tasks.kernel.bases import makeKernelBasisList
from diffim.tasks.matching import (
    CandidateSolution,
    CandidateStatus,
    KernelCandidate,
    KernelCandidateError,
)
from diffim.tasks.matching.cells import SpatialCellSet
from diffim.tasks.matching.clipping import clipped_mean_std
from diffim.tasks.matching.pca import KernelPca
from diffim.tasks.psfMatch import PsfMatchConfigDF

RECENT, ORIG = CandidateSolution.RECENT, CandidateSolution.ORIG
GOOD, BAD = CandidateStatus.GOOD, CandidateStatus.BAD
SIZE = 51

sys.path.insert(0, str(Path(__file__).parent))
from _delta_pair import delta_pair  # noqa: E402


@pytest.fixture
def config() -> PsfMatchConfigDF:
    return PsfMatchConfigDF()


@pytest.fixture(scope="module")
def basis() -> list:
    return makeKernelBasisList(PsfMatchConfigDF())




def built(ksum: float, config: PsfMatchConfigDF, basis: list, x: float = 0.0, y: float = 0.0) -> KernelCandidate:
    candidate = KernelCandidate(x, y, *delta_pair(ksum), config)
    candidate.build(basis)  # no H: LSST's test builds without regularization
    return candidate


def grid_cells(config: PsfMatchConfigDF, basis: list, n_cell: int = 3) -> SpatialCellSet:
    """3x3 cells, one built candidate at each centre; the central one has kernel sum 100."""
    sx, sy = config.sizeCellX, config.sizeCellY
    cells = SpatialCellSet(Box2I((0, 0), (sx * n_cell, sy * n_cell)), sx, sy)
    for ix in range(n_cell):
        for iy in range(n_cell):
            ksum = 100.0 if ix == iy == n_cell // 2 else 1.0
            cells.insertCandidate(built(ksum, config, basis, ix * sx + sx // 2, iy * sy + sy // 2))
    return cells


def getters(visitor: KernelSumVisitor) -> list[float]:
    return [visitor.nRejected, visitor.kSumMean, visitor.kSumStd, visitor.dkSumMax, visitor.kSumNpts]


# ------------------------------------------------------------------------------------------------
# Clipped statistics (spec §1.7)
# ------------------------------------------------------------------------------------------------


def test_clipped_mean_std_by_hand() -> None:
    kept = [1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0]
    # median 1.5, IQR 2.25: pass 0 keeps |v - 1.5| <= 3 * 0.741301109 * 2.25 = 5.004, dropping 50
    mean, std = clipped_mean_std([*kept, 50.0])
    assert mean == pytest.approx(13.0 / 7.0, rel=1e-14)
    assert std == pytest.approx(float(np.std(kept, ddof=1)), rel=1e-14)
    # nothing to clip: the plain mean and unbiased standard deviation
    mean, std = clipped_mean_std(kept)
    assert (mean, std) == (pytest.approx(13.0 / 7.0, rel=1e-14), pytest.approx(float(np.std(kept, ddof=1)), rel=1e-14))
    # IQR 0: pass 0 keeps only the median value; later passes centre on the mean
    assert clipped_mean_std([1.0] * 8 + [100.0]) == (1.0, 0.0)
    # later passes use 3 clipped sigmas: with 0..100 (IQR 50.5) a 150 survives pass 0
    # (|150 - 50.5| <= 112.3) but not pass 1 (150 - 50.98 > 3 * 30.79)
    values = [*range(101), 150.0]
    mean, std = clipped_mean_std(values)
    assert mean == pytest.approx(50.0, rel=1e-14)
    assert std == pytest.approx(float(np.std(range(101), ddof=1)), rel=1e-14)
    # no finite value: NaNs
    assert all(math.isnan(v) for v in clipped_mean_std([math.nan, math.inf]))


# ------------------------------------------------------------------------------------------------
# LSST test_kernelSumVisitor: testAggregate, testReject, testVisit
# ------------------------------------------------------------------------------------------------


def test_aggregate(config, basis) -> None:
    k_sums = [1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0]
    visitor = KernelSumVisitor(config)
    visitor.setMode("AGGREGATE")
    with pytest.raises(KernelCandidateError):  # kernel not built
        visitor.processCandidate(KernelCandidate(0.0, 0.0, *delta_pair(1.0), config))
    for k_sum in k_sums:
        candidate = built(k_sum, config, basis)
        assert candidate.getKsum(RECENT) == pytest.approx(k_sum, abs=1e-7)
        visitor.processCandidate(candidate)
    assert getters(visitor) == [0, 0.0, 0.0, 0.0, 0]  # nothing computed before processing

    visitor.processKsumDistribution()
    assert visitor.nRejected == 0
    assert visitor.kSumMean == pytest.approx(13.0 / 7.0, abs=1e-7)  # clipped mean: nothing clipped
    assert visitor.kSumStd == pytest.approx(float(np.std(k_sums, ddof=1)), abs=1e-7)
    assert visitor.dkSumMax == config.maxKsumSigma * visitor.kSumStd
    assert visitor.kSumNpts == len(k_sums)


@pytest.mark.parametrize("clipping", [False, True])
def test_reject(config, basis, clipping) -> None:
    k_sums = [1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 50.0]
    config.kernelSumClipping = clipping
    visitor = KernelSumVisitor(config)
    candidates = []
    for k_sum in k_sums:
        candidate = built(k_sum, config, basis)
        candidate.setStatus(GOOD)
        assert candidate.getKsum(RECENT) == pytest.approx(k_sum, abs=1e-7)
        visitor.processCandidate(candidate)
        candidates.append(candidate)
    visitor.processKsumDistribution()
    # the 50 is clipped from the statistics, so it lies far beyond maxKsumSigma clipped sigmas
    assert visitor.kSumMean == pytest.approx(13.0 / 7.0, abs=1e-7)
    visitor.setMode("REJECT")
    for candidate in candidates:
        visitor.processCandidate(candidate)
    expected = [GOOD] * 7 + [BAD if clipping else GOOD]
    assert [c.getStatus() for c in candidates] == expected
    assert visitor.nRejected == (1 if clipping else 0)


def test_visit_rejects_the_outlier_cell(config, basis) -> None:
    cells = grid_cells(config, basis)
    visitor = KernelSumVisitor(config)
    visitor.setMode("AGGREGATE")
    cells.visitCandidates(visitor, 1)
    visitor.processKsumDistribution()
    assert visitor.kSumNpts == 9
    # eight kernel sums of 1 (up to round-off) and one of 100: mean 1, std ~0
    assert visitor.kSumMean == pytest.approx(1.0, abs=1e-9)
    assert visitor.kSumStd == pytest.approx(0.0, abs=1e-9)
    visitor.setMode("REJECT")
    cells.visitCandidates(visitor, 1)
    assert visitor.nRejected == 1
    bad = [c for c in cells.candidates(include_bad=True) if c.isBad()]
    assert len(bad) == 1 and bad[0].getKsum(ORIG) == pytest.approx(100.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# diffim's relative floor on dkSumMax (deliberate deviation from LSST, spec §11.6)
# ------------------------------------------------------------------------------------------------


def test_identical_kernel_sums_keep_round_off_differences(config, basis) -> None:
    visitor = KernelSumVisitor(config)
    for _ in range(4):
        visitor.processCandidate(built(1.0, config, basis))
    visitor.processKsumDistribution()
    assert visitor.kSumStd == pytest.approx(0.0, abs=1e-12)
    # LSST's bound 3 * std would be ~0 and reject any round-off; diffim floors it at 1e-6 |mean|
    assert visitor.dkSumMax == pytest.approx(KSUM_RELATIVE_FLOOR * 1.0, rel=1e-9)
    assert KSUM_RELATIVE_FLOOR == 1e-6
    visitor.setMode("REJECT")
    near = [built(1.0 + d, config, basis) for d in (1e-12, -1e-12, 1e-9, 5e-7)]
    far = [built(1.0 + d, config, basis) for d in (2e-6, -2e-6, 1e-3)]
    for candidate in near + far:
        candidate.setStatus(GOOD)
        visitor.processCandidate(candidate)
    assert [c.getStatus() for c in near] == [GOOD] * 4
    assert [c.getStatus() for c in far] == [BAD] * 3
    assert visitor.nRejected == 3


def test_single_kernel_sum_has_zero_std_and_rejects_separated_sums(config, basis) -> None:
    visitor = KernelSumVisitor(config)
    visitor.processCandidate(built(2.0, config, basis))
    visitor.processKsumDistribution()
    assert (visitor.kSumMean, visitor.kSumStd, visitor.kSumNpts) == (pytest.approx(2.0, abs=1e-9), 0.0, 1)
    assert visitor.dkSumMax == pytest.approx(2e-6, rel=1e-6)
    visitor.setMode("REJECT")
    same, other = built(2.0, config, basis), built(2.5, config, basis)
    for candidate in (same, other):
        candidate.setStatus(GOOD)
        visitor.processCandidate(candidate)
    assert (same.getStatus(), other.getStatus(), visitor.nRejected) == (GOOD, BAD, 1)


def test_kernel_sum_visitor_bookkeeping(config, basis) -> None:
    visitor = KernelSumVisitor(config)
    with pytest.raises(RuntimeError, match="0 candidates"):
        visitor.processKsumDistribution()
    with pytest.raises(ValueError, match="AGGREGATE"):
        visitor.setMode("SUM")
    # reset() (called by every visit) keeps the sums; resetKernelSum() clears everything
    cells = SpatialCellSet(Box2I((0, 0), (128, 128)), 128, 128)
    cells.insertCandidate(built(1.0, config, basis, 64.0, 64.0))
    cells.visitCandidates(visitor, 1)
    cells.visitCandidates(visitor, 1)
    assert len(visitor.kSums) == 2
    visitor.processKsumDistribution()
    assert visitor.kSumNpts == 2
    visitor.resetKernelSum()
    assert visitor.kSums == [] and getters(visitor) == [0, 0.0, 0.0, 0.0, 0]


# ------------------------------------------------------------------------------------------------
# LSST test_kernelPca: testEigenValues, testMeanSubtraction, testVisit, testGaussian
# ------------------------------------------------------------------------------------------------


def three_candidate_pca(config, basis) -> KernelPca:
    pca = KernelPca()
    visitor = KernelPcaVisitor(pca)
    for k_sum in (1.0, 2.0, 3.0):
        visitor.processCandidate(built(k_sum, config, basis))
    return pca


def unit_delta() -> np.ndarray:
    image = np.zeros((21, 21))
    image[10, 10] = 1.0
    return image


def test_pca_eigenvalues_of_identical_shapes(config, basis) -> None:
    pca = three_candidate_pca(config, basis)
    assert len(pca) == 3
    for image in pca.getImageList():  # unit-sum kernel images
        assert image.sum() == pytest.approx(1.0, abs=1e-12)
    pca.analyze()
    assert len(pca.getEigenImages()) == 3
    np.testing.assert_allclose(pca.getEigenValues(), [1.0, 0.0, 0.0], atol=1e-7)
    # the first eigenimage is the common shape, scaled so that its extreme pixel is +1
    np.testing.assert_allclose(pca.getEigenImages()[0], unit_delta(), atol=1e-7)
    assert pca.getMean() is None
    assert len(pca.getEigenKernels()) == 3  # no mean in the basis


def test_pca_mean_subtraction(config, basis) -> None:
    pca = three_candidate_pca(config, basis)
    pca.subtractMean()
    pca.analyze()
    assert len(pca.getEigenImages()) == 3
    np.testing.assert_allclose(pca.getEigenValues(), [0.0, 0.0, 0.0], atol=1e-7)
    # the mean of unit-sum deltas: 1 at the centre, 0 elsewhere
    np.testing.assert_allclose(pca.getMean(), unit_delta(), atol=1e-7)
    kernels = pca.getEigenKernels()
    assert len(kernels) == 4
    np.testing.assert_allclose(kernels[0], unit_delta(), atol=1e-7)


def test_pca_visit(config, basis) -> None:
    cells = grid_cells(config, basis)
    pca = KernelPca()
    cells.visitCandidates(KernelPcaVisitor(pca), 1)
    pca.analyze()
    values = pca.getEigenValues()
    assert len(pca.getEigenImages()) == 9 and len(values) == 9
    # kernel sum 100 in the centre cell: unit-sum normalization makes it the same shape
    np.testing.assert_allclose(values, [1.0] + [0.0] * 8, atol=1e-7)


def test_pca_visitor_ignores_unbuilt_candidates(config, basis) -> None:
    pca = KernelPca()
    visitor = KernelPcaVisitor(pca)
    visitor.processCandidate(KernelCandidate(0.0, 0.0, *delta_pair(1.0), config))  # not built: skipped
    visitor.processCandidate(built(2.0, config, basis))
    assert len(pca) == 1
    pca.analyze()  # a single image: itself, eigenvalue 1
    np.testing.assert_allclose(pca.getEigenValues(), [1.0])
    np.testing.assert_allclose(pca.getEigenImages()[0], unit_delta(), atol=1e-7)


def test_pca_eigenimages_are_scaled_to_a_signed_extreme_of_one() -> None:
    pca = KernelPca()
    rng = np.random.default_rng(7)
    for _ in range(5):
        pca.addImage(rng.normal(size=(7, 7)), 1.0)
    pca.analyze()
    values = pca.getEigenValues()
    assert np.all(np.diff(values) <= 1e-12)  # descending
    for image in pca.getEigenImages():
        extreme = image.flat[np.argmax(np.abs(image))]
        assert extreme == pytest.approx(1.0, abs=1e-12)


def test_pca_of_noisy_gaussian_kernels() -> None:
    """100 Poisson realizations of 1e4 * Gaussian(2, 3) + 10 on 51x51."""
    reference = GaussianKernel(SIZE, SIZE, 2.0, 3.0).computeImage() * 10000.0 + 10.0
    rng = np.random.default_rng(20240615)
    subtracted, plain = KernelPca(), KernelPca()
    for _ in range(100):
        noisy = rng.poisson(reference).astype(float)
        subtracted.addImage(noisy, 1.0)
        plain.addImage(noisy.copy(), 1.0)
    subtracted.subtractMean()
    subtracted.analyze()
    plain.analyze()
    kernels_sub, kernels_plain = subtracted.getEigenKernels(), plain.getEigenKernels()
    values_sub, values_plain = subtracted.getEigenValues(), plain.getEigenValues()

    assert values_plain[0] > values_sub[0]  # the first term is far more significant unsubtracted
    assert values_sub[-1] == pytest.approx(0.0, abs=1e-7)  # 100 mean-subtracted images: rank 99
    assert len(kernels_sub) == len(values_sub) + 1  # the mean comes first
    assert len(kernels_plain) == len(values_plain)
    # the mean kernel is within 20% of the noiseless image, pixel by pixel
    assert np.all(np.abs(reference - kernels_sub[0]) / reference < 0.2)
    # the first unsubtracted eigenkernel (peak 1) is within 20% of the reference scaled to peak 1
    scaled = reference / reference.max()
    assert np.all(np.abs(scaled - kernels_plain[0]) / scaled < 0.2)


# ------------------------------------------------------------------------------------------------
# diffim's error-aware kernel-sum clipping (maxKsumErrorSigma) and StaticKernelSolution.getKsumError
# ------------------------------------------------------------------------------------------------


def _correlated(template: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.correlate(template, kernel, mode="constant")  # afw convolution: a correlation


def _two_stars(side: int) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    image = np.full((side, side), 10.0)
    for x0, y0, flux in ((side // 2, side // 2, 3000.0), (6.0, side - 8.0, 1500.0)):
        image += flux * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 2.0) / (2 * np.pi)
    return image


@pytest.mark.parametrize("kind", ["alard-lupton", "delta-function"])
def test_ksum_error_is_the_scatter_of_the_fitted_kernel_sums(kind: str) -> None:
    from diffim.tasks.image import MaskedImage
    from diffim.tasks.kernel.bases import (
        makeAlardLuptonBasisList,
        makeDeltaFunctionBasisList,
    )
    from diffim.tasks.matching import StaticKernelSolution

    if kind == "alard-lupton":  # renormalised: the kernel sum is the first coefficient
        small_basis = makeAlardLuptonBasisList(3, 2, (1.0, 2.0), (2, 1))
        coefficients = np.r_[1.1, np.linspace(-0.05, 0.05, len(small_basis) - 1)]
    else:  # every coefficient counts: the error is sqrt(1ᵀ M⁻¹ 1), not one diagonal element
        small_basis = makeDeltaFunctionBasisList(5, 5)
        coefficients = 1.1 * GaussianKernel(5, 5, 1.0, 1.2).computeImage().ravel()
    images = np.stack([k.computeImage() for k in small_basis])
    kernel = np.tensordot(coefficients, images, axes=1)  # in the basis' span: an unbiased fit
    side, sigma, n_real = 25, 2.0, 1000
    template = MaskedImage(_two_stars(side), variance=1.0)
    clean = _correlated(template.image.array, kernel)
    variance = np.full(clean.shape, sigma**2)
    rng = np.random.default_rng(17)
    sums, errors = [], set()
    for _ in range(n_real):
        solution = StaticKernelSolution(small_basis, True)
        solution.build(template, MaskedImage(clean + rng.normal(0.0, sigma, clean.shape), variance=1.0), variance)
        solution.solve()
        sums.append(solution.getKsum())
        errors.add(round(solution.getKsumError(), 14))
    assert len(errors) == 1  # from M alone: the same for every noise realisation
    error = errors.pop()
    assert np.std(sums, ddof=1) == pytest.approx(error, rel=0.1)  # the scatter's own error is ~2 %
    assert np.mean(sums) == pytest.approx(kernel.sum(), abs=4 * error / np.sqrt(n_real))
    # the explicit sqrt(sᵀ M⁻¹ s), s the basis sums (0 for the background)
    s = np.r_[images.sum(axis=(1, 2)), 0.0]
    assert error == pytest.approx(float(np.sqrt(s @ np.linalg.solve(solution.getM(), s))), rel=1e-8)
    # four times the variance: twice the error
    noisier = StaticKernelSolution(small_basis, True)
    noisier.build(template, MaskedImage(clean, variance=1.0), 4.0 * variance)
    noisier.solve()
    assert noisier.getKsumError() == pytest.approx(2.0 * error, rel=1e-10)


@pytest.fixture(scope="module")
def ksum_population(basis) -> dict[str, object]:
    """24 candidates of kernel sums 0.9-1.1 (errors ~0.3) and precise ones (errors ~0.003) of sums 1.08, 1.01."""
    config = PsfMatchConfigDF()

    def make(k_sum: float, variance: float) -> KernelCandidate:
        candidate = KernelCandidate(0.0, 0.0, *delta_pair(k_sum, variance=variance), config)
        candidate.build(basis)
        return candidate

    return {"imprecise": [make(float(k), 1e-4) for k in np.linspace(0.9, 1.1, 24)],
            "precise": make(1.08, 1e-8), "agreeing": make(1.01, 1e-8)}


def _clip(config: PsfMatchConfigDF, candidates: list[KernelCandidate]) -> KernelSumVisitor:
    visitor = KernelSumVisitor(config)
    visitor.setMode("AGGREGATE")
    for candidate in candidates:
        candidate.setStatus(GOOD)
        visitor.processCandidate(candidate)
    visitor.processKsumDistribution()
    visitor.setMode("REJECT")
    for candidate in candidates:
        visitor.processCandidate(candidate)
    return visitor


def test_a_precise_candidate_far_off_in_its_own_errors_is_rejected(config, ksum_population) -> None:
    assert (config.maxKsumErrorSigma, config.ksumErrorMinCandidates, config.ksumErrorFloor) == (4.0, 20, 0.005)
    imprecise, precise = ksum_population["imprecise"], ksum_population["precise"]
    error = precise.getKernelSolution(ORIG).getKsumError()
    assert error < 0.005 and imprecise[0].getKernelSolution(ORIG).getKsumError() > 0.1
    # its kernel sum is 0.08 off: within 3 sigma of the population (LSST's cut), ~13 of its own errors
    visitor = _clip(config, [*imprecise, precise])
    assert abs(1.08 - visitor.kSumMean) < visitor.dkSumMax
    assert visitor.errorClipping and len(visitor.kSumErrors) == 25
    assert precise.getStatus() is BAD and visitor.nRejected == 1
    assert all(c.getStatus() is GOOD for c in imprecise)  # their errors cover their scatter
    # LSST's population cut alone keeps it
    lsst = config.model_copy()
    lsst.maxKsumErrorSigma = 0.0
    visitor = _clip(lsst, [*imprecise, precise])
    assert not visitor.errorClipping and visitor.kSumErrors == []
    assert precise.getStatus() is GOOD and visitor.nRejected == 0
    # a precise candidate that agrees with the others is kept
    agreeing = ksum_population["agreeing"]
    visitor = _clip(config, [*imprecise, agreeing])
    assert agreeing.getStatus() is GOOD and visitor.nRejected == 0


def test_the_error_floor_protects_precise_candidates(config, ksum_population) -> None:
    imprecise, precise = ksum_population["imprecise"], ksum_population["precise"]
    floored = config.model_copy()
    floored.ksumErrorFloor = 0.05  # error ~0.054: 0.08 off is 1.5 errors
    visitor = _clip(floored, [*imprecise, precise])
    assert visitor.errorClipping and precise.getStatus() is GOOD and visitor.nRejected == 0
    assert visitor.kSumErrors[-1] == pytest.approx(
        math.hypot(precise.getKernelSolution(ORIG).getKsumError(), 0.05 * 1.08), rel=1e-9)


def test_too_few_candidates_switch_the_error_cut_off(config, ksum_population) -> None:
    imprecise, precise = ksum_population["imprecise"][::2], ksum_population["precise"]
    assert len(imprecise) + 1 < config.ksumErrorMinCandidates  # 13
    visitor = _clip(config, [*imprecise, precise])
    assert not visitor.errorClipping and len(visitor.kSumErrors) == 13
    assert precise.getStatus() is GOOD and visitor.nRejected == 0
    # the same 13 with the threshold lowered to 13: rejected
    fewer = config.model_copy()
    fewer.ksumErrorMinCandidates = 13
    visitor = _clip(fewer, [*imprecise, precise])
    assert visitor.errorClipping and precise.getStatus() is BAD and visitor.nRejected == 1
    # resetKernelSum clears the errors too
    visitor.resetKernelSum()
    assert visitor.kSumErrors == [] and not visitor.errorClipping
