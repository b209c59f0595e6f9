"""Vectorised per-source measurements: cut-outs, windowed centroids, aperture fluxes, sizes.

Each function takes arrays of positions (0-based array coordinates, ``x`` = column) and works on
all sources at once with small stacked cut-outs, so measuring thousands of sources costs a few
numpy calls rather than a Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FWHM_PER_SIGMA",
    "Apertures",
    "adaptive_sigma",
    "cutouts",
    "guess_fwhm",
    "stellar_sigma",
    "take",
    "windowed_centroid",
]

#: FWHM of a Gaussian in units of its sigma.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def cutouts(array: np.ndarray, xi: np.ndarray, yi: np.ndarray, half: int, fill: float | None = 0.0) -> np.ndarray:
    """Square cut-outs of side ``2 half + 1`` centred on integer pixels, stacked.

    Parameters
    ----------
    array : numpy.ndarray
        2-D image.
    xi, yi : numpy.ndarray of int
        Central pixels (column, row), shape ``(n,)``.
    half : int
        Half side of the cut-outs.
    fill : float or None, optional
        Value for cut-out pixels outside the image; None repeats the nearest edge pixel.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 2 half + 1, 2 half + 1)``; ``[k, half, half]`` is ``array[yi[k], xi[k]]``.
    """
    off = np.arange(-half, half + 1)
    yi = np.asarray(yi, dtype=np.intp)
    xi = np.asarray(xi, dtype=np.intp)
    ny, nx = array.shape
    if yi.size and yi.min() >= half and yi.max() < ny - half and xi.min() >= half and xi.max() < nx - half:
        # every cut-out inside the image (the usual case): no clipping or filling
        return take(array, yi[:, None, None] + off[None, :, None], xi[:, None, None] + off[None, None, :])
    rows = yi[:, None, None] + off[None, :, None]
    cols = xi[:, None, None] + off[None, None, :]
    inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    out = take(array, np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1))
    if fill is not None and not inside.all():
        out = np.where(inside, out, np.asarray(fill, dtype=out.dtype))
    return out


def take(array: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``array[rows, cols]`` (indices inside the array, broadcast together).

    A C-ordered array is read through flat indices, several times faster than fancy indexing
    with two index arrays.
    """
    if array.flags.c_contiguous:
        return array.ravel()[rows * array.shape[1] + cols]
    return array[rows, cols]


