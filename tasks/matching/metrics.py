"""Substamp quality metrics of the kernel fit (LSST's ``KernelCandidateQa``, revived).

For each candidate the difference stamp is normalised, ``z = D / sqrt(var)``, over pixels free
of BAD, SAT, NO_DATA and EDGE, and compared with N(0, 1). Per candidate the values are kept in
``CandidateMetrics``; :func:`aggregate_metrics` writes LSST's ``<field>_MEAN/_MEDIAN/_STDEV`` keys
(e.g. ``KCDiffimMean_LOCAL_MEDIAN``) into task metadata.

A fit has a few hundred stamps of a few hundred pixels, so per-call overheads dominate:
:func:`residual_metrics_of` sorts all stamps' residuals together once (quartiles, KS statistic
and Anderson–Darling sum all read the sorted values) and computes the KS p-values of all stamps
together. The values equal those of ``np.percentile``, ``scipy.stats.kstest(z, "norm")`` and the
plain Anderson–Darling sum to the last bit: the same operations are applied in the same dtypes
(float32 residuals give kstest's float32 steps ``i/n`` and float32-rounded p-value). The p-value
is kstest's exact ``scipy.stats.kstwo.sf(D, n)``; for float32 residuals its common regimes are
evaluated here for all stamps at once (see :func:`_kstwo_sf_float32`), the rest by scipy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._lazy import LazyModule

special = LazyModule("scipy.special")  # first used by a candidate's metrics, not on import

__all__ = [
    "AGGREGATED_METRICS",
    "METRIC_PLANES",
    "aggregate_metrics",
    "anderson_darling_normal",
    "kernel_shape_metrics",
    "ks_normal",
    "normalized_residuals",
    "residual_metrics",
    "masked_image_residuals",
    "residual_metrics_of",
]

#: Mask planes excluded from the residual metrics (as LSST's KernelCandidateQa).
METRIC_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE")

#: Metric names aggregated over candidates, per residual kind (LOCAL, SPATIAL).
AGGREGATED_METRICS = ("Mean", "Median", "IQR", "StDev", "KSProb", "ADSig", "ChiSq", "MseResids")


def anderson_darling_normal(z: np.ndarray) -> tuple[float, float]:
    """Anderson–Darling A² of ``z`` against the fully specified N(0, 1), and its p-value.

    The p-value uses Marsaglia & Marsaglia (2004)'s approximation of the limiting distribution
    (valid for a fully specified null, unlike ``scipy.stats.anderson`` which estimates the mean
    and width from the data). NaN for fewer than 2 values.
    """
    x = np.asarray(z, dtype=float).ravel()
    if x.size < 2:
        return math.nan, math.nan
    a2 = float(_order_statistics([x])[1][0])
    return a2, _ad_inf_pvalue(a2)


def ks_normal(z: np.ndarray) -> tuple[float, float]:
    """One-sample two-sided Kolmogorov–Smirnov test of ``z`` against N(0, 1).

    Returns the same statistic and p-value as ``scipy.stats.kstest(z, "norm")`` with its default
    ``method="auto"`` (which always takes the exact distribution, ``scipy.stats.kstwo``), including
    its dtype handling (float32 data give a float32-rounded p-value), without its per-call overhead.
    NaN for fewer than 2 values.
    """
    x = np.asarray(z).ravel()
    if x.dtype.kind != "f":  # kstest works in floating point (integers become float64)
        x = x.astype(float)
    if x.size < 2:
        return math.nan, math.nan
    d = float(_order_statistics([x])[0][0])
    return d, float(_ks_pvalues([d], [x.size], [x.dtype])[0])


def _ks_pvalues(d: Sequence[float], n: Sequence[int], dtypes: Sequence[np.dtype]) -> np.ndarray:
    """Exact two-sided p-values ``kstwo.sf(D, n)`` of many tests, rounded as kstest does.

    kstest casts the p-value to the data's dtype, then clips it to [0, 1]. For float32 data the
    common regimes are computed here for all tests at once (:func:`_kstwo_sf_float32`); the
    rest goes to one vectorised call of ``scipy.stats.kstwo.sf``.
    """
    d_arr = np.asarray(d, dtype=float).ravel()
    n_arr = np.asarray(n, dtype=np.int64).ravel()
    out = np.full(d_arr.size, np.nan)
    is32 = np.array([np.dtype(t) == np.float32 for t in dtypes], dtype=bool)
    if is32.any():
        out[is32] = _kstwo_sf_float32(d_arr[is32], n_arr[is32])
    rest = np.flatnonzero(np.isnan(out))
    if rest.size:
        from scipy import stats  # 0.7 s to import, and only the rare cases need it

        p = np.atleast_1d(stats.kstwo.sf(d_arr[rest], n_arr[rest]))
        for k, i in enumerate(rest):
            out[i] = np.clip(np.asarray(p[k], dtype=dtypes[i]), 0.0, 1.0)
    return out


#: Constants of scipy's Pelz-Good series (scipy.stats._ksstats), computed the same way.
_PI_SQUARED = np.pi**2
_PI_FOUR = np.pi**4
_PI_SIX = np.pi**6
_SQRT2PI = np.sqrt(2 * np.pi)
_SQRT3 = np.sqrt(3)
#: Half-width of the band around a float32 rounding boundary where the p-value is left to scipy.
_ROUNDING_GUARD = 1e-13


def _kstwo_sf_float32(d: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``float32(kstwo.sf(d, n))`` clipped to [0, 1] where it is safe to compute here, NaN elsewhere.

    scipy's ``kstwo.sf`` (``scipy.stats._ksstats._kolmogn``) picks a method per test: for ``n > 140``
    and ``1 < nD < n - 1``, ``D < 0.5`` it returns 0 when ``nD² >= 370``, ``2 smirnov(n, D)`` when
    ``nD² >= 2.2`` and otherwise ``1 - cdf`` by the Pelz-Good series (or Durbin's matrix for small
    ``n D^1.5``). The 0 and smirnov regimes are reproduced exactly; the Pelz-Good series is
    evaluated for all tests at once with the same formulas, which agrees with scipy's scalar
    evaluation to round-off (about 1e-16 absolute). Rounding to float32 hides that difference
    except within :data:`_ROUNDING_GUARD` of a float32 rounding boundary, where NaN sends the test
    to scipy. Durbin's regime is evaluated by :func:`_durbin_cdf` with scipy's operations. Everything
    else (small ``n``, tiny or huge ``D``, the boundaries between the methods) is NaN too.
    """
    out = np.full(d.size, np.nan)
    t = n * d
    nd2 = t * d  # scipy's branch variables, computed with the same operations
    common = (n > 140) & (d > 0.0) & (d < 0.5) & (t > 1.0) & (t < n - 1)
    out[common & (nd2 >= 370.0)] = 0.0
    tail = np.flatnonzero(common & (nd2 >= 2.2) & (nd2 < 370.0))
    if tail.size:
        out[tail] = np.clip(np.clip(2 * special.smirnov(n[tail], d[tail]), 0.0, 1.0).astype(np.float32), 0.0, 1.0)
    # Pelz-Good: scipy uses it for n D^1.5 > 1.4 (or n > 100000); stay clear of that boundary
    with np.errstate(all="ignore"):
        away = (n > 100000) | (n * d**1.5 > 1.4 * (1.0 + 1e-9))
    # (and of tiny sqrt(n) D, where scipy cuts the series short and its terms would underflow here)
    core = np.flatnonzero(common & (nd2 < 2.2) & (nd2 > 0.01) & away)
    if core.size:
        _set_if_safe(out, core, np.clip(1.0 - _pelz_good_cdf(n[core], d[core]), 0.0, 1.0))
    # Durbin's matrix (n D^1.5 <= 1.4, n <= 100000), clear of the Pelz-Good boundary: a few tests
    # a run, each a small matrix power; reproduced here so that no run has to import scipy.stats
    with np.errstate(all="ignore"):
        durbin = np.flatnonzero(common & (nd2 < 2.2) & (n <= 100000) & (n * d**1.5 <= 1.4 * (1.0 - 1e-9)))
    if durbin.size:
        cdf = np.array([_durbin_cdf(int(n[i]), float(d[i])) for i in durbin], dtype=float)
        _set_if_safe(out, durbin, np.clip(1.0 - cdf, 0.0, 1.0))
    return out


