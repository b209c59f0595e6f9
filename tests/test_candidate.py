"""KernelCandidate: stamps, rating, status, build and its ORIG/PCA/RECENT solutions (spec §4, §10)."""

from __future__ import annotations

import sys
from pathlib import Path
import types

import numpy as np
import pytest

from diffim.tasks.image import MaskedImage
from diffim.tasks.kernel import FixedKernel, GaussianKernel
from diffim.tasks.kernel.bases import makeAlardLuptonBasisList, makeDeltaFunctionBasisList
from diffim.tasks.kernel.convolve import convolve
from diffim.tasks.kernel.regularization import makeRegularizationMatrix
from diffim.tasks.matching import (
    CandidateSolution,
    CandidateStatus,
    CandidateSwitch,
    KernelCandidate,
    KernelCandidateError,
    KernelSolutionError,
    RegularizedKernelSolution,
    SolvedBy,
    StaticKernelSolution,
)
from diffim.tasks.psfMatch import PsfMatchConfigAL, PsfMatchConfigDF

ORIG, PCA, RECENT = CandidateSolution.ORIG, CandidateSolution.PCA, CandidateSolution.RECENT


@pytest.fixture
def df_config() -> PsfMatchConfigDF:
    """The ip_diffim test_kernelCandidateAndSolution config: DF, background, no regularization."""
    cfg = PsfMatchConfigDF()
    cfg.fitForBackground = True
    cfg.checkConditionNumber = False
    cfg.useRegularization = False
    return cfg


@pytest.fixture(scope="module")
def delta_basis() -> list:
    return makeDeltaFunctionBasisList(21, 21)


@pytest.fixture(scope="module")
def gaussian_pair() -> tuple[MaskedImage, MaskedImage, GaussianKernel]:
    """testGaussian: a unit delta template and its (unnormalised) Gaussian-convolved science, 51x51 stamps."""
    image = np.zeros((71, 71))
    image[35, 35] = 1.0
    variance = np.full((71, 71), 1e-4)
    variance[35, 35] = 1.0
    template = MaskedImage(image, variance=variance)
    gaussian = GaussianKernel(21, 21, 2.0, 3.0)
    science = convolve(template, gaussian)
    box = gaussian.shrinkBBox(template.getBBox())
    assert (box.width, box.height) == (51, 51)
    return template[box], science[box], gaussian


sys.path.insert(0, str(Path(__file__).parent))
from _delta_pair import delta_pair  # noqa: E402

_delta_pair = delta_pair


# ------------------------------------------------------------------------------------------------
# testGaussian / testZeroVariance
# ------------------------------------------------------------------------------------------------


def test_gaussian_kernel_is_recovered_with_the_delta_basis(gaussian_pair, delta_basis, df_config) -> None:
    template, science, gaussian = gaussian_pair
    candidate = KernelCandidate(35.0, 35.0, template, science, df_config)
    candidate.build(delta_basis)
    assert candidate.isInitialized()
    assert candidate.getKsum(ORIG) == pytest.approx(float(science.image.array.sum()), abs=1e-7)
    assert candidate.getBackground(ORIG) == pytest.approx(0.0, abs=1e-7)
    ratio = candidate.getKernelImage(ORIG) / gaussian.array
    np.testing.assert_allclose(ratio, 1.0, atol=1e-5)
    np.testing.assert_array_equal(candidate.getImage(), candidate.getKernelImage(ORIG))
    assert candidate.getKernelSolution().getSolvedBy() is SolvedBy.LU


def test_zero_variance_without_constant_weighting_raises(delta_basis, df_config) -> None:
    image = np.zeros((71, 71))
    variance = np.ones((71, 71))
    variance[35, 35] = 0.0
    template = MaskedImage(image, variance=variance)
    science = MaskedImage(image.copy(), variance=variance.copy())
    df_config.constantVarianceWeighting = False
    candidate = KernelCandidate(35.0, 35.0, template, science, df_config)
    with pytest.raises(KernelSolutionError, match="variance equals 0.0"):
        candidate.build(delta_basis)
    assert not candidate.isInitialized()


def test_constant_weighting_uses_the_median_or_one(df_config) -> None:
    basis = makeDeltaFunctionBasisList(9, 9)
    template, science = _delta_pair(size=41, variance=0.5)
    candidate = KernelCandidate(20.0, 20.0, template, science, df_config)
    candidate.build(basis)
    np.testing.assert_array_equal(candidate.getVarianceEstimate().array, 1.0)  # median of 0.5 + 0.5
    template, science = _delta_pair(size=41, variance=0.0)
    science.variance.array[:] = 0.0
    candidate = KernelCandidate(20.0, 20.0, template, science, df_config)
    candidate.build(basis)  # median 0 -> weights of 1: no zero-variance error
    np.testing.assert_array_equal(candidate.getVarianceEstimate().array, 1.0)


