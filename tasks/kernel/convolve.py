"""Whole-image convolution in afw's conventions: exact, and never a kernel per pixel.

Conventions (afw ``convolve``, spec §1.3)
-----------------------------------------
* **Correlation, no flip**: ``out[y, x] = Σ_{ky,kx} K[ky, kx] · in[y - ctrY + ky, x - ctrX + kx]``
  with ``(ctrX, ctrY) = kernel.getCtr()``; a spatially varying kernel is evaluated at the *output*
  pixel's parent position.
* **Valid region** = ``kernel.shrinkBBox(bbox)``. Outside it every plane gets afw's *edge pixel*
  (image NaN, variance +inf, mask ``NO_DATA`` only), or with ``doCopyEdge`` the input pixel (image,
  variance and mask bits) with ``EDGE`` added.
* **Variance** ``Σ K² · var`` (the correlation of the variance with ``K²``).
* **Mask** smearing: OR of the input mask over the kernel *footprint* (kernel pixels that are non-zero).
* **Non-finite pixels** stay local: the FFT works on zero-filled data and the output is set to NaN
  (``+inf`` for an infinite variance) wherever the footprint touches a non-finite input, as afw's
  direct sum ``Σ K·in`` does (afw skips zero kernel pixels, so the footprint is the reach).

How the spatially varying kernel is made fast and exact
-------------------------------------------------------
A :class:`LinearCombinationKernel` with spatial parameters ``p`` (``n_basis × n_terms``) is
``K(x, y) = Σ_k a_k(x, y) B_k = Σ_j P_j(x, y) K_j`` with ``K_j = Σ_k p_kj B_k`` and ``P_j`` the
spatial function's terms. So the image is ``Σ_j P_j(x, y) · (I ⋆ K_j)``: ``n_terms`` correlations
(6 for order 2), not ``n_basis`` (27 for an AL basis), and no per-pixel kernel. The variance needs
``K² = Σ_{j≤j'} (2 - δ_jj') P_j P_j' · (K_j K_j')``; the ``n_terms(n_terms+1)/2`` weights
``P_j P_j'`` are linearly dependent (for order-2 polynomials or Chebyshev products they span only
the 15 order-4 terms), so the pairs are regrouped over an independent subset found by a pivoted QR
on sample points, verified at other points (no regrouping if the check fails): 15 correlations
instead of 21 for order 2, still exact. ``variance="center"`` instead uses ``K²`` realised at the
image centre (one correlation); its relative error is the relative change of ``Σ K²·var`` over
the image, i.e. of ``Σ K²`` where the variance is smooth: zero for a fixed kernel, typically a few
per cent for a fitted AL kernel whose sum or width varies across the image.

Correlations are FFTs over overlapping tiles (overlap-save: each tile is transformed once and reused
for every kernel; kernel spectra are computed once at the tile size), in float64 whatever the pixel
type, spread over ``workers`` threads; kernels of at most :data:`_DIRECT_MAX_AREA` pixels use
``scipy.ndimage.correlate``. Both are exact to float64 round-off.

LSST's own ``convolve`` is *not* exact for a spatially varying kernel: with its default
``ConvolutionControl`` it realises the kernel on a grid of points at most
``maxInterpolationDistance`` (10) pixels apart, linearly interpolates the kernel *image* between
them (checking the interpolation error against a tolerance) and takes one dot product per pixel, for
the image (``K``) and the variance (``K²`` of the interpolated kernel). The result therefore differs
from the exact per-pixel kernel by the interpolation error (tiny for smooth kernels). This module
evaluates the exact per-pixel kernel; ``variance="exact"`` is what LSST aims at, ``"center"`` is the
cheaper approximation also used by LSST's decorrelation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._lazy import LazyModule
from ..image.geom import Box2I
from ..image.images import Image, ImageError, Mask, MaskedImage
from .functions import Chebyshev1Function2, PolynomialFunction2, SpatialFunction, term_powers
from .kernels import Kernel, KernelError, LinearCombinationKernel

_fft = LazyModule("scipy.fft")  # ~0.15 s import that configuring a task does not need

__all__ = ["convolve", "convolveAndSubtract", "convolve_array"]

#: Kernels with at most this many pixels are correlated directly (scipy.ndimage), larger ones by FFT.
_DIRECT_MAX_AREA = 9
#: Target FFT tile side (overlap-save); tiles shrink to the image when it is smaller.
_FFT_TILE = 256
#: Output rows per work item of the mask smearing.
_MASK_BLOCK_ROWS = 256

VarianceMode = Literal["exact", "center"]


# ------------------------------------------------------------------------------------------------
# Kernel decomposition: K(x, y) = Σ_m w_m(x, y) · kernels[m]
# ------------------------------------------------------------------------------------------------
@dataclass
class _Terms:
    """Kernel images and their weights over the valid output grid.

    Weights are either separable (``rows[m][:, None] * cols[m][None, :]``), given by ``full(r0, r1)``
    (an array ``(m, r1 - r0, w_out)``), or absent (a single fixed kernel, weight 1).
    """

    kernels: np.ndarray
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None
    full: Callable[[int, int], np.ndarray] | None = None

    @property
    def m(self) -> int:
        return self.kernels.shape[0]

    @property
    def weighted(self) -> bool:
        return self.rows is not None or self.full is not None

    def weights(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray | None:
        """Weights ``(m, r1 - r0, c1 - c0)`` of output rows ``r0:r1``, columns ``c0:c1`` (None if fixed)."""
        if self.rows is not None and self.cols is not None:
            return self.rows[:, r0:r1, None] * self.cols[:, None, c0:c1]
        if self.full is not None:
            return self.full(r0, r1)[:, :, c0:c1]
        return None

    def weigher(self, r0: int, r1: int, c0: int, c1: int) -> Callable[[int, np.ndarray], None] | None:
        """``apply(i, block)``: multiply a ``(r1 - r0, c1 - c0)`` block by weight ``i`` in place (None if fixed)."""
        if self.rows is not None and self.cols is not None:
            # two in-place passes on a cache-sized block beat building an (m, rows, cols) weight array
            row_factors = self.rows[:, r0:r1, None]
            col_factors = self.cols[:, None, c0:c1]

            def apply(i: int, block: np.ndarray) -> None:
                block *= row_factors[i]
                block *= col_factors[i]

            return apply
        if self.full is not None:
            full = self.full(r0, r1)[:, :, c0:c1]

            def apply_full(i: int, block: np.ndarray) -> None:
                block *= full[i]

            return apply_full
        return None

    def kernel_sum(self, r0: int, r1: int, w_out: int) -> np.ndarray | float:
        """Kernel sum at output rows ``r0:r1`` (a scalar for a fixed kernel)."""
        sums = self.kernels.sum(axis=(1, 2))
        w = self.weights(r0, r1, 0, w_out)
        if w is None:
            return float(sums[0])
        return np.tensordot(sums, w, axes=1)


def _footprint(kernels: np.ndarray) -> np.ndarray:
    """Pixels where any of the kernels is non-zero: the kernel's reach over the whole image."""
    return np.any(kernels != 0, axis=0)


