"""Matrix products kept on one BLAS thread, for the smoothing and background interpolation.

OpenBLAS splits a product over threads once ``m n k`` exceeds ~262 000, and its threads spin while
waiting: with the other core busy (another process, or this one's own work), a threaded product of
a few million operations can run ten times slower than on one thread. Products here are cut into
tiles below that size and run as one batched ``numpy.matmul`` call (a C loop over the tiles), which
is as fast as a single call on an idle machine and does not collapse on a loaded one.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["tiled_matmul"]

#: Largest ``m n k`` of one tile (OpenBLAS stays on one thread below ~262 000).
PRODUCT_SIZE = 200_000
#: Rows of ``a`` per tile.
TILE_ROWS = 64


def _tiles(a: np.ndarray, b: np.ndarray, out: np.ndarray, m: int, n: int) -> None:
    """``out = a @ b`` with ``a`` cut into ``m``-row and ``b`` into ``n``-column tiles (both exact)."""
    rows, k = a.shape
    cols = b.shape[1]
    a_view = as_strided(a, (rows // m, 1, m, k), (m * a.strides[0], 0, a.strides[0], a.strides[1]))
    b_view = as_strided(b, (1, cols // n, k, n), (0, n * b.strides[1], b.strides[0], b.strides[1]))
    out_view = as_strided(
        out, (rows // m, cols // n, m, n), (m * out.strides[0], n * out.strides[1], out.strides[0], out.strides[1])
    )
    np.matmul(a_view, b_view, out=out_view)


def tiled_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` in tiles of at most :data:`PRODUCT_SIZE` multiply-adds (one BLAS thread).

    Parameters
    ----------
    a : numpy.ndarray
        ``(M, K)`` matrix.
    b : numpy.ndarray
        ``(K, N)`` matrix with unit column stride (e.g. a row slice of a C-ordered array), of
        ``a``'s dtype.
    out : numpy.ndarray
        ``(M, N)`` output with unit column stride, of ``a``'s dtype; not overlapping ``a`` or ``b``.

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    rows, k = a.shape
    cols = b.shape[1]
    if rows == 0 or cols == 0:
        return out
    if k == 0:
        out[...] = 0
        return out
    m = min(rows, TILE_ROWS)
    n = min(cols, max(16, PRODUCT_SIZE // (m * k) // 16 * 16))
    r_cut, c_cut = rows - rows % m, cols - cols % n
    _tiles(a[:r_cut], b[:, :c_cut], out[:r_cut, :c_cut], m, n)
    if c_cut < cols:
        _tiles(a[:r_cut], b[:, c_cut:], out[:r_cut, c_cut:], m, cols - c_cut)
    if r_cut < rows:
        tiled_matmul(a[r_cut:], b, out[r_cut:])
    return out