# ------------------------------------------------------------------------------------------------
# construction, rating, status
# ------------------------------------------------------------------------------------------------


def test_rating_is_the_mean_core_signal_to_noise(df_config) -> None:
    science_image = np.zeros((31, 31))
    science_image[12:19, 12:19] = 8.0  # the 7x7 core (candidateCoreRadius 3)
    science = MaskedImage(science_image, variance=4.0)
    template = MaskedImage(np.zeros((31, 31)), variance=1.0)
    candidate = KernelCandidate(15.0, 15.0, template, science, df_config)
    assert candidate.getCandidateRating() == pytest.approx(4.0)
    assert candidate.getStatus() is CandidateStatus.UNKNOWN and not candidate.isBad()
    assert candidate.getChi2() == sys.float_info.max
    assert (candidate.getXCenter(), candidate.getYCenter()) == (15.0, 15.0)
    assert candidate.getSource() is None
    assert (candidate.getWidth(), candidate.getHeight()) == (31, 31)


def test_rating_failure_marks_the_candidate_bad(df_config) -> None:
    science_image = np.zeros((31, 31))
    science_image[15, 15] = np.nan  # unmasked NaN in the core: ImageStatistics raises
    candidate = KernelCandidate(
        15.0, 15.0, MaskedImage(np.zeros((31, 31)), variance=1.0), MaskedImage(science_image, variance=1.0), df_config
    )
    assert candidate.isBad()


def test_rating_from_source_or_explicit(df_config) -> None:
    template, science = _delta_pair(size=31)

    class Record:
        def getPsfInstFlux(self) -> float:  # noqa: N802 - afw record API
            return 1234.5

        def getX(self) -> float:  # noqa: N802
            return 14.0

        def getY(self) -> float:  # noqa: N802
            return 16.0

    source = Record()
    candidate = KernelCandidate(15.0, 15.0, template, science, df_config, source=source)
    assert candidate.getCandidateRating() == 1234.5 and candidate.getSource() is source
    from_source = KernelCandidate.from_source(source, template, science, df_config)
    assert (from_source.getXCenter(), from_source.getYCenter()) == (14.0, 16.0)
    mapping = KernelCandidate(15.0, 15.0, template, science, df_config, source={"base_PsfFlux_instFlux": 7.0})
    assert mapping.getCandidateRating() == 7.0
    assert KernelCandidate(15.0, 15.0, template, science, df_config, rating=3.5).getCandidateRating() == 3.5
    with pytest.raises(KernelCandidateError, match="give rating= explicitly"):
        KernelCandidate(15.0, 15.0, template, science, df_config, source=object())


def test_ids_status_and_chi2(df_config) -> None:
    template, science = _delta_pair(size=31)
    first = KernelCandidate(15.0, 15.0, template, science, df_config)
    second = KernelCandidate(15.0, 15.0, template, science, df_config)
    assert second.getId() > first.getId()
    first.setStatus(KernelCandidate.BAD)
    assert first.isBad() and first.getStatus() is CandidateStatus.BAD
    first.setStatus("GOOD")
    assert first.getStatus() is CandidateStatus.GOOD
    with pytest.raises(ValueError, match="unknown candidate status 'MEH'"):
        first.setStatus("MEH")
    first.setChi2(2.5)
    assert first.getChi2() == 2.5
    assert KernelCandidate.ORIG is CandidateSwitch.ORIG is ORIG


def test_config_is_copied(df_config) -> None:
    template, science = _delta_pair(size=31)
    candidate = KernelCandidate(15.0, 15.0, template, science, df_config)
    df_config.fitForBackground = False
    assert candidate.getConfig().fitForBackground is True


def test_stamp_checks(df_config) -> None:
    template, science = _delta_pair(size=31)
    shifted = MaskedImage(science.image.array, variance=1.0, xy0=(1, 0))
    with pytest.raises(KernelCandidateError, match="must cover the same pixels"):
        KernelCandidate(15.0, 15.0, template, shifted, df_config)
    with pytest.raises(TypeError, match="must be a MaskedImage"):
        KernelCandidate(15.0, 15.0, template, science.image, df_config)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# solution slots
# ------------------------------------------------------------------------------------------------


