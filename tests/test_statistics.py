"""ImageStatistics: mean and scatter of pixel/sigma over good pixels (spec §6.1, ip_diffim test_imageStatistics)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from diffim.tasks.image import MaskedImage, mask_planes
from diffim.tasks.matching import ImageStatistics, ImageStatisticsError
from diffim.tasks.psfMatch import PsfMatchConfigDF

SIZE = 20


@pytest.fixture
def config() -> PsfMatchConfigDF:
    return PsfMatchConfigDF()


def _masked(image: np.ndarray, variance: float | np.ndarray = 1.0) -> MaskedImage:
    return MaskedImage(np.asarray(image, dtype=np.float32), variance=variance)


def test_zero_variance_pixels_are_skipped(config: PsfMatchConfigDF) -> None:
    mi = _masked(np.ones((SIZE, SIZE)), 0.0)
    stats = ImageStatistics(config)
    stats.apply(mi)
    assert stats.getNpix() == 0
    assert np.isnan(stats.getMean()) and np.isnan(stats.getRms())
    stats.apply(mi, core=3)
    assert stats.getNpix() == 0


def test_zeros_and_ones(config: PsfMatchConfigDF) -> None:
    stats = ImageStatistics(config)
    stats.apply(_masked(np.zeros((SIZE, SIZE))))
    assert (stats.getMean(), stats.getRms(), stats.getNpix()) == (0.0, 0.0, SIZE * SIZE)
    stats.apply(_masked(np.ones((SIZE, SIZE))))
    assert stats.getMean() == 1.0
    assert stats.getRms() == 0.0
    assert stats.getVariance() == 0.0


def test_core_has_2r_plus_1_squared_pixels(config: PsfMatchConfigDF) -> None:
    stats = ImageStatistics(config)
    stats.apply(_masked(np.ones((SIZE, SIZE))), core=3)
    assert stats.getNpix() == 49
    # a core larger than the image is clipped to the image
    stats.apply(_masked(np.ones((SIZE, SIZE))), core=50)
    assert stats.getNpix() == SIZE * SIZE


def test_core_is_centred_on_n_over_2() -> None:
    image = np.zeros((SIZE, SIZE))
    image[SIZE // 2 - 1 : SIZE // 2 + 2, SIZE // 2 - 1 : SIZE // 2 + 2] = 5.0  # rows/cols 9..11
    stats = ImageStatistics(PsfMatchConfigDF())
    stats.apply(_masked(image), core=1)
    assert stats.getNpix() == 9
    assert stats.getMean() == 5.0


def test_ramp_uses_unbiased_variance(config: PsfMatchConfigDF) -> None:
    j, i = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    ramp = i + 2.3 * j
    stats = ImageStatistics(config)
    stats.apply(MaskedImage(ramp, variance=1.0))
    assert stats.getMean() == pytest.approx(ramp.mean(), rel=1e-12)
    assert stats.getRms() == pytest.approx(ramp.std(ddof=1), rel=1e-12)
    assert stats.getRms() == pytest.approx(ramp.std(), abs=0.05)
    assert stats.getVariance() == pytest.approx(ramp.var(ddof=1), rel=1e-12)


def test_pixels_are_divided_by_sigma(config: PsfMatchConfigDF) -> None:
    stats = ImageStatistics(config)
    stats.apply(_masked(np.full((SIZE, SIZE), 6.0), 4.0))
    assert stats.getMean() == pytest.approx(3.0)


def test_bad_mask_planes_exclude_pixels(config: PsfMatchConfigDF) -> None:
    j, i = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    ramp = i + 2.3 * j
    mi = MaskedImage(ramp, variance=1.0)
    mi.mask.set_plane(config.badMaskPlanes[0], i == SIZE - 1)
    stats = ImageStatistics(config)
    stats.apply(mi)
    assert stats.getNpix() == SIZE * (SIZE - 1)
    rest = ramp[:, :-1]
    assert stats.getMean() == pytest.approx(rest.mean(), rel=1e-12)
    assert stats.getRms() == pytest.approx(rest.std(ddof=1), rel=1e-12)


def test_unlisted_mask_plane_is_ignored(config: PsfMatchConfigDF) -> None:
    assert "BAD" not in config.badMaskPlanes
    mi = _masked(np.ones((SIZE, SIZE)))
    mi.mask.set_plane("BAD", np.ones((SIZE, SIZE), dtype=bool))
    stats = ImageStatistics(config)
    stats.apply(mi)
    assert stats.getNpix() == SIZE * SIZE


def test_unknown_plane_names_are_ignored() -> None:
    cfg = types.SimpleNamespace(badMaskPlanes=["NOT_A_PLANE", "SAT"])
    stats = ImageStatistics(cfg)
    assert stats.getBpMask() == mask_planes.bitmask("SAT")
    stats.setBpMask(0)
    assert stats.getBpMask() == 0


def test_unmasked_nan_raises_masked_nan_is_skipped(config: PsfMatchConfigDF) -> None:
    image = np.ones((SIZE, SIZE))
    image[0, 0] = np.nan
    mi = _masked(image)
    stats = ImageStatistics(config)
    with pytest.raises(ImageStatisticsError, match="non-finite"):
        stats.apply(mi)
    mi.mask.set_plane("NO_DATA", np.isnan(image))
    stats.apply(mi)
    assert stats.getNpix() == SIZE * SIZE - 1
    assert stats.getMean() == 1.0


def test_negative_variance_raises(config: PsfMatchConfigDF) -> None:
    variance = np.ones((SIZE, SIZE))
    variance[3, 4] = -1.0
    with pytest.raises(ImageStatisticsError):
        ImageStatistics(config).apply(_masked(np.ones((SIZE, SIZE)), variance))


def test_single_pixel_has_no_variance(config: PsfMatchConfigDF) -> None:
    stats = ImageStatistics(config)
    stats.apply(_masked(np.ones((1, 1))))
    assert stats.getNpix() == 1 and stats.getMean() == 1.0
    assert np.isnan(stats.getVariance())


def test_evaluate_quality(config: PsfMatchConfigDF) -> None:
    stats = ImageStatistics(config)
    rng = np.random.default_rng(3)
    stats.apply(_masked(rng.normal(0.0, 1.0, (SIZE, SIZE))))
    assert stats.evaluateQuality(config)
    stats.apply(_masked(rng.normal(1.0, 1.0, (SIZE, SIZE))))
    assert not stats.evaluateQuality(config)  # mean ~1 > candidateResidualMeanMax 0.25
    stats.apply(_masked(rng.normal(0.0, 3.0, (SIZE, SIZE))))
    assert not stats.evaluateQuality(config)  # rms ~3 > candidateResidualStdMax 1.5