def _set_if_safe(out: np.ndarray, index: np.ndarray, sf: np.ndarray) -> None:
    """``out[index] = float32(sf)`` where ``sf`` is not within the guard of a float32 rounding boundary."""
    low = (sf - _ROUNDING_GUARD).astype(np.float32)
    high = (sf + _ROUNDING_GUARD).astype(np.float32)
    safe = low == high
    out[index[safe]] = np.clip(high[safe], 0.0, 1.0)


#: Scaling constants of scipy's Durbin-matrix evaluation (long double, as scipy's).
_E128 = 128
_EP128 = np.ldexp(np.longdouble(1), _E128)
_EM128 = np.ldexp(np.longdouble(1), -_E128)


def _durbin_cdf(n: int, d: float) -> float:
    """Kolmogorov CDF ``Pr(D_n <= d)`` by Durbin's matrix (Marsaglia, Tsang & Wang 2003).

    The operations of scipy's ``scipy.stats._ksstats._kolmogn_DMTW`` (BSD-3-Clause), in the same
    order and precisions, for ``0.5 < n d`` and ``d < 1`` (the range this module calls it in).
    """
    nd = n * d
    k = int(np.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    matrix = np.zeros([m, m])
    intm = np.arange(1, m + 1)
    v = 1.0 - h**intm
    w = np.empty(m)
    fac = 1.0
    for j in intm:
        w[j - 1] = fac
        fac /= j
        v[j - 1] *= fac
    tt = max(2 * h - 1.0, 0) ** m - 2 * h**m
    v[-1] = (1.0 + tt) * fac
    for i in range(1, m):
        matrix[i - 1 :, i] = w[: m - i + 1]
    matrix[:, 0] = v
    matrix[-1, :] = np.flip(v, axis=0)
    power = np.eye(m)
    nn, expnt, matrix_expnt = n, 0, 0
    while nn > 0:
        if nn % 2:
            power = np.matmul(power, matrix)
            expnt += matrix_expnt
        matrix = np.matmul(matrix, matrix)
        matrix_expnt *= 2
        if np.abs(matrix[k - 1, k - 1]) > _EP128:
            matrix /= _EP128
            matrix_expnt += _E128
        nn = nn // 2
    p = power[k - 1, k - 1]
    for i in range(1, n + 1):
        p = i * p / n
        if np.abs(p) < _EM128:
            p *= _EP128
            expnt -= _E128
    if expnt != 0:
        p = np.ldexp(p, expnt)
    return float(np.clip(p, 0.0, 1.0))


def _pelz_good_cdf(n: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pelz & Good (1976)'s asymptotic series for the two-sided KS CDF, as scipy evaluates it."""
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    q = np.exp(-_PI_SQUARED / 8 / zsquared)
    # coefficients of the terms of K1, K2, K3 (scipy's names)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8
    maxk = np.ceil(16 * z / np.pi).astype(np.int64)
    terms = np.zeros((4, z.size))
    # Horner scheme over odd m = 2k - 1, from each test's own maxk down to 1
    for k in range(int(maxk.max()), 0, -1):
        m = 2 * k - 1
        coeffs = np.stack([
            np.ones_like(z),
            k1a + k1b * m**2,
            k2a + k2b * m**2 + k2c * m**4,
            k3a + k3b * m**2 + k3c * m**4 + k3d * m**6,
        ])
        terms = np.where(k <= maxk, terms * np.power(q, 8 * k) + coeffs, terms)
    terms *= q
    terms *= _SQRT2PI
    terms /= np.stack([z, 6 * zfour, 72 * z**7, 6480 * z**10])
    # the sums over all integers k of K2 and K3
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    sqrt3z = _SQRT3 * z
    k2extra = np.zeros(z.size)
    k3extra = np.zeros(z.size)
    for k in range(int(maxk.max()), 0, -1):
        qk = np.power(q, k * k)
        kspi = np.pi * k
        k2extra = np.where(k <= maxk, k2extra + k * k * qk, k2extra)
        k3extra = np.where(k <= maxk, k3extra + (sqrt3z + kspi) * (sqrt3z - kspi) * (k * k) * qk, k3extra)
    terms[2] += k2extra * (_PI_SQUARED * _SQRT2PI / (-36 * zthree))
    terms[3] += k3extra * (_PI_SQUARED * _SQRT2PI / (216 * zsix))
    terms /= np.power(n * 1.0, np.arange(4)[:, None] / 2.0)
    return terms[0] + terms[1] + terms[2] + terms[3]


def _ad_inf_pvalue(a2: float) -> float:
    # Marsaglia & Marsaglia (2004), J. Stat. Softw. 9(2): P(A² < z) for large n.
    if a2 <= 0:
        return 1.0
    if a2 < 2.0:
        cdf = a2 ** -0.5 * math.exp(-1.2337141 / a2) * (
            2.00012 + (0.247105 - (0.0649821 - (0.0347962 - (0.011672 - 0.00168691 * a2) * a2) * a2) * a2) * a2
        )
    else:
        cdf = math.exp(
            -math.exp(1.0776 - (2.30695 - (0.43424 - (0.082433 - (0.008056 - 0.0003146 * a2) * a2) * a2) * a2) * a2)
        )
    return float(min(max(1.0 - cdf, 0.0), 1.0))


#: Bytes of one float64 array of a block of sorted residual vectors.
_SORT_BLOCK_BYTES = 1 << 18
#: Probabilities of the quartiles (as ``np.percentile(z, [25, 50, 75])`` makes them).
_QUARTILES = np.true_divide([25, 50, 75], 100)
_RESIDUAL_NAMES = ("Mean", "Median", "IQR", "StDev", "KSD", "KSProb", "ADA2", "ADSig", "ChiSq", "MseResids")


def normalized_residuals(image: np.ndarray, variance: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``z = D / sqrt(var)`` over pixels not ``bad`` with finite values and positive variance.

    The values come in row-major pixel order (the order :func:`residual_metrics` uses).
    """
    good = ~bad & np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    return image[good] / np.sqrt(variance[good])


def _order_statistics(zs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KS statistic, Anderson-Darling A² and quartiles of residual vectors of one dtype (``n >= 2``).

    One sort serves the three. The vectors are sorted together, padded with +inf to a common length
    (the padding sorts last and never enters a result); every value is computed with the same
    operations, in the same dtypes, as ``scipy.stats.kstest``, :func:`anderson_darling_normal` and
    ``np.percentile`` apply to each vector alone, so the results are the same to the last bit.
    """
    sizes = np.array([z.size for z in zs])
    width = int(sizes.max())
    inside = np.arange(width) < sizes[:, None]
    x = np.full((len(zs), width), np.inf, dtype=zs[0].dtype)
    x[inside] = np.concatenate(zs)
    x.sort(axis=1)
    x64 = x.astype(float)
    cdf = special.ndtr(x64)

    # KS: scipy's steps i / n are made in the data's dtype (float32 steps for float32 data)
    ks_dtype = x.dtype
    n_ks = sizes.astype(ks_dtype)[:, None]
    d_plus = np.where(inside, np.arange(1.0, width + 1, dtype=ks_dtype) / n_ks - cdf, -np.inf).max(axis=1)
    d_minus = np.where(inside, cdf - np.arange(0.0, width, dtype=ks_dtype) / n_ks, -np.inf).max(axis=1)
    d = np.where(d_plus > d_minus, d_plus, d_minus)

    # Anderson-Darling: elementwise logs at once, then each vector's own sum (same summation order)
    log_cdf = np.log(np.clip(cdf, 1e-300, 1.0))
    log_sf = np.log(np.clip(special.ndtr(-x64), 1e-300, 1.0))
    weights = 2 * np.arange(1, width + 1) - 1
    a2 = np.empty(len(zs))
    for k, n in enumerate(sizes.tolist()):
        terms = log_cdf[k, :n] + log_sf[k, :n][::-1]
        a2[k] = -n - np.sum(weights[:n] * terms) / n

    # quartiles by numpy's "linear" rule: a + (b - a) g below g = 0.5, b - (b - a)(1 - g) above
    virtual = (sizes - 1)[:, None] * _QUARTILES
    previous = np.floor(virtual)
    gamma = virtual - previous
    lo = previous.astype(np.intp)
    rows = np.arange(len(zs))[:, None]
    a, b = x[rows, lo], x[rows, np.minimum(lo + 1, (sizes - 1)[:, None])]
    diff = b - a
    quartiles = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return d, a2, quartiles


def residual_metrics_of(
    residuals: Sequence[np.ndarray], n_parameters: Sequence[int], suffixes: Sequence[str]
) -> list[dict[str, float]]:
    """:func:`residual_metrics` of many normalised residual vectors at once.

    Parameters
    ----------
    residuals : sequence of numpy.ndarray
        ``z`` of each stamp, as :func:`normalized_residuals` gives them (1-D).
    n_parameters : sequence of int
        Fitted parameters of each stamp (for the reduced chi²).
    suffixes : sequence of str
        ``"LOCAL"`` or ``"SPATIAL"`` for each stamp.

    Returns
    -------
    list of dict
        One :func:`residual_metrics` dictionary per stamp, value for value; the sorts, CDFs and
        logarithms are done for blocks of stamps at once and the KS p-values for all stamps at once.
    """
    if not (len(residuals) == len(n_parameters) == len(suffixes)):
        msg = (
            f"residual_metrics_of needs one n_parameters and one suffix per residual vector, got "
            f"{len(residuals)!r} vectors, {len(n_parameters)!r} n_parameters and {len(suffixes)!r} suffixes"
        )
        raise ValueError(msg)
    rows = [dict.fromkeys((f"KCDiffim{name}_{suffix}" for name in _RESIDUAL_NAMES), math.nan) for suffix in suffixes]
    by_dtype: dict[np.dtype, list[int]] = {}
    for i, z in enumerate(residuals):
        if z.dtype.kind != "f":
            msg = (
                f"residual vector {i} has dtype {z.dtype!r}; pass floating-point residuals "
                "(as normalized_residuals gives them)"
            )
            raise TypeError(msg)
        if z.size >= 2:
            by_dtype.setdefault(z.dtype, []).append(i)
    pending: list[tuple[int, float, int, np.dtype]] = []
    for same_dtype in by_dtype.values():
        # blocks of a few hundred kB: cache-sized, and memory the allocator reuses (no page faults)
        per_block = max(1, _SORT_BLOCK_BYTES // (8 * max(residuals[i].size for i in same_dtype)))
        for b0 in range(0, len(same_dtype), per_block):
            members = same_dtype[b0 : b0 + per_block]
            _fill_rows(rows, pending, members, residuals, n_parameters, suffixes)
    pvalues = _ks_pvalues([p[1] for p in pending], [p[2] for p in pending], [p[3] for p in pending])
    for (i, _, _, _), p in zip(pending, pvalues):
        rows[i][f"KCDiffimKSProb_{suffixes[i]}"] = float(p)
    return rows


def _fill_rows(
    rows: list[dict[str, float]],
    pending: list[tuple[int, float, int, np.dtype]],
    members: Sequence[int],
    residuals: Sequence[np.ndarray],
    n_parameters: Sequence[int],
    suffixes: Sequence[str],
) -> None:
    """Every metric but the KS p-value for residual vectors of one dtype; KS tests go to ``pending``."""
    d, a2, quartiles = _order_statistics([residuals[i] for i in members])
    for k, i in enumerate(members):
        z, suffix = residuals[i], suffixes[i]
        zz = z * z
        dof = max(z.size - n_parameters[i], 1)
        q25, median, q75 = quartiles[k]
        a2_k = float(a2[k])
        rows[i].update(
            {
                f"KCDiffimMean_{suffix}": float(z.mean()),
                f"KCDiffimMedian_{suffix}": float(median),
                f"KCDiffimIQR_{suffix}": float(q75 - q25),
                f"KCDiffimStDev_{suffix}": float(z.std()),
                f"KCDiffimKSD_{suffix}": float(d[k]),
                f"KCDiffimADA2_{suffix}": a2_k,
                f"KCDiffimADSig_{suffix}": _ad_inf_pvalue(a2_k),
                f"KCDiffimChiSq_{suffix}": float(np.sum(zz) / dof),
                f"KCDiffimMseResids_{suffix}": float(np.mean(zz)),
            }
        )
        pending.append((i, float(d[k]), z.size, z.dtype))


def residual_metrics(diffim: Any, *, n_parameters: int = 0, suffix: str = "LOCAL") -> dict[str, float]:
    """Metrics of a difference stamp (a ``MaskedImage``) normalised by its variance.

    Parameters
    ----------
    diffim : MaskedImage
        The difference stamp ``S - K*T - bg``.
    n_parameters : int
        Fitted parameters, subtracted from the pixel count for the reduced chi².
    suffix : str
        ``"LOCAL"`` (the candidate's own kernel) or ``"SPATIAL"`` (the spatial model).

    Returns
    -------
    dict
        ``KCDiffim<Name>_<suffix>`` for Mean, Median, IQR, StDev (ML), KSD, KSProb, ADA2, ADSig,
        ChiSq (reduced), MseResids (mean of z², i.e. bias² + ML variance); NaN when no pixel is usable.
        Median and IQR are ``np.percentile``'s (linear), KSD and KSProb ``scipy.stats.kstest``'s.
    """
    return residual_metrics_of([masked_image_residuals(diffim)], [n_parameters], [suffix])[0]


def masked_image_residuals(diffim: Any) -> np.ndarray:
    """:func:`normalized_residuals` of a difference MaskedImage, pixels in :data:`METRIC_PLANES` left out."""
    from ..image import Mask

    bad = (diffim.mask.array & Mask.getPlaneBitMask(METRIC_PLANES)) != 0
    return normalized_residuals(diffim.image.array, diffim.variance.array, bad)


def kernel_shape_metrics(kernel_image: np.ndarray, *, suffix: str = "LOCAL") -> dict[str, float]:
    """Centroid and width (second moments) of a kernel image, relative to its centre pixel."""
    k = np.asarray(kernel_image, dtype=float)
    total = k.sum()
    out = {f"KCKernel{n}_{suffix}": math.nan for n in ("CentX", "CentY", "StdX", "StdY")}
    if total == 0 or not np.isfinite(total):
        return out
    h, w = k.shape
    # offsets from the centre pixel, broadcast along rows and columns (no full index grids)
    x = np.arange(w) - (w - 1) // 2
    y = (np.arange(h) - (h - 1) // 2)[:, None]
    cx = float((k * x).sum() / total)
    cy = float((k * y).sum() / total)
    vx = float((k * (x - cx) ** 2).sum() / total)
    vy = float((k * (y - cy) ** 2).sum() / total)
    out.update(
        {
            f"KCKernelCentX_{suffix}": cx,
            f"KCKernelCentY_{suffix}": cy,
            f"KCKernelStdX_{suffix}": math.sqrt(vx) if vx > 0 else math.nan,
            f"KCKernelStdY_{suffix}": math.sqrt(vy) if vy > 0 else math.nan,
        }
    )
    return out


def aggregate_metrics(per_candidate: Iterable[Mapping[str, float]], metadata: Any) -> dict[str, float]:
    """Write ``<field>_MEAN``, ``_MEDIAN`` and ``_STDEV`` over candidates into ``metadata``.

    Fields aggregated: ``KCDiffim<Name>_<LOCAL|SPATIAL>`` for the names in
    :data:`AGGREGATED_METRICS`, plus ``KCDiffimMseKernel_SPATIAL``; non-finite values are skipped
    and a field without any finite value is not written. Returns what was written.
    """
    rows = list(per_candidate)
    fields = [f"KCDiffim{name}_{kind}" for kind in ("LOCAL", "SPATIAL") for name in AGGREGATED_METRICS]
    fields.append("KCDiffimMseKernel_SPATIAL")
    written: dict[str, float] = {}
    for field in fields:
        values = np.array([row[field] for row in rows if field in row], dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        written[f"{field}_MEAN"] = float(values.mean())
        written[f"{field}_MEDIAN"] = float(np.median(values))
        written[f"{field}_STDEV"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    for key, value in written.items():
        metadata[key] = value
    return written