def test_getters_raise_before_build_and_pca_slot_lifecycle(df_config) -> None:
    basis = makeDeltaFunctionBasisList(7, 7)
    template, science = _delta_pair(ksum=2.0, size=21)
    candidate = KernelCandidate(10.0, 10.0, template, science, df_config)
    for which in (ORIG, PCA, RECENT):
        for getter in (candidate.getKernel, candidate.getBackground, candidate.getKsum, candidate.getKernelImage,
                       candidate.getKernelSolution, candidate.getM, candidate.getB):
            with pytest.raises(KernelCandidateError, match="build"):
                getter(which)
    with pytest.raises(KernelCandidateError):
        candidate.getDifferenceImage(RECENT)
    candidate.build(basis)
    assert candidate.getKernelSolution(ORIG).getId() == candidate.getKernelSolution(RECENT).getId()
    assert candidate.getKsum("ORIG") == pytest.approx(2.0)
    with pytest.raises(KernelCandidateError, match="no PCA solution"):
        candidate.getKernel(PCA)
    # a refit (e.g. on a 1-kernel PCA basis: the mean kernel) fills the PCA slot
    mean_basis = [FixedKernel(candidate.getKernelImage(ORIG) / candidate.getKsum(ORIG))]
    candidate.build(mean_basis)
    pca_id = candidate.getKernelSolution(PCA).getId()
    assert pca_id == candidate.getKernelSolution(RECENT).getId() != candidate.getKernelSolution(ORIG).getId()
    assert candidate.getKsum(PCA) == pytest.approx(2.0)
    assert candidate.getM(RECENT).shape == (2, 2) and candidate.getM(ORIG).shape == (50, 50)
    candidate.build(mean_basis)
    assert candidate.getKernelSolution(PCA).getId() != pca_id
    with pytest.raises(ValueError, match="unknown candidate solution 'LATEST'"):
        candidate.getKernel("LATEST")


def test_bad_condition_number_marks_bad_before_solving(df_config) -> None:
    df_config.checkConditionNumber = True
    df_config.maxConditionNumber = 1.0
    template, science = _delta_pair(size=21)
    candidate = KernelCandidate(10.0, 10.0, template, science, df_config)
    candidate.build(makeDeltaFunctionBasisList(7, 7))
    assert candidate.isBad() and not candidate.isInitialized()
    with pytest.raises(KernelCandidateError, match="unsolved ORIG solution"):
        candidate.getKernel(ORIG)
    df_config.maxConditionNumber = 1e12
    ok = KernelCandidate(10.0, 10.0, template, science, df_config)
    ok.build(makeDeltaFunctionBasisList(7, 7))
    assert not ok.isBad() and ok.isInitialized()


def test_build_with_h_is_regularized_and_exposes_unregularized_m(df_config) -> None:
    df_config.useRegularization = True
    df_config.kernelSize = 7
    h = makeRegularizationMatrix(df_config)
    basis = makeDeltaFunctionBasisList(7, 7)
    template, science = _delta_pair(ksum=1.5, size=21)
    regularized = KernelCandidate(10.0, 10.0, template, science, df_config)
    regularized.build(basis, h)
    plain = KernelCandidate(10.0, 10.0, template, science, df_config)
    plain.build(basis)
    assert isinstance(regularized.getKernelSolution(), RegularizedKernelSolution)
    assert type(plain.getKernelSolution()) is StaticKernelSolution
    np.testing.assert_array_equal(regularized.getM(), plain.getM())
    assert regularized.getKernelSolution().getLambda() == df_config.lambdaValue


def test_difference_image(df_config) -> None:
    template, science = _delta_pair(ksum=3.0, size=31)
    science.image.array[:] += 5.0
    candidate = KernelCandidate(15.0, 15.0, template, science, df_config)
    candidate.build(makeDeltaFunctionBasisList(9, 9))
    assert candidate.getBackground() == pytest.approx(5.0)
    diffim = candidate.getDifferenceImage(RECENT)
    inner = diffim.image.array[4:-4, 4:-4]
    np.testing.assert_allclose(inner, 0.0, atol=1e-9)
    assert np.isnan(diffim.image.array[0, 0])  # convolution edge
    by_kernel = candidate.getDifferenceImage(candidate.getKernel(), 5.0)
    np.testing.assert_array_equal(by_kernel.image.array, diffim.image.array)


