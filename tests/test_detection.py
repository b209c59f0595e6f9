"""Source detection and measurement: background, completeness/purity, centroids, fluxes, flags."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from astropy.table import Table
from scipy import ndimage
from scipy.spatial import cKDTree

import diffim.tasks.detection.background as bgmod
import diffim.tasks.detection.detect as detmod
from diffim.tasks.detection import (
    COLUMNS,
    Background,
    BackgroundError,
    DetectionError,
    _smoothing,
    detect_sources,
    estimate_background,
)
from diffim.tasks.detection._products import tiled_matmul
from diffim.tasks.image import Exposure, MaskedImage

MAKE_PAIR = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "make_pair.py"
MATCH_RADIUS = 1.5  # pixels


# ------------------------------------------------------------------------------------ synthetic data
def _gauss_star(shape: tuple[int, int], x: float, y: float, flux: float, fwhm: float) -> np.ndarray:
    """Pixel-integrated (5x oversampled) circular Gaussian star."""
    sig = fwhm / 2.3548200450309493
    os_ = 5
    sub = (np.arange(os_) + 0.5) / os_ - 0.5
    yy = (np.arange(shape[0])[:, None] + sub[None, :]).ravel()
    xx = (np.arange(shape[1])[:, None] + sub[None, :]).ravel()
    g = np.exp(-0.5 * ((xx[None, :] - x) ** 2 + (yy[:, None] - y) ** 2) / sig**2) / (2 * math.pi * sig**2)
    return flux * g.reshape(shape[0], os_, shape[1], os_).mean(axis=(1, 3))


def _field(stars: list[tuple[float, float, float]], shape: tuple[int, int] = (128, 128), *, fwhm: float = 3.0,
           sky: float = 100.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson image and its model variance for a list of (x, y, flux)."""
    model = np.full(shape, sky)
    for x, y, f in stars:
        model += _gauss_star(shape, x, y, f, fwhm)
    rng = np.random.default_rng(seed)
    return rng.poisson(model).astype(float), model