def _is_separable(func: SpatialFunction) -> bool:
    # Both afw families are products f_i(x) g_j(y) of one-axis factors whose (i, 0) and (0, j)
    # terms are the factors themselves; other SpatialFunction subclasses are evaluated in full.
    return type(func) in (PolynomialFunction2, Chebyshev1Function2)


def _kernel_terms(kernel: Kernel, origin: tuple[int, int], h_out: int, w_out: int) -> _Terms:
    """Decompose ``kernel`` over the valid output grid whose first pixel is at parent ``origin``."""
    if not kernel.isSpatiallyVarying():
        return _Terms(kernel.computeImage()[None].astype(float))
    if not isinstance(kernel, LinearCombinationKernel):
        msg = (
            f"cannot convolve with a spatially varying {type(kernel).__name__}; "
            "use a LinearCombinationKernel with a spatial function (or a fixed kernel)"
        )
        raise KernelError(msg)
    func = kernel.getSpatialFunction()
    assert func is not None
    params = kernel.getSpatialParameters()  # (n_basis, n_terms)
    kernels = np.tensordot(params.T, kernel.basis_images, axes=1)  # K_j = Σ_k p_kj B_k
    keep = np.flatnonzero(np.any(kernels != 0, axis=(1, 2)))
    if keep.size == 0:  # an all-zero kernel: one zero correlation keeps the code path uniform
        return _Terms(np.zeros((1, kernel.height, kernel.width)))
    kernels = kernels[keep]
    x0, y0 = origin
    xs = x0 + np.arange(w_out, dtype=float)
    ys = y0 + np.arange(h_out, dtype=float)
    if _is_separable(func):
        powers = term_powers(func.order)
        index = {p: t for t, p in enumerate(powers)}
        along_x = np.atleast_2d(func.term_values(xs, ys[0]))  # (w_out, n_terms)
        along_y = np.atleast_2d(func.term_values(xs[0], ys))  # (h_out, n_terms)
        rows = np.stack([along_y[:, index[(0, powers[t][1])]] for t in keep])
        cols = np.stack([along_x[:, index[(powers[t][0], 0)]] for t in keep])
        return _Terms(kernels, rows=rows, cols=cols)

    def full(r0: int, r1: int) -> np.ndarray:
        values = func.term_values(xs[None, :], ys[r0:r1, None])  # (rows, w_out, n_terms)
        return np.ascontiguousarray(np.moveaxis(values, -1, 0)[keep])

    return _Terms(kernels, full=full)


