"""Sigma-clipped statistics of large arrays, exact and fast (the decorrelation's variances).

afw's MEANCLIP (3σ, 3 iterations) over a whole 2048² variance plane sorted every value several
times. Here the quartiles and the median come from brackets found on a strided sample, so only
the few per cent of values inside them are partitioned (with a fallback when a bracket misses),
and the clipping loop works from sums taken once. Results equal the straightforward
computation bit for bit (tests/test_decorrelate.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .matching.clipping import IQ_TO_STDEV

__all__ = ["clipped_mean"]


def _clipped_mean(values: np.ndarray, nsigma: float = 3.0, niter: int = 3) -> float:
    """``clipped_mean_std(values)[0]`` with the same arithmetic and a third of its memory.

    A whole-image variance plane makes that function hold four or five float64 copies at once;
    here one float64 copy and one scratch array are reused through the iterations.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(data)
    if not finite.all():
        data = data[finite]
    del finite
    if data.size == 0:
        return math.nan
    q25, median, q75 = np.percentile(data, [25.0, 50.0, 75.0])
    centre, half_width = float(median), nsigma * IQ_TO_STDEV * float(q75 - q25)
    scratch = np.empty_like(data)
    for _ in range(niter):
        np.subtract(data, centre, out=scratch)
        np.abs(scratch, out=scratch)
        kept = data[scratch <= half_width]
        if kept.size == 0:
            return math.nan
        mean = kept.mean()
        centre = float(mean)
        if kept.size > 1:
            # kept.std(ddof=1), as in clipped_mean_std, for the half width of the next pass
            deviation = scratch[: kept.size]
            np.subtract(kept, mean, out=deviation)
            np.multiply(deviation, deviation, out=deviation)
            std = float(np.sqrt(deviation.sum() / (kept.size - 1)))
        else:
            std = 0.0
        half_width = nsigma * std
        del kept
    return centre


#: Arrays at least this long take the selection and clipping paths below (smaller ones: numpy's).
_LARGE = 1 << 17
#: Size of the strided sample that brackets order statistics of a large array.
_SAMPLE = 1 << 15
#: Half-width of a bracket, in standard deviations of a sample rank (a miss only costs time).
_BRACKET_SIGMAS = 4.0
#: Elements per chunk of the float64 sums of :func:`_clipped_mean_large` (cache-sized temporaries).
_CHUNK = 1 << 17
#: Values farther than this many initial clipping half-widths from the median are summed apart.
_WINDOW = 64.0


