"""BuildSingleKernelVisitor (spec §5.1): LSST's test_buildSingleKernelVisitor plus the failure paths.

Candidates are LSST's "delta pairs" (spec §10): 51x51 stamps of variance 1, template centre
pixel 1, science centre pixel kSum (variance kSum). DF basis, checkConditionNumber False and
useCoreStats False, as in LSST's test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from diffim.plugins.visitors import BuildSingleKernelVisitor, KernelPcaVisitor
from diffim.tasks.image import Box2I, MaskedImage
from diffim.tasks.kernel import FixedKernel
from diffim.tasks.kernel.bases import makeKernelBasisList
from diffim.tasks.kernel.regularization import makeRegularizationMatrix
from diffim.tasks.matching import (
    CandidateSolution,
    CandidateStatus,
    ImageStatistics,
    KernelCandidate,
    KernelCandidateError,
    RegularizedKernelSolution,
)
from diffim.tasks.matching.cells import SpatialCellSet
from diffim.tasks.matching.pca import KernelPca
from diffim.tasks.psfMatch import PsfMatchConfigDF

ORIG, PCA, RECENT = CandidateSolution.ORIG, CandidateSolution.PCA, CandidateSolution.RECENT
GOOD, BAD, UNKNOWN = CandidateStatus.GOOD, CandidateStatus.BAD, CandidateStatus.UNKNOWN
SIZE = 51

sys.path.insert(0, str(Path(__file__).parent))
from _delta_pair import delta_pair  # noqa: E402


@pytest.fixture
def config() -> PsfMatchConfigDF:
    cfg = PsfMatchConfigDF()
    cfg.useRegularization = False
    cfg.checkConditionNumber = False  # LSST: "I am making shady kernels by hand"
    cfg.useCoreStats = False  # LSST: "I am making off-center resids"
    return cfg


@pytest.fixture(scope="module")
def basis() -> list:
    basis = makeKernelBasisList(PsfMatchConfigDF())
    assert len(basis) == 441
    return basis




def make_candidate(ksum: float, x: float, y: float, config: PsfMatchConfigDF) -> KernelCandidate:
    return KernelCandidate(x, y, *delta_pair(ksum), config)


def bogus_candidate(config: PsfMatchConfigDF) -> KernelCandidate:
    """LSST's bogus candidate: variance 0.1, science power off centre at (17, 17) = 51**2."""
    template = np.zeros((SIZE, SIZE))
    template[SIZE // 2, SIZE // 2] = 1.0
    t_var = np.full((SIZE, SIZE), 0.1)
    t_var[SIZE // 2, SIZE // 2] = 1.0
    science = np.zeros((SIZE, SIZE))
    science[SIZE // 3, SIZE // 3] = SIZE**2
    s_var = np.full((SIZE, SIZE), 0.1)
    s_var[SIZE // 3, SIZE // 3] = 1.0
    stamps = MaskedImage(template, variance=t_var), MaskedImage(science, variance=s_var)
    return KernelCandidate(0.0, 0.0, *stamps, config)


def mean_kernel_basis(candidates: list[KernelCandidate]) -> list[FixedKernel]:
    """The PCA loop's 1-kernel basis: the mean of the candidates' unit-sum ORIG kernels."""
    pca = KernelPca()
    visitor = KernelPcaVisitor(pca)
    for candidate in candidates:
        visitor.processCandidate(candidate)
    pca.subtractMean()
    pca.analyze()
    return [FixedKernel(pca.getEigenKernels()[0])]


# ------------------------------------------------------------------------------------------------
# LSST testWithOneBasis (with and without H), testWithThreeBases, testRejection, testVisit
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_h", [False, True], ids=["plain", "regularized"])
def test_builds_every_candidate_and_skips_built_ones(config, basis, use_h) -> None:
    candidates = [make_candidate(k, 0.0, 0.0, config) for k in (1.0, 2.0, 3.0)]
    if use_h:
        # DF defaults: central difference, 9-point stencil, lambda 0.2 absolute
        assert (config.regularizationType, config.centralRegularizationStencil) == ("centralDifference", 9)
        assert (config.lambdaType, config.lambdaValue) == ("absolute", 0.2)
        visitor = BuildSingleKernelVisitor(basis, config, makeRegularizationMatrix(config))
    else:
        visitor = BuildSingleKernelVisitor(basis, config)
    assert visitor.skipBuilt is True
    for candidate in candidates:
        assert candidate.getStatus() is UNKNOWN
        visitor.processCandidate(candidate)

    assert (visitor.nProcessed, visitor.nRejected) == (3, 0)
    ids = []
    for ksum, candidate in zip((1.0, 2.0, 3.0), candidates):
        assert candidate.isInitialized()
        assert candidate.getStatus() is GOOD
        recent = candidate.getKernelSolution(RECENT)
        assert recent.getId() == candidate.getKernelSolution(ORIG).getId()
        assert isinstance(recent, RegularizedKernelSolution) is use_h
        with pytest.raises(KernelCandidateError, match="PCA"):
            candidate.getKernelSolution(PCA)
        if not use_h:
            assert candidate.getKsum(RECENT) == pytest.approx(ksum, abs=1e-7)
        # chi2 is the variance of the residuals D/sigma over the stamp (not the default DBL_MAX)
        stats = ImageStatistics(config)
        stats.apply(candidate.getDifferenceImage(RECENT))
        assert candidate.getChi2() == pytest.approx(stats.getVariance(), rel=1e-12, abs=1e-300)
        ids.append(recent.getId())

    visitor.reset()
    assert (visitor.nProcessed, visitor.nRejected) == (0, 0)
    visitor.setSkipBuilt(True)
    for candidate in candidates:
        visitor.processCandidate(candidate)
    assert (visitor.nProcessed, visitor.nRejected) == (0, 0)
    assert [c.getKernelSolution(RECENT).getId() for c in candidates] == ids  # not rebuilt


def test_pca_loop_refits_into_the_pca_slot(config, basis) -> None:
    candidates = [make_candidate(k, 0.0, 0.0, config) for k in (1.0, 2.0, 3.0)]
    first = BuildSingleKernelVisitor(basis, config)
    for candidate in candidates:
        first.processCandidate(candidate)
    assert first.nProcessed == 3
    orig_ids = [c.getKernelSolution(ORIG).getId() for c in candidates]
    assert orig_ids == [c.getKernelSolution(RECENT).getId() for c in candidates]

    eigen_kernels = mean_kernel_basis(candidates)
    assert len(eigen_kernels) == 1  # the other eigenkernels are all 0 for identical shapes
    # the mean of unit-sum delta kernels is a unit delta at the centre
    expected = np.zeros((21, 21))
    expected[10, 10] = 1.0
    np.testing.assert_allclose(eigen_kernels[0].computeImage(), expected, atol=1e-7)

    previous = orig_ids
    for _ in range(2):  # twice, to mimic the PCA loop
        refit = BuildSingleKernelVisitor(eigen_kernels, config)
        refit.setSkipBuilt(False)
        for candidate in candidates:
            refit.processCandidate(candidate)
        assert (refit.nProcessed, refit.nRejected) == (3, 0)
        pca_ids = [c.getKernelSolution(PCA).getId() for c in candidates]
        assert pca_ids == [c.getKernelSolution(RECENT).getId() for c in candidates]  # PCA is recent
        assert [c.getKernelSolution(ORIG).getId() for c in candidates] == orig_ids  # ORIG is still ORIG
        assert all(new != old for new, old in zip(pca_ids, previous))  # a new solution each time
        assert all(new != orig for new, orig in zip(pca_ids, orig_ids))
        for ksum, candidate in zip((1.0, 2.0, 3.0), candidates):
            assert candidate.getKsum(PCA) == pytest.approx(ksum, abs=1e-7)
            assert candidate.getStatus() is GOOD
        previous = pca_ids


def test_candidate_not_matching_the_basis_is_rejected(config, basis) -> None:
    candidates = [make_candidate(k, 0.0, 0.0, config) for k in (1.0, 2.0, 3.0)]
    first = BuildSingleKernelVisitor(basis, config)
    for candidate in candidates:
        first.processCandidate(candidate)
    eigen_kernels = mean_kernel_basis(candidates)

    bogus = bogus_candidate(config)
    assert bogus.getStatus() is UNKNOWN
    refit = BuildSingleKernelVisitor(eigen_kernels, config)
    refit.setSkipBuilt(False)
    for candidate in [*candidates, bogus]:
        refit.processCandidate(candidate)
    assert (refit.nProcessed, refit.nRejected) == (4, 1)
    assert [c.getStatus() for c in candidates] == [GOOD, GOOD, GOOD]
    assert bogus.getStatus() is BAD
    # it was rejected on its residuals: they fail the mean/std thresholds
    stats = ImageStatistics(config)
    stats.apply(bogus.getDifferenceImage(RECENT))
    assert not stats.evaluateQuality(config)


def test_bogus_candidate_passes_without_single_kernel_clipping(config) -> None:
    config.singleKernelClipping = False
    bogus = bogus_candidate(config)
    unit = np.zeros((21, 21))
    unit[10, 10] = 1.0
    visitor = BuildSingleKernelVisitor([FixedKernel(unit)], config)
    visitor.processCandidate(bogus)
    assert (visitor.nProcessed, visitor.nRejected) == (1, 0)
    assert bogus.getStatus() is GOOD


def test_core_statistics_ignore_off_centre_residuals(config) -> None:
    """LSST's test turns useCoreStats off because the bogus residual lies outside the core."""
    config.useCoreStats = True
    unit = np.zeros((21, 21))
    unit[10, 10] = 1.0
    bogus = bogus_candidate(config)
    visitor = BuildSingleKernelVisitor([FixedKernel(unit)], config)
    visitor.processCandidate(bogus)
    assert (visitor.nProcessed, visitor.nRejected) == (1, 0)
    assert bogus.getStatus() is GOOD
    # the chi2 comes from the (2r+1)^2 core
    stats = ImageStatistics(config)
    stats.apply(bogus.getDifferenceImage(RECENT), config.candidateCoreRadius)
    assert stats.getNpix() == (2 * config.candidateCoreRadius + 1) ** 2
    assert bogus.getChi2() == pytest.approx(stats.getVariance(), rel=1e-12, abs=1e-300)


def test_visit_builds_the_best_candidate_of_each_cell(config, basis) -> None:
    n_cell = 3
    sx, sy = config.sizeCellX, config.sizeCellY
    assert (sx, sy) == (128, 128)
    cells = SpatialCellSet(Box2I((0, 0), (sx * n_cell, sy * n_cell)), sx, sy)
    for ix in range(n_cell):
        for iy in range(n_cell):
            ksum = 100.0 if ix == iy == n_cell // 2 else 1.0
            cells.insertCandidate(make_candidate(ksum, ix * sx + sx // 2, iy * sy + sy // 2, config))
    visitor = BuildSingleKernelVisitor(basis, config)
    cells.visitCandidates(visitor, 1)
    assert (visitor.nProcessed, visitor.nRejected) == (9, 0)
    statuses = [c.getStatus() for c in cells.candidates(include_bad=True)]
    assert statuses == [GOOD] * 9


# ------------------------------------------------------------------------------------------------
# Failure paths of spec §5.1 (counted and uncounted rejections)
# ------------------------------------------------------------------------------------------------


def test_failed_build_is_bad_and_counted(config, basis) -> None:
    config.constantVarianceWeighting = False
    template, science = delta_pair(1.0)
    template.variance.array[25, 25] = 0.0
    science.variance.array[25, 25] = 0.0  # zero variance: cannot inverse-variance weight
    candidate = KernelCandidate(0.0, 0.0, template, science, config)
    visitor = BuildSingleKernelVisitor(basis, config)
    visitor.processCandidate(candidate)
    assert candidate.getStatus() is BAD
    assert (visitor.nProcessed, visitor.nRejected) == (0, 1)


def test_bad_condition_number_is_bad_and_counted(config, basis) -> None:
    config.checkConditionNumber = True
    # a delta template makes M the identity for the delta basis (condition number 1)
    config.maxConditionNumber = 0.5
    candidate = make_candidate(1.0, 0.0, 0.0, config)
    visitor = BuildSingleKernelVisitor(basis, config)
    visitor.processCandidate(candidate)
    assert candidate.getStatus() is BAD
    assert (visitor.nProcessed, visitor.nRejected) == (0, 1)


def test_unusable_statistics_are_bad_but_not_counted(config, basis) -> None:
    # the difference image's edge is NaN (NO_DATA); without NO_DATA in badMaskPlanes the
    # statistics cannot be computed
    config.badMaskPlanes = ["SAT"]
    candidate = make_candidate(1.0, 0.0, 0.0, config)
    visitor = BuildSingleKernelVisitor(basis, config)
    visitor.processCandidate(candidate)
    assert candidate.isInitialized()
    assert candidate.getStatus() is BAD
    assert (visitor.nProcessed, visitor.nRejected) == (0, 0)


def test_nan_statistics_are_bad_and_counted(config, basis) -> None:
    template, science = delta_pair(1.0)
    science.mask.set_plane("SAT", np.ones(science.image.array.shape, dtype=bool))  # no usable pixel
    candidate = KernelCandidate(0.0, 0.0, template, science, config, rating=1.0)
    visitor = BuildSingleKernelVisitor(basis, config)
    visitor.processCandidate(candidate)
    assert candidate.getStatus() is BAD
    assert (visitor.nProcessed, visitor.nRejected) == (1, 1)
