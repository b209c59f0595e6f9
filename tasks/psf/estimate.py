"""Estimate a PSF model and its FWHM from the isolated bright stars of an image.

Used when an exposure comes without a PSF. Stars are picked from :func:`~diffim.tasks.detection.detect_sources`
(isolated, unsaturated, unmasked, away from the edge, above ``snr_min``), galaxies and cosmic rays are
rejected by clipping their adaptive-moment sizes, and the remaining stamps are re-centred (Fourier shift) to a
sub-pixel accuracy, normalised and averaged into an :class:`~diffim.tasks.psf.models.ImagePsf`.
The FWHM comes from fitting a pixel-integrated elliptical Moffat profile (free index, Gaussian as its
limit) to that stack, so it is the FWHM of the profile *before* pixelisation: what a simulation or a
seeing monitor calls the FWHM.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.stats import sigma_clip
from astropy.table import Table
from scipy.optimize import least_squares

from diffim.tasks.detection import Background, adaptive_sigma, cutouts, detect_sources, estimate_background
from diffim.tasks.detection._pixels import unpack_pixels
from diffim.tasks.detection.measure import stellar_sigma
from diffim.tasks.psf.models import ImagePsf

__all__ = ["PsfEstimate", "PsfEstimationError", "ProfileFit", "estimate_psf", "fit_psf_profile"]

_log = logging.getLogger("diffim.tasks.psf.estimate")

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Candidates larger than this many times the rough (detection) size are not PSF stars.
_MAX_SIZE_OVER_ROUGH = 1.5


class PsfEstimationError(RuntimeError):
    """Too few usable stars (or none that can be fitted) to estimate a PSF."""


@dataclass(frozen=True)
class ProfileFit:
    """Best-fitting pixel-integrated elliptical Moffat profile of a stamp.

    Attributes
    ----------
    fwhm : float
        Geometric-mean FWHM ``sqrt(FWHM_major * FWHM_minor)`` of the profile before pixel
        integration, in pixels.
    beta : float
        Moffat index; large values (up to 1000) mean the profile is Gaussian.
    ellipticity : float
        ``1 - b/a`` (minor over major axis).
    theta : float
        Position angle of the major axis, degrees from +x towards +y, in ``[0, 180)``.
    x, y : float
        Centre offset from the stamp's central pixel, pixels.
    amplitude : float
        Peak value of the (unintegrated) profile.
    background : float
        Fitted constant pedestal.
    """

    fwhm: float
    beta: float
    ellipticity: float
    theta: float
    x: float
    y: float
    amplitude: float
    background: float


@dataclass(eq=False)
class PsfEstimate:
    """What :func:`estimate_psf` found (a ``Struct``-like result; access fields by name).

    Attributes
    ----------
    psf : ImagePsf
        Normalised stack of the selected stars, centred on its central pixel.
    fwhm : float
        FWHM in pixels of the underlying profile (pixel integration removed), see :class:`ProfileFit`.
    n_stars : int
        Number of stars stacked.
    sources : astropy.table.Table
        The detection rows of the stacked stars, with an added ``psf_sigma`` column (adaptive-moment
        Gaussian-equivalent sigma, pixels).
    profile : ProfileFit
        Full profile fit of the stack (index, ellipticity, angle).
    n_candidates : int
        Stars that passed the flag, S/N and room cuts, before size clipping.
    """

    psf: ImagePsf
    fwhm: float
    n_stars: int
    sources: Table = field(repr=False)
    profile: ProfileFit
    n_candidates: int = 0

    def getPsf(self) -> ImagePsf:  # noqa: N802 - LSST-style accessor
        """The PSF model."""
        return self.psf


def estimate_psf(
    data: Any,
    *,
    sources: Table | None = None,
    n_stars: int = 50,
    stamp_size: int | None = None,
    snr_min: float = 50.0,
    min_stars: int = 5,
    size_clip: float = 3.0,
    saturation: float | None = None,
    detection_threshold: float = 5.0,
    background: Background | np.ndarray | None = None,
) -> PsfEstimate:
    """Build a PSF model and measure the FWHM from the isolated bright stars of an image.

    Parameters
    ----------
    data : Exposure, MaskedImage, Image or array_like
        The image (background not subtracted: a smooth background is fitted here).
    sources : astropy.table.Table, optional
        Detections to choose stars from, as returned by :func:`~diffim.tasks.detection.detect_sources`
        (at least ``x`` and ``y`` in parent coordinates; the flag, ``snr``, ``flux`` and ``negative``
        columns are used when present). Default: run detection.
    n_stars : int, optional
        Stack at most this many stars (the brightest that survive the cuts).
    stamp_size : int, optional
        Odd side of the PSF image in pixels; default ``2 ceil(3 FWHM) + 1`` (at least 11) with the
        detection's rough FWHM.
    snr_min : float, optional
        Minimum aperture S/N of a star.
    min_stars : int, optional
        Fewer usable stars than this is an error.
    size_clip : float, optional
        Stars whose adaptive size is more than this many robust sigma from the median are rejected
        (galaxies, cosmic rays, unflagged blends).
    saturation : float, optional
        Passed to detection (pixel level at which stars count as saturated).
    detection_threshold : float, optional
        Detection threshold in sigma when ``sources`` is None.
    background : Background or numpy.ndarray, optional
        The image's background (a model from :func:`~diffim.tasks.detection.estimate_background`
        or an array of the image's shape), when the caller already has it (e.g. the one
        ``sources`` were detected with); default: estimated here.

    Returns
    -------
    PsfEstimate
        The PSF, its FWHM, the number of stars and the rows used.

    Raises
    ------
    PsfEstimationError
        If fewer than ``min_stars`` stars are usable; the message says how many were found at each cut
        and what to change.
    ValueError
        For invalid options.
    """
    if not (isinstance(n_stars, (int, np.integer)) and n_stars >= 1):
        msg = f"n_stars must be an integer >= 1, got {n_stars!r}"
        raise ValueError(msg)
    if not (isinstance(min_stars, (int, np.integer)) and 1 <= min_stars):
        msg = f"min_stars must be an integer >= 1, got {min_stars!r}"
        raise ValueError(msg)
    if stamp_size is not None and not (isinstance(stamp_size, (int, np.integer)) and stamp_size >= 5 and stamp_size % 2 == 1):
        msg = f"stamp_size must be an odd integer >= 5 pixels, got {stamp_size!r}"
        raise ValueError(msg)

    px = unpack_pixels(data)
    img = px.image
    bg = background if background is not None else estimate_background(data)
    bg_array = bg if isinstance(bg, np.ndarray) else bg.array
    if bg_array.shape != img.shape:
        msg = f"background has shape {bg_array.shape} but the image has shape {img.shape}; give the image's own background"
        raise ValueError(msg)
    if sources is None:
        sources = detect_sources(
            data, threshold=detection_threshold, background=bg, saturation=saturation, set_mask=False
        )
    for name in ("x", "y"):
        if name not in sources.colnames:
            msg = f"sources has no {name!r} column (columns: {sources.colnames}); pass the table from detect_sources"
            raise ValueError(msg)
    fwhm0 = float(sources.meta.get("fwhm", 0.0)) or _rough_fwhm(_resid_stamps(img, bg_array, sources, px.xy0, 12), sources)
    size = int(stamp_size) if stamp_size is not None else max(11, 2 * int(math.ceil(3.0 * fwhm0)) + 1)
    half = size // 2

    # -- cuts on the detection flags and S/N ----------------------------------------------------------
    n_det = len(sources)
    keep = np.ones(n_det, dtype=bool)
    if "negative" in sources.colnames:
        keep &= ~np.asarray(sources["negative"], dtype=bool)
    flags = [c for c in ("flag_edge", "flag_saturated", "flag_masked", "flag_blended", "flag_not_isolated") if c in sources.colnames]
    for c in flags:
        keep &= ~np.asarray(sources[c], dtype=bool)
    n_clean = int(keep.sum())
    if "snr" in sources.colnames:
        keep &= np.nan_to_num(np.asarray(sources["snr"], dtype=float), nan=-1.0) >= snr_min
    n_bright = int(keep.sum())

    # -- room for the stamp, and no bright neighbour inside it ------------------------------------------
    x0, y0 = px.xy0
    xa = np.asarray(sources["x"], dtype=float) - x0
    ya = np.asarray(sources["y"], dtype=float) - y0
    ny, nx = img.shape
    margin = half + 3
    keep &= (xa >= margin) & (xa <= nx - 1 - margin) & (ya >= margin) & (ya <= ny - 1 - margin)
    flux = np.asarray(sources["flux"], dtype=float) if "flux" in sources.colnames else np.ones(n_det)
    keep &= _no_bright_neighbour(xa, ya, flux, keep, radius=half * math.sqrt(2.0) + fwhm0)
    cand = np.nonzero(keep)[0]
    cand = cand[np.argsort(-flux[cand], kind="stable")][: 4 * n_stars]
    n_candidates = cand.size
    counts = f"{n_det} detections, {n_clean} unflagged, {n_bright} with snr >= {snr_min:g}, {n_candidates} with room for a {size}x{size} stamp"
    if n_candidates < min_stars:
        _raise_too_few(n_candidates, min_stars, counts)

    # -- stamps, size clipping ---------------------------------------------------------------------------
    big = half + 3
    xi, yi = np.round(xa[cand]).astype(np.intp), np.round(ya[cand]).astype(np.intp)
    # background-subtracted stamps (non-finite pixels 0), cut without a whole-image copy
    stamps = _stamps(img, bg_array, xi, yi, big)
    sig, _, _ = adaptive_sigma(stamps[:, big - half : big + half + 1, big - half : big + half + 1], sigma0=max(fwhm0, 1.0) / _FWHM_PER_SIGMA)
    ok = np.isfinite(sig)
    # PSF stars are as compact as the detection's rough FWHM says (it comes from the compact
    # sources' size group, see stellar_sigma); far larger ones are galaxies, e.g. in a cluster field
    # where every bright isolated source is one
    with np.errstate(invalid="ignore"):
        ok &= sig <= _MAX_SIZE_OVER_ROUGH * fwhm0 / _FWHM_PER_SIGMA
    if ok.sum() >= 3:
        # a compact group of stars well below the median size (a galaxy-dominated field): keep
        # only sources near it before clipping, or the clipping centres on the galaxies
        centre = stellar_sigma(sig[ok], min_members=3)
        if centre < np.median(sig[ok]):
            ok &= np.abs(np.log(np.where(ok, sig, 1.0) / centre)) <= math.log(1.15)
    if ok.sum() >= 3:
        clipped = sigma_clip(sig[ok], sigma=size_clip, maxiters=5, cenfunc="median", stdfunc="mad_std")
        good_size = np.zeros_like(ok)
        good_size[np.nonzero(ok)[0][~np.ma.getmaskarray(clipped)]] = True
        # Never reject within 2 % of the median: a tight, noise-free distribution is all stars.
        good_size |= ok & (np.abs(sig - np.median(sig[ok])) <= 0.02 * np.median(sig[ok]))
        ok = good_size
    sel = np.nonzero(ok)[0][:n_stars]
    if sel.size < min_stars:
        _raise_too_few(int(sel.size), min_stars, counts + f", {int(ok.sum())} after size clipping")

    # -- re-centre, normalise, stack ---------------------------------------------------------------------
    # Fourier (sinc) shift: no interpolation blur. A cubic spline widens an FWHM = 3 px stack by
    # ~0.6 %, a third of the 2 % budget; the 3-pixel margin absorbs the wrap-around.
    dx = xa[cand[sel]] - xi[sel]
    dy = ya[cand[sel]] - yi[sel]
    spectra = np.fft.fft2(stamps[sel], axes=(1, 2))
    fy = np.fft.fftfreq(2 * big + 1)[None, :, None]
    fx = np.fft.fftfreq(2 * big + 1)[None, None, :]
    phase = np.exp(2j * np.pi * (fx * dx[:, None, None] + fy * dy[:, None, None]))
    moved = np.fft.ifft2(spectra * phase, axes=(1, 2)).real
    shifted = moved[:, big - half : big + half + 1, big - half : big + half + 1]
    norm = shifted.sum(axis=(1, 2)) if "flux" not in sources.colnames else flux[cand[sel]]
    norm = np.where(norm > 0, norm, np.nan)
    stack = sigma_clip(shifted / norm[:, None, None], sigma=3.0, maxiters=3, axis=0, cenfunc="median").mean(axis=0)
    stack = np.ma.filled(stack, 0.0) if np.ma.isMaskedArray(stack) else np.asarray(stack)
    stack = np.nan_to_num(stack, nan=0.0)
    if not stack.sum() > 0:
        msg = f"the stack of {sel.size} star stamps has a non-positive sum; check the background subtraction or give a PSF"
        raise PsfEstimationError(msg)
    profile = fit_psf_profile(stack)
    psf = ImagePsf(stack)
    used = sources[cand[sel]]
    used["psf_sigma"] = sig[sel]
    used["psf_sigma"].description = "Adaptive-moment Gaussian-equivalent sigma of the star (pixels)"
    _log.info(
        "PSF estimated from %d stars (%s): FWHM %.3f px, beta %.3g, e %.3f", sel.size, counts, profile.fwhm, profile.beta, profile.ellipticity
    )
    return PsfEstimate(psf=psf, fwhm=profile.fwhm, n_stars=int(sel.size), sources=used, profile=profile, n_candidates=int(n_candidates))


def _raise_too_few(found: int, needed: int, counts: str) -> None:
    msg = (
        f"only {found} usable star(s) for the PSF, need min_stars={needed} ({counts}); "
        "lower snr_min, pass sources=, or give the exposure a PSF"
    )
    raise PsfEstimationError(msg)


def _no_bright_neighbour(x: np.ndarray, y: np.ndarray, flux: np.ndarray, cand: np.ndarray, radius: float, ratio: float = 0.01) -> np.ndarray:
    """False for candidates with another source brighter than ``ratio`` of their flux within ``radius``."""
    from scipy.spatial import cKDTree

    ok = np.ones(x.size, dtype=bool)
    idx = np.nonzero(cand)[0]
    if idx.size == 0 or x.size < 2:
        return ok
    tree = cKDTree(np.column_stack([x, y]))
    absf = np.abs(flux)
    for i, near in zip(idx, tree.query_ball_point(np.column_stack([x[idx], y[idx]]), r=radius)):
        others = [j for j in near if j != i]
        if others and np.any(absf[others] > ratio * abs(flux[i])):
            ok[i] = False
    return ok


def _stamps(img: np.ndarray, background: np.ndarray, xi: np.ndarray, yi: np.ndarray, half: int) -> np.ndarray:
    """Cut-outs of ``img - background`` (float64; non-finite pixels and pixels off the image 0)."""
    stamps = cutouts(img, xi, yi, half).astype(np.float64) - cutouts(background, xi, yi, half)
    stamps[~np.isfinite(stamps)] = 0.0
    return stamps


def _brightest(sources: Table) -> np.ndarray:
    if "flux" in sources.colnames:
        return np.argsort(-np.asarray(sources["flux"], dtype=float))[:50]
    return np.arange(min(50, len(sources)))


def _resid_stamps(img: np.ndarray, background: np.ndarray, sources: Table, xy0: tuple[int, int], half: int) -> np.ndarray:
    """Background-subtracted stamps of the (up to 50) brightest sources, for :func:`_rough_fwhm`."""
    order = _brightest(sources)
    xi = np.round(np.asarray(sources["x"], dtype=float)[order] - xy0[0]).astype(np.intp)
    yi = np.round(np.asarray(sources["y"], dtype=float)[order] - xy0[1]).astype(np.intp)
    return _stamps(img, background, xi, yi, half)


def _rough_fwhm(stamps: np.ndarray, sources: Table) -> float:
    """Gaussian-equivalent FWHM of the brightest given sources (when the table has no ``fwhm`` meta)."""
    sig, _, _ = adaptive_sigma(stamps)
    sig = sig[np.isfinite(sig)]
    return float(_FWHM_PER_SIGMA * stellar_sigma(sig)) if sig.size else 3.0


# ------------------------------------------------------------------------------------------ profile fit
def _moffat_pixels(params: np.ndarray, dx: np.ndarray, dy: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """Pixel-integrated (by oversampling) elliptical Moffat; ``t = 1/beta`` -> 0 is a Gaussian."""
    amp, xc, yc, logf, e1, e2, t, bg = params
    os_ = sub.size
    ux = (dx[:, None] + sub[None, :]).ravel() - xc  # index j * os + s, as the reshape below expects
    uy = (dy[:, None] + sub[None, :]).ravel() - yc
    # Unit-determinant quadratic form exp([[e1, e2], [e2, -e1]]): geometric-mean radius preserved.
    eta = math.hypot(e1, e2)
    ch = math.cosh(eta)
    sh = math.sinh(eta) / eta if eta > 1e-12 else 1.0
    a, b, c = ch + sh * e1, sh * e2, ch - sh * e1
    r2 = a * ux[None, :] ** 2 + 2.0 * b * uy[:, None] * ux[None, :] + c * uy[:, None] ** 2
    fwhm = math.exp(logf)
    k = 4.0 * math.expm1(t * math.log(2.0)) / fwhm**2  # 1 / alpha^2
    prof = np.exp(-np.log1p(k * r2) / t)
    h, w = dy.size, dx.size
    return amp * prof.reshape(h, os_, w, os_).mean(axis=(1, 3)) + bg


def fit_psf_profile(stamp: np.ndarray, *, oversample: int = 5) -> ProfileFit:
    """Fit a pixel-integrated elliptical Moffat profile (free index) to a stamp.

    Parameters
    ----------
    stamp : numpy.ndarray
        2-D background-subtracted image of one star or a PSF stack, peak near the central pixel.
    oversample : int, optional
        Sub-pixels per pixel side used to integrate the model over each pixel.

    Returns
    -------
    ProfileFit
        The best fit; ``fwhm`` is the geometric-mean FWHM of the profile before pixel integration.

    Raises
    ------
    PsfEstimationError
        If the stamp has no positive peak or the fit does not converge.

    Notes
    -----
    The Moffat profile ``(1 + r²/α²)^-β`` is parametrised by its FWHM and ``t = 1/β`` in
    ``[0.001, 0.8]``; as ``t -> 0`` it tends to a Gaussian of the same FWHM, so one family fits both
    (a Gaussian comes out with ``beta`` ~ 1000). Fitting the integrated model, rather than reading the
    half-maximum of the pixel values, removes the pixel's own width: a sampled FWHM-3 Gaussian star
    looks ~2.5 % wider than 3 px.
    """
    a = np.asarray(stamp, dtype=np.float64)
    if a.ndim != 2 or not np.isfinite(a).all() or not a.max() > 0:
        msg = f"cannot fit a profile to a stamp of shape {a.shape!r} without a finite positive peak"
        raise PsfEstimationError(msg)
    h, w = a.shape
    dy = np.arange(h, dtype=float) - h // 2
    dx = np.arange(w, dtype=float) - w // 2
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    sig0, cx0, cy0 = adaptive_sigma(a[None], sigma0=1.5)
    s0 = float(sig0[0]) if np.isfinite(sig0[0]) else 1.5
    fwhm0 = max(_FWHM_PER_SIGMA * math.sqrt(max(s0**2 - 1.0 / 12.0, 0.09)), 0.8)
    p0 = np.array([a.max(), float(cx0[0]), float(cy0[0]), math.log(fwhm0), 0.0, 0.0, 0.3, 0.0])
    lo = np.array([0.0, -w / 2, -h / 2, math.log(0.3), -1.5, -1.5, 1e-3, -np.inf])
    hi = np.array([np.inf, w / 2, h / 2, math.log(4.0 * max(h, w)), 1.5, 1.5, 0.8, np.inf])
    p0 = np.clip(p0, lo + 1e-9, hi - 1e-9)
    scale = float(a.max())

    def resid(p: np.ndarray) -> np.ndarray:
        return ((_moffat_pixels(p, dx, dy, sub) - a) / scale).ravel()

    fit = least_squares(resid, p0, bounds=(lo, hi), x_scale="jac", xtol=1e-10, ftol=1e-10)
    if not fit.success:
        msg = f"the Moffat profile fit of a {a.shape!r} stamp did not converge ({fit.message}); give a PSF instead"
        raise PsfEstimationError(msg)
    amp, xc, yc, logf, e1, e2, t, bg = fit.x
    eta = math.hypot(e1, e2)
    theta = (math.degrees(0.5 * math.atan2(e2, e1)) + 90.0) % 180.0
    return ProfileFit(
        fwhm=float(math.exp(logf)),
        beta=float(1.0 / t),
        ellipticity=float(1.0 - math.exp(-eta)),
        theta=float(theta),
        x=float(xc),
        y=float(yc),
        amplitude=float(amp),
        background=float(bg),
    )