def test_iterate_single_kernel_refits_with_the_difference_variance(df_config) -> None:
    df_config.constantVarianceWeighting = False
    df_config.iterateSingleKernel = True
    rng = np.random.default_rng(8)
    template_image = rng.normal(100.0, 10.0, (31, 31))
    kernel = GaussianKernel(9, 9, 1.5)
    template = MaskedImage(template_image, variance=rng.uniform(1.0, 4.0, (31, 31)))
    science = convolve(template, kernel)
    box = kernel.shrinkBBox(template.getBBox())
    science_stamp = science[box].clone()
    science_stamp.variance.array[:] = 2.0
    candidate = KernelCandidate(15.0, 15.0, template[box], science_stamp, df_config)
    candidate.build(makeDeltaFunctionBasisList(9, 9))
    expected = candidate.getDifferenceImage(ORIG).variance.array
    np.testing.assert_allclose(candidate.getVarianceEstimate().array, expected)  # var_S + K² ⋆ var_T
    assert np.all(candidate.getVarianceEstimate().array[4:-4, 4:-4] > 2.0)
    np.testing.assert_allclose(candidate.getKernelImage(), kernel.array, atol=1e-6)


def test_al_candidate_build(df_config) -> None:
    cfg = PsfMatchConfigAL()
    cfg.fitForBackground = True
    basis = makeAlardLuptonBasisList(10, 3, (0.7, 1.5, 3.0), (4, 2, 2))
    rng = np.random.default_rng(3)
    template = MaskedImage(rng.normal(0.0, 1.0, (61, 61)) + 50.0, variance=1.0)
    science = convolve(template, GaussianKernel(21, 21, 2.0))
    box = basis[0].shrinkBBox(template.getBBox())
    candidate = KernelCandidate(30.0, 30.0, template[box], science[box], cfg)
    candidate.build(basis)
    assert candidate.getKsum() == pytest.approx(GaussianKernel(21, 21, 2.0).array.sum(), abs=0.02)
    assert len(candidate.getB()) == 28


def test_explicit_config_namespace_works(delta_basis) -> None:
    cfg = types.SimpleNamespace(**{name: getattr(PsfMatchConfigDF(), name) for name in PsfMatchConfigDF.model_fields})
    cfg.fitForBackground = False
    template, science = _delta_pair(size=41)
    candidate = KernelCandidate(20.0, 20.0, template, science, cfg)
    candidate.build(delta_basis)
    assert candidate.getKsum() == pytest.approx(1.0)
    assert candidate.getM().shape == (441, 441)


def test_insert_into_a_one_cell_set(gaussian_pair, delta_basis, df_config) -> None:
    """testInsert: a GOOD candidate in a 1x1 cell set is the only one visited, and stays GOOD."""
    from diffim.tasks.matching.cells import CandidateVisitor, SpatialCellSet

    template, science, _ = gaussian_pair
    candidate = KernelCandidate(35.0, 35.0, template, science, df_config)
    candidate.build(delta_basis)
    candidate.setStatus(CandidateStatus.GOOD)
    cell_set = SpatialCellSet(template.getBBox(), 51, 51)
    assert len(cell_set) == 1
    cell_set.insertCandidate(candidate)

    class Collect(CandidateVisitor):
        def __init__(self) -> None:
            self.seen: list = []

        def processCandidate(self, candidate: KernelCandidate) -> None:  # noqa: N802
            self.seen.append(candidate)

    visitor = Collect()
    cell_set.visitCandidates(visitor, 1)
    assert visitor.seen == [candidate]
    assert candidate.getStatus() is CandidateStatus.GOOD


def test_failed_refit_leaves_no_stale_pca_solution(df_config) -> None:
    df_config.constantVarianceWeighting = False
    basis = makeDeltaFunctionBasisList(7, 7)
    template, science = _delta_pair(size=21)
    candidate = KernelCandidate(10.0, 10.0, template, science, df_config)
    candidate.build(basis)
    candidate.build(basis)
    assert candidate.getKernelSolution(PCA).isSolved()
    science.variance.array[10, 10] = -1.0  # the refit now fails
    template.variance.array[10, 10] = 0.0
    with pytest.raises(KernelSolutionError, match="variance less than 0.0"):
        candidate.build(basis)
    with pytest.raises(KernelCandidateError, match="unsolved PCA solution"):
        candidate.getKernel(RECENT)
    assert candidate.getKernelSolution(ORIG).isSolved()


def test_candidates_copy_a_mutable_config_and_share_a_frozen_one(df_config: PsfMatchConfigDF) -> None:
    stamp = MaskedImage(np.ones((21, 21)), variance=1.0)
    copied = KernelCandidate(10.0, 10.0, stamp, stamp.clone(), df_config, rating=1.0)
    assert copied.getConfig() is not df_config and copied.getConfig() == df_config
    df_config.fitForBackground = False  # the candidate's copy does not follow
    assert copied.getConfig().fitForBackground is True
    frozen = df_config.copy()
    frozen.freeze()
    shared = KernelCandidate(10.0, 10.0, stamp, stamp.clone(), frozen, rating=1.0)
    assert shared.getConfig() is frozen
