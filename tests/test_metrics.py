"""Substamp quality metrics: N(0,1) residuals score well, biased or wide ones do not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffim.framework.metadata import TaskMetadata
from diffim.tasks.image import MaskedImage
from diffim.tasks.matching.metrics import (
    aggregate_metrics,
    anderson_darling_normal,
    kernel_shape_metrics,
    residual_metrics,
)


def _stamp(values: np.ndarray, variance: float = 4.0) -> MaskedImage:
    return MaskedImage(values * math.sqrt(variance), variance=variance)


def test_normal_residuals_look_normal() -> None:
    rng = np.random.default_rng(3)
    m = residual_metrics(_stamp(rng.normal(size=(60, 60))), n_parameters=10)
    assert abs(m["KCDiffimMean_LOCAL"]) < 0.1
    assert m["KCDiffimStDev_LOCAL"] == pytest.approx(1.0, abs=0.05)
    assert m["KCDiffimIQR_LOCAL"] == pytest.approx(1.349, abs=0.08)
    assert m["KCDiffimKSProb_LOCAL"] > 0.01 and m["KCDiffimADSig_LOCAL"] > 0.01
    assert m["KCDiffimChiSq_LOCAL"] == pytest.approx(1.0, abs=0.06)


def test_biased_or_wide_residuals_are_flagged() -> None:
    rng = np.random.default_rng(4)
    biased = residual_metrics(_stamp(rng.normal(0.5, 1.0, size=(60, 60))), suffix="SPATIAL")
    assert biased["KCDiffimKSProb_SPATIAL"] < 1e-6 and biased["KCDiffimADSig_SPATIAL"] < 1e-6
    assert biased["KCDiffimMseResids_SPATIAL"] == pytest.approx(1.25, abs=0.1)
    wide = residual_metrics(_stamp(rng.normal(0.0, 2.0, size=(60, 60))))
    assert wide["KCDiffimChiSq_LOCAL"] == pytest.approx(4.0, rel=0.1)


def test_masked_pixels_are_excluded() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(30, 30))
    values[0, :] = 1e6
    stamp = _stamp(values)
    stamp.mask.set_plane("SAT", np.eye(30, dtype=bool)[:, ::-1] | (np.arange(30)[:, None] == 0))
    assert residual_metrics(stamp)["KCDiffimStDev_LOCAL"] < 2.0
    assert math.isnan(residual_metrics(MaskedImage(np.full((3, 3), np.nan), variance=1.0))["KCDiffimMean_LOCAL"])


def test_anderson_darling_matches_scipy_for_the_fully_specified_null() -> None:
    from scipy import stats

    rng = np.random.default_rng(6)
    z = rng.normal(size=400)
    a2, p = anderson_darling_normal(z)
    reference = stats.goodness_of_fit(stats.norm, z, known_params={"loc": 0, "scale": 1},
                                      statistic="ad", n_mc_samples=500, rng=rng)
    assert a2 == pytest.approx(reference.statistic, rel=1e-9)
    assert p == pytest.approx(reference.pvalue, abs=0.06)


def test_kernel_shape() -> None:
    y, x = np.mgrid[-10:11, -10:11]
    kernel = np.exp(-0.5 * ((x - 1) ** 2 / 4.0 + y**2 / 9.0))
    m = kernel_shape_metrics(kernel)
    assert m["KCKernelCentX_LOCAL"] == pytest.approx(1.0, abs=1e-3)
    assert m["KCKernelStdX_LOCAL"] == pytest.approx(2.0, abs=1e-2)
    assert m["KCKernelStdY_LOCAL"] == pytest.approx(3.0, abs=2e-2)


def test_aggregate_writes_lsst_keys() -> None:
    md = TaskMetadata()
    rows = [{"KCDiffimMean_LOCAL": v, "KCDiffimChiSq_SPATIAL": 1.0} for v in (0.1, 0.3, float("nan"))]
    written = aggregate_metrics(rows, md)
    assert md["KCDiffimMean_LOCAL_MEAN"] == pytest.approx(0.2)
    assert md["KCDiffimMean_LOCAL_MEDIAN"] == pytest.approx(0.2)
    assert md["KCDiffimMean_LOCAL_STDEV"] == pytest.approx(math.sqrt(0.02))
    assert md["KCDiffimChiSq_SPATIAL_MEAN"] == 1.0
    assert "KCDiffimMedian_LOCAL_MEAN" not in written
