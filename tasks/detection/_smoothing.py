"""Gaussian smoothing for detection: the matched filter by blocks of rows, the peak image by boxes.

Both are separable correlations (``scipy.ndimage.correlate1d`` along rows and columns). Along the
columns ``correlate1d`` walks strided lines and is ~3x slower than along the rows; here the column
pass is a banded matrix product per block of 16 rows (``M @ rows[r0 - h : r1 + h]``), which BLAS
runs at full speed: the same sums to round-off. :func:`matched_filter_candidates` does the whole
matched filter block by block in cache and computes the exact noise only for the ~1 % of pixels
that a lower bound of it cannot rule out; :func:`smooth_boxes` makes the peak-finding image only
around footprints, bit-identical to the whole-image ``correlate1d`` result there.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ._products import tiled_matmul
from .measure import FWHM_PER_SIGMA, cutouts

__all__ = [
    "BoxImages", "gaussian_taps", "matched_filter_candidates", "reference_candidates", "reference_labels",
    "reference_smooth_boxes", "reference_snr", "smooth_boxes",
]

#: Rows per block of the banded column pass (the band matrix is ``ROWS x (ROWS + 2 h)``): small
#: blocks waste few multiplications on the band's zeros.
_BLOCK_ROWS = 16


def gaussian_taps(fwhm: float) -> np.ndarray:
    """Unit-sum Gaussian taps of this FWHM (pixels), truncated at 4 sigma (at least 3 taps)."""
    sigma = fwhm / FWHM_PER_SIGMA
    half = max(1, int(math.ceil(4.0 * sigma)))
    g = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return g / g.sum()


def _band(r0: int, r1: int, c0: int, c1: int, n: int, taps: np.ndarray, mode: str, dtype: np.dtype) -> np.ndarray:
    """Matrix ``M`` with ``(M @ a[c0:c1])[i] = sum_k taps[k] a[r0 + i + k - h]`` under the boundary mode.

    ``"constant"`` drops the taps off the array (zero padding), ``"nearest"`` moves them to the
    first or last row, as ``scipy.ndimage`` does.
    """
    h = taps.size // 2
    out = np.zeros((r1 - r0, c1 - c0), dtype=dtype)
    rows = np.arange(r0, r1)
    local = rows - r0
    for k in range(-h, h + 1):
        src = rows + k
        if mode == "nearest":
            np.add.at(out, (local, np.clip(src, 0, n - 1) - c0), taps[k + h])
        else:
            inside = (src >= 0) & (src < n)
            out[local[inside], src[inside] - c0] += taps[k + h]
    return out


def _blocks(n: int, h: int, rows: int = _BLOCK_ROWS) -> list[tuple[int, int, int, int]]:
    """``(r0, r1, c0, c1)``: output rows ``[r0, r1)`` and the input rows ``[c0, c1)`` they need."""
    return [(r0, min(n, r0 + rows), max(0, r0 - h), min(n, r0 + rows + h)) for r0 in range(0, n, rows)]


class _BandCache:
    """Band matrices of one set of taps: the interior one is shared by every inner block."""

    def __init__(self, n: int, taps: np.ndarray, mode: str, dtype: np.dtype) -> None:
        self.n, self.taps, self.mode, self.dtype = n, taps, mode, dtype
        self.h = taps.size // 2
        self._interior: np.ndarray | None = None

    def get(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        h = self.h
        if r0 - h == c0 and r1 + h == c1:
            if self._interior is None or self._interior.shape[0] != r1 - r0:
                self._interior = _band(r0, r1, c0, c1, self.n, self.taps, self.mode, self.dtype)
            return self._interior
        return _band(r0, r1, c0, c1, self.n, self.taps, self.mode, self.dtype)


def reference_snr(resid: np.ndarray, var: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Whole-image matched-filter S/N with ``correlate1d`` (rows then columns): the plain definition.

    ``(resid ⊛ g) / sqrt(var ⊛ g²)``, ``g = taps``, zero padding for ``resid`` and nearest-pixel
    padding for ``var``. Used for inputs with non-finite values and as the reference in tests.
    """
    g2 = taps * taps
    snr = ndimage.correlate1d(resid, taps, axis=1, mode="constant", output=np.float64)
    ndimage.correlate1d(snr, taps, axis=0, mode="constant", output=snr)
    sigma = ndimage.correlate1d(var, g2, axis=1, mode="nearest", output=np.float64)
    ndimage.correlate1d(sigma, g2, axis=0, mode="nearest", output=sigma)
    np.sqrt(sigma, out=sigma)
    snr /= sigma
    return snr


