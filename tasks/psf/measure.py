"""Shape and size measurements on PSF stamps: centroid, (adaptive) second moments and true FWHM."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from .errors import PsfError

__all__ = [
    "FWHM_PER_SIGMA",
    "Quadrupole",
    "measure_centroid",
    "measure_fwhm",
    "measure_shape",
    "pixel_offsets",
]

#: FWHM of a Gaussian in units of its sigma, ``2 sqrt(2 ln 2)``.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

_LN2 = math.log(2.0)
# numpy >= 1.25 moved the warning to numpy.exceptions (and numpy 2 dropped the old name).
_RankWarning = getattr(getattr(np, "exceptions", np), "RankWarning")


class Quadrupole(NamedTuple):
    """Second moments ``(ixx, iyy, ixy)`` in pixels squared (LSST's ``afw.geom.ellipses.Quadrupole``)."""

    ixx: float
    iyy: float
    ixy: float

    @property
    def determinantRadius(self) -> float:  # noqa: N802 - LSST name
        """``(ixx iyy - ixy^2)^(1/4)``: sigma of the circular Gaussian with the same area."""
        return float(max(self.ixx * self.iyy - self.ixy * self.ixy, 0.0) ** 0.25)

    @property
    def traceRadius(self) -> float:  # noqa: N802 - LSST name
        """``sqrt((ixx + iyy) / 2)``: mean of the two principal sigmas in quadrature."""
        return float(math.sqrt(max(0.5 * (self.ixx + self.iyy), 0.0)))

    @property
    def fwhm(self) -> float:
        """FWHM of the Gaussian with these moments, ``2.3548 * determinantRadius`` (pixels).

        Equal to the true FWHM only for a Gaussian; use :meth:`Psf.computeFwhm` for other profiles.
        """
        return FWHM_PER_SIGMA * self.determinantRadius


def pixel_offsets(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets ``(dx, dy)`` from the central pixel, as broadcastable row/column vectors."""
    h, w = shape[-2], shape[-1]
    dy = (np.arange(h, dtype=float) - (h // 2))[:, None]
    dx = (np.arange(w, dtype=float) - (w // 2))[None, :]
    return dx, dy


def measure_centroid(array: np.ndarray, *, adaptive: bool = False) -> tuple[float, float]:
    """Centroid of a stamp, relative to its central pixel.

    Parameters
    ----------
    array : numpy.ndarray
        2-D stamp with a non-zero sum.
    adaptive : bool, optional
        If False (default), plain first moments (exactly 0 for a centred kernel image). If True, the
        centroid of the adaptive Gaussian weight (see :func:`measure_shape`), which noise in the
        wings of an estimated PSF hardly moves; falls back to plain moments if it does not converge.

    Returns
    -------
    dx, dy : float
        Centroid offset in pixels (``x`` is the column, ``y`` the row).
    """
    a = np.asarray(array, dtype=float)
    if adaptive and a.sum() > 0:
        result = _adaptive_moments(a, 50, 1e-7)
        if result is not None:
            return float(result[0]), float(result[1])
    dx, dy = pixel_offsets(a.shape)
    total = a.sum()
    return float((a * dx).sum() / total), float((a * dy).sum() / total)


def measure_shape(
    array: np.ndarray, *, adaptive: bool = True, max_iter: int = 100, tol: float = 1e-9
) -> Quadrupole:
    """Second moments of a stamp (pixels squared), about its centroid.

    Parameters
    ----------
    array : numpy.ndarray
        2-D stamp.
    adaptive : bool, optional
        If True (default) return adaptive moments (as LSST's SdssShape/HSM): the moments ``M`` of the
        elliptical Gaussian weight that, once divided out of the weighted moments, reproduces itself.
        They equal the true covariance for a Gaussian, do not depend on the stamp truncation, and give a
        "Gaussian-equivalent" size for other profiles (smaller than the FWHM suggests for Moffat
        wings). If False, plain unweighted moments (which for Moffat wings depend strongly on the stamp
        size).
    max_iter : int, optional
        Iteration limit for the adaptive loop.
    tol : float, optional
        Relative convergence tolerance on the moments.

    Returns
    -------
    Quadrupole
        The moments.

    Raises
    ------
    PsfError
        If the stamp has no positive flux or the adaptive iteration does not converge.
    """
    a = np.asarray(array, dtype=float)
    total = a.sum()
    if not total > 0:
        msg = f"cannot measure the shape of a stamp with non-positive sum {total!r}"
        raise PsfError(msg)
    if not adaptive:
        dx, dy = pixel_offsets(a.shape)
        cx, cy = measure_centroid(a)
        ux, uy = dx - cx, dy - cy
        ixx, iyy, ixy = ((a * p * q).sum() / total for p, q in ((ux, ux), (uy, uy), (ux, uy)))
        return Quadrupole(float(ixx), float(iyy), float(ixy))
    result = _adaptive_moments(a, max_iter, tol)
    if result is None:
        msg = f"adaptive moments did not converge on a {a.shape!r} stamp; pass adaptive=False for plain moments"
        raise PsfError(msg)
    _, _, m = result
    return Quadrupole(float(m[0, 0]), float(m[1, 1]), float(m[0, 1]))


def _adaptive_moments(
    a: np.ndarray, max_iter: int = 100, tol: float = 1e-9
) -> tuple[float, float, np.ndarray] | None:
    """Adaptive centroid ``(cx, cy)`` (offset from the central pixel) and moments, or None if not converged."""
    dx, dy = pixel_offsets(a.shape)
    cx, cy = measure_centroid(a)
    ux, uy = dx - cx, dy - cy
    total = a.sum()
    s2 = float((a * (ux * ux + uy * uy)).sum() / total) / 2.0
    # Start from a safe round weight; a sampled stamp is never narrower than ~1/12 px^2.
    m = np.eye(2) * (max(s2, 0.25) if np.isfinite(s2) and s2 > 0 else 1.0)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return _adaptive_loop(a, dx, dy, cx, cy, m, max_iter, tol)
    except np.linalg.LinAlgError:  # tiny or degenerate stamps: the caller falls back to plain moments
        return None


def _adaptive_loop(
    a: np.ndarray, dx: np.ndarray, dy: np.ndarray, cx: float, cy: float, m: np.ndarray, max_iter: int, tol: float
) -> tuple[float, float, np.ndarray] | None:
    for _ in range(max_iter):
        if not np.all(np.isfinite(m)):
            return None
        inv = np.linalg.inv(m)
        ux, uy = dx - cx, dy - cy
        w = a * np.exp(-0.5 * (inv[0, 0] * ux * ux + 2.0 * inv[0, 1] * ux * uy + inv[1, 1] * uy * uy))
        sw = w.sum()
        if not sw > 0:
            return None
        # Weighted centroid: a fixed point at the centre of any symmetric profile.
        cx += float((w * ux).sum() / sw)
        cy += float((w * uy).sum() / sw)
        ux, uy = dx - cx, dy - cy
        mxx, myy, mxy = (w * ux * ux).sum() / sw, (w * uy * uy).sum() / sw, (w * ux * uy).sum() / sw
        mw = np.array([[mxx, mxy], [mxy, myy]])
        # For a Gaussian of covariance C: mw^-1 = C^-1 + m^-1, so this step lands on C at once.
        cinv = np.linalg.inv(mw) - inv
        if np.linalg.det(cinv) > 0 and cinv[0, 0] > 0:
            new = np.linalg.inv(cinv)
        else:  # weight too narrow to deconvolve: widen it (the other classic update)
            new = 2.0 * mw
        done = np.abs(new - m).max() <= tol * np.trace(m)
        m = new
        if done:
            return cx, cy, m
    return None


def measure_fwhm(array: np.ndarray) -> float:
    """True FWHM (pixels) of a sampled PSF stamp, measured from its pixels.

    Parameters
    ----------
    array : numpy.ndarray
        2-D stamp with its peak near the central pixel.

    Returns
    -------
    float
        Diameter at which the azimuthally averaged profile falls to half its peak.

    Raises
    ------
    PsfError
        If the stamp has no positive pixel or too few pixels to fit a profile.

    Notes
    -----
    Every pixel is one sample ``(r, value)`` of the radial profile, with ``r`` measured from the
    sub-pixel adaptive centroid, so the azimuthal average needs no radial binning and is interpolated
    between pixels by local fits of ``log(value)``:

    1. a first guess ``r_half`` from a cubic in ``r^2`` over the pixels above 10 % of the maximum;
    2. the peak from a quadratic in ``r^2`` over the core pixels (``r <= r_half / 2``, and at least three
       distinct radii), so a centroid between pixels does not lower it (for a centred stamp it is the
       central pixel);
    3. twice: a quadratic in ``r`` over the band ``|r - r_half| <= max(1, 0.3 r_half)``, solved for
       ``peak / 2``.

    Exact for a Gaussian; better than 0.5 % for Moffat (beta >= 1.5) and double-Gaussian stamps with
    FWHM >= 2.5 px; a few per cent for FWHM ~ 2 px (undersampled). For an elliptical profile it returns
    the FWHM of the azimuthal average (between the minor- and major-axis FWHMs).
    """
    a = np.asarray(array, dtype=float)
    dx, dy = pixel_offsets(a.shape)
    peak_pix = a.max()
    if not peak_pix > 0:
        msg = f"cannot measure the FWHM of a stamp with non-positive maximum {peak_pix!r}"
        raise PsfError(msg)
    adaptive = _adaptive_moments(a, 50, 1e-7) if a.sum() > 0 else None
    cx, cy = adaptive[:2] if adaptive is not None else _core_centroid(a, dx, dy)
    r2 = np.broadcast_to((dx - cx) ** 2 + (dy - cy) ** 2, a.shape)
    r = np.sqrt(r2)
    pos = a > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _RankWarning)  # tiny fits on undersampled stamps
        bright = a > 0.1 * peak_pix
        if bright.sum() < 5:
            n = int(bright.sum())
            msg = f"only {n} pixels above 10% of the peak, too few to measure a FWHM; the stamp is undersampled"
            raise PsfError(msg)
        logv = np.log(np.where(pos, a, 1.0))
        guess = np.polynomial.Polynomial.fit(r2[bright], logv[bright], min(3, int(bright.sum()) - 2))
        r_half = _root_near(guess - (guess(0.0) - _LN2), None)
        r_half = math.sqrt(r_half) if r_half is not None else 1.0
        # The core holds at least three distinct radii (only one within 1.5 px of a corner centroid).
        radii = _distinct(r2[pos])
        cut = max(math.sqrt(radii[min(2, radii.size - 1)]) + 1e-3, 0.5 * r_half)
        core = pos & (r <= cut)
        n_distinct = _distinct(r2[core]).size
        if n_distinct >= 2:
            log_peak = float(np.polynomial.Polynomial.fit(r2[core], logv[core], min(2, n_distinct - 1))(0.0))
        else:
            log_peak = float(math.log(peak_pix))
        for _ in range(2):
            band = pos & (np.abs(r - r_half) <= max(1.0, 0.3 * r_half))
            if band.sum() < 3:
                break
            local = np.polynomial.Polynomial.fit(r[band], logv[band], 2)
            found = _root_near(local - (log_peak - _LN2), r_half)
            if found is None:
                break
            r_half = found
    return float(2.0 * r_half)



def _root_near(poly: np.polynomial.Polynomial, near: float | None) -> float | None:
    """The positive real root of ``poly`` nearest ``near`` (the smallest one if ``near`` is None)."""
    roots = poly.roots()
    real = roots[np.abs(roots.imag) < 1e-9].real
    real = real[real > 0]
    if real.size == 0:
        return None
    if near is None:
        return float(real.min())
    return float(real[np.argmin(np.abs(real - near))])


def _distinct(values: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Sorted values with near-duplicates (closer than ``tol``, e.g. from round-off) merged."""
    v = np.sort(values.ravel())
    if v.size == 0:
        return v
    return v[np.concatenate(([True], np.diff(v) > tol))]


def _core_centroid(a: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> tuple[float, float]:
    """Centroid from the pixels above half the maximum (insensitive to wings and noise)."""
    core = np.where(a >= 0.5 * a.max(), a, 0.0)
    s = core.sum()
    return float((core * dx).sum() / s), float((core * dy).sum() / s)