def _sample_indices(n: int, count: int, shift: float) -> np.ndarray:
    """About ``count`` distinct integer positions spread over ``0..n-1`` (offset by ``shift``)."""
    if n <= count:
        return np.arange(n)
    return np.unique(np.clip(np.round(np.linspace(0, n - 1, count) + shift), 0, n - 1).astype(int))


def _square_terms(terms: _Terms, h_out: int, w_out: int) -> _Terms:
    """``K²`` as a weighted sum of kernels, regrouped over independent weights (exact)."""
    if not terms.weighted:
        return _Terms(terms.kernels**2)
    n = terms.m
    pairs = [(a, b) for a in range(n) for b in range(a, n)]
    products = np.stack([terms.kernels[a] * terms.kernels[b] for a, b in pairs])
    factor = np.array([1.0 if a == b else 2.0 for a, b in pairs])
    keep = np.flatnonzero(np.any(products != 0, axis=(1, 2)))  # e.g. disjoint delta functions
    pairs = [pairs[i] for i in keep]
    products, factor = products[keep], factor[keep]
    ia = np.array([a for a, _ in pairs])
    ib = np.array([b for _, b in pairs])

    if terms.rows is not None and terms.cols is not None:
        rows = factor[:, None] * terms.rows[ia] * terms.rows[ib]
        cols = terms.cols[ia] * terms.cols[ib]
        squared = _Terms(products, rows=rows, cols=cols)
    else:
        base_full = terms.full
        assert base_full is not None

        def full(r0: int, r1: int) -> np.ndarray:
            w = base_full(r0, r1)
            return factor[:, None, None] * w[ia] * w[ib]

        squared = _Terms(products, full=full)
    return _regroup(squared, h_out, w_out)


def _sample_weights(terms: _Terms, ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
    """Weights at the grid ``ri × ci`` of output indices, as a ``(points, m)`` matrix."""
    if terms.rows is not None and terms.cols is not None:
        grid = terms.rows[:, ri, None] * terms.cols[:, None, ci]
    else:
        assert terms.full is not None
        grid = np.stack([terms.full(int(r), int(r) + 1)[:, 0, ci] for r in ri], axis=1)
    return grid.reshape(terms.m, -1).T


def _regroup(terms: _Terms, h_out: int, w_out: int) -> _Terms:
    """Fewer kernels with the same sum: keep an independent subset of the weight functions.

    With weights ``w_p = Σ_q A[q, p] w_q`` over a subset ``Q``, ``Σ_p w_p L_p = Σ_q w_q (Σ_p A[q, p] L_p)``.
    The subset comes from a pivoted QR of the (column-scaled) weights on a sample grid; the identity
    is then checked on a second grid, and if it does not hold to round-off nothing is regrouped.
    """
    m = terms.m
    count = max(16, int(np.ceil(np.sqrt(3 * m))))
    sample = _sample_weights(terms, _sample_indices(h_out, count, 0), _sample_indices(w_out, count, 0))
    if sample.shape[0] < m:
        return terms
    import scipy.linalg  # lazy: ~0.1 s of import for a rarely needed routine

    scale = np.abs(sample).max(axis=0)
    scale[scale == 0] = 1.0
    _, r_factor, piv = scipy.linalg.qr(sample / scale, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r_factor))
    rank = int(np.sum(diag > 1e-9 * diag[0])) if diag.size and diag[0] > 0 else 0
    if rank == 0 or rank >= m:
        return terms
    chosen = np.sort(piv[:rank])
    scaled = sample / scale
    coeffs, *_ = np.linalg.lstsq(scaled[:, chosen], scaled, rcond=None)  # (rank, m), scaled weights
    coeffs *= scale[None, :] / scale[chosen, None]
    check = _sample_weights(terms, _sample_indices(h_out, count + 3, 0.37), _sample_indices(w_out, count + 3, 0.61))
    error = np.abs(check - check[:, chosen] @ coeffs).max(axis=0)
    if np.any(error > 1e-10 * np.maximum(np.abs(check).max(axis=0), 1e-300)):
        return terms
    kernels = np.tensordot(coeffs, terms.kernels, axes=1)
    if terms.rows is not None and terms.cols is not None:
        return _Terms(kernels, rows=terms.rows[chosen], cols=terms.cols[chosen])
    base_full = terms.full
    assert base_full is not None
    return _Terms(kernels, full=lambda r0, r1: base_full(r0, r1)[chosen])