def _load_make_pair() -> ModuleType:
    if not MAKE_PAIR.is_file():
        pytest.skip(f"shared bench generator not found at {MAKE_PAIR} (../shared must sit beside the clone)")
    spec = importlib.util.spec_from_file_location("diffim_test_make_pair", MAKE_PAIR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 512x512 make_pair field (150 stars, 2 NaN columns) read back in-process."""
    import json

    from astropy.io import fits

    mp = _load_make_pair()
    out = tmp_path_factory.mktemp("pair")
    mp.main(["--outdir", str(out), "--size", "512", "--nstars", "150", "--seed", "1", "--bad-columns", "2"])
    truth = json.loads((out / "truth.json").read_text())
    data = {"mp": mp, "truth": truth}
    for which in ("template", "science"):
        data[which] = fits.getdata(out / f"{which}.fits").astype(np.float64)
        data[which + "_var"] = fits.getdata(out / f"{which}_var.fits").astype(np.float64)
    return data


def _true_snr(pair: dict[str, Any], which: str) -> tuple[np.ndarray, np.ndarray]:
    """Star positions (n, 2) and background-limited optimal S/N, from the truth file."""
    mp, truth = pair["mp"], pair["truth"]
    ny, nx = truth["shape"]
    stars = np.array([s[1:5] for s in truth["stars"]], dtype=float)
    flux = stars[:, 2] if which == "template" else stars[:, 3]
    noise = truth["noise"][which]["sky_sigma_adu"]
    snr = np.empty(len(stars))
    for i, (x, y) in enumerate(stars[:, :2]):
        if which == "template":
            p = truth["psf_template"]
            fw, e, th = p["fwhm"], 0.0, 0.0
        else:
            p = truth["psf_science"]
            fw, e, th = mp.science_psf_params(p, x, y, nx, ny)
        _, _, stamp = mp.psf_stamp(x, y, fw, e, th, p["model"], p["beta"], radius=int(5 * fw))
        snr[i] = flux[i] * math.sqrt(np.sum(stamp**2)) / noise
    return stars[:, :2], snr


# ----------------------------------------------------------------------------------------- background
def test_background_recovers_polynomial_sky(pair: dict[str, Any]) -> None:
    mp, truth = pair["mp"], pair["truth"]
    ny, nx = truth["shape"]
    u, v = mp.norm_coords(nx, ny)
    sky = mp.poly_eval(truth["background"]["sky_science"], u, v)
    bg = estimate_background(pair["science"], box=64)
    err = bg.array - sky
    sigma = truth["noise"]["science"]["sky_sigma_adu"]
    # the sky spans ~100 ADU; the model must follow it to a small fraction of the noise, edges included
    assert np.ptp(sky) > 3 * sigma
    assert np.abs(err).max() < 0.15 * sigma
    assert bg.sigma == pytest.approx(sigma, rel=0.05)
    assert bg.rms.shape == bg.array.shape and isinstance(bg, Background)


def test_background_options_and_errors() -> None:
    img = np.random.default_rng(1).normal(10.0, 2.0, (40, 100))
    bg = estimate_background(img, box=32)
    assert bg.mesh.shape == (1, 3)  # rows: round(40/32)=1 box; columns: 3
    assert np.allclose(bg.array, 10.0, atol=0.3)
    with pytest.raises(BackgroundError, match="box must be an integer >= 4"):
        estimate_background(img, box=2)
    with pytest.raises(BackgroundError, match="no background box"):
        estimate_background(img, mask=np.ones(img.shape, dtype=bool))


# ------------------------------------------------------------------------------ completeness, purity
@pytest.mark.parametrize("which", ["template", "science"])
def test_completeness_and_purity_on_make_pair(pair: dict[str, Any], which: str) -> None:
    exp = Exposure(image=pair[which], variance=pair[which + "_var"])
    table = detect_sources(exp, saturation=pair["truth"]["saturate_adu"])
    xy, snr = _true_snr(pair, which)
    ny, nx = pair["truth"]["shape"]
    on_image = (xy[:, 0] >= 0) & (xy[:, 0] < nx) & (xy[:, 1] >= 0) & (xy[:, 1] < ny)
    det = np.column_stack([table["x"], table["y"]])
    dist_star, _ = cKDTree(det).query(xy)
    bright = (snr > 10) & on_image
    completeness = float(np.mean(dist_star[bright] < MATCH_RADIUS))
    truth_xy = [tuple(p) for p in xy]
    if which == "science":
        truth_xy += [(t["x"], t["y"]) for t in pair["truth"]["transients"]]
    dist_det, _ = cKDTree(np.array(truth_xy)).query(det)
    purity = float(np.mean(dist_det < MATCH_RADIUS))
    # measured: template 0.987 / 0.993, science 1.000 / 1.000 (65 and 150 stars above S/N 10)
    assert bright.sum() > 50
    assert completeness >= 0.95, f"completeness {completeness:.3f}"
    assert purity >= 0.95, f"purity {purity:.3f}"
    # the two NaN columns of the science image flag the sources they touch, never crash detection
    if which == "science":
        assert np.any(table["flag_masked"])
    assert np.sum(table["flag_saturated"]) >= 1


def test_centroids_fluxes_and_errors_of_isolated_stars() -> None:
    rng = np.random.default_rng(5)
    # on a diagonal, 35 px apart: isolated; random sub-pixel positions
    stars = [(20 + 29 * i + rng.uniform(-0.5, 0.5), 30 + 20 * i + rng.uniform(-0.5, 0.5), f) for i, f in enumerate((4e3, 8e3, 2e4, 5e4))]
    img, var = _field(stars, fwhm=3.0, sky=100.0, seed=5)
    table = detect_sources(Exposure(image=img, variance=var), smooth_fwhm=3.0)
    assert len(table) == 4
    assert list(table["flux"]) == sorted(table["flux"], reverse=True)
    truth = sorted(stars, key=lambda s: -s[2])
    for row, (x, y, f) in zip(table, truth):
        assert math.hypot(row["x"] - x, row["y"] - y) < 0.1
        # a 2 FWHM aperture holds all of a Gaussian: flux within 3 sigma of the truth
        assert abs(row["flux"] - f) < 3 * row["flux_err"]
        assert row["snr"] == pytest.approx(row["flux"] / row["flux_err"])
        assert not (row["flag_edge"] or row["flag_saturated"] or row["flag_masked"] or row["flag_blended"] or row["flag_not_isolated"])
    # the error follows the variance plane: sqrt(pi r^2 * sky + flux) for the faintest star
    faint = table[-1]
    r = table.meta["aperture_radius"]
    assert faint["flux_err"] == pytest.approx(math.sqrt(math.pi * r * r * 100.0 + truth[-1][2]), rel=0.1)


# ------------------------------------------------------------------------------------------------ flags
def test_flags_edge_saturated_masked_blended_not_isolated() -> None:
    shape = (160, 160)
    stars = [
        (3.0, 80.0, 2e4),  # edge
        (40.0, 40.0, 3e4),  # saturated (SAT plane set below)
        (120.0, 40.0, 3e4),  # masked (BAD column through it)
        (40.0, 120.0, 3e4), (46.0, 121.0, 1.5e4),  # blend: 2 FWHM apart
        (100.0, 100.0, 5e3), (122.0, 100.0, 5e3),  # 22 px apart: separate footprints, not isolated
        (80.0, 75.0, 3e4),  # clean
    ]
    img, var = _field(stars, shape, fwhm=3.0, seed=2)
    exp = Exposure(image=img, variance=var, xy0=(1000, 2000))
    exp.mask.set_plane("SAT", np.hypot(*np.meshgrid(np.arange(160) - 40.0, np.arange(160) - 40.0)) < 1.5)
    bad = np.zeros(shape, dtype=bool)
    bad[:, 121] = True
    exp.mask.set_plane("BAD", bad)
    table = detect_sources(exp, smooth_fwhm=3.0, isolation_radius=25.0)

    def row(x: float, y: float) -> Any:
        d = np.hypot(table["x"] - 1000 - x, table["y"] - 2000 - y)
        assert d.min() < 1.0, f"no source near ({x}, {y})"
        return table[int(np.argmin(d))]

    assert row(3, 80)["flag_edge"]
    assert row(40, 40)["flag_saturated"] and not row(40, 40)["flag_edge"]
    assert row(120, 40)["flag_masked"]
    a, b = row(40, 120), row(46, 121)
    assert a["flag_blended"] and b["flag_blended"] and a["footprint"] == b["footprint"] and a["n_peaks"] == 2
    c, d = row(100, 100), row(122, 100)
    assert c["flag_not_isolated"] and d["flag_not_isolated"] and not c["flag_blended"] and c["footprint"] != d["footprint"]
    clean = row(80, 75)
    assert not any(clean[f] for f in ("flag_edge", "flag_saturated", "flag_masked", "flag_blended", "flag_not_isolated"))
    # parent coordinates include xy0, peaks too
    assert 1000 + 78 <= clean["peak_x"] <= 1000 + 82 and 2000 + 73 <= clean["peak_y"] <= 2000 + 77
    # DETECTED plane marks the footprints and nothing far from the stars
    det = exp.mask.plane("DETECTED")
    assert det[75, 80] and not det[150, 150]
    assert not exp.mask.plane("DETECTED_NEGATIVE").any()


def test_saturation_level_from_header_and_argument() -> None:
    img, var = _field([(40.0, 40.0, 2e5)], (80, 80), fwhm=3.0)
    peak = img.max()
    exp = Exposure(image=img, variance=var)
    assert not detect_sources(exp)["flag_saturated"][0]
    assert detect_sources(exp, saturation=0.9 * peak)["flag_saturated"][0]
    exp.metadata["SATURATE"] = 0.9 * peak
    table = detect_sources(exp)
    assert table["flag_saturated"][0] and table.meta["saturation"] == pytest.approx(0.9 * peak)


# ------------------------------------------------------------------------------ polarity, inputs, meta
def test_negative_and_both_polarities_set_their_planes() -> None:
    rng = np.random.default_rng(3)
    img = rng.normal(0.0, 5.0, (100, 100))
    img += _gauss_star(img.shape, 30.3, 60.7, 4000.0, 3.0) - _gauss_star(img.shape, 70.2, 30.4, 3000.0, 3.0)
    mi = MaskedImage(img, variance=np.full(img.shape, 25.0))
    pos = detect_sources(mi, background=0.0, smooth_fwhm=3.0, polarity="positive", set_mask=False)
    assert len(pos) == 1 and not pos["negative"][0]
    table = detect_sources(mi, background=0.0, smooth_fwhm=3.0, polarity="both")
    assert len(table) == 2
    assert list(table["negative"]) == [False, True]  # sorted by |flux|: 4000 before -3000
    neg = table[table["negative"]][0]
    assert neg["flux"] == pytest.approx(-3000.0, rel=0.1) and neg["significance"] < -5 and neg["snr"] < -5
    assert math.hypot(neg["x"] - 70.2, neg["y"] - 30.4) < 0.2
    assert mi.mask.plane("DETECTED")[61, 30] and mi.mask.plane("DETECTED_NEGATIVE")[30, 70]
    assert not mi.mask.plane("DETECTED")[30, 70]


def test_plain_array_input_uses_background_rms_and_estimates_fwhm() -> None:
    stars = [(30.0 + 35 * i, 40.0 + 20 * j, 2e4) for i in range(3) for j in range(3)]
    img, _ = _field(stars, (128, 128), fwhm=4.0, sky=200.0, seed=9)
    table = detect_sources(img)
    assert len(table) == 9
    assert table.meta["fwhm_source"] == "estimated"
    assert table.meta["fwhm"] == pytest.approx(4.0, rel=0.15)
    assert table.meta["background_sigma"] == pytest.approx(math.sqrt(200.0), rel=0.1)
    assert np.all(table["background"] == pytest.approx(200.0, abs=3.0))


def test_psf_fwhm_is_used_when_the_exposure_has_a_psf() -> None:
    class _Psf:
        def computeFwhm(self) -> float:  # noqa: N802 - LSST name
            return 3.3

    img, var = _field([(40.0, 40.0, 2e4)], (80, 80), fwhm=3.3)
    table = detect_sources(Exposure(image=img, variance=var, psf=_Psf()))
    assert table.meta["fwhm_source"] == "psf" and table.meta["fwhm"] == 3.3
    assert table.meta["aperture_radius"] == pytest.approx(6.6)


def test_table_columns_units_meta_and_empty_result() -> None:
    rng = np.random.default_rng(4)
    mi = MaskedImage(rng.normal(0.0, 1.0, (64, 64)), variance=np.ones((64, 64)))
    table = detect_sources(mi, threshold=8.0, smooth_fwhm=2.5)
    assert isinstance(table, Table) and len(table) == 0
    assert table.colnames == list(COLUMNS)
    assert str(table["x"].unit) == "pix" and "parent" in table["x"].description
    assert set(table.meta["columns"]) == set(COLUMNS)
    for key in ("threshold", "fwhm", "aperture_radius", "isolation_radius", "flux_definition", "background_sigma"):
        assert key in table.meta
    assert table["flag_blended"].dtype == bool and table["id"].dtype.kind == "i"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"polarity": "up"}, r"polarity must be one of .* got 'up'"),
        ({"threshold": 0}, "threshold must be a finite number of sigma > 0"),
        ({"npix_min": 0}, "npix_min must be an integer >= 1"),
        ({"smooth_fwhm": -1.0}, "smooth_fwhm must be None"),
        ({"background": np.zeros((3, 3))}, r"background array has shape \(3, 3\)"),
    ],
)
def test_bad_options_raise_one_clear_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DetectionError, match=match):
        detect_sources(np.zeros((16, 16)) + np.random.default_rng(0).normal(size=(16, 16)), **kwargs)


def test_unusable_image_and_wrong_type() -> None:
    with pytest.raises(DetectionError, match="no usable pixel"):
        detect_sources(np.full((8, 8), np.nan))
    with pytest.raises(TypeError, match="Exposure, MaskedImage, Image or 2-D numeric array"):
        detect_sources(np.zeros(5))


# ------------------------------------------------------------- fast paths against the plain definitions
def test_detection_fast_paths_give_the_whole_image_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    # blends, edge stars, NaN and masked pixels, positive and negative sources
    shape = (150, 170)
    stars = [(2.0, 70.0, 2e4), (60.0, 60.0, 3e4), (65.5, 61.0, 1.2e4), (120.0, 30.0, 8e3), (160.5, 140.0, 5e3),
             (90.0, 148.5, 2e3), (30.0, 110.0, 1.5e3)]
    img, var = _field(stars, shape, fwhm=3.0, seed=12)
    img -= _gauss_star(shape, 100.3, 100.6, 6e3, 3.0)
    img[:, 34] = np.nan  # through the faint star at x = 30
    exp = Exposure(image=img, variance=var)
    bad = np.zeros(shape, dtype=bool)
    bad[25:35, 118:122] = True  # on the star at (120, 30)
    exp.mask.set_plane("BAD", bad)
    exp.mask.set_plane("SAT", np.hypot(*np.meshgrid(np.arange(170) - 60.0, np.arange(150) - 60.0)) < 1.5)
    kwargs = {"smooth_fwhm": 3.0, "polarity": "both", "background": 100.0, "set_mask": False}
    fast = detect_sources(exp, **kwargs)
    monkeypatch.setattr(detmod, "smooth_boxes", _smoothing.reference_smooth_boxes)
    monkeypatch.setattr(detmod, "matched_filter_candidates", _smoothing.reference_candidates)
    monkeypatch.setattr(detmod, "_label_pixels", _smoothing.reference_labels)
    plain = detect_sources(exp, **kwargs)
    assert len(fast) == len(plain) >= 8 and fast["flag_blended"].any() and fast["negative"].any()
    assert fast["flag_masked"].any() and fast["flag_saturated"].any() and fast["flag_edge"].any()
    for name in fast.colnames:
        if fast[name].dtype.kind == "f":
            assert np.allclose(fast[name], plain[name], rtol=1e-12, atol=1e-12), name
        else:
            assert np.array_equal(fast[name], plain[name]), name


def test_peak_image_around_footprints_equals_the_whole_image_smoothing() -> None:
    rng = np.random.default_rng(11)
    resid = rng.normal(0.0, 1.0, (120, 140))
    taps = _smoothing.gaussian_taps(1.6)
    # image corners and edges, a one-pixel box, a box too big to stack, a box 1 pixel from the edge
    boxes = np.array([[0, 5, 0, 7], [50, 60, 130, 140], [10, 11, 40, 41], [30, 110, 20, 100], [115, 120, 60, 75], [1, 9, 1, 9]])
    windows = _smoothing.smooth_boxes(resid, taps, boxes)
    full = ndimage.correlate1d(ndimage.correlate1d(resid, taps, axis=1, mode="constant"), taps, axis=0, mode="constant")
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        assert np.array_equal(windows.window(k), full[y0:y1, x0:x1])  # bit for bit
        rows, cols = np.mgrid[y0:y1, x0:x1]
        assert np.array_equal(windows.at(np.full(rows.shape, k), rows, cols), full[y0:y1, x0:x1])


def test_matched_filter_candidates_are_the_pixels_above_threshold() -> None:
    rng = np.random.default_rng(12)
    for shape, fwhm in (((97, 203), 3.0), ((5, 9), 4.0), ((70, 40), 12.0)):
        resid = rng.normal(0.0, 1.0, shape)
        resid[shape[0] // 2, shape[1] // 3] += 60.0
        var = rng.uniform(0.5, 2.0, shape).astype(np.float32)  # uneven noise, float32 plane
        taps = _smoothing.gaussian_taps(fwhm)
        reference = _smoothing.reference_snr(resid, var, taps)
        index, snr = _smoothing.matched_filter_candidates(resid, var, taps, 3.0)
        assert np.all(np.diff(index) > 0) and np.isin(np.flatnonzero(np.abs(reference) >= 3.0), index).all()
        assert np.allclose(snr, reference.ravel()[index], rtol=1e-12, atol=0.0)
    resid[0, 0] = np.nan  # non-finite input: the whole-image path, NaN never a candidate
    index, snr = _smoothing.matched_filter_candidates(resid, var, taps, 3.0)
    reference = _smoothing.reference_snr(resid, var, taps)
    assert np.array_equal(index, np.flatnonzero(np.abs(reference) >= 3.0)) and np.isfinite(snr).all()


def test_sparse_labelling_numbers_footprints_as_ndimage_label() -> None:
    rng = np.random.default_rng(13)
    for shape in ((1, 50), (50, 1), (61, 47), (40, 40)):
        plane = ndimage.binary_dilation(rng.random(shape) > 0.93) | (rng.random(shape) > 0.9)
        reference, n = ndimage.label(plane, structure=np.ones((3, 3), dtype=bool))
        pixels = np.flatnonzero(plane)
        labels, count = detmod._label_pixels(pixels, shape[1])
        assert count == n and np.array_equal(labels, reference.ravel()[pixels])
    assert detmod._label_pixels(np.zeros(0, dtype=np.intp), 10)[1] == 0


def test_background_fast_paths_match_the_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.interpolate import RectBivariateSpline

    rng = np.random.default_rng(14)
    rows = rng.normal(100.0, 10.0, (40, 900))
    rows[:, :40] += rng.uniform(0.0, 800.0, (40, 40))  # stars: deep clipping at the top
    rows[rng.random(rows.shape) < 0.2] = np.nan
    rows[3, 5:] = np.nan  # a row with 5 values only
    rows = np.sort(rows, axis=1)
    n_valid = np.count_nonzero(~np.isnan(rows), axis=1)
    whole = bgmod._clipped_stats_sorted(rows, n_valid, 3.0, 5, tail=900)  # whole-row prefix sums
    for tail in (8, 256):  # clipped ranges ending deep inside the rows, and within the tails
        median, std = bgmod._clipped_stats_sorted(rows, n_valid, 3.0, 5, tail=tail)
        assert np.array_equal(median, whole[0], equal_nan=True)
        assert np.allclose(std, whole[1], rtol=1e-12, atol=0.0, equal_nan=True)
    img = rng.normal(50.0, 3.0, (256, 320)) + np.linspace(0.0, 20.0, 320)[None, :]
    img[100:103, 10:200] = np.nan
    single = estimate_background(img, box=32)
    monkeypatch.setattr(bgmod, "_PARALLEL_PIXELS", 0)  # boxes split over two threads
    split = estimate_background(img, box=32)
    assert np.array_equal(single.mesh, split.mesh) and np.array_equal(single.mesh_rms, split.mesh_rms)
    yc, xc = np.arange(6) * 40.0 + 20.0, np.arange(5) * 60.0 + 30.0
    spline = RectBivariateSpline(yc, xc, rng.normal(size=(6, 5)), kx=3, ky=3)
    y, x = np.linspace(yc[0], yc[-1], 230), np.linspace(xc[0], xc[-1], 250)
    assert np.allclose(bgmod._GridSpline(spline)(y, x), spline(y, x), rtol=0.0, atol=1e-12)
    a, big = rng.normal(size=(70, 33)), rng.normal(size=(40, 1000))
    b = big[3:36, 1:]  # a row slice with a row stride wider than its width
    out = np.empty((70, 999))
    assert np.allclose(tiled_matmul(a, b, out), a @ b, rtol=1e-13, atol=1e-12)


def test_stellar_sigma_finds_the_stars_among_bright_galaxies() -> None:
    from diffim.tasks.detection.measure import stellar_sigma

    rng = np.random.default_rng(8)
    stars = 1.0 * (1 + 0.01 * rng.normal(size=9))
    galaxies = np.exp(rng.uniform(np.log(2.0), np.log(6.0), 90))
    hot_pixels = np.full(6, 0.3)  # unflagged cosmic rays: smaller than any star, never the group
    assert stellar_sigma(np.concatenate([stars, galaxies, hot_pixels])) == pytest.approx(1.0, rel=0.02)
    # a star field: the median, as before
    field = 1.5 * (1 + 0.03 * rng.normal(size=200))
    assert stellar_sigma(field) == np.median(field)
    # a few galaxies only: no compact group below the median, the median stands
    assert stellar_sigma(galaxies[:4]) == np.median(galaxies[:4])


def test_estimated_fwhm_ignores_cosmic_rays_flagged_in_the_mask() -> None:
    # 9 stars of FWHM 4 and 40 single-pixel hits far brighter than them, flagged CR: measured, the
    # hits (the most compact, brightest peaks) would make the rough FWHM ~1 px
    stars = [(30.0 + 35 * i, 40.0 + 20 * j, 2e4) for i in range(3) for j in range(3)]
    img, var = _field(stars, (160, 160), fwhm=4.0, sky=200.0, seed=9)
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(12, 148, 40), rng.integers(12, 148, 40)
    img[rows, cols] += 3e4
    mi = MaskedImage(image=img, variance=var)
    cr = np.zeros(img.shape, dtype=bool)
    cr[rows, cols] = True
    mi.mask.set_plane("CR", cr)
    table = detect_sources(mi)
    assert table.meta["fwhm_source"] == "estimated"
    assert table.meta["fwhm"] == pytest.approx(4.0, rel=0.15)
    unflagged = MaskedImage(image=img.copy(), variance=var)
    assert detect_sources(unflagged).meta["fwhm"] < 2.5  # what the mask prevents