def windowed_centroid(
    image: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    sigma: float,
    *,
    max_iter: int = 20,
    tol: float = 1e-4,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-windowed, flux-weighted centroids (SExtractor's ``XWIN_IMAGE``), iterated.

    Parameters
    ----------
    image : numpy.ndarray
        Background-subtracted image (bad pixels set to 0).
    x0, y0 : numpy.ndarray
        Starting positions (e.g. peak pixels), array coordinates.
    sigma : float
        Sigma of the Gaussian window in pixels (the PSF's, ``FWHM / 2.3548``).
    max_iter : int, optional
        Iteration limit.
    tol : float, optional
        Stop when every position moves less than this (pixels).
    scale : float, optional
        Factor applied to the image values (``-1`` measures negative sources as bumps without
        negating a copy of the whole image).

    Returns
    -------
    x, y : numpy.ndarray
        Centroids in array coordinates. A source whose weighted flux is not positive, or whose
        centroid wanders more than ``2 sigma`` from its start (a blend, or noise), gets the plain
        flux-weighted centroid of the positive pixels in the 3 x 3 box around its start instead.

    Notes
    -----
    The window is centred on the current estimate, so for any point-symmetric profile the centre is
    a fixed point: unlike a centroid in a fixed box, the result is not pulled towards the pixel grid.
    The update ``x += 2 sum(w I (x - xc)) / sum(w I)`` converges in one step for a Gaussian matching
    the window.
    """
    x0 = np.asarray(x0, dtype=float)
    y0 = np.asarray(y0, dtype=float)
    if x0.size == 0:
        return x0.copy(), y0.copy()
    sigma = max(float(sigma), 0.5)
    half = int(math.ceil(4.0 * sigma)) + 2
    xi, yi = np.round(x0).astype(np.intp), np.round(y0).astype(np.intp)
    stamps = cutouts(image, xi, yi, half)
    if scale != 1.0:
        stamps = stamps * scale
    off = np.arange(-half, half + 1, dtype=float)
    cx, cy = x0 - xi, y0 - yi
    inv2s2 = 0.5 / sigma**2
    wsum = np.ones_like(cx)
    for _ in range(max_iter):
        # The window is separable, w = wy (column) x wx (row): the three weighted sums are two
        # stacked matrix-vector products and 1-D sums, not operations on whole stamps.
        ux = off[None, :] - cx[:, None]
        uy = off[None, :] - cy[:, None]
        wx = np.exp(-inv2s2 * ux * ux)
        wy = np.exp(-inv2s2 * uy * uy)
        by_row = np.matmul(stamps, np.stack([wx, wx * ux], axis=2))  # (n, rows, 2)
        wsum = np.einsum("ky,ky->k", wy, by_row[:, :, 0])
        safe = np.where(wsum > 0, wsum, 1.0)
        step_x = np.clip(2.0 * np.einsum("ky,ky->k", wy, by_row[:, :, 1]) / safe, -1.0, 1.0)
        step_y = np.clip(2.0 * np.einsum("ky,ky->k", wy * uy, by_row[:, :, 0]) / safe, -1.0, 1.0)
        step_x[wsum <= 0] = 0.0
        step_y[wsum <= 0] = 0.0
        cx += step_x
        cy += step_y
        if max(np.abs(step_x).max(), np.abs(step_y).max()) < tol:
            break
    lost = ~(wsum > 0) | (np.hypot(cx - (x0 - xi), cy - (y0 - yi)) > 2.0 * sigma) | ~np.isfinite(cx + cy)
    if lost.any():
        core = np.clip(stamps[lost, half - 1 : half + 2, half - 1 : half + 2], 0.0, None)
        tot = core.sum(axis=(1, 2))
        ok = tot > 0
        o3 = np.array([-1.0, 0.0, 1.0])
        fx = np.where(ok, (core * o3[None, None, :]).sum(axis=(1, 2)) / np.where(ok, tot, 1.0), 0.0)
        fy = np.where(ok, (core * o3[None, :, None]).sum(axis=(1, 2)) / np.where(ok, tot, 1.0), 0.0)
        cx[lost], cy[lost] = fx, fy
    return xi + cx, yi + cy


@dataclass(frozen=True)
class Apertures:
    """Circular apertures at sub-pixel positions, with approximate pixel-overlap weights.

    A pixel's weight is ``clip(r + 0.5 - d, 0, 1)`` with ``d`` the distance of its centre from the
    aperture centre: 1 well inside, 0 outside, linear across a one-pixel band at the rim, which
    makes the enclosed area (and flux) vary smoothly with the sub-pixel position.

    Parameters
    ----------
    shape : tuple of int
        Image shape.
    x, y : numpy.ndarray
        Aperture centres, array coordinates.
    radius : float
        Radius in pixels.
    """

    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray
    inside: np.ndarray

    @classmethod
    def build(cls, shape: tuple[int, int], x: np.ndarray, y: np.ndarray, radius: float) -> Apertures:
        """Weights of circular apertures of ``radius`` pixels at ``(x, y)`` on an image of ``shape``."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        half = int(math.ceil(radius)) + 1
        xi, yi = np.round(x).astype(np.intp), np.round(y).astype(np.intp)
        off = np.arange(-half, half + 1)
        rows = yi[:, None, None] + off[None, :, None]
        cols = xi[:, None, None] + off[None, None, :]
        d = np.hypot(cols - x[:, None, None], rows - y[:, None, None])
        weight = np.clip(radius + 0.5 - d, 0.0, 1.0)
        ny, nx = shape
        inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
        rows_b, cols_b = np.broadcast_arrays(rows, cols)
        return cls(np.clip(rows_b, 0, ny - 1), np.clip(cols_b, 0, nx - 1), weight, inside)

    def sum(self, array: np.ndarray, power: int = 1) -> np.ndarray:
        """``sum(weight**power * array)`` over each aperture (pixels off the image count 0)."""
        w = self.weight**power if power != 1 else self.weight
        return (np.where(self.inside, w * take(array, self.rows, self.cols), 0.0)).sum(axis=(1, 2))

    def off_image(self) -> np.ndarray:
        """Whether part of each aperture falls off the image."""
        return ((self.weight > 0) & ~self.inside).any(axis=(1, 2))


def adaptive_sigma(
    stamps: np.ndarray,
    *,
    sigma0: float = 1.5,
    max_iter: int = 30,
    tol: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round adaptive second moments of stacked, centred stamps: the Gaussian-equivalent sigma.

    Parameters
    ----------
    stamps : numpy.ndarray
        Shape ``(n, 2h+1, 2h+1)``, background-subtracted, each source near the central pixel.
    sigma0 : float, optional
        Starting weight sigma in pixels.
    max_iter : int, optional
        Iteration limit.
    tol : float, optional
        Relative convergence tolerance on sigma.

    Returns
    -------
    sigma : numpy.ndarray
        Gaussian-equivalent sigma per stamp in pixels (NaN where the iteration failed). For a
        Gaussian source this is its sigma (pixel-convolved); for other profiles it is the sigma of the
        best-matching Gaussian, a robust size for comparing sources (stars vs galaxies vs cosmic rays).
    cx, cy : numpy.ndarray
        Weighted centroid offsets from the central pixel.

    Notes
    -----
    With a round Gaussian weight of sigma ``s`` the weighted per-axis second moment of a Gaussian of
    sigma ``S`` is ``m = S² s² / (S² + s²)``, so ``S² = m s² / (s² - m)``: the update reaches ``S`` in
    one step for a Gaussian and converges for other profiles. Where ``s² <= m`` (weight much too
    narrow) the weight is doubled instead.
    """
    stamps = np.asarray(stamps, dtype=float)
    n, h, w = stamps.shape
    oy = np.arange(h, dtype=float) - h // 2
    ox = np.arange(w, dtype=float) - w // 2
    s2 = np.full(n, float(sigma0) ** 2)
    cx = np.zeros(n)
    cy = np.zeros(n)
    smax2 = (min(h, w) / 3.0) ** 2
    ok = np.ones(n, dtype=bool)
    for _ in range(max_iter):
        ux = ox[None, None, :] - cx[:, None, None]
        uy = oy[None, :, None] - cy[:, None, None]
        r2 = ux * ux + uy * uy
        wi = stamps * np.exp(-0.5 * r2 / s2[:, None, None])
        tot = wi.sum(axis=(1, 2))
        ok = tot > 0
        safe = np.where(ok, tot, 1.0)
        cx = np.where(ok, cx + np.clip((wi * ux).sum(axis=(1, 2)) / safe, -1, 1), cx)
        cy = np.where(ok, cy + np.clip((wi * uy).sum(axis=(1, 2)) / safe, -1, 1), cy)
        m = 0.5 * (wi * r2).sum(axis=(1, 2)) / safe
        new = np.where((s2 > m) & (m > 0), m * s2 / np.maximum(s2 - m, 1e-12), 2.0 * s2)
        new = np.clip(new, 0.04, smax2)
        done = np.abs(new - s2) <= tol * s2
        s2 = np.where(ok, new, s2)
        if (done | ~ok).all():
            break
    sigma = np.sqrt(s2)
    sigma[~ok | (s2 >= smax2)] = np.nan
    return sigma, cx, cy


def guess_fwhm(
    resid: np.ndarray,
    snr: np.ndarray | None,
    usable: np.ndarray,
    *,
    snr_min: float = 20.0,
    max_sources: int = 200,
    half: int = 10,
    default: float = 3.0,
    variance: np.ndarray | None = None,
) -> float:
    """Rough PSF FWHM (pixels) from the brightest compact peaks, when no PSF is known.

    Parameters
    ----------
    resid : numpy.ndarray
        Background-subtracted image (bad pixels 0).
    snr : numpy.ndarray or None
        Per-pixel signal-to-noise ``resid / sigma``; None to compute it from ``variance``, only
        at the few pixels that need it.
    usable : numpy.ndarray of bool
        Pixels that may hold a peak (not saturated or masked).
    snr_min : float, optional
        Peak pixel S/N for a source to be used (halved once if fewer than 5 are found).
    max_sources : int, optional
        Use at most this many of the brightest peaks.
    half : int, optional
        Half side of the cut-outs measured.
    default : float, optional
        Returned when fewer than 3 sources can be measured.
    variance : numpy.ndarray, optional
        Per-pixel variance (> 0), needed when ``snr`` is None.

    Returns
    -------
    float
        Median Gaussian-equivalent FWHM (``2.3548`` times the adaptive sigma, pixels).

    Notes
    -----
    A peak is a pixel equal to the maximum S/N of its 5 x 5 neighbourhood (edges repeated), at
    least ``half`` pixels from the edges, whose whole neighbourhood is usable. Only pixels above
    the lowest S/N level searched are examined, so the cost follows the number of bright pixels,
    not the image size.
    """
    if snr is None and variance is None:
        msg = "guess_fwhm needs the S/N map or the variance"
        raise ValueError(msg)
    ny, nx = resid.shape
    lowest = 0.5 * snr_min
    flat_r = resid.ravel()

    def snr_at(index: np.ndarray) -> np.ndarray:
        if snr is not None:
            return snr.ravel()[index]
        return flat_r[index] / np.sqrt(variance.ravel()[index])  # type: ignore[union-attr]

    if snr is not None:
        cand = np.flatnonzero(snr > lowest)
    else:
        # a superset of the pixels with resid / sqrt(var) > lowest, without a full S/N map
        with np.errstate(invalid="ignore"):
            cand = np.flatnonzero((resid > 0) & (np.square(resid) > (0.99 * lowest) ** 2 * variance))
    value = snr_at(cand)
    cand, value = cand[value > lowest], value[value > lowest]
    rows, cols = np.divmod(cand, nx)
    base = (rows >= half) & (rows < ny - half) & (cols >= half) & (cols < nx - half)
    flat_u = usable.ravel()
    for dr in range(-2, 3):
        for dc in range(-2, 3):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < ny) & (c >= 0) & (c < nx)
            nb = np.clip(r, 0, ny - 1) * nx + np.clip(c, 0, nx - 1)
            # clean: the whole 5x5 neighbourhood usable (a saturated core is flat and wide)
            base &= inside & flat_u[nb]
            if dr or dc:
                base &= value >= snr_at(nb)
    for level in (snr_min, 0.5 * snr_min):
        chosen = np.flatnonzero(base & (value > level))
        if chosen.size >= 5:
            break
    if chosen.size < 3:
        return float(default)
    order = np.argsort(-value[chosen])[:max_sources]
    sig, _, _ = adaptive_sigma(cutouts(resid, cols[chosen][order], rows[chosen][order], half))
    sig = sig[np.isfinite(sig)]
    if sig.size < 3:
        return float(default)
    return float(FWHM_PER_SIGMA * stellar_sigma(sig))


def stellar_sigma(sigmas: np.ndarray, *, window: float = 0.10, min_members: int = 5, min_fraction: float = 0.05,
                  below_median: float = 0.7, min_sigma: float = 0.5) -> float:
    """Size of the stars among bright sources: the median, unless a compact group is much smaller.

    Parameters
    ----------
    sigmas : numpy.ndarray
        Adaptive Gaussian sigmas (pixels) of bright sources, finite.
    window : float, optional
        Relative width of a compact group (sizes within ``[s, s·(1 + window)]``).
    min_members, min_fraction : int, float, optional
        A group needs at least this many members and this fraction of the sources.
    below_median : float, optional
        Only a group whose sizes are below this fraction of the median replaces the median.
    min_sigma : float, optional
        Smaller sizes (hot pixels, cosmic rays) never form the group.

    Returns
    -------
    float
        The median sigma, or the median of the smallest compact group.

    Notes
    -----
    Where bright sources are mostly stars, their median size is the PSF's. In a galaxy cluster or a
    deep extragalactic field the brightest sources are mostly galaxies (the JWST A2744 frames: median
    FWHM 10.5 px, stars 2.4 px). Stars are then the smallest sources whose sizes agree: the first
    window of relative width ``window`` holding enough of them, well below the median, is taken.
    """
    values = np.sort(np.asarray(sigmas, dtype=float))
    median = float(np.median(values))
    need = max(min_members, int(math.ceil(min_fraction * values.size)))
    if values.size < need:
        return median
    upper = np.searchsorted(values, values * (1.0 + window), side="right")
    counts = upper - np.arange(values.size)
    ok = (counts >= need) & (values >= min_sigma) & (values * (1.0 + window) < below_median * median)
    if not ok.any():
        return median
    first = int(np.argmax(ok))
    return float(np.median(values[first:upper[first]]))
