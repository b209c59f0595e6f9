"""Contaminant pixels given zero weight in the kernel fit (maskContaminants).

Geometry of `contaminated_pixels`, the +inf-variance stamps of `mask_contaminated_pixels`, how
`StaticKernelSolution` and `ImageStatistics` treat +inf variances, the contaminants found by
`SelectKernelCandidatesTask` and the zero-weighted stamps of `ImagePsfMatchTask._buildCellSet`.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from diffim.framework.struct import Struct
from diffim.tasks import ImagePsfMatchTask
from diffim.tasks.image import Box2I, Exposure, MaskedImage, mask_planes
from diffim.tasks.kernel.bases import makeAlardLuptonBasisList
from diffim.tasks.matching import (
    CandidateSolution,
    ImageStatistics,
    ImageStatisticsError,
    KernelCandidate,
    KernelSolutionError,
    StaticKernelSolution,
)
from diffim.tasks.matching.contamination import (
    contaminated_pixels,
    mask_contaminated_pixels,
)
from diffim.tasks.psf import GaussianPsf
from diffim.tasks.psfMatch import PsfMatchConfigAL, PsfMatchConfigDF
from diffim.tasks.selectKernelCandidates import (
    SelectKernelCandidatesConfig,
    SelectKernelCandidatesTask,
)
from scipy import ndimage

ORIG = CandidateSolution.ORIG
BOX = Box2I((100, 200), (21, 21))  # x 100..120, y 200..220
CENTRE = (110.0, 210.0)


def _hit(points: list[tuple[float, float]], radius: float, skip: float = 2.0, bbox: Box2I = BOX) -> np.ndarray | None:
    return contaminated_pixels(bbox, np.array(points, dtype=float).reshape(-1, 2), radius, centre=CENTRE,
                               skip_radius=skip)


def _disc(bbox: Box2I, x: float, y: float, radius: float) -> np.ndarray:
    """Brute force: [row, col] pixels of ``bbox`` whose centre is within ``radius`` of (x, y)."""
    rows, cols = np.mgrid[bbox.minY:bbox.maxY + 1, bbox.minX:bbox.maxX + 1]
    return (cols - x) ** 2 + (rows - y) ** 2 <= radius**2


# ------------------------------------------------------------------------------------------------
# contaminated_pixels / mask_contaminated_pixels
# ------------------------------------------------------------------------------------------------


def test_hit_map_is_the_disc_around_the_contaminant_in_row_col_order() -> None:
    hit = _hit([(104.0, 215.0)], 3.0)
    assert hit is not None and hit.shape == (21, 21) and hit.dtype == bool
    np.testing.assert_array_equal(hit, _disc(BOX, 104.0, 215.0, 3.0))
    assert hit.sum() == 29  # lattice points within 3 px, the boundary included
    assert hit[15, 4] and hit[15, 7] and not hit[15, 8]  # row = y - 200, column = x - 100
    assert not hit[4, 15]  # transposed, it would be here
    # several contaminants: the union of their discs, a non-integer centre and radius
    hit2 = _hit([(104.0, 215.0), (116.3, 203.6)], 3.0)
    np.testing.assert_array_equal(hit2, _disc(BOX, 104.0, 215.0, 3.0) | _disc(BOX, 116.3, 203.6, 3.0))


def test_contaminants_off_the_stamp_reach_in_up_to_the_radius() -> None:
    # 2 px left of the box: only the disc's part inside the box (columns 0 and 1) is hit
    hit = _hit([(98.0, 210.0)], 3.0)
    assert hit is not None
    np.testing.assert_array_equal(hit, _disc(BOX, 98.0, 210.0, 3.0))
    assert hit[:, 0].sum() == 5 and hit[:, 1].sum() == 1 and hit[:, 2:].sum() == 0  # dx = 2: rows 208..212
    # more than the radius away: nothing
    assert _hit([(96.5, 210.0)], 3.0) is None
    assert _hit([(110.0, 224.5)], 3.0) is None  # beyond the top edge (maxY 220)
    # off a corner: inside the radius-padded box, yet the nearest pixel (120, 220) is 4.2 px away
    assert _hit([(123.0, 223.0)], 3.0) is None
    assert _hit([(122.0, 222.0)], 3.0) is not None  # 2.8 px from the corner pixel


def test_no_points_or_only_the_candidate_itself_gives_none() -> None:
    assert contaminated_pixels(BOX, np.empty((0, 2)), 3.0, centre=CENTRE, skip_radius=2.0) is None
    # within skip_radius of the candidate's centre: the candidate itself, ignored
    assert _hit([(111.5, 210.5)], 3.0, skip=2.0) is None
    hit = _hit([(111.5, 210.5)], 3.0, skip=1.0)  # 1.58 px away: a contaminant with a smaller skip radius
    assert hit is not None and hit[10, 11]
    # the skipped point does not hide another one
    hit = _hit([(110.0, 210.0), (103.0, 203.0)], 2.0)
    np.testing.assert_array_equal(hit, _disc(BOX, 103.0, 203.0, 2.0))


def test_mask_contaminated_pixels_returns_a_copy_with_infinite_variance() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(21, 21))
    stamp = MaskedImage(image.copy(), variance=np.full((21, 21), 2.0), xy0=(BOX.minX, BOX.minY))
    stamp.mask.set_plane("SAT", image > 2.0)
    mask_before = stamp.mask.array.copy()
    hit = _hit([(104.0, 215.0)], 3.0)
    masked = mask_contaminated_pixels(stamp, hit)
    assert masked.getBBox() == stamp.getBBox()
    assert np.all(np.isposinf(masked.variance.array[hit])) and np.all(masked.variance.array[~hit] == 2.0)
    np.testing.assert_array_equal(masked.image.array, image)  # the pixels keep their values
    np.testing.assert_array_equal(masked.mask.array, mask_before)
    # the original is untouched
    assert np.all(stamp.variance.array == 2.0)
    masked.image.array[0, 0] = 99.0
    assert stamp.image.array[0, 0] == image[0, 0]


# ------------------------------------------------------------------------------------------------
# +inf variance in the kernel fit and the statistics
# ------------------------------------------------------------------------------------------------

SIDE, XY0 = 41, (100, 200)
COEFFICIENTS = np.array([0.9, 0.1, -0.05, 0.02, 0.01, -0.03, 0.2, 0.05, -0.04])  # kernel sum 0.9


@pytest.fixture(scope="module")
def al_basis() -> list:
    return makeAlardLuptonBasisList(5, 2, (1.0, 2.5), (2, 1))  # 9 renormalised bases, 11x11: sum = first coef


def _gauss(x0: float, y0: float, flux: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(float)
    return flux * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)


def _stamps(basis: list, seed: int = 1) -> tuple[MaskedImage, np.ndarray, np.ndarray]:
    """Template (a star at the centre, a neighbour at (29, 12)) and its noisy science, noise sigma 3."""
    template = _gauss(20, 20, 20000.0, 1.2) + _gauss(29, 12, 8000.0, 1.2) + 50.0
    kernel = np.tensordot(COEFFICIENTS, np.stack([k.computeImage() for k in basis]), axes=1)
    science = ndimage.correlate(template, kernel, mode="constant")  # afw convolution: a correlation
    science += np.random.default_rng(seed).normal(0.0, 3.0, science.shape)
    return MaskedImage(template, variance=1.0, xy0=XY0), science, kernel


def test_a_transient_biases_the_kernel_sum_and_masking_it_removes_the_bias(al_basis: list) -> None:
    template, science, _ = _stamps(al_basis)
    transient = _gauss(32, 13, 6000.0, 1.6)  # science only, 3 px from the neighbour star
    config = PsfMatchConfigAL()
    config.fitForBackground = True
    centre = (XY0[0] + 20.0, XY0[1] + 20.0)

    def ksum(science_stamp: MaskedImage) -> float:
        candidate = KernelCandidate(*centre, template, science_stamp, config)
        candidate.build(al_basis)
        return candidate.getKsum(ORIG)

    clean = ksum(MaskedImage(science, variance=9.0, xy0=XY0))
    contaminated = MaskedImage(science + transient, variance=9.0, xy0=XY0)
    biased = ksum(contaminated)
    assert clean == pytest.approx(0.9, abs=0.005)
    assert biased - 0.9 > 0.03  # the kernel grows to reproduce the transient next to its neighbour
    hit = contaminated_pixels(contaminated.getBBox(), np.array([[XY0[0] + 32.0, XY0[1] + 13.0]]), 6.0,
                              centre=centre, skip_radius=2.0)
    assert hit is not None and not hit[20, 20]  # the candidate's own star keeps its weight
    masked = mask_contaminated_pixels(contaminated, hit)
    recovered = ksum(masked)
    # back at the truth, to the precision of the uncontaminated fit
    assert recovered == pytest.approx(0.9, abs=0.005) and recovered == pytest.approx(clean, abs=0.005)
    assert np.all(np.isfinite(contaminated.variance.array))  # masking made a copy


def test_infinite_variance_pixels_take_no_part_in_the_fit(al_basis: list) -> None:
    template, science, _ = _stamps(al_basis, seed=3)
    rng = np.random.default_rng(4)
    variance = rng.uniform(5.0, 12.0, science.shape)
    zero_weight = np.zeros(science.shape, dtype=bool)
    zero_weight[8:18, 24:36] = True  # inside the fitted region (the 31x31 centre)
    zero_weight[30, 5:15] = True
    variance[zero_weight] = np.inf

    def solved(science_array: np.ndarray) -> StaticKernelSolution:
        solution = StaticKernelSolution(al_basis, True)
        solution.build(template, MaskedImage(science_array, variance=1.0, xy0=XY0), variance)
        solution.solve()
        return solution

    first = solved(science)
    wild = science.copy()
    wild[zero_weight] = rng.normal(0.0, 1e6, zero_weight.sum())  # anything at all at zero weight
    second = solved(wild)
    np.testing.assert_array_equal(first.getM(), second.getM())
    np.testing.assert_array_equal(first.getB(), second.getB())
    np.testing.assert_array_equal(first.getSolution(), second.getSolution())
    # ... and the same as the least-squares fit with those pixels' rows cut out of the design
    good = (slice(5, 36), slice(5, 36))  # shrinkBBox by the 11x11 kernel
    columns = [ndimage.correlate(template.image.array, k.computeImage(), mode="constant")[good].ravel()
               for k in al_basis] + [np.ones(31 * 31)]
    keep = ~zero_weight[good].ravel()
    design = np.column_stack(columns)[keep]
    w = 1.0 / variance[good].ravel()[keep]
    m = design.T @ (w[:, None] * design)
    b = design.T @ (w * science[good].ravel()[keep])
    np.testing.assert_allclose(first.getM(), m, rtol=1e-9)
    np.testing.assert_allclose(first.getB(), b, rtol=1e-9)
    np.testing.assert_allclose(first.getSolution(), np.linalg.solve(m, b), rtol=1e-7, atol=1e-10)


def test_all_pixels_at_zero_weight_is_an_error_and_nan_still_is(al_basis: list) -> None:
    template, science, _ = _stamps(al_basis)
    stamp = MaskedImage(science, variance=1.0, xy0=XY0)
    solution = StaticKernelSolution(al_basis, True)
    variance = np.full(science.shape, np.inf)
    with pytest.raises(KernelSolutionError, match=r"every pixel of the fitted region .* zero weight \(\+inf variance\)"):
        solution.build(template, stamp, variance)
    # only the kernel-wide border is finite: the fitted region is still all +inf
    variance[:5, :] = 1.0
    with pytest.raises(KernelSolutionError, match="zero weight"):
        solution.build(template, stamp, variance)
    for bad in (np.nan, -np.inf):
        variance = np.full(science.shape, 1.0)
        variance[20, 20] = np.inf  # fine on its own
        variance[21, 21] = bad
        with pytest.raises(KernelSolutionError, match="non-finite"):
            solution.build(template, stamp, variance)
    # a KernelCandidate whose science stamp is all +inf cannot be built either (any weighting)
    for constant in (True, False):
        config = PsfMatchConfigAL()
        config.constantVarianceWeighting = constant
        dead = MaskedImage(science, variance=np.full(science.shape, np.inf), xy0=XY0)
        candidate = KernelCandidate(120.0, 220.0, template, dead, config, rating=1.0)
        with pytest.raises(KernelSolutionError, match="zero weight"):
            candidate.build(al_basis)


def test_constant_variance_weighting_keeps_the_zero_weights(al_basis: list) -> None:
    template, science, _ = _stamps(al_basis)
    variance = np.full(science.shape, 3.0)
    variance[10:14, 10:14] = np.inf
    config = PsfMatchConfigAL()
    assert config.constantVarianceWeighting
    candidate = KernelCandidate(120.0, 220.0, template, MaskedImage(science, variance=variance, xy0=XY0), config,
                                rating=1.0)
    candidate.build(al_basis)
    weights = candidate.getVarianceEstimate().array
    assert np.all(np.isposinf(weights[10:14, 10:14]))
    finite = np.isfinite(weights)
    assert finite.sum() == SIDE * SIDE - 16 and np.all(weights[finite] == 4.0)  # median of 3 + 1


def test_image_statistics_skip_infinite_variance_pixels() -> None:
    config = PsfMatchConfigDF()
    rng = np.random.default_rng(2)
    image = rng.normal(1.0, 2.0, (20, 20))
    variance = np.full((20, 20), 4.0)
    zero_weight = np.zeros((20, 20), dtype=bool)
    zero_weight[3:8, 12:18] = True
    image[zero_weight] = 1e5  # a transient's residual, at zero weight
    variance[zero_weight] = np.inf
    stats = ImageStatistics(config)
    stats.apply(MaskedImage(image, variance=variance))
    z = image[~zero_weight] / 2.0
    assert stats.getNpix() == 400 - 30
    assert stats.getMean() == pytest.approx(z.mean(), rel=1e-12)
    assert stats.getVariance() == pytest.approx(z.var(ddof=1), rel=1e-12)
    # the same as masking those pixels with a bad plane
    assert config.badMaskPlanes[0] in mask_planes
    masked = MaskedImage(image, variance=np.where(zero_weight, 4.0, variance))
    masked.mask.set_plane(config.badMaskPlanes[0], zero_weight)
    reference = ImageStatistics(config)
    reference.apply(masked)
    assert (stats.getNpix(), stats.getMean(), stats.getRms()) == pytest.approx(
        (reference.getNpix(), reference.getMean(), reference.getRms()), rel=1e-12)
    # a core entirely at zero weight has no pixels
    core_only = np.full((20, 20), 4.0)
    core_only[8:13, 8:13] = np.inf
    stats.apply(MaskedImage(image, variance=core_only), core=2)
    assert stats.getNpix() == 0 and np.isnan(stats.getMean())
    # a NaN value is still an error, whatever its variance (unless it is masked)
    image[0, 0], variance[0, 0] = np.nan, np.inf
    with pytest.raises(ImageStatisticsError, match="non-finite"):
        stats.apply(MaskedImage(image, variance=variance))


# ------------------------------------------------------------------------------------------------
# SelectKernelCandidatesTask: the contaminants
# ------------------------------------------------------------------------------------------------

SIZE, SIGMA, KSIZE = 200, 1.5, 10
FWHM = 2.3548 * SIGMA
# (x, y, template flux, science flux); the science image is 10x deeper than the template
STATIC = [(x, y, 4000.0, 4000.0) for x in (40, 100, 160) for y in (40, 100, 160)]
TRANSIENT = (70.0, 70.0, 0.0, 4000.0)
VARIABLE = (130.0, 70.0, 4000.0, 8000.0)
FAINT = (130.0, 130.0, 16.0, 16.0)  # S/N ~13 in the science image, undetectable in the template


def _render(stars: list[tuple[float, ...]], which: int, seed: int, noise: float,
            shift: dict[int, float] | None = None) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    img = np.zeros((SIZE, SIZE))
    for i, star in enumerate(stars):
        x, y, flux = star[0] + (shift or {}).get(i, 0.0), star[1], star[which]
        img += flux * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / SIGMA**2) / (2 * np.pi * SIGMA**2)
    return img + np.random.default_rng(seed).normal(0.0, noise, img.shape)


def _deep_science_pair(stars: list[tuple[float, ...]], shift: dict[int, float] | None = None
                       ) -> tuple[Exposure, Exposure]:
    psf = GaussianPsf(11, 11, SIGMA)
    template = Exposure(image=_render(stars, 2, 1, 1.0), variance=np.ones((SIZE, SIZE)), psf=psf)
    science = Exposure(image=_render(stars, 3, 2, 0.1, shift), variance=np.full((SIZE, SIZE), 0.01), psf=psf)
    return template, science


def _near(points: np.ndarray, x: float, y: float, tol: float = 1.0) -> bool:
    return bool(len(points)) and bool((np.hypot(points[:, 0] - x, points[:, 1] - y) <= tol).any())


@pytest.fixture(scope="module")
def deep_pair() -> tuple[Exposure, Exposure]:
    return _deep_science_pair([*STATIC, TRANSIENT, VARIABLE, FAINT])


def test_transient_and_variable_are_contaminants_a_faint_deep_star_is_not(deep_pair) -> None:
    template, science = deep_pair
    result = SelectKernelCandidatesTask().run(template, science, KSIZE, maxSources=100)
    points = result.contaminants
    assert points.ndim == 2 and points.shape[1] == 2
    assert _near(points, *TRANSIENT[:2]) and _near(points, *VARIABLE[:2])
    assert len(points) == 2  # none of the static stars
    # the faint star is found in the deep science image only, above contaminantSnrMin there ...
    sci, tmpl = result.sources, result.convolvedSources
    faint = np.hypot(np.asarray(sci["x"]) - FAINT[0], np.asarray(sci["y"]) - FAINT[1]) < 1.0
    assert faint.sum() == 1 and float(sci["snr"][faint][0]) >= SelectKernelCandidatesConfig().contaminantSnrMin
    assert not (np.hypot(np.asarray(tmpl["x"]) - FAINT[0], np.asarray(tmpl["y"]) - FAINT[1]) < 3.0).any()
    # ... but its S/N scaled to the 10x shallower template (~1.3) says it could not be seen there
    assert not _near(points, *FAINT[:2])
    config = SelectKernelCandidatesConfig()
    config.contaminantSnrMin = 1.0  # now it should have been seen in the template: a contaminant
    lowered = SelectKernelCandidatesTask(config=config).run(template, science, KSIZE, maxSources=100)
    assert _near(lowered.contaminants, *FAINT[:2])


def test_mask_contaminants_off_gives_no_contaminants(deep_pair) -> None:
    template, science = deep_pair
    config = SelectKernelCandidatesConfig()
    config.maskContaminants = False
    result = SelectKernelCandidatesTask(config=config).run(template, science, KSIZE, maxSources=100)
    assert isinstance(result.contaminants, np.ndarray) and result.contaminants.shape == (0, 2)
    # still off when rejectContaminatedStamps needs the contaminants for its own cut
    config.rejectContaminatedStamps = True
    result = SelectKernelCandidatesTask(config=config).run(template, science, KSIZE, maxSources=100)
    assert result.contaminants.shape == (0, 2)
    # given a candidateList there are none either
    given = Table({"x": [40.0, 160.0, 100.0], "y": [40.0, 160.0, 100.0]})
    listed = SelectKernelCandidatesTask().run(template, science, KSIZE, candidateList=given)
    assert listed.contaminants.shape == (0, 2)


def test_a_counterpart_within_one_fwhm_is_not_a_contaminant() -> None:
    # the star at (70, 130) sits 2.8 px further right in the science image: beyond counterpartRadiusPix
    # (2 px) so not a counterpart for the kernel cuts, but within the FWHM (3.5 px): the same star
    stars = [*STATIC, TRANSIENT, (70.0, 130.0, 4000.0, 4000.0)]
    template, science = _deep_science_pair(stars, shift={len(stars) - 1: 2.8})
    assert SelectKernelCandidatesConfig().counterpartRadiusPix < 2.8 < FWHM
    with_fwhm = SelectKernelCandidatesTask().run(template, science, KSIZE, maxSources=100, referenceFwhmPix=FWHM)
    assert _near(with_fwhm.contaminants, *TRANSIENT[:2])
    assert not _near(with_fwhm.contaminants, 70.0, 130.0, 4.0)
    # without one, the detection's measured FWHM gives the same answer
    without = SelectKernelCandidatesTask().run(template, science, KSIZE, maxSources=100)
    assert _near(without.contaminants, *TRANSIENT[:2])
    assert not _near(without.contaminants, 70.0, 130.0, 4.0)
    # an FWHM below the shift: only counterpartRadiusPix applies, both positions are one-image sources
    narrow = SelectKernelCandidatesTask().run(template, science, KSIZE, maxSources=100, referenceFwhmPix=1.0)
    assert _near(narrow.contaminants, 70.0, 130.0) and _near(narrow.contaminants, 72.8, 130.0)


# ------------------------------------------------------------------------------------------------
# ImagePsfMatchTask._buildCellSet: zero-weighted and rejected stamps
# ------------------------------------------------------------------------------------------------


def test_build_cell_set_masks_contaminated_stamps_and_rejects_ruined_ones() -> None:
    rng = np.random.default_rng(8)
    shape, origin = (120, 160), (1000, 2000)
    template = MaskedImage(rng.normal(0.0, 1.0, shape), variance=1.0, xy0=origin)
    science = MaskedImage(rng.normal(0.0, 1.0, shape), variance=2.0, xy0=origin)
    x0, y0 = origin
    sources = Table({"x": [x0 + 30.0, x0 + 80.0, x0 + 130.0], "y": [y0 + 60.0, y0 + 60.0, y0 + 60.0],
                     "rating": [3.0, 2.0, 1.0]})
    task = ImagePsfMatchTask()
    half, width = 15, 11  # stamps 31x31, fitted region 21x21
    contaminants = Struct(
        points=np.array([[x0 + 40.0, y0 + 65.0],    # in the first stamp, near its edge
                         [x0 + 80.5, y0 + 60.5],    # the second candidate itself: skipped
                         [x0 + 133.0, y0 + 60.0]]),  # 3 px from the third: 55 % of its fitted region
        radius=9.0, skipRadius=2.0, kernelWidth=width, maxFraction=0.5,
    )
    cells = task._buildCellSet(template, science, sources, kernelSize=half, contaminants=contaminants)
    candidates = {round(c.getXCenter()) - x0: c for c in cells.candidates(include_bad=True)}
    assert sorted(candidates) == [30, 80]  # the third lost > 50 % of its fitted region
    assert task.metadata["nContaminatedStamps"] == 1 and task.metadata["nContaminatedRejected"] == 1
    first = candidates[30].getScienceMaskedImage()
    expected = _disc(first.getBBox(), x0 + 40.0, y0 + 65.0, 9.0)
    np.testing.assert_array_equal(np.isposinf(first.variance.array), expected)
    assert np.all(first.variance.array[~expected] == 2.0)
    assert np.all(np.isfinite(candidates[30].getTemplateMaskedImage().variance.array))  # template untouched
    assert np.all(np.isfinite(candidates[80].getScienceMaskedImage().variance.array))
    assert np.all(science.variance.array == 2.0)  # the parent image is untouched
    # no contaminants: every candidate, no metadata
    plain = ImagePsfMatchTask()
    cells = plain._buildCellSet(template, science, sources, kernelSize=half)
    assert len(list(cells.candidates(include_bad=True))) == 3
    assert "nContaminatedStamps" not in plain.metadata and "nContaminatedRejected" not in plain.metadata
    # a looser maxFraction keeps the third, masked
    loose = ImagePsfMatchTask()
    cells = loose._buildCellSet(template, science, sources, kernelSize=half,
                                contaminants=Struct(**{**contaminants.getDict(), "maxFraction": 1.0}))
    assert len(list(cells.candidates(include_bad=True))) == 3
    assert (loose.metadata["nContaminatedStamps"], loose.metadata["nContaminatedRejected"]) == (2, 0)
