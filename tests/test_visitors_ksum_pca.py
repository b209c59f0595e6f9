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
