"""Tests for diffim.tasks.psf models: kernel images, shapes, FWHMs, image and grid PSFs."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from diffim.tasks.image import Box2I, Image
from diffim.tasks.psf import (
    FWHM_PER_SIGMA,
    DoubleGaussianPsf,
    GaussianPsf,
    GridImagePsf,
    GridPsf,
    ImagePsf,
    MoffatPsf,
    Psf,
    PsfError,
    PsfWarning,
    Quadrupole,
    crop_or_pad,
    measure_centroid,
    measure_fwhm,
    measure_shape,
    psf_from_fwhm,
)


def _gaussian_stamp(size: int, sigma: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    h = size // 2
    y, x = np.mgrid[-h : h + 1, -h : h + 1].astype(float)
    return np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / sigma**2)


def _grid() -> GridImagePsf:
    stamps = np.array(
        [
            [_gaussian_stamp(25, 1.5), _gaussian_stamp(25, 2.5)],
            [_gaussian_stamp(25, 2.0), _gaussian_stamp(25, 3.0)],
        ]
    )
    return GridImagePsf(stamps, xs=[0.0, 100.0], ys=[0.0, 200.0])


MODELS = {
    "gaussian": lambda: GaussianPsf(21, 25, 2.0),
    "double": lambda: DoubleGaussianPsf(31, 31, 1.5, b=0.1),
    "moffat": lambda: MoffatPsf(33, 29, 4.0, 2.5),
    "moffat-elliptical": lambda: MoffatPsf(33, 33, 4.0, 3.0, axis_ratio=0.6, theta=30.0),
    "image": lambda: ImagePsf(_gaussian_stamp(15, 1.7)),
    "grid": _grid,
}


@pytest.fixture(params=sorted(MODELS))
def psf(request: pytest.FixtureRequest) -> Psf:
    return MODELS[request.param]()


# -- every model ---------------------------------------------------------------------------------------


def test_kernel_image_is_odd_centred_and_normalised(psf: Psf) -> None:
    for pos in ((None, None), (30.0, 170.0)):
        img = psf.computeImage(*pos)
        w, h = psf.getDimensions()
        assert img.shape == (h, w) and h % 2 == 1 and w % 2 == 1
        assert img.dtype == np.float64
        assert img.sum() == pytest.approx(1.0, abs=1e-12)
        dx, dy = measure_centroid(img)
        assert abs(dx) < 1e-9 and abs(dy) < 1e-9
    assert tuple(psf.size) == tuple(psf.getDimensions())
    np.testing.assert_array_equal(psf.computeKernelImage(), psf.computeImage())


def test_compute_image_returns_independent_copies(psf: Psf) -> None:
    img = psf.computeImage()
    img[:] = 0.0
    assert psf.computeImage().sum() == pytest.approx(1.0)


def test_pickle_clone_and_equality(psf: Psf) -> None:
    psf.computeImage()  # fill the cache: it must not break pickling or equality
    back = pickle.loads(pickle.dumps(psf))
    assert back == psf and hash(back) == hash(psf)
    np.testing.assert_array_equal(back.computeImage(10.0, 20.0), psf.computeImage(10.0, 20.0))
    twin = psf.clone()
    assert twin == psf and twin is not psf
    assert psf.resized(7, 7) != psf
    assert psf != "not a psf"
    for array in vars(back).values():
        if isinstance(array, np.ndarray):
            assert not array.flags.writeable  # still immutable after unpickling


def test_psf_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        Psf(5, 5)  # type: ignore[abstract]


def test_position_as_point_and_image_input() -> None:
    grid = _grid()
    np.testing.assert_array_equal(grid.computeImage((30.0, 40.0)), grid.computeImage(30.0, 40.0))
    stamp = _gaussian_stamp(9, 1.2)
    assert ImagePsf(Image(stamp.astype(np.float32))) == ImagePsf(stamp.astype(np.float32))


def test_repr_names_the_model(psf: Psf) -> None:
    text = repr(psf)
    assert text.startswith(type(psf).__name__ + "(")
    w, h = psf.getDimensions()
    assert f"{w}" in text and f"{h}" in text


def test_resized_keeps_odd_centred_unit_sum(psf: Psf) -> None:
    small = psf.resized(11, 13)
    assert tuple(small.getDimensions()) == (11, 13)
    img = small.computeImage()
    assert img.shape == (13, 11) and img.sum() == pytest.approx(1.0)
    with pytest.raises(PsfError, match="odd"):
        psf.resized(10, 11)


def test_position_must_be_complete_and_finite(psf: Psf) -> None:
    with pytest.raises(PsfError, match="both x and y"):
        psf.computeImage(1.0, None)
    with pytest.raises(PsfError, match="nan"):
        psf.computeImage(float("nan"), 1.0)


def test_kernel_bbox_is_centred() -> None:
    box = GaussianPsf(7, 9, 1.0).computeKernelBBox()
    assert (box.minX, box.minY, box.maxX, box.maxY) == (-3, -4, 3, 4)


# -- shapes and FWHMs ----------------------------------------------------------------------------------


def test_gaussian_sigma_recovered_from_second_moments() -> None:
    psf = GaussianPsf(41, 41, 3.0)
    measured = measure_shape(psf.computeImage())
    assert measured.ixx == pytest.approx(9.0, rel=1e-3)
    assert measured.iyy == pytest.approx(9.0, rel=1e-3)
    assert abs(measured.ixy) < 1e-6
    assert measured.determinantRadius == pytest.approx(3.0, rel=1e-3)
    assert psf.computeShape() == Quadrupole(9.0, 9.0, 0.0)
    # Plain moments agree too for a Gaussian in a wide stamp.
    assert measure_shape(psf.computeImage(), adaptive=False).ixx == pytest.approx(9.0, rel=1e-3)


def test_quadrupole_radii() -> None:
    q = Quadrupole(4.0, 1.0, 0.0)
    assert q.determinantRadius == pytest.approx(math.sqrt(2.0))
    assert q.traceRadius == pytest.approx(math.sqrt(2.5))
    assert q.fwhm == pytest.approx(FWHM_PER_SIGMA * math.sqrt(2.0))
    assert FWHM_PER_SIGMA == pytest.approx(2.35482, abs=1e-5)


@pytest.mark.parametrize(
    "psf",
    [
        GaussianPsf(31, 31, fwhm=4.0),
        GaussianPsf(21, 21, 1.2),
        MoffatPsf(41, 41, 4.0, 2.5),
        MoffatPsf(41, 41, 3.3, 4.765),
        DoubleGaussianPsf(41, 41, 1.5, b=0.1),
        DoubleGaussianPsf(41, 41, 2.0, 3.5, b=1.0),
    ],
    ids=repr,
)
def test_analytic_fwhm_matches_measurement_on_image(psf: Psf) -> None:
    analytic = psf.computeFwhm()
    assert measure_fwhm(psf.computeImage()) == pytest.approx(analytic, rel=0.01)


def test_gaussian_fwhm_and_sigma_are_consistent() -> None:
    assert GaussianPsf(5, 5, 2.0).computeFwhm() == pytest.approx(2.0 * FWHM_PER_SIGMA)
    assert GaussianPsf(5, 5, fwhm=3.0).sigma == pytest.approx(3.0 / FWHM_PER_SIGMA)


@pytest.mark.parametrize("beta", [2.5, 4.765])
def test_moffat_alpha_puts_half_maximum_at_fwhm(beta: float) -> None:
    img = MoffatPsf(21, 21, 4.0, beta).computeImage()  # half radius = 2 px lands on a pixel
    assert img[10, 12] / img[10, 10] == pytest.approx(0.5, rel=1e-12)
    assert img[8, 10] / img[10, 10] == pytest.approx(0.5, rel=1e-12)


def test_double_gaussian_convention_and_fwhm() -> None:
    psf = DoubleGaussianPsf(41, 41, 1.5, b=0.2)
    assert psf.sigma2 == 3.0  # wing default is twice the core
    img = psf.computeImage()
    # b is the wing/core amplitude ratio at the centre.
    assert img[20, 20] / img[20, 21] == pytest.approx((1.2) / (math.exp(-0.5 / 2.25) + 0.2 * math.exp(-0.5 / 9.0)))
    r = psf.computeFwhm() / 2
    value = math.exp(-0.5 * r * r / 2.25) + 0.2 * math.exp(-0.5 * r * r / 9.0)
    assert value == pytest.approx(0.6, rel=1e-9)
    # b = 0 is a single Gaussian of sigma1.
    assert DoubleGaussianPsf(5, 5, 2.0).computeFwhm() == pytest.approx(2.0 * FWHM_PER_SIGMA)


def test_elliptical_moffat_shape_orientation() -> None:
    along_x = MoffatPsf(41, 41, 4.0, 3.0, axis_ratio=0.5, theta=0.0).computeShape()
    assert along_x.ixx > 1.5 * along_x.iyy and abs(along_x.ixy) < 1e-8
    diagonal = MoffatPsf(41, 41, 4.0, 3.0, axis_ratio=0.5, theta=45.0).computeShape()
    assert diagonal.ixx == pytest.approx(diagonal.iyy) and diagonal.ixy > 0.3 * diagonal.ixx
    # Same area: the determinant radius does not depend on the axis ratio.
    round_ = MoffatPsf(41, 41, 4.0, 3.0).computeShape()
    assert along_x.determinantRadius == pytest.approx(round_.determinantRadius, rel=0.02)


def test_measure_fwhm_with_off_centre_peak() -> None:
    for cx, cy in ((0.5, -0.5), (0.3, 0.2)):
        stamp = _gaussian_stamp(31, 2.0, cx, cy)
        assert measure_fwhm(stamp) == pytest.approx(2.0 * FWHM_PER_SIGMA, rel=1e-3)


# -- bad parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: GaussianPsf(20, 21, 2.0), "width must be a positive odd integer.*20"),
        (lambda: GaussianPsf(21, 21, -1.0), r"sigma must be a finite number > 0, got -1\.0"),
        (lambda: GaussianPsf(21, 21, 2.0, fwhm=3.0), "exactly one of sigma and fwhm"),
        (lambda: GaussianPsf(21, 21), "exactly one of sigma and fwhm"),
        (lambda: MoffatPsf(21, 21, 3.0, beta=1.0), r"beta must be > 1.*1\.0"),
        (lambda: MoffatPsf(21, 21, 3.0, axis_ratio=1.5), r"axis_ratio.*1\.5"),
        (lambda: DoubleGaussianPsf(21, 21, 1.0, b=-0.1), r"b .* >= 0, got -0\.1"),
        (lambda: psf_from_fwhm(3.0, kind="airy"), "kind must be 'gaussian' or 'moffat', got 'airy'"),
        (lambda: psf_from_fwhm(0.0), r"fwhm must be .* got 0\.0"),
    ],
)
def test_bad_parameters_raise_psf_error(make, match: str) -> None:  # noqa: ANN001 - lambdas
    with pytest.raises(PsfError, match=match) as info:
        make()
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


# -- ImagePsf ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.ones((4, 5)), r"odd width and height.*\(4, 5\).*pad or crop"),
        (np.zeros((5, 5)), "positive sum.*0.0"),
        (-np.ones((5, 5)), r"positive sum.*-25\.0"),
        (np.where(np.eye(5) > 0, np.nan, 1.0), "5 non-finite"),
        (np.ones(5), r"2-D array, got shape \(5,\)"),
    ],
    ids=["even", "zero-sum", "negative-sum", "nan", "1-D"],
)
def test_image_psf_rejects_bad_stamps(array: np.ndarray, match: str) -> None:
    with pytest.raises(PsfError, match=match):
        ImagePsf(array)


def test_image_psf_normalises_copies_and_is_read_only() -> None:
    stamp = 7.0 * _gaussian_stamp(11, 1.5)
    psf = ImagePsf(stamp)
    assert psf.array.sum() == pytest.approx(1.0)
    assert stamp.sum() > 1.0  # input untouched
    with pytest.raises(ValueError, match="read-only"):
        psf.array[0, 0] = 1.0


def test_image_psf_fwhm_of_sampled_moffat_stamp() -> None:
    stamp = MoffatPsf(51, 51, 5.0, 2.5).computeImage()
    psf = ImagePsf(stamp)
    assert psf.computeFwhm() == pytest.approx(5.0, rel=0.02)
    assert psf.computeFwhm(1000.0, -5.0) == psf.computeFwhm()


def test_image_psf_off_centre_warns_or_recentres() -> None:
    stamp = _gaussian_stamp(31, 2.0, cx=1.2, cy=-0.4)
    with pytest.warns(PsfWarning, match="recenter=True"):
        ImagePsf(stamp)
    centred = ImagePsf(stamp, recenter=True)
    dx, dy = measure_centroid(centred.array, adaptive=True)
    assert abs(dx) < 1e-3 and abs(dy) < 1e-3
    # Noise in the wings does not move the adaptive centroid (no spurious warning).
    noisy = _gaussian_stamp(31, 2.0) + 0.01 * np.random.default_rng(3).standard_normal((31, 31))
    cx, cy = measure_centroid(noisy, adaptive=True)
    assert abs(cx) < 0.05 and abs(cy) < 0.05
    assert centred.computeFwhm() == pytest.approx(2.0 * FWHM_PER_SIGMA, rel=0.01)


def test_image_psf_resized_crops_and_pads_symmetrically() -> None:
    psf = ImagePsf(_gaussian_stamp(21, 2.0))
    big = psf.resized(31, 25)
    np.testing.assert_allclose(big.array[2:-2, 5:-5], psf.array)
    assert big.array[:2].sum() == 0.0
    small = psf.resized(9, 9)
    np.testing.assert_allclose(small.array, psf.array[6:15, 6:15] / psf.array[6:15, 6:15].sum())
    assert crop_or_pad(np.ones((3, 3)), 5, 5).sum() == 9.0


def test_image_psf_fits_round_trip(tmp_path) -> None:  # noqa: ANN001 - pytest fixture
    psf = ImagePsf(_gaussian_stamp(15, 1.8))
    path = tmp_path / "psf.fits"
    psf.writeFits(path)
    assert ImagePsf.readFits(path) == psf


# -- GridImagePsf --------------------------------------------------------------------------------------


def test_grid_is_exact_at_nodes() -> None:
    grid = _grid()
    for j, y in enumerate(grid.ys):
        for i, x in enumerate(grid.xs):
            np.testing.assert_allclose(grid.computeImage(x, y), grid.stamps[j, i], atol=1e-15)
    assert GridPsf is GridImagePsf


def test_grid_halfway_is_between_the_neighbours() -> None:
    grid = _grid()
    mid = measure_shape(grid.computeImage(50.0, 0.0), adaptive=False).ixx
    assert 1.5**2 < mid < 2.5**2
    # Linear blend of unit-sum stamps: the plain second moment is the mean of the two.
    assert mid == pytest.approx(0.5 * (1.5**2 + 2.5**2), rel=1e-3)
    assert grid.computeFwhm(50.0, 0.0) > grid.computeFwhm(0.0, 0.0)
    assert grid.computeFwhm(50.0, 0.0) < grid.computeFwhm(100.0, 0.0)


def test_grid_clamps_outside() -> None:
    grid = _grid()
    np.testing.assert_allclose(grid.computeImage(-500.0, -20.0), grid.stamps[0, 0])
    np.testing.assert_allclose(grid.computeImage(1e4, 1e4), grid.stamps[1, 1])
    np.testing.assert_allclose(grid.computeImage(50.0, 900.0), grid.computeImage(50.0, 200.0))
    assert grid.getAveragePosition() == (50.0, 100.0)


def test_grid_from_function() -> None:
    def fn(x: float, y: float) -> Psf:
        return GaussianPsf(21, 21, 1.0 + x / 100.0)

    grid = GridImagePsf.from_function(fn, Box2I((0, 0), (201, 101)), n=(3, 2))
    np.testing.assert_allclose(grid.xs, [0.0, 100.0, 200.0])
    np.testing.assert_allclose(grid.ys, [0.0, 100.0])
    np.testing.assert_allclose(grid.computeImage(100.0, 50.0), GaussianPsf(21, 21, 2.0).computeImage())
    plain = measure_shape(grid.computeImage(50.0, 0.0), adaptive=False)
    assert plain.ixx == pytest.approx(0.5 * (1.0 + 4.0), rel=1e-3)
    # Adaptive moments of the blend lean to the narrow core but stay between the two stamps.
    assert 1.0 < grid.computeShape(50.0, 0.0).ixx < 4.0


def test_grid_rejects_bad_input() -> None:
    stamps = np.ones((2, 2, 5, 5))
    with pytest.raises(PsfError, match="strictly increasing"):
        GridImagePsf(stamps, [1.0, 1.0], [0.0, 1.0])
    with pytest.raises(PsfError, match="shape"):
        GridImagePsf(np.ones((5, 5)), [0.0], [0.0])
    with pytest.raises(PsfError, match=r"ys must be 1-D with 2 values"):
        GridImagePsf(stamps, [0.0, 1.0], [0.0, 1.0, 2.0])
    with pytest.raises(PsfError, match="odd"):
        GridImagePsf(np.ones((1, 1, 4, 5)), [0.0], [0.0])
    bad = stamps.copy()
    bad[1, 0] = 0.0
    with pytest.raises(PsfError, match=r"stamp \[1, 0\] must have a positive sum"):
        GridImagePsf(bad, [0.0, 1.0], [0.0, 1.0])


# -- psf_from_fwhm -------------------------------------------------------------------------------------


def test_psf_from_fwhm_sizes() -> None:
    g = psf_from_fwhm(3.0)
    assert isinstance(g, GaussianPsf) and tuple(g.getDimensions()) == (19, 19)
    assert g.computeFwhm() == pytest.approx(3.0)
    m = psf_from_fwhm(3.0, kind="moffat", beta=2.5)
    assert isinstance(m, MoffatPsf) and m.getDimensions()[0] > 19  # heavy wings get a larger box
    assert m.computeImage()[m.getDimensions()[1] // 2].sum() > 0
    assert tuple(psf_from_fwhm(3.0, size=(11, 15)).getDimensions()) == (11, 15)
    assert tuple(psf_from_fwhm(0.3).getDimensions()) == (5, 5)
    assert tuple(psf_from_fwhm(3.0, kind="moffat", beta=1.0001).getDimensions()) == (91, 91)  # 15 FWHM cap
    with pytest.raises(PsfError, match="odd"):
        psf_from_fwhm(3.0, size=12)


def test_tiny_stamp_is_accepted() -> None:
    # the adaptive centroid cannot converge on 3x3; plain moments take over
    psf = ImagePsf(np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]))
    assert psf.computeImage().sum() == pytest.approx(1.0)