def reference_candidates(resid: np.ndarray, var: np.ndarray, taps: np.ndarray, threshold: float,
                         *, finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`matched_filter_candidates` by its plain definition: the whole S/N map, thresholded.

    Flat indices of the pixels with ``|S/N| >= threshold`` and their S/N. ``finite`` is accepted
    for the same signature and ignored.
    """
    snr = reference_snr(resid, var, taps)
    index = np.flatnonzero(np.abs(snr) >= threshold)
    return index, snr.ravel()[index]


def reference_smooth_boxes(array: np.ndarray, taps: np.ndarray, boxes: np.ndarray) -> BoxImages:
    """:func:`smooth_boxes` by its plain definition: the boxes cut from the whole-image smoothing."""
    smooth = ndimage.correlate1d(array, taps, axis=1, mode="constant", output=np.float64)
    ndimage.correlate1d(smooth, taps, axis=0, mode="constant", output=smooth)
    return BoxImages.cut(smooth, boxes)


def reference_labels(pixels: np.ndarray, nx: int) -> tuple[np.ndarray, int]:
    """The detection's sparse 8-connected labelling by its plain definition: ``ndimage.label`` on a map."""
    plane = np.zeros((int(pixels.max()) // nx + 1 if pixels.size else 1) * nx, dtype=bool)
    plane[pixels] = True
    labels, n = ndimage.label(plane.reshape(-1, nx), structure=np.ones((3, 3), dtype=bool))
    return labels.ravel()[pixels].astype(np.int64), int(n)


def _screen_levels(var: np.ndarray, g2: np.ndarray, threshold: float, band: int) -> np.ndarray:
    """Per ``band``-row band and column, a level below which ``|resid ⊛ g|`` cannot reach ``threshold``.

    ``var ⊛ g²`` at a pixel is at least ``(sum g²)² min(var)`` over the pixel's window, which lies
    in the 3 x 3 neighbourhood of its ``band x band`` block (``band >= h``). The level is
    ``threshold sqrt`` of that bound, lowered by 1e-9 so round-off in the exact noise cannot make a
    screened-out pixel pass.
    """
    ny, nx = var.shape
    col_starts = np.arange(0, nx, band)
    # band by band: a minimum down the columns is vectorised, a 2-D reduceat is not
    lows = np.array([np.minimum.reduceat(var[r0 : r0 + band].min(axis=0), col_starts) for r0 in range(0, ny, band)])
    lows = ndimage.minimum_filter(lows.astype(np.float64), size=3, mode="nearest")
    level = threshold * float(g2.sum()) * np.sqrt(np.maximum(lows, 0.0)) * (1.0 - 1e-9)
    return np.repeat(level, band, axis=1)[:, :nx]


def matched_filter_candidates(
    resid: np.ndarray, var: np.ndarray, taps: np.ndarray, threshold: float, *, finite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose matched-filter ``|S/N|`` may reach ``threshold``, with their S/N.

    Parameters
    ----------
    resid : numpy.ndarray
        Background-subtracted image (2-D).
    var : numpy.ndarray
        Its variance, same shape.
    taps : numpy.ndarray
        The Gaussian ``g`` (odd number of centred taps, unit sum).
    threshold : float
        S/N level (> 0).
    finite : bool, optional
        The caller guarantees that both inputs are finite (skips a check).

    Returns
    -------
    index : numpy.ndarray
        Sorted flat indices of the candidates: every pixel with ``|S/N| >= threshold`` is one;
        every other pixel has ``|S/N| < threshold``.
    snr : numpy.ndarray
        ``S/N = (resid ⊛ g) / sqrt(var ⊛ g²)`` there (zero padding for ``resid``, nearest-pixel
        padding for ``var``), equal to :func:`reference_snr` to round-off.

    Notes
    -----
    Work goes block by block of rows, in cache, with no whole-image intermediate: the column pass
    of ``resid`` (a banded matrix product), its row pass (``correlate1d``), a screen of
    ``|resid ⊛ g|`` against a lower bound of the noise (the variance's minimum around the block),
    and, only for the few pixels passing it, the exact noise: the column pass of ``var`` for the
    block and the row taps gathered at those pixels. On a sky-limited image ~1 % of the pixels
    pass. Non-finite inputs take the whole-image :func:`reference_snr`.
    """
    ny, nx = resid.shape
    if not finite and not (np.isfinite(resid).all() and np.isfinite(var).all()):
        return reference_candidates(resid, var, taps, threshold)
    h = taps.size // 2
    g2 = taps * taps
    band = _BLOCK_ROWS * max(2, -(-h // _BLOCK_ROWS))  # >= h and a whole number of row blocks
    levels = _screen_levels(var, g2, threshold, band)
    cache_s = _BandCache(ny, taps, "constant", np.dtype(np.float64))
    cache_v = _BandCache(ny, g2, "nearest", np.dtype(np.float64))
    column = np.empty((_BLOCK_ROWS, nx))
    smooth = np.empty((_BLOCK_ROWS, nx))
    # the noise column pass goes into the middle of rows padded by h pixels each side, which then
    # repeat the edge pixels (nearest mode), so the row taps are gathered without clipping
    padded = np.empty((_BLOCK_ROWS, nx + 2 * h))
    tap_offsets = np.arange(2 * h + 1)
    var64 = var.dtype == np.float64 and var.flags.c_contiguous
    var_rows = None if var64 else np.empty((_BLOCK_ROWS + 2 * h, nx))
    found: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for r0, r1, c0, c1 in _blocks(ny, h):
        m = r1 - r0
        tiled_matmul(cache_s.get(r0, r1, c0, c1), resid[c0:c1], column[:m])
        ndimage.correlate1d(column[:m], taps, axis=1, mode="constant", output=smooth[:m])
        hit = np.flatnonzero(np.abs(smooth[:m]) >= levels[r0 // band])
        if hit.size == 0:
            continue
        if var64:
            src = var[c0:c1]
        else:
            src = var_rows[: c1 - c0]  # type: ignore[index]
            src[...] = var[c0:c1]
        noise = padded[:m]
        tiled_matmul(cache_v.get(r0, r1, c0, c1), src, noise[:, h : h + nx])
        noise[:, :h] = noise[:, h : h + 1]
        noise[:, h + nx :] = noise[:, h + nx - 1 : h + nx]
        rows, cols = np.divmod(hit, nx)
        # pixel (row, col + k) is at padded column col + k + h; taps k = -h .. h
        sigma2 = noise.ravel()[(rows * (nx + 2 * h) + cols)[:, None] + tap_offsets] @ g2
        found.append(hit + r0 * nx)
        values.append(smooth[:m].ravel()[hit] / np.sqrt(sigma2))
    if not found:
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    return np.concatenate(found), np.concatenate(values)


class BoxImages:
    """Values of an image inside a set of boxes, stored box after box (no whole-image array).

    Attributes
    ----------
    store : numpy.ndarray
        The boxes' pixels, row-major within each box, boxes in order.
    offset, top, left, height, width : numpy.ndarray
        Per box: start in ``store``, first row and column (image coordinates) and size.
    """

    def __init__(self, store: np.ndarray, top: np.ndarray, left: np.ndarray, height: np.ndarray, width: np.ndarray) -> None:
        self.store, self.top, self.left, self.height, self.width = store, top, left, height, width
        self.offset = np.concatenate([[0], np.cumsum(height * width)[:-1]]).astype(np.intp)

    @classmethod
    def empty(cls, boxes: np.ndarray) -> BoxImages:
        """Uninitialised storage for ``boxes`` (``(n, 4)``: y0, y1, x0, x1, half-open)."""
        y0, y1, x0, x1 = (boxes[:, i].astype(np.intp) for i in range(4))
        return cls(np.empty(int(((y1 - y0) * (x1 - x0)).sum())), y0, x0, y1 - y0, x1 - x0)

    @classmethod
    def cut(cls, array: np.ndarray, boxes: np.ndarray) -> BoxImages:
        """The pixels of ``array`` inside each box (``(n, 4)``: y0, y1, x0, x1, half-open)."""
        windows = cls.empty(boxes)
        for k, (y0, y1, x0, x1) in enumerate(boxes):
            windows.window(k)[...] = array[y0:y1, x0:x1]
        return windows

    def at(self, box: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Values at image pixels ``(rows, cols)``, each inside its box ``box`` (indices)."""
        return self.store[self.offset[box] + (rows - self.top[box]) * self.width[box] + (cols - self.left[box])]

    def window(self, box: int) -> np.ndarray:
        """The pixels of one box as a 2-D array (a view)."""
        start = self.offset[box]
        return self.store[start : start + self.height[box] * self.width[box]].reshape(self.height[box], self.width[box])


def smooth_boxes(array: np.ndarray, taps: np.ndarray, boxes: np.ndarray, *, largest: int = 65) -> BoxImages:
    """``array`` smoothed (constant boundary) only inside ``boxes``.

    Parameters
    ----------
    array : numpy.ndarray
        2-D C-ordered image (float64).
    taps : numpy.ndarray
        Odd number of centred taps.
    boxes : numpy.ndarray
        Shape ``(n, 4)``: ``y0, y1, x0, x1`` (half-open, inside the image).
    largest : int, optional
        Boxes whose window side is at most this are smoothed as stacks of equal windows (sides in
        steps of 8 pixels); larger ones one at a time.

    Returns
    -------
    BoxImages
        On every box pixel, ``correlate1d`` along axis 1 then axis 0 of ``array``
        (``mode="constant"``), bit for bit: each window holds the box plus the taps' reach (zeros
        beyond the image edge, as the constant mode), and ``correlate1d`` computes every output
        pixel from the same values in the same order.
    """
    out = BoxImages.empty(boxes)
    if boxes.shape[0] == 0:
        return out
    ny, nx = array.shape
    h = taps.size // 2
    y0, x0, height, width = out.top, out.left, out.height, out.width
    # odd window side 2 half + 1 >= box side + 2 h, half rounded up to a multiple of 4
    half = 4 * (-(-(np.maximum(height, width) + 2 * h - 1) // 8))
    stacked = 2 * half + 1 <= largest
    for size in np.unique(half[stacked]):
        sel = np.flatnonzero(stacked & (half == size))
        w = 2 * int(size) + 1
        top, left = y0[sel] - h, x0[sel] - h  # window corners
        stack = cutouts(array, left + size, top + size, int(size), fill=0.0)
        stack = ndimage.correlate1d(stack, taps, axis=2, mode="constant", output=np.float64)
        ndimage.correlate1d(stack, taps, axis=1, mode="constant", output=stack)
        # the box part of each window (offsets h .. h + box side), to its place in the store
        dy = np.arange(w)[None, :] - h
        in_rows = (dy >= 0) & (dy < height[sel][:, None])
        in_cols = (dy >= 0) & (dy < width[sel][:, None])
        write = in_rows[:, :, None] & in_cols[:, None, :]
        dest = out.offset[sel][:, None, None] + dy[:, :, None] * width[sel][:, None, None] + dy[:, None, :]
        out.store[dest[write]] = stack[write]
    for k in np.flatnonzero(~stacked):
        a0, a1 = max(0, int(y0[k]) - h), min(ny, int(y0[k] + height[k]) + h)
        b0, b1 = max(0, int(x0[k]) - h), min(nx, int(x0[k] + width[k]) + h)
        window = ndimage.correlate1d(array[a0:a1, b0:b1], taps, axis=1, mode="constant", output=np.float64)
        ndimage.correlate1d(window, taps, axis=0, mode="constant", output=window)
        out.window(k)[...] = window[y0[k] - a0 : y0[k] - a0 + height[k], x0[k] - b0 : x0[k] - b0 + width[k]]
    return out
