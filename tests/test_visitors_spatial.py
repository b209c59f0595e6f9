"""BuildSpatialKernelVisitor and AssessSpatialKernelVisitor (spec §5.4, §5.5).

Ports LSST's test_buildSpatialKernelVisitor (25 delta-pair candidates, AL default basis, region
510x510) and test_assessSpatialKernelVisitor (a known order-2 spatial kernel), plus the paths of
the spec that LSST does not test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from diffim.framework.config import FieldValidationError
from diffim.plugins.visitors import (
    AssessSpatialKernelVisitor,
    BuildSingleKernelVisitor,
    BuildSpatialKernelVisitor,
)
from diffim.tasks.image import Box2I, MaskedImage
from diffim.tasks.kernel import (
    Chebyshev1Function2,
    GaussianKernel,
    LinearCombinationKernel,
    PolynomialFunction2,
)
from diffim.tasks.kernel.bases import makeKernelBasisList, renormalizeKernelList
from diffim.tasks.kernel.convolve import convolve
from diffim.tasks.matching import (
    CandidateSolution,
    CandidateStatus,
    ImageStatistics,
    KernelCandidate,
)
from diffim.tasks.psfMatch import PsfMatchConfigAL

RECENT = CandidateSolution.RECENT
GOOD, BAD, UNKNOWN = CandidateStatus.GOOD, CandidateStatus.BAD, CandidateStatus.UNKNOWN
SIZE = 51

sys.path.insert(0, str(Path(__file__).parent))
from _delta_pair import delta_pair  # noqa: E402
REGION = Box2I((0, 0), (SIZE * 10, SIZE * 10))
POSITIONS = [(x, y) for x in range(1, SIZE, 10) for y in range(1, SIZE, 10)]


@pytest.fixture(scope="module")
def al_basis() -> list:
    basis = makeKernelBasisList(PsfMatchConfigAL())
    assert len(basis) == 27
    return basis




def fit_spatial(config: PsfMatchConfigAL, basis: list) -> tuple[BuildSpatialKernelVisitor, list[KernelCandidate]]:
    single = BuildSingleKernelVisitor(basis, config)
    spatial = BuildSpatialKernelVisitor(basis, REGION, config)
    candidates = []
    for x, y in POSITIONS:
        candidate = KernelCandidate(x, y, *delta_pair(1.0), config)
        single.processCandidate(candidate)
        spatial.processCandidate(candidate)
        candidates.append(candidate)
    assert (single.nProcessed, single.nRejected) == (25, 0)
    assert spatial.nCandidates == 25
    spatial.solveLinearEquation()
    return spatial, candidates


def check_kernel_shape(kernel: LinearCombinationKernel, sko: int, n_basis: int) -> None:
    if sko == 0:
        # specialised: a non-varying kernel, one coefficient per basis
        assert not kernel.isSpatiallyVarying()
        assert kernel.getKernelParameters().shape == (n_basis,)
    else:
        params = kernel.getSpatialParameters()
        n_terms = (sko + 1) * (sko + 2) // 2
        assert params.shape == (n_basis, n_terms)
        # the first (AL) basis carries the kernel sum and does not vary spatially
        assert all(params[0, j] == 0.0 for j in range(1, n_terms))


# ------------------------------------------------------------------------------------------------
# LSST testNoBg / testAlSpatialModel / testModelType
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sko", [0, 1, 2])
def test_spatial_solution_shapes_without_background(al_basis, sko) -> None:
    config = PsfMatchConfigAL()
    config.spatialKernelOrder = sko
    config.fitForBackground = False
    spatial, candidates = fit_spatial(config, al_basis)
    kernel, background = spatial.getSolutionPair()
    check_kernel_shape(kernel, sko, len(al_basis))
    assert list(background.getParameters()) == [0.0]
    assert spatial.getKernelSolution().getKernel() is kernel
    # identical candidates: the spatial kernel is their common local kernel, everywhere
    local = candidates[0].getKernel(RECENT).getKernelParameters()
    for x, y in [(1, 1), (41, 41), (255, 255)]:
        np.testing.assert_allclose(kernel.coefficients_at(x, y), local, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("sko", "bgo"), [(0, 0), (1, 0), (0, 1), (1, 1), (2, 2)])
def test_spatial_solution_shapes_with_background(al_basis, sko, bgo) -> None:
    config = PsfMatchConfigAL()
    config.spatialKernelOrder = sko
    config.spatialBgOrder = bgo
    config.fitForBackground = True
    spatial, candidates = fit_spatial(config, al_basis)
    kernel, background = spatial.getSolutionPair()
    check_kernel_shape(kernel, sko, len(al_basis))
    assert isinstance(background, Chebyshev1Function2)  # default spatialModelType
    assert len(background.getParameters()) == (bgo + 1) * (bgo + 2) // 2
    # the local background of identical candidates, reproduced by the spatial one
    local_bg = candidates[0].getBackground(RECENT)
    assert background(21.0, 21.0) == pytest.approx(local_bg, abs=1e-8)


def test_spatial_model_types(al_basis) -> None:
    bbox = Box2I((10, 10), (10, 10))
    for kind, cls in (("polynomial", PolynomialFunction2), ("chebyshev1", Chebyshev1Function2)):
        config = PsfMatchConfigAL()
        config.spatialModelType = kind
        config.spatialKernelOrder = 1
        visitor = BuildSpatialKernelVisitor(al_basis, bbox, config)
        visitor.processCandidate(_built_candidate(config, al_basis, 15.0, 15.0))
        visitor.solveLinearEquation()
        kernel, _ = visitor.getSolutionPair()
        assert isinstance(kernel.getSpatialFunction(), cls)
    # an unknown model is refused by the config, and by the visitor if the config is bypassed
    config = PsfMatchConfigAL()
    with pytest.raises(FieldValidationError, match="spatialModelType"):
        config.spatialModelType = "foo"
    bypassed = config.model_copy(update={"spatialModelType": "foo"})
    with pytest.raises(ValueError, match="foo"):
        BuildSpatialKernelVisitor(al_basis, bbox, bypassed)


def _built_candidate(config: PsfMatchConfigAL, basis: list, x: float, y: float) -> KernelCandidate:
    candidate = KernelCandidate(x, y, *delta_pair(1.0), config)
    candidate.build(basis)
    return candidate


def test_unbuilt_candidate_is_marked_bad_and_not_used(al_basis) -> None:
    config = PsfMatchConfigAL()
    visitor = BuildSpatialKernelVisitor(al_basis, REGION, config)
    unbuilt = KernelCandidate(5.0, 5.0, *delta_pair(1.0), config)
    visitor.processCandidate(unbuilt)
    assert unbuilt.getStatus() is BAD
    assert visitor.nCandidates == 0
    assert visitor.getKernelSolution().getNConstraints() == 0
    built = _built_candidate(config, al_basis, 5.0, 5.0)
    visitor.processCandidate(built)
    assert visitor.nCandidates == 1 and visitor.getKernelSolution().getNConstraints() == 1
    assert built.getStatus() is UNKNOWN  # the spatial build does not judge candidates
    visitor.reset()
    assert visitor.nCandidates == 0


# ------------------------------------------------------------------------------------------------
# LSST test_assessSpatialKernelVisitor: testGood / testBad
# ------------------------------------------------------------------------------------------------


def true_spatial_kernel(ksize: int) -> LinearCombinationKernel:
    """Renormalized [Gaussian(2, 2), Gaussian(5, 3, pi/2)] with order-2 polynomial coefficients."""
    basis = renormalizeKernelList([GaussianKernel(ksize, ksize, 2.0, 2.0, 0.0),
                                   GaussianKernel(ksize, ksize, 5.0, 3.0, 0.5 * np.pi)])
    kernel = LinearCombinationKernel(basis, spatialFunction=PolynomialFunction2(2))
    kernel.setSpatialParameters([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.01 * i for i in range(1, 7)]])
    return kernel


@pytest.fixture(scope="module")
def assess_stamps() -> tuple[MaskedImage, MaskedImage, LinearCombinationKernel]:
    ksize = PsfMatchConfigAL().kernelSize
    image = np.zeros((100, 100))
    image[50, 50] = 1.0
    variance = np.full((100, 100), 0.1)
    variance[50, 50] = 1.0
    template = MaskedImage(image, variance=variance)
    kernel = true_spatial_kernel(ksize)
    science = convolve(template, kernel, doNormalize=True)
    bbox = Box2I.from_corners((25, 25), (75, 75))
    return template[bbox].clone(), science[bbox].clone(), kernel


def _assess_candidate(stamps, config, basis) -> KernelCandidate:
    template, science, _ = stamps
    candidate = KernelCandidate(50.0, 50.0, template.clone(), science.clone(), config)
    single = BuildSingleKernelVisitor(basis, config)
    single.processCandidate(candidate)
    assert candidate.isInitialized()  # must be initialized
    return candidate


def bad_spatial_kernel(ksize: int) -> LinearCombinationKernel:
    gaussian = GaussianKernel(ksize, ksize, 1.0, 1.0, 0.0)
    kernel = LinearCombinationKernel([gaussian], spatialFunction=PolynomialFunction2(0))
    kernel.setSpatialParameters([[1.0]])
    return kernel


def test_true_spatial_kernel_is_accepted(assess_stamps, al_basis) -> None:
    config = PsfMatchConfigAL()
    candidate = _assess_candidate(assess_stamps, config, al_basis)
    background = PolynomialFunction2(1, [0.0, 0.0, 0.0])
    visitor = AssessSpatialKernelVisitor(assess_stamps[2], background, config)
    visitor.processCandidate(candidate)
    assert (visitor.nProcessed, visitor.nRejected, visitor.nGood) == (1, 0, 1)
    assert candidate.getStatus() is GOOD


def test_wrong_spatial_kernel_and_background_are_rejected(assess_stamps, al_basis) -> None:
    config = PsfMatchConfigAL()
    candidate = _assess_candidate(assess_stamps, config, al_basis)
    background = PolynomialFunction2(1, [10.0, 10.0, 10.0])
    visitor = AssessSpatialKernelVisitor(bad_spatial_kernel(config.kernelSize), background, config)
    visitor.processCandidate(candidate)
    assert (visitor.nProcessed, visitor.nRejected, visitor.nGood) == (1, 1, 0)
    assert candidate.getStatus() is BAD


def test_assessment_uses_kernel_and_background_at_the_candidate(assess_stamps, al_basis) -> None:
    """The residuals are those of the kernel image and background value at the candidate centre."""
    config = PsfMatchConfigAL()
    config.spatialKernelClipping = False  # judge nothing: only GOOD and counters
    candidate = _assess_candidate(assess_stamps, config, al_basis)
    background = PolynomialFunction2(1, [10.0, 10.0, 10.0])  # 1010 at (50, 50)
    visitor = AssessSpatialKernelVisitor(bad_spatial_kernel(config.kernelSize), background, config)
    visitor.processCandidate(candidate)
    assert (visitor.nProcessed, visitor.nRejected, visitor.nGood) == (1, 0, 1)
    assert candidate.getStatus() is GOOD
    # what the clipping would have seen: a residual mean far beyond candidateResidualMeanMax
    kernel = bad_spatial_kernel(config.kernelSize)
    diffim = candidate.getDifferenceImage(kernel.fixed_at(50.0, 50.0), 1010.0)
    stats = ImageStatistics(config)
    stats.apply(diffim)
    assert stats.getMean() < -config.candidateResidualMeanMax


def test_assess_failure_paths(assess_stamps, al_basis) -> None:
    config = PsfMatchConfigAL()
    template, science, kernel = assess_stamps
    background = PolynomialFunction2(0, [0.0])
    # not built: BAD, not counted
    visitor = AssessSpatialKernelVisitor(kernel, background, config)
    unbuilt = KernelCandidate(50.0, 50.0, template.clone(), science.clone(), config)
    visitor.processCandidate(unbuilt)
    assert unbuilt.getStatus() is BAD
    assert (visitor.nProcessed, visitor.nRejected, visitor.nGood) == (0, 0, 0)
    # statistics that cannot be computed (unmasked NaN edge of the difference): BAD, not counted
    candidate = _assess_candidate(assess_stamps, config, al_basis)
    config_nan = config.model_copy(update={"badMaskPlanes": ["SAT"]})
    visitor = AssessSpatialKernelVisitor(kernel, background, config_nan)
    visitor.processCandidate(candidate)
    assert candidate.getStatus() is BAD
    assert (visitor.nProcessed, visitor.nRejected, visitor.nGood) == (0, 0, 0)
    # no usable pixel (NaN mean): BAD and counted as rejected
    candidate = _assess_candidate(assess_stamps, config, al_basis)
    candidate.getScienceMaskedImage().mask.set_plane("SAT", np.ones((SIZE, SIZE), dtype=bool))
    visitor = AssessSpatialKernelVisitor(kernel, background, config)
    visitor.processCandidate(candidate)
    assert candidate.getStatus() is BAD
    assert (visitor.nProcessed, visitor.nRejected, visitor.nGood) == (1, 1, 0)
    visitor.reset()
    assert (visitor.nProcessed, visitor.nRejected, visitor.nGood) == (0, 0, 0)
