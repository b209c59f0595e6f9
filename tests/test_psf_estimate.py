"""PSF estimation from stars: FWHM accuracy, the stacked model, outlier rejection, errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from diffim.tasks.detection import detect_sources
from diffim.tasks.image import Exposure
from diffim.tasks.psf.estimate import PsfEstimate, PsfEstimationError, estimate_psf, fit_psf_profile
from diffim.tasks.psf.models import ImagePsf

OVERSAMPLE = 5


def _profile(dx: np.ndarray, dy: np.ndarray, fwhm: float, model: str, beta: float, e: float = 0.0, theta: float = 0.0) -> np.ndarray:
    """Unit-integral elliptical Gaussian/Moffat; fwhm is the geometric mean, theta the major axis angle."""
    th = math.radians(theta)
    u = dx * math.cos(th) + dy * math.sin(th)
    w = -dx * math.sin(th) + dy * math.cos(th)
    q = 1.0 - e
    r2 = u * u * q + w * w / q
    if model == "gauss":
        s = fwhm / 2.3548200450309493
        return np.exp(-0.5 * r2 / s**2) / (2 * math.pi * s**2)
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    return (beta - 1.0) / (math.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)


def _stamp(x: float, y: float, half: int, **kw: Any) -> tuple[int, int, np.ndarray]:
    """Pixel-integrated profile on the (2 half + 1)^2 pixels around (x, y)."""
    ix, iy = round(x), round(y)
    sub = (np.arange(OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5
    g = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel()
    prof = _profile(g[None, :] + ix - x, g[:, None] + iy - y, **kw)
    n = 2 * half + 1
    return ix, iy, prof.reshape(n, OVERSAMPLE, n, OVERSAMPLE).mean(axis=(1, 3))


def _star_field(fwhm: float, model: str, beta: float = 3.0, *, seed: int = 1, sky: float = 200.0,
                grid: tuple[int, int] = (6, 5), spacing: int = 52) -> tuple[Exposure, list[tuple[float, float]]]:
    """~30 isolated stars with random sub-pixel positions and fluxes, Poisson noise."""
    rng = np.random.default_rng(seed)
    ny, nx = grid[1] * spacing + 40, grid[0] * spacing + 40
    model_img = np.full((ny, nx), sky)
    positions = []
    half = int(5 * fwhm)
    for i in range(grid[0]):
        for j in range(grid[1]):
            x, y = 40 + spacing * i + rng.uniform(-3, 3), 40 + spacing * j + rng.uniform(-3, 3)
            flux = math.exp(rng.uniform(math.log(2e4), math.log(2e5)))
            ix, iy, st = _stamp(x, y, half, fwhm=fwhm, model=model, beta=beta)
            y0, x0 = max(iy - half, 0), max(ix - half, 0)
            y1, x1 = min(iy + half + 1, ny), min(ix + half + 1, nx)
            model_img[y0:y1, x0:x1] += flux * st[y0 - iy + half : y1 - iy + half, x0 - ix + half : x1 - ix + half]
            positions.append((x, y))
    img = rng.poisson(model_img).astype(float)
    return Exposure(image=img, variance=model_img), positions


@pytest.mark.parametrize(
    ("model", "beta", "fwhm", "seed"),
    [
        ("gauss", 0.0, 3.0, 1),
        ("gauss", 0.0, 5.5, 2),
        ("moffat", 2.5, 3.2, 3),
        ("moffat", 2.5, 6.0, 4),
        ("moffat", 3.5, 4.0, 5),
        ("moffat", 3.5, 4.8, 6),
    ],
)
def test_fwhm_within_two_percent(model: str, beta: float, fwhm: float, seed: int) -> None:
    exp, _ = _star_field(fwhm, model, beta or 3.0, seed=seed)
    est = estimate_psf(exp)
    assert isinstance(est, PsfEstimate) and isinstance(est.psf, ImagePsf)
    # measured: |error| <= 0.35 % over Gaussian and Moffat (beta 2.5, 3.5) fields with FWHM 3-6 px
    assert est.fwhm == pytest.approx(fwhm, rel=0.02)
    assert est.n_stars >= 25 and len(est.sources) == est.n_stars
    if model == "moffat":
        assert est.profile.beta == pytest.approx(beta, rel=0.15)
    else:
        assert est.profile.beta > 20  # Gaussian limit of the Moffat family


def test_psf_image_matches_the_true_profile() -> None:
    exp, _ = _star_field(3.5, "moffat", 3.0, seed=7)
    est = estimate_psf(exp, stamp_size=25)
    img = est.psf.computeImage()
    assert img.shape == (25, 25) and img.sum() == pytest.approx(1.0)
    _, _, truth = _stamp(12.0, 12.0, 12, fwhm=3.5, model="moffat", beta=3.0)
    truth /= truth.sum()
    # a stack of 30 noisy stars: within 2 % of the peak everywhere, centred to 0.02 px
    assert np.abs(img - truth).max() < 0.02 * truth.max()
    yy, xx = np.mgrid[-12:13, -12:13]
    core = img * (np.hypot(xx, yy) < 5)
    assert abs((core * xx).sum() / core.sum()) < 0.02 and abs((core * yy).sum() / core.sum()) < 0.02


def test_galaxies_and_cosmic_rays_are_clipped_out() -> None:
    exp, positions = _star_field(3.5, "gauss", seed=8, grid=(6, 6), spacing=48)
    img = exp.image.array
    rng = np.random.default_rng(8)
    # turn 5 of the 36 sources into galaxies (add a 3x wider component) and add 3 bright cosmic rays
    galaxies = positions[::7][:5]
    for x, y in galaxies:
        ix, iy, st = _stamp(x, y, 20, fwhm=10.0, model="gauss", beta=3.0)
        img[iy - 20 : iy + 21, ix - 20 : ix + 21] += 6e4 * st
    for x, y in positions[3::11][:3]:
        iy, ix = round(y) + 15, round(x) + 15
        img[iy, ix] += 2e4 * rng.uniform(1, 2)
    est = estimate_psf(exp)
    assert est.fwhm == pytest.approx(3.5, rel=0.02)
    used = np.column_stack([est.sources["x"], est.sources["y"]])
    for x, y in galaxies:
        assert np.hypot(used[:, 0] - x, used[:, 1] - y).min() > 2.0, f"galaxy at ({x:.1f}, {y:.1f}) was used"
    assert est.n_stars <= 31


def test_sources_argument_and_elliptical_profile() -> None:
    exp, _ = _star_field(4.0, "moffat", 3.0, seed=9)
    sources = detect_sources(exp, set_mask=False)
    est = estimate_psf(exp, sources=sources, n_stars=10)
    assert est.n_stars == 10
    # the 10 brightest usable stars were taken
    assert np.all(np.asarray(est.sources["flux"]) >= np.sort(np.asarray(sources["flux"]))[-10] * 0.999)
    with pytest.raises(ValueError, match="sources has no 'x' column"):
        estimate_psf(exp, sources=sources["y", "flux"])


def test_fit_psf_profile_is_exact_on_noiseless_stamps() -> None:
    for model, beta in (("gauss", 3.0), ("moffat", 2.5)):
        _, _, st = _stamp(20.3, 19.8, 15, fwhm=3.0, model=model, beta=beta, e=0.15, theta=30.0)
        fit = fit_psf_profile(st)
        assert fit.fwhm == pytest.approx(3.0, rel=1e-3)
        assert fit.ellipticity == pytest.approx(0.15, abs=2e-3)
        assert fit.theta == pytest.approx(30.0, abs=0.5)
        assert (fit.x, fit.y) == pytest.approx((0.3, -0.2), abs=1e-3)


def test_too_few_stars_is_one_clear_error() -> None:
    exp, _ = _star_field(3.0, "gauss", seed=10, grid=(2, 2))
    with pytest.raises(PsfEstimationError, match=r"only 4 usable star\(s\) for the PSF, need min_stars=5 \(4 detections.*lower snr_min"):
        estimate_psf(exp)
    with pytest.raises(PsfEstimationError, match=r"only 0 usable star\(s\).*0 with snr >= 1e\+06"):
        estimate_psf(exp, snr_min=1e6, min_stars=1)
    assert isinstance(PsfEstimationError("x"), RuntimeError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"stamp_size": 20}, "stamp_size must be an odd integer"), ({"n_stars": 0}, "n_stars must be an integer >= 1")],
)
def test_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_psf(np.zeros((32, 32)), **kwargs)


def test_a_field_of_mostly_bright_galaxies_uses_its_few_stars() -> None:
    # 36 sources: 24 bright compact galaxies (FWHM 9 px), 12 fainter stars (FWHM 3 px). The median
    # bright source is a galaxy; the stars' compact size group sets the rough FWHM and the PSF.
    exp, positions = _star_field(3.0, "gauss", seed=11, grid=(6, 6), spacing=56)
    img = exp.image.array
    galaxies = [p for i, p in enumerate(positions) if i % 3]
    for x, y in galaxies:
        ix, iy, st = _stamp(x, y, 24, fwhm=9.0, model="gauss", beta=3.0)
        img[iy - 24 : iy + 25, ix - 24 : ix + 25] += 5e5 * st
    est = estimate_psf(exp, min_stars=5)
    assert est.fwhm == pytest.approx(3.0, rel=0.05)
    used = np.column_stack([est.sources["x"], est.sources["y"]])
    for x, y in galaxies:
        assert np.hypot(used[:, 0] - x, used[:, 1] - y).min() > 2.0
