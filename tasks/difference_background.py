"""The differential background of a difference image: evaluation, subtraction and robust refit.

:class:`~diffim.tasks.imagePsfMatch.ImagePsfMatchTask` fits the background together with the
kernel (one spatial function, afw's ``Chebyshev1Function2`` or ``PolynomialFunction2``); with
``doRefitBackground`` the difference is refitted on robust block medians (:func:`refit_background`)
before :func:`subtract_function` removes it.

Everything here works on bands of rows or on a reshaped block view of them, so no temporary is
larger than a band and no Python loop runs over pixels or blocks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .image import Box2I, Mask

__all__ = [
    "BAND_ROWS",
    "REFIT_BAD_PLANES",
    "bin_medians",
    "evaluate",
    "refit_background",
    "subtract_function",
]

#: Mask planes whose pixels are left out of the background refit.
REFIT_BAD_PLANES: tuple[str, ...] = ("NO_DATA", "SAT", "BAD", "EDGE", "CR", "INTRP", "SUSPECT")
#: Rows per band when a spatial function is evaluated over a whole image (bounds the temporaries).
BAND_ROWS = 128


def evaluate(function: Any, bbox: Box2I, out: np.ndarray | None = None) -> np.ndarray:
    """A spatial function on every pixel of ``bbox`` (parent coordinates).

    Parameters
    ----------
    function : SpatialFunction
        The function (``function(x, y)`` broadcasts; Chebyshev and polynomial functions take a
        faster separable path).
    bbox : Box2I
        Pixels to evaluate it on.
    out : numpy.ndarray, optional
        Float64 array of the box's shape to write into (saves an allocation per call in loops).

    Returns
    -------
    numpy.ndarray
        Float64 array ``[y, x]`` of the box's shape (``out`` if given). Each pixel's value depends
        only on its own coordinates, so a band of rows gives exactly those rows of the whole box.
    """
    shape = (bbox.height, bbox.width)
    if out is None:
        out = np.empty(shape)
    elif out.shape != shape or out.dtype != np.float64:
        msg = f"out must be a float64 array of the box's shape {shape}, got {out.dtype} {out.shape}; allocate it so"
        raise ValueError(msg)
    _Evaluator(function, bbox.minX, bbox.width).rows(bbox.minY, out, None)
    return out


class _Evaluator:
    """A spatial function over the columns ``x0 .. x0+width-1``, evaluated band of rows by band.

    Chebyshev and polynomial functions are sums of terms ``f_i(x) g_j(y)`` whose ``(i, 0)`` and
    ``(0, j)`` terms are the factors: the terms are grouped by their power of ``y`` into one row
    vector per power (computed once), so a band is written once per power of ``y`` instead of once
    per term. Other functions are called on the band's grid.
    """

    def __init__(self, function: Any, x0: int, width: int) -> None:
        from .kernel.functions import Chebyshev1Function2, PolynomialFunction2, term_powers

        self.function = function
        self.xs = x0 + np.arange(width, dtype=float)
        self.separable = type(function) in (Chebyshev1Function2, PolynomialFunction2)
        if not self.separable:
            return
        powers = term_powers(function.order)
        self.index = {p: t for t, p in enumerate(powers)}
        along_x = np.atleast_2d(function.term_values(self.xs, 0.0))
        coefficients = np.asarray(function.getParameters(), dtype=float)
        self.row_vectors: list[tuple[int, np.ndarray]] = []
        for j in range(function.order + 1):
            row = np.zeros(width)
            for t, (i, jj) in enumerate(powers):
                if jj == j and coefficients[t] != 0.0:
                    row += coefficients[t] * along_x[:, self.index[(i, 0)]]
            if row.any():
                self.row_vectors.append((j, row))

    def rows(self, y0: int, out: np.ndarray, scratch: np.ndarray | None) -> None:
        """The function on rows ``y0 .. y0+len(out)-1`` into ``out``; ``scratch``: work array or None."""
        ys = y0 + np.arange(out.shape[0], dtype=float)
        if not self.separable:
            out[...] = self.function(self.xs[None, :], ys[:, None])
            return
        if not self.row_vectors:
            out.fill(0.0)
            return
        along_y = np.atleast_2d(self.function.term_values(self.xs[0], ys))
        for n, (j, row) in enumerate(self.row_vectors):
            column = along_y[:, self.index[(0, j)], None]
            if n == 0:
                np.multiply(column, row[None, :], out=out)
                continue
            if scratch is None:
                scratch = np.empty_like(out)
            np.multiply(column, row[None, :], out=scratch)
            out += scratch


def subtract_function(image: np.ndarray, function: Any, bbox: Box2I) -> None:
    """``image -= function`` in place, in bands of :data:`BAND_ROWS` rows.

    Parameters
    ----------
    image : numpy.ndarray
        Floating array ``[y, x]`` covering ``bbox``; the difference is computed in float64 and
        stored in the array's own type.
    function : SpatialFunction
        The function to subtract (see :func:`evaluate`).
    bbox : Box2I
        Parent box of ``image``.
    """
    evaluator = _Evaluator(function, bbox.minX, bbox.width)
    values = np.empty((min(BAND_ROWS, bbox.height), bbox.width))
    scratch = np.empty_like(values)
    for r0 in range(0, bbox.height, BAND_ROWS):
        r1 = min(r0 + BAND_ROWS, bbox.height)
        band = values[: r1 - r0]
        evaluator.rows(bbox.minY + r0, band, scratch[: r1 - r0])
        np.subtract(image[r0:r1], band, out=image[r0:r1], casting="same_kind")


# ------------------------------------------------------------------------------------------------
# Block medians
# ------------------------------------------------------------------------------------------------
class _Blocks:
    """Work arrays for the block statistics of bands of rows, kept from one band to the next.

    A band ``[row, x]`` is copied to a ``[bin, row, column]`` array in which each ``size``-wide bin
    is contiguous (the last bin padded when ``size`` does not divide the width). Reusing the arrays
    saves an allocation, and the first-touch page faults that come with it, per band.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._arrays: dict[tuple[Any, ...], np.ndarray] = {}

    def array(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A work array of ``shape`` and ``dtype`` (the same one for the same ``key`` and shape)."""
        name = (key, shape, np.dtype(dtype).str)
        if name not in self._arrays:
            self._arrays[name] = np.empty(shape, dtype=dtype)
        return self._arrays[name]

    def to_blocks(self, band: np.ndarray, pad: Any, key: str) -> np.ndarray:
        """``band`` as ``[bin, row, column]`` (a work array); columns past the width set to ``pad``."""
        rows, width = band.shape
        size = self.size
        full, rest = divmod(width, size)
        out = self.array(key, (full + (rest > 0), rows, size), band.dtype)
        np.copyto(out[:full], band[:, : full * size].reshape(rows, full, size).swapaxes(0, 1))
        if rest:
            out[full, :, :rest] = band[:, full * size :]
            out[full, :, rest:] = pad
        return out

    def medians(self, values: np.ndarray, bad: np.ndarray | None, counts: np.ndarray) -> np.ndarray:
        """Median of the good pixels of each bin (``np.median``'s value, in ``values``' type).

        ``bad`` is the ``[bin, row, column]`` mask of pixels to leave out (None: none),
        ``counts`` the number of good pixels per bin; NaN for a bin without any.
        """
        blocks = self.to_blocks(values, math.inf, "values")
        # bad pixels become +inf, so the n good values of a bin are its n smallest (np.partition,
        # unlike np.sort, does not reliably put NaN last)
        if bad is not None:
            np.copyto(blocks, values.dtype.type(math.inf), where=bad)
        flat = blocks.reshape(blocks.shape[0], -1)
        upper_ranks = counts // 2
        out = np.full(flat.shape[0], np.nan, dtype=values.dtype)
        two = values.dtype.type(2)
        # bins grouped by their upper middle rank (one group for most bands): one partition each,
        # at one rank (each extra rank would cost every row of the call another selection); the
        # lower middle of an even count is then the largest value before it
        for rank in np.unique(upper_ranks[counts > 0]):
            rows = np.flatnonzero((upper_ranks == rank) & (counts > 0))
            part = flat if rows.size == flat.shape[0] else flat[rows]
            part.partition(rank, axis=1)
            upper = part[:, rank]
            even = counts[rows] % 2 == 0
            if even.any():
                lower = part[even, :rank].max(axis=1)
                # np.median averages the two middle values in the array's own type
                upper[even] = (lower + upper[even]) / two
            out[rows] = upper
        return out

    def good_blocks(self, good: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``good`` as ``[bin, row, column]`` (padding not good) and its complement (None if all good)."""
        blocks = self.to_blocks(good, False, "good")
        if blocks.all():
            return blocks, None
        bad = self.array("bad", blocks.shape, bool)
        np.logical_not(blocks, out=bad)
        return blocks, bad


def bin_medians(values: np.ndarray, good: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Count and median of the good pixels of each ``size``-wide bin of a band of rows.

    Parameters
    ----------
    values : numpy.ndarray
        Floating band ``[row, x]``; its good pixels must be finite.
    good : numpy.ndarray
        Boolean array of the same shape: pixels to use.
    size : int
        Bin width in pixels; the last bin is narrower when ``size`` does not divide the width.

    Returns
    -------
    counts : numpy.ndarray
        Number of good pixels per bin.
    medians : numpy.ndarray
        Median per bin, equal to ``np.median`` of the bin's good values (in ``values``' type);
        NaN for a bin without good pixels.
    """
    work = _Blocks(int(size))
    good_blocks, bad = work.good_blocks(np.asarray(good, dtype=bool))
    counts = np.count_nonzero(good_blocks.reshape(good_blocks.shape[0], -1), axis=1)
    return counts, work.medians(values, bad, counts)


# ------------------------------------------------------------------------------------------------
# The refit
# ------------------------------------------------------------------------------------------------
def refit_background(image: np.ndarray, mask: np.ndarray, variance: np.ndarray, base: Any, bbox: Box2I,
                     bin_size: int) -> Any:
    """``base`` plus a function of its kind fitted to robust bin medians of ``image - base``.

    Parameters
    ----------
    image, mask, variance : numpy.ndarray
        The difference image's planes ``[y, x]`` on ``bbox``.
    base : SpatialFunction
        The background from the kernel fit (with ``term_values``, ``copy_with``).
    bbox : Box2I
        Parent box of the planes.
    bin_size : int
        Bin side in pixels (clamped to ``[8, half the image side]``).

    Returns
    -------
    SpatialFunction
        ``base`` with refitted parameters, or ``base`` itself when fewer than twice its number of
        parameters bins are usable.

    Notes
    -----
    Pixels in :data:`REFIT_BAD_PLANES`, non-finite or with a non-positive variance are left out;
    bins with fewer than a quarter of their pixels (and fewer than 16) usable are skipped. Each
    bin gives its median at the mean position of its good pixels, weighted by
    ``n / (π/2 · median variance)`` (the variance of the median of ``n`` Gaussian values); bins
    more than 5 sigma off the first fit (a bright residual, a transient) are dropped and the fit
    repeated once. The residual is formed one band of bins at a time and every bin of a band is
    done at once.
    """
    from .image.mask_planes import mask_planes

    bits = Mask.getPlaneBitMask([p for p in REFIT_BAD_PLANES if p in mask_planes])
    h, w = image.shape
    size = int(max(8, min(bin_size, max(h // 2, 1), max(w // 2, 1))))
    n_bins = -(-w // size)
    widths = np.minimum(size, w - np.arange(n_bins) * size)
    work = _Blocks(size)
    evaluator = _Evaluator(base, bbox.minX, w)
    xs, ys, values, weights = [], [], [], []
    for r0 in range(0, h, size):
        r1 = min(r0 + size, h)
        shape = (r1 - r0, w)
        resid = work.array("resid", shape, np.float64)
        evaluator.rows(bbox.minY + r0, resid, work.array("scratch", shape, np.float64))
        np.subtract(image[r0:r1], resid, out=resid)
        var = variance[r0:r1]
        good = work.array("good_band", shape, bool)
        test = work.array("test", shape, bool)
        np.equal(np.bitwise_and(mask[r0:r1], bits, out=work.array("bits", shape, mask.dtype)), 0, out=good)
        good &= np.isfinite(resid, out=test)
        with np.errstate(invalid="ignore"):
            good &= np.greater(var, 0, out=test)
        good &= np.isfinite(var, out=test)
        good_blocks, bad = work.good_blocks(good)
        # good pixels per bin and per (bin, row) and (bin, column): counts and mean positions
        per_row = np.count_nonzero(good_blocks, axis=2)
        n = per_row.sum(axis=1)
        row_sums = per_row @ np.arange(r1 - r0)
        col_sums = np.count_nonzero(good_blocks, axis=1) @ np.arange(size)
        enough = n >= np.maximum(16, ((r1 - r0) * widths) // 4)
        if not enough.any():
            continue
        medians = work.medians(resid, bad, n)
        var_medians = work.medians(var, bad, n)
        for b in np.flatnonzero(enough):
            count = int(n[b])
            xs.append(bbox.minX + b * size + col_sums[b] / count)
            ys.append(bbox.minY + r0 + row_sums[b] / count)
            values.append(float(medians[b]))
            # the median of n Gaussian values has variance (pi/2) var / n
            weights.append(count / (0.5 * math.pi * float(var_medians[b])))
    n_terms = base.getNParameters()
    if len(values) < 2 * n_terms:
        return base
    xs_a, ys_a, v, wt = (np.asarray(a, dtype=float) for a in (xs, ys, values, weights))
    design = np.asarray(base.term_values(xs_a, ys_a), dtype=float).reshape(v.size, n_terms)
    # A bin far off the others (a bright residual over most of it) would drag the first
    # least-squares fit so far that the 5-sigma clip against it keeps too few bins: drop bins
    # that are both significant and beyond 10 robust sigma of the bin values first.
    keep = _robust_first_keep(v, wt)
    if keep.sum() < 2 * n_terms:
        keep = np.ones(v.size, dtype=bool)
    params = np.zeros(n_terms)
    for _ in range(3):
        sw = np.sqrt(wt[keep])
        params = np.linalg.lstsq(design[keep] * sw[:, None], v[keep] * sw, rcond=None)[0]
        new_keep = np.abs((v - design @ params) * np.sqrt(wt)) <= 5.0
        if new_keep.sum() < 2 * n_terms:
            if not keep.all():
                break  # the fit on the pre-clipped bins stands
            return base  # the fit fails its own clip: keep the kernel fit's background
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return base.copy_with(np.asarray(base.getParameters()) + params)


def _robust_first_keep(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bins not both beyond 10 robust sigma (1.4826 MAD) of the bin values and 5 sigma significant."""
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    off = np.abs(values - centre)
    return ~((off > 10.0 * spread) & (off * np.sqrt(weights) > 5.0))
