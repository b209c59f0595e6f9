"""afw's clipped mean and standard deviation (MEANCLIP / STDEVCLIP)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["clipped_mean_std", "IQ_TO_STDEV"]

#: Interquartile range of a unit Gaussian is 1/0.741301109 sigma.
IQ_TO_STDEV = 0.741301109


def clipped_mean_std(values: Any, *, nsigma: float = 3.0, niter: int = 3) -> tuple[float, float]:
    """Sigma-clipped mean and (unbiased) standard deviation, as afw's statistics do.

    Iteration 0 keeps values within ``nsigma × 0.741301109 × IQR`` of the median; each later
    iteration centres on the previous clipped mean with half-width ``nsigma × previous clipped
    standard deviation``. Percentiles interpolate linearly. Returns NaNs for no finite value.
    """
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return math.nan, math.nan
    q25, median, q75 = np.percentile(data, [25.0, 50.0, 75.0])
    centre, half_width = float(median), nsigma * IQ_TO_STDEV * float(q75 - q25)
    kept = data
    for _ in range(niter):
        kept = data[np.abs(data - centre) <= half_width]
        if kept.size == 0:
            return math.nan, math.nan
        centre = float(kept.mean())
        std = float(kept.std(ddof=1)) if kept.size > 1 else 0.0
        half_width = nsigma * std
    std = float(kept.std(ddof=1)) if kept.size > 1 else 0.0
    return centre, std