# ------------------------------------------------------------------------------------------------
# Correlation engine
# ------------------------------------------------------------------------------------------------
def _resolve_workers(workers: int | None) -> int:
    if workers is None:
        return 1
    n = int(workers)
    if n < 0:
        n = (os.cpu_count() or 1) + 1 + n
    if n < 1:
        msg = f"workers must be a positive number of threads (or negative to count back from the CPU count), got {workers!r}"
        raise ValueError(msg)
    return n


def _parallel(fn: Callable[[Any], None], items: Sequence[Any], workers: int) -> None:
    if workers <= 1 or len(items) <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        for _ in pool.map(fn, items):  # re-raises the first error of any item
            pass


def _tile_plan(n_out: int, k: int) -> tuple[int, int]:
    """FFT length and output pixels per tile along one axis."""
    target = max(_FFT_TILE, _fft.next_fast_len(4 * k, real=True))
    need = n_out + k - 1
    if need <= target + target // 4:  # one tile covers the axis
        n = _fft.next_fast_len(need, real=True)
        return n, n_out
    n = _fft.next_fast_len(target, real=True)
    return n, n - k + 1


def _correlate_sum(
    src: np.ndarray,
    terms: _Terms,
    sink: Callable[[int, int, np.ndarray], None],
    *,
    workers: int,
    nonfinite: bool,
    method: Literal["auto", "fft", "direct"] = "auto",
) -> None:
    """Compute ``Σ_m w_m · (src ⋆ kernels[m])`` over the valid region, strip by strip.

    ``sink(r0, r1, block)`` receives float64 output rows ``r0:r1`` (valid-region indices), possibly
    from several threads at once (disjoint rows). Non-finite input pixels are treated as 0 when
    ``nonfinite`` is set (the sink restores NaN locally).
    """
    m, kh, kw = terms.kernels.shape
    h_in, w_in = src.shape
    h_out, w_out = h_in - kh + 1, w_in - kw + 1
    if method == "auto":
        method = "direct" if kh * kw <= _DIRECT_MAX_AREA else "fft"

    if method == "direct":
        import scipy.ndimage  # lazy: only small kernels come here

        ty = min(h_out, _FFT_TILE)
        cx, cy = (kw - 1) // 2, (kh - 1) // 2
        origin = ((kh - 1) // 2 - kh // 2, (kw - 1) // 2 - kw // 2)

        def run_direct(r0: int) -> None:
            r1 = min(r0 + ty, h_out)
            sub = src[r0 : r1 + kh - 1].astype(float)
            if nonfinite:
                np.nan_to_num(sub, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            w = terms.weights(r0, r1, 0, w_out)
            block = np.zeros((r1 - r0, w_out))
            for i in range(m):
                full = scipy.ndimage.correlate(sub, terms.kernels[i], mode="constant", cval=0.0, origin=origin)
                part = full[cy : cy + r1 - r0, cx : cx + w_out]
                block += part if w is None else part * w[i]
            sink(r0, r1, block)

        _parallel(run_direct, range(0, h_out, ty), workers)
        return

    ny, ty = _tile_plan(h_out, kh)
    nx, tx = _tile_plan(w_out, kw)
    flipped = np.ascontiguousarray(terms.kernels[:, ::-1, ::-1])
    spectra = _fft.rfft2(flipped, s=(ny, nx), axes=(-2, -1))  # correlation = convolution with K flipped

    def run_fft(r0: int) -> None:
        r1 = min(r0 + ty, h_out)
        rows = r1 - r0
        block = np.empty((rows, w_out))
        buf = np.zeros((ny, nx))
        product = np.empty(spectra.shape[1:], dtype=complex)
        for c0 in range(0, w_out, tx):
            c1 = min(c0 + tx, w_out)
            cols = c1 - c0
            rin, cin = rows + kh - 1, cols + kw - 1
            if rin < ny or cin < nx:
                buf.fill(0.0)
            buf[:rin, :cin] = src[r0 : r0 + rin, c0 : c0 + cin]
            if nonfinite:
                np.nan_to_num(buf, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            spectrum = _fft.rfft2(buf)
            apply = terms.weigher(r0, r1, c0, c1)
            acc = None
            for i in range(m):
                np.multiply(spectrum, spectra[i], out=product)
                # full convolution index p = valid index + k - 1 is free of wrap-around
                out = _fft.irfft2(product, s=(ny, nx), overwrite_x=True)[kh - 1 : kh - 1 + rows, kw - 1 : kw - 1 + cols]
                if apply is not None:
                    apply(i, out)
                if acc is None:
                    acc = out
                else:
                    acc += out
            block[:, c0:c1] = acc
        sink(r0, r1, block)

    _parallel(run_fft, range(0, h_out, ty), workers)


# ------------------------------------------------------------------------------------------------
# Masks: OR over the footprint (binary dilation of every bit plane at once)
# ------------------------------------------------------------------------------------------------
class _WindowOr:
    """OR over windows of ``L`` consecutive elements along one axis, by doubling (log2 L passes)."""

    def __init__(self, arr: np.ndarray, axis: int) -> None:
        self.axis = axis
        self.levels = {1: arr}

    def _take(self, arr: np.ndarray, start: int, length: int) -> np.ndarray:
        return arr[:, start : start + length] if self.axis == 1 else arr[start : start + length]

    def _level(self, p: int) -> np.ndarray:
        if p not in self.levels:
            half = self._level(p // 2)
            n = half.shape[self.axis] - p // 2
            self.levels[p] = self._take(half, 0, n) | self._take(half, p // 2, n)
        return self.levels[p]

    def window(self, length: int) -> np.ndarray:
        p = 1 << (length.bit_length() - 1)
        level = self._level(p)
        if p == length:
            return level
        n = level.shape[self.axis] - (length - p)
        return self._take(level, 0, n) | self._take(level, length - p, n)


def _footprint_runs(footprint: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """``(x start, run length) -> [(first row, number of rows), ...]`` covering the footprint."""
    by_run: dict[tuple[int, int], list[int]] = {}
    for ky, row in enumerate(footprint):
        edges = np.diff(np.concatenate(([0], row.astype(np.int8), [0])))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            by_run.setdefault((int(a), int(b - a)), []).append(ky)
    runs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for key, kys in by_run.items():
        spans: list[tuple[int, int]] = []
        for ky in kys:
            if spans and spans[-1][0] + spans[-1][1] == ky:
                spans[-1] = (spans[-1][0], spans[-1][1] + 1)
            else:
                spans.append((ky, 1))
        runs[key] = spans
    return runs


def _or_correlate(arr: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Valid-mode ``out[y, x] = OR_{footprint[ky, kx]} arr[y + ky, x + kx]`` (ints or bools)."""
    kh, kw = footprint.shape
    h_out, w_out = arr.shape[0] - kh + 1, arr.shape[1] - kw + 1
    out = np.zeros((h_out, w_out), dtype=arr.dtype)
    along_x = _WindowOr(arr, axis=1)
    for (a, length), spans in _footprint_runs(footprint).items():
        along_y = _WindowOr(along_x.window(length), axis=0)
        for b, count in spans:
            out |= along_y.window(count)[b : b + h_out, a : a + w_out]
    return out


def _smear_mask(mask: np.ndarray, footprint: np.ndarray, workers: int) -> np.ndarray:
    """OR of ``mask`` over ``footprint`` in the valid region (row blocks in parallel, narrow dtype)."""
    kh, kw = footprint.shape
    h_out, w_out = mask.shape[0] - kh + 1, mask.shape[1] - kw + 1
    out = np.zeros((h_out, w_out), dtype=mask.dtype)
    bits = mask.view(np.uint32) if mask.dtype == np.int32 else mask
    present = int(np.bitwise_or.reduce(bits, axis=None)) if bits.size else 0
    if present == 0:
        return out
    # fewer bytes per pixel when only low planes are set: the passes are memory-bound
    narrow = np.uint8 if present < 1 << 8 else np.uint16 if present < 1 << 16 else bits.dtype

    def run(r0: int) -> None:
        r1 = min(r0 + _MASK_BLOCK_ROWS, h_out)
        block = bits[r0 : r1 + kh - 1].astype(narrow)
        out[r0:r1] = _or_correlate(block, footprint)

    _parallel(run, range(0, h_out, _MASK_BLOCK_ROWS), workers)
    return out


def _restore_nonfinite(block: np.ndarray, src_rows: np.ndarray, footprint: np.ndarray, *, variance: bool) -> None:
    """Set NaN (or +inf for an infinite variance) where the footprint touches non-finite input."""
    bad = ~np.isfinite(src_rows)
    if not bad.any():
        return
    if variance:  # K² ≥ 0: +inf stays +inf; NaN or a negative infinity is not a variance
        posinf = src_rows == np.inf
        if posinf.any():
            block[_or_correlate(posinf, footprint)] = np.inf
        bad &= ~posinf
        if not bad.any():
            return
    block[_or_correlate(bad, footprint)] = np.nan


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def _check_kernel(kernel: Any) -> Kernel:
    if not isinstance(kernel, Kernel):
        msg = f"kernel must be a diffim.tasks.kernel.Kernel, got {type(kernel).__name__}"
        raise TypeError(msg)
    return kernel


def _check_variance_mode(variance: str) -> None:
    if variance not in ("exact", "center"):
        msg = f"variance must be 'exact' or 'center', got {variance!r}"
        raise ValueError(msg)


@dataclass
class _Plan:
    """Everything about one convolution that does not depend on the plane being convolved."""

    valid: Box2I
    slices: tuple[slice, slice]
    terms: _Terms
    footprint: np.ndarray
    normalize: bool  # per-pixel division by the kernel sum (spatially varying kernels)


def _plan(kernel: Kernel, bbox: Box2I, *, doNormalize: bool) -> _Plan:  # noqa: N803
    valid = kernel.shrinkBBox(bbox)
    terms = _kernel_terms(kernel, (valid.minX, valid.minY), valid.height, valid.width)
    normalize = False
    if doNormalize:
        if terms.weighted:
            normalize = True
        else:  # a fixed kernel: normalise the kernel itself
            total = terms.kernels.sum()
            if total == 0:
                msg = f"cannot normalize {kernel!r}: its sum is 0; convolve with doNormalize=False"
                raise KernelError(msg)
            terms = _Terms(terms.kernels / total)
    return _Plan(valid, valid.slices(bbox.getMin()), terms, _footprint(terms.kernels), normalize)


def _convolve_image_plane(
    src: np.ndarray,
    plan: _Plan,
    write: Callable[[int, int, np.ndarray], None],
    workers: int,
) -> None:
    """Image plane: correlation, local NaN, optional per-pixel normalisation, then ``write``."""
    nonfinite = not bool(np.isfinite(src).all())
    kh, kw = plan.footprint.shape
    w_out = plan.valid.width

    def sink(r0: int, r1: int, block: np.ndarray) -> None:
        if nonfinite:
            _restore_nonfinite(block, src[r0 : r1 + kh - 1], plan.footprint, variance=False)
        if plan.normalize:
            with np.errstate(divide="ignore", invalid="ignore"):
                block /= plan.terms.kernel_sum(r0, r1, w_out)
        write(r0, r1, block)

    _correlate_sum(src, plan.terms, sink, workers=workers, nonfinite=nonfinite)


def _convolve_variance_plane(
    src: np.ndarray,
    plan: _Plan,
    kernel: Kernel,
    bbox: Box2I,
    mode: str,
    write: Callable[[int, int, np.ndarray], None],
    workers: int,
) -> None:
    """Variance plane: ``Σ K² var`` (exact regrouped pairs, or K realised at the centre)."""
    nonfinite = not bool(np.isfinite(src).all())
    kh, kw = plan.footprint.shape
    w_out = plan.valid.width
    if mode == "center" and plan.terms.weighted:
        centre = kernel.computeImage(*bbox.getCenter())
        if plan.normalize:
            centre = centre / centre.sum()
        squared = _Terms(centre[None] ** 2)
        normalize = False
    else:
        squared = _square_terms(plan.terms, plan.valid.height, w_out)
        normalize = plan.normalize

    def sink(r0: int, r1: int, block: np.ndarray) -> None:
        if nonfinite:
            _restore_nonfinite(block, src[r0 : r1 + kh - 1], plan.footprint, variance=True)
        if normalize:
            with np.errstate(divide="ignore", invalid="ignore"):
                block /= plan.terms.kernel_sum(r0, r1, w_out) ** 2
        write(r0, r1, block)

    _correlate_sum(src, squared, sink, workers=workers, nonfinite=nonfinite)


def convolve(
    masked_image: MaskedImage,
    kernel: Kernel,
    *,
    doNormalize: bool = False,  # noqa: N803 - LSST name
    doCopyEdge: bool = False,  # noqa: N803 - LSST name
    workers: int | None = None,
    variance: VarianceMode = "exact",
) -> MaskedImage:
    """Convolve a masked image with a (possibly spatially varying) kernel, as afw does.

    Parameters
    ----------
    masked_image : MaskedImage
        Input; not modified.
    kernel : Kernel
        A fixed kernel or a spatially varying :class:`LinearCombinationKernel`, evaluated at each
        output pixel's parent position.
    doNormalize : bool
        Divide by the kernel sum at each pixel (the variance by its square).
    doCopyEdge : bool
        Outside the valid region copy the input pixels and add ``EDGE`` (instead of NaN, +inf variance
        and ``NO_DATA``).
    workers : int, optional
        Threads for the FFTs and mask passes (``None``: 1; negative: counted back from the CPU count,
        as in :mod:`scipy.fft`).
    variance : {"exact", "center"}
        ``"exact"``: ``Σ K(x, y)² var`` per pixel (``n(n+1)/2`` correlations for ``n`` spatial terms,
        fewer after regrouping: 15 for order 2). ``"center"``: ``K`` realised at the image centre
        (one correlation); see the module notes for its error. Identical for a fixed kernel.

    Returns
    -------
    MaskedImage
        A new masked image with the input's box and dtype.

    Raises
    ------
    KernelError
        The image is smaller than the kernel, a fixed kernel sums to 0 with ``doNormalize``, or the
        kernel varies spatially without being a LinearCombinationKernel.

    Notes
    -----
    The mask of a spatially varying kernel is smeared over the pixels where any spatial-term kernel
    ``K_j = Σ_k p_kj B_k`` is non-zero, i.e. where ``K(x, y)`` is non-zero somewhere on the image
    (afw uses the kernel realised at each pixel; the two differ only where the spatial combination
    cancels a pixel exactly). This is never larger than the union of the contributing bases.
    """
    if not isinstance(masked_image, MaskedImage):
        msg = f"convolve needs a MaskedImage, got {type(masked_image).__name__}; use convolve_array for a bare array"
        raise TypeError(msg)
    _check_kernel(kernel)
    _check_variance_mode(variance)
    n_workers = _resolve_workers(workers)
    bbox = masked_image.getBBox()
    plan = _plan(kernel, bbox, doNormalize=doNormalize)
    rows, cols = plan.slices
    y_first = rows.start
    image_in = masked_image.image.array
    var_in = masked_image.variance.array
    mask_in = masked_image.mask.array
    dtype = image_in.dtype

    if doCopyEdge:
        image_out = image_in.copy()
        var_out = var_in.astype(dtype, copy=True)
        mask_out = mask_in | np.int32(Mask.getPlaneBitMask("EDGE"))
    else:
        image_out = np.full(image_in.shape, np.nan, dtype=dtype)
        var_out = np.full(image_in.shape, np.inf, dtype=dtype)
        mask_out = np.full(mask_in.shape, Mask.getPlaneBitMask("NO_DATA"), dtype=mask_in.dtype)

    def writer(target: np.ndarray) -> Callable[[int, int, np.ndarray], None]:
        def write(r0: int, r1: int, block: np.ndarray) -> None:
            target[y_first + r0 : y_first + r1, cols] = block

        return write

    _convolve_image_plane(image_in, plan, writer(image_out), n_workers)
    _convolve_variance_plane(var_in, plan, kernel, bbox, variance, writer(var_out), n_workers)
    mask_out[rows, cols] = _smear_mask(mask_in, plan.footprint, n_workers)
    return MaskedImage(Image(image_out, xy0=bbox.getMin()), Mask(mask_out, xy0=bbox.getMin()), Image(var_out, xy0=bbox.getMin()))


def convolve_array(
    array: Any,
    kernel: Kernel,
    *,
    xy0: tuple[int, int] = (0, 0),
    doNormalize: bool = False,  # noqa: N803 - LSST name
    workers: int | None = None,
) -> np.ndarray:
    """Convolve a bare 2-D array (image plane only) with afw's conventions.

    Parameters
    ----------
    array : array_like
        2-D pixels, ``[y - y0, x - x0]``.
    kernel : Kernel
        Fixed or spatially varying kernel (evaluated at parent positions, hence ``xy0``).
    xy0 : tuple of int
        Parent coordinates of ``array[0, 0]``.
    doNormalize : bool
        Divide by the kernel sum at each pixel.
    workers : int, optional
        Threads (see :func:`convolve`).

    Returns
    -------
    numpy.ndarray
        Same shape; the valid region holds the correlation, the rest is NaN. Float input keeps its
        dtype, other input gives float64.
    """
    _check_kernel(kernel)
    src = np.asarray(array)
    if src.ndim != 2:
        msg = f"convolve_array needs a 2-D array, got shape {src.shape}"
        raise ImageError(msg)
    dtype = src.dtype if src.dtype.kind == "f" else np.dtype(float)
    bbox = Box2I(xy0, (src.shape[1], src.shape[0]))
    plan = _plan(kernel, bbox, doNormalize=doNormalize)
    rows, cols = plan.slices
    out = np.full(src.shape, np.nan, dtype=dtype)

    def write(r0: int, r1: int, block: np.ndarray) -> None:
        out[rows.start + r0 : rows.start + r1, cols] = block

    _convolve_image_plane(src, plan, write, _resolve_workers(workers))
    return out


def _background_block(background: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray | float:
    if callable(background):
        return np.broadcast_to(np.asarray(background(x[None, :], y[:, None]), dtype=float), (y.size, x.size))
    return float(background)


def convolveAndSubtract(  # noqa: N802 - LSST name
    template: MaskedImage | Image,
    science: MaskedImage,
    kernel: Kernel,
    background: float | SpatialFunction | Callable[[Any, Any], Any] = 0.0,
    *,
    invert: bool = True,
    workers: int | None = None,
    variance: VarianceMode = "exact",
) -> MaskedImage:
    """Difference image ``D = S − (K ⋆ T + bg)`` (spec §6.2).

    Parameters
    ----------
    template : MaskedImage or Image
        Image to convolve (``T``).
    science : MaskedImage
        Image not convolved (``S``); must have the template's box.
    kernel : Kernel
        Matching kernel, never normalised here.
    background : float or callable
        A scalar, or ``f(x, y)`` of parent coordinates (e.g. a :class:`SpatialFunction`), called once per
        block of rows with broadcastable arrays ``x`` (shape ``(1, W)``) and ``y`` (``(rows, 1)``).
    invert : bool
        True: ``S − (K⋆T + bg)``; False: ``(K⋆T + bg) − S``.
    workers : int, optional
        Threads (see :func:`convolve`).
    variance : {"exact", "center"}
        How ``K² ⋆ var_T`` is computed (see :func:`convolve`).

    Returns
    -------
    MaskedImage
        For a MaskedImage template: variance ``var_S + K²⋆var_T``, mask ``S | smeared T``; outside the
        valid region image NaN, variance +inf and mask ``NO_DATA | S`` (afw's edge pixel combined with
        the science pixel). For an Image template: the science mask and variance copied unchanged (as
        LSST does), image NaN outside the valid region. Dtype: common type of template and science.
    """
    _check_kernel(kernel)
    _check_variance_mode(variance)
    if not isinstance(science, MaskedImage):
        msg = f"science must be a MaskedImage, got {type(science).__name__}"
        raise TypeError(msg)
    if isinstance(template, MaskedImage):
        template_image, template_mi = template.image, template
    elif isinstance(template, Image) and not isinstance(template, Mask):
        template_image, template_mi = template, None
    else:
        msg = f"template must be a MaskedImage or an Image, got {type(template).__name__}"
        raise TypeError(msg)
    bbox = science.getBBox()
    if template_image.getBBox() != bbox:
        msg = f"template box {template_image.getBBox()} differs from science box {bbox}; cut both to a common box first"
        raise ImageError(msg)
    n_workers = _resolve_workers(workers)
    plan = _plan(kernel, bbox, doNormalize=False)
    rows, cols = plan.slices
    y_first = rows.start
    science_image = science.image.array
    dtype = np.result_type(template_image.dtype, science.dtype)
    image_out = np.full(science_image.shape, np.nan, dtype=dtype)
    xs = plan.valid.minX + np.arange(plan.valid.width, dtype=float)

    def write_difference(r0: int, r1: int, block: np.ndarray) -> None:
        ys = plan.valid.minY + np.arange(r0, r1, dtype=float)
        block += _background_block(background, xs, ys)
        science_rows = science_image[y_first + r0 : y_first + r1, cols]
        if invert:
            np.subtract(science_rows, block, out=block)
        else:
            block -= science_rows
        image_out[y_first + r0 : y_first + r1, cols] = block

    _convolve_image_plane(template_image.array, plan, write_difference, n_workers)

    if template_mi is None:
        mask_out = science.mask.array.copy()
        var_out = science.variance.array.astype(dtype, copy=True)
    else:
        science_var = science.variance.array
        var_out = np.full(science_image.shape, np.inf, dtype=dtype)

        def write_variance(r0: int, r1: int, block: np.ndarray) -> None:
            block += science_var[y_first + r0 : y_first + r1, cols]
            var_out[y_first + r0 : y_first + r1, cols] = block

        _convolve_variance_plane(template_mi.variance.array, plan, kernel, bbox, variance, write_variance, n_workers)
        mask_out = science.mask.array | np.int32(Mask.getPlaneBitMask("NO_DATA"))
        mask_out[rows, cols] = science.mask.array[rows, cols] | _smear_mask(template_mi.mask.array, plan.footprint, n_workers)
    origin = bbox.getMin()
    return MaskedImage(Image(image_out, xy0=origin), Mask(mask_out, xy0=origin), Image(var_out, xy0=origin))
