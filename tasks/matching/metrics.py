"""Substamp quality metrics of the kernel fit (LSST's ``KernelCandidateQa``, revived).

For each candidate the difference stamp is normalised, ``z = D / sqrt(var)``, over pixels free
of BAD, SAT, NO_DATA and EDGE, and compared with N(0, 1). Per candidate the values are kept in
``CandidateMetrics``; :func:`aggregate_metrics` writes LSST's ``<field>_MEAN/_MEDIAN/_STDEV`` keys
(e.g. ``KCDiffimMean_LOCAL_MEDIAN``) into task metadata.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = [
    "METRIC_PLANES",
    "AGGREGATED_METRICS",
    "residual_metrics",
    "kernel_shape_metrics",
    "anderson_darling_normal",
    "aggregate_metrics",
]

#: Mask planes excluded from the residual metrics (as LSST's KernelCandidateQa).
METRIC_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE")

#: Metric names aggregated over candidates, per residual kind (LOCAL, SPATIAL).
AGGREGATED_METRICS = ("Mean", "Median", "IQR", "StDev", "KSProb", "ADSig", "ChiSq", "MseResids")


def anderson_darling_normal(z: np.ndarray) -> tuple[float, float]:
    """Anderson–Darling A² of ``z`` against the fully specified N(0, 1), and its p-value.

    The p-value uses Marsaglia & Marsaglia (2004)'s approximation of the limiting distribution
    (valid for a fully specified null, unlike ``scipy.stats.anderson`` which estimates the mean
    and width from the data).
    """
    x = np.sort(np.asarray(z, dtype=float))
    n = x.size
    if n < 2:
        return math.nan, math.nan
    cdf = special.ndtr(x)
    log_cdf = np.log(np.clip(cdf, 1e-300, 1.0))
    log_sf = np.log(np.clip(special.ndtr(-x[::-1]), 1e-300, 1.0))
    i = np.arange(1, n + 1)
    a2 = float(-n - np.sum((2 * i - 1) * (log_cdf + log_sf)) / n)
    return a2, _ad_inf_pvalue(a2)


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
    """
    from ..image import Mask

    image = diffim.image.array
    variance = diffim.variance.array
    bad = (diffim.mask.array & Mask.getPlaneBitMask(METRIC_PLANES)) != 0
    good = ~bad & np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    z = image[good] / np.sqrt(variance[good])
    names = ("Mean", "Median", "IQR", "StDev", "KSD", "KSProb", "ADA2", "ADSig", "ChiSq", "MseResids")
    out = dict.fromkeys((f"KCDiffim{name}_{suffix}" for name in names), math.nan)
    if z.size < 2:
        return out
    mean = float(z.mean())
    q25, median, q75 = np.percentile(z, [25, 50, 75])
    ks = stats.kstest(z, "norm")
    a2, ad_p = anderson_darling_normal(z)
    dof = max(z.size - n_parameters, 1)
    out.update(
        {
            f"KCDiffimMean_{suffix}": mean,
            f"KCDiffimMedian_{suffix}": float(median),
            f"KCDiffimIQR_{suffix}": float(q75 - q25),
            f"KCDiffimStDev_{suffix}": float(z.std()),
            f"KCDiffimKSD_{suffix}": float(ks.statistic),
            f"KCDiffimKSProb_{suffix}": float(ks.pvalue),
            f"KCDiffimADA2_{suffix}": a2,
            f"KCDiffimADSig_{suffix}": ad_p,
            f"KCDiffimChiSq_{suffix}": float(np.sum(z * z) / dof),
            f"KCDiffimMseResids_{suffix}": float(np.mean(z * z)),
        }
    )
    return out


def kernel_shape_metrics(kernel_image: np.ndarray, *, suffix: str = "LOCAL") -> dict[str, float]:
    """Centroid and width (second moments) of a kernel image, relative to its centre pixel."""
    k = np.asarray(kernel_image, dtype=float)
    total = k.sum()
    out = {f"KCKernel{n}_{suffix}": math.nan for n in ("CentX", "CentY", "StdX", "StdY")}
    if total == 0 or not np.isfinite(total):
        return out
    h, w = k.shape
    y, x = np.mgrid[: h, : w]
    x = x - (w - 1) // 2
    y = y - (h - 1) // 2
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