def _order_statistics(data: np.ndarray, ranks: Sequence[int]) -> np.ndarray:
    """``np.partition(data, ranks)[ranks]`` for a 1-D array without NaN, doing less work when large.

    A strided sample of :data:`_SAMPLE` values brackets each rank; only the values inside
    a bracket (a few per cent) are partitioned, after counting those below it, which is exact
    whatever the sample. A bracket that misses its rank (improbable; a sample is not random, so
    possible for contrived data) falls back to the whole array.
    """
    ranks = np.asarray(ranks, dtype=np.intp)
    n = data.size
    if n < _LARGE:
        return np.partition(data, ranks)[ranks]
    sample = data[:: n // _SAMPLE].copy()
    size = sample.size
    p = (ranks + 0.5) / n
    half = _BRACKET_SIGMAS * np.sqrt(size * p * (1.0 - p)) + 2.0
    first = np.floor(p * size - half).astype(np.intp)
    last = np.ceil(p * size + half).astype(np.intp)
    # only the bracket ends of the sample need to be in place
    ends = np.unique(np.concatenate([first[first >= 0], last[last < size]]))
    if ends.size:
        sample.partition(ends)
    # overlapping brackets (two middle values, close percentiles) share one selection
    groups: list[tuple[int, list[int], int]] = []
    for k in np.argsort(ranks, kind="stable"):
        if groups and first[k] <= groups[-1][2]:
            lo, members, hi = groups[-1]
            groups[-1] = (lo, [*members, int(k)], max(hi, int(last[k])))
        else:
            groups.append((int(first[k]), [int(k)], int(last[k])))
    out = np.empty(ranks.size, dtype=data.dtype)
    above_low = np.empty(n, dtype=bool)  # work arrays shared by the groups
    below_high = np.empty(n, dtype=bool)
    for lo, members, hi in groups:
        inside, below = data, 0
        if lo >= 0:
            np.greater_equal(data, sample[lo], out=above_low)
            below = n - int(np.count_nonzero(above_low))
        if hi < size:
            np.less_equal(data, sample[hi], out=below_high)
            if lo >= 0:
                np.logical_and(above_low, below_high, out=below_high)
            inside = data[below_high]
        elif lo >= 0:
            inside = data[above_low]
        kth = ranks[members] - below
        if kth.min() < 0 or kth.max() >= inside.size:
            inside, kth = data, ranks[members]
        out[members] = np.partition(inside, kth)[kth]
    return out


def _percentiles(data: np.ndarray, percents: Sequence[float]) -> list[float]:
    """``np.percentile(data, percents)`` (linear interpolation) of a 1-D array without NaN, as floats."""
    n = data.size
    positions = [(n - 1) * (q / 100.0) for q in percents]
    ranks = sorted({r for v in positions for r in (math.floor(v), min(math.floor(v) + 1, n - 1))})
    values = dict(zip(ranks, (float(v) for v in _order_statistics(data, ranks)), strict=True))
    out = []
    for v in positions:
        low = math.floor(v)
        a, b, t = values[low], values[min(low + 1, n - 1)], v - low
        # numpy's lerp: from the nearer end
        out.append(b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t)
    return out


def _median(data: np.ndarray) -> float:
    """``np.median`` of a 1-D array without NaN (the two middle values averaged in its own type)."""
    n = data.size
    if n % 2:
        return float(_order_statistics(data, [n // 2])[0])
    low, high = _order_statistics(data, [n // 2 - 1, n // 2])
    return float((low + high) / data.dtype.type(2)) if data.dtype.kind == "f" else float((low + high) / 2.0)


def _clipped_mean_large(values: np.ndarray, nsigma: float = 3.0, niter: int = 3, *, finite: bool = False) -> float:
    """:func:`_clipped_mean` of a large array, in a few passes over it.

    The same clipping (quartiles of the finite values, then ``niter`` passes keeping
    ``|x − centre| <= half_width`` in float64) with the same kept sets: each pass tests only the
    values outside bounds two units in the last place inside the exact ones, exactly, and takes the
    kept sum and sum of squares as the totals minus those of the excluded values. The totals are
    float64 sums of ``x − median`` over the values within :data:`_WINDOW` initial half-widths of
    the median (so no far outlier takes precision from them); if a pass's bounds ever reach beyond
    that window, :func:`_clipped_mean` is used instead. The mean agrees with :func:`_clipped_mean`
    to rounding (about 1e-15 relative). ``finite=True`` skips the test for non-finite values.
    """
    data = np.asarray(values).ravel()
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    if not finite:  # (``finite``: the caller knows every value is)
        good = np.isfinite(data)
        if not good.all():
            data = data[good]
        del good
    n = data.size
    if n == 0:
        return math.nan
    q25, median, q75 = _percentiles(data, [25.0, 50.0, 75.0])
    centre, half_width = median, nsigma * IQ_TO_STDEV * (q75 - q25)
    origin, window = median, _WINDOW * half_width
    # float64 sums of x − origin over the window, a cache-sized chunk at a time
    total = total_sq = 0.0
    in_window = 0
    shifted, work = np.empty(min(_CHUNK, n)), np.empty(min(_CHUNK, n))
    keep = np.empty(min(_CHUNK, n), dtype=bool)
    lowest, highest = origin - window, origin + window
    for start in range(0, n, _CHUNK):
        chunk = data[start : start + _CHUNK]
        m = chunk.size
        t = shifted[:m]
        np.subtract(chunk, origin, out=t, dtype=np.float64)  # (float32 data: not in float32)
        if not (lowest <= float(chunk.min()) and float(chunk.max()) <= highest):
            k = keep[:m]
            np.less_equal(np.abs(t, out=work[:m]), window, out=k)
            np.multiply(t, k, out=t)
            in_window += int(np.count_nonzero(k)) - m
        in_window += m
        total += float(t.sum())
        total_sq += float(np.square(t, out=work[:m]).sum())  # (not t @ t: BLAS threads cost more than they save here)
    ftype = data.dtype.type
    outside = np.empty(n, dtype=bool)
    high = np.empty(n, dtype=bool)

    def beyond(low: Any, up: Any) -> np.ndarray:
        """The values below ``low`` or above ``up``, as float64."""
        np.less(data, low, out=outside)
        np.logical_or(outside, np.greater(data, up, out=high), out=outside)
        return data[outside].astype(np.float64)

    # the values outside a core of the first bounds, extracted once: a pass whose bounds contain
    # the core (the usual case) only has to test them
    core_low, core_high = ftype(centre - 0.75 * half_width), ftype(centre + 0.75 * half_width)
    edge = beyond(core_low, core_high)
    for _ in range(niter):
        if abs(centre - origin) + half_width > window:
            return _clipped_mean(values, nsigma, niter)
        if max(abs(float(core_low) - centre), abs(float(core_high) - centre)) <= half_width:
            # fl(x − centre) is monotonic in x: the whole core passes when its ends do
            candidates = edge
        else:
            # every value with |x − centre| > half_width is below low or above up: bounds two
            # units in the last place inside the exact ones (a superset, whatever the rounding)
            low = np.nextafter(np.nextafter(ftype(centre - half_width), ftype(math.inf)), ftype(math.inf))
            up = np.nextafter(np.nextafter(ftype(centre + half_width), ftype(-math.inf)), ftype(-math.inf))
            candidates = beyond(low, up)
        shift = candidates - origin
        excluded = shift[(np.abs(shift) <= window) & (np.abs(candidates - centre) > half_width)]
        kept = in_window - excluded.size
        if kept == 0:
            return math.nan
        kept_sum = total - float(excluded.sum())
        kept_sq = total_sq - float(np.square(excluded).sum())
        centre = origin + kept_sum / kept
        variance = (kept_sq - kept_sum * kept_sum / kept) / (kept - 1) if kept > 1 else 0.0
        half_width = nsigma * math.sqrt(max(variance, 0.0))
    return centre


def clipped_mean(values: np.ndarray, nsigma: float = 3.0, niter: int = 3, *, finite: bool = False) -> float:
    """afw's MEANCLIP of ``values`` (``nsigma``-sigma clipping, ``niter`` passes), NaN if none is left.

    Small arrays take the direct computation, large ones (``_LARGE`` values and more) the
    bracketed one; both equal ``clipped_mean_std(values)[0]`` bit for bit. ``finite`` says the
    values are known finite (skips a check on large arrays).
    """
    if values.size < _LARGE:
        return _clipped_mean(values, nsigma, niter)
    return _clipped_mean_large(values, nsigma, niter, finite=finite)
