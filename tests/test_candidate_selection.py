"""Kernel-candidate selection: detection on the reference image, quality cuts and clean stamps."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from diffim.tasks.image import Exposure, MaskedImage
from diffim.tasks.psf import GaussianPsf
from diffim.tasks.psfMatch import NoKernelCandidatesError
from diffim.tasks.selectKernelCandidates import (
    SelectKernelCandidatesConfig,
    SelectKernelCandidatesTask,
    stamp_is_clean,
)

SIZE = 200
SIGMA = 1.5
KSIZE = 10  # stamps of 21 x 21

# (x, y, template flux, science flux): a static grid, then the special cases
STATIC = [(x, y, 4000.0, 4000.0) for x in (40, 100, 160) for y in (40, 100, 160)]
TRANSIENT = (70.0, 70.0, 0.0, 4000.0)
VARIABLE = (130.0, 70.0, 4000.0, 8000.0)
NEAR_NAN = (70.0, 130.0, 4000.0, 4000.0)
NEAR_EDGE = (6.0, 100.0, 4000.0, 4000.0)
FAINT = (130.0, 130.0, 60.0, 60.0)


def _render(stars: list[tuple[float, float, float, float]], which: int, seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    img = np.zeros((SIZE, SIZE))
    for star in stars:
        x, y, flux = star[0], star[1], star[which]
        img += flux * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / SIGMA**2) / (2 * np.pi * SIGMA**2)
    return img + np.random.default_rng(seed).normal(0.0, 1.0, img.shape)


def _pair() -> tuple[Exposure, Exposure]:
    stars = [*STATIC, TRANSIENT, VARIABLE, NEAR_NAN, NEAR_EDGE, FAINT]
    psf = GaussianPsf(11, 11, SIGMA)
    template = Exposure(image=_render(stars, 2, 1), variance=np.ones((SIZE, SIZE)), psf=psf)
    science = Exposure(image=_render(stars, 3, 2), variance=np.ones((SIZE, SIZE)), psf=psf)
    # a NaN column (NO_DATA) in the template 5 px from the NEAR_NAN star: inside its stamp only
    template.image.array[120:141, 75] = np.nan
    template.mask.set_plane("NO_DATA", ~np.isfinite(template.image.array))
    return template, science


def _positions(table: Table) -> set[tuple[int, int]]:
    return {(round(float(x)), round(float(y))) for x, y in zip(table["x"], table["y"])}


def test_selection_keeps_only_clean_static_stars() -> None:
    template, science = _pair()
    task = SelectKernelCandidatesTask()
    result = task.run(template, science, KSIZE, maxSources=100)
    chosen = _positions(result.kernelSources)
    assert chosen == {(x, y) for x, y, _, _ in STATIC}
    # what was rejected, and why (the metadata counts each cut)
    md = task.metadata
    assert md["nDetected"] >= 13  # the 9 static stars, transient, variable, near-NaN, near-edge
    assert md["nCounterpart"] == md["nUnflagged"] - 1  # the transient has no template counterpart
    assert md["nFluxRatio"] == md["nCounterpart"] - 1  # the variable's flux ratio is 2, not 1
    assert md["nSelected"] == 9 and md["nCleanStamp"] == 9  # near-NaN and near-edge stamps rejected
    # rated and sorted by S/N, stamp size recorded for the cell set
    ratings = np.asarray(result.kernelSources["rating"])
    assert np.all(np.diff(ratings) <= 0) and np.allclose(ratings, result.kernelSources["snr"])
    assert result.kernelSources.meta["kernelSize"] == KSIZE
    assert result.convolvedSources is not None and len(result.sources) == md["nDetected"]


def test_max_sources_keeps_the_best_and_snr_window_cuts() -> None:
    template, science = _pair()
    task = SelectKernelCandidatesTask()
    best = task.run(template, science, KSIZE, maxSources=4).kernelSources
    assert len(best) == 4
    everything = task.run(template, science, KSIZE, maxSources=100).kernelSources
    assert list(best["snr"]) == list(everything["snr"][:4])
    config = SelectKernelCandidatesConfig()
    config.snrMax = float(np.median(everything["snr"]))  # drop the brighter half
    capped = SelectKernelCandidatesTask(config=config).run(template, science, KSIZE, maxSources=100).kernelSources
    assert 0 < len(capped) < len(everything) and np.all(capped["snr"] <= config.snrMax)


def test_counterpart_and_flux_ratio_cuts_can_be_switched_off() -> None:
    template, science = _pair()
    config = SelectKernelCandidatesConfig()
    config.requireCounterpart = False
    config.maxFluxRatioSigma = 0.0
    config.rejectContaminatedStamps = False
    config.maskContaminants = False
    result = SelectKernelCandidatesTask(config=config).run(template, science, KSIZE, maxSources=100)
    chosen = _positions(result.kernelSources)
    assert (70, 70) in chosen and (130, 70) in chosen  # transient and variable are back
    assert result.convolvedSources is None  # no detection on the image to convolve was needed


def test_stamps_holding_a_transient_or_a_variable_are_rejected() -> None:
    template, science = _pair()
    half = 30  # stamps of 61 x 61: several static stars' stamps reach the transient or the variable
    near = {(x, y) for x, y, _, _ in STATIC
            if any(max(abs(x - ox), abs(y - oy)) <= half for ox, oy, _, _ in (TRANSIENT, VARIABLE))}
    assert 0 < len(near) < len(STATIC)
    chosen = {}
    for reject in (False, True):
        config = SelectKernelCandidatesConfig()
        config.rejectContaminatedStamps = reject
        task = SelectKernelCandidatesTask(config=config)
        chosen[reject] = _positions(task.run(template, science, half, maxSources=100, minSources=1).kernelSources)
    assert near & chosen[False]  # without the cut some contaminated stamps are kept
    assert not (near & chosen[True]) and chosen[True] == chosen[False] - near
    assert task.metadata["nUncontaminated"] < task.metadata["nFluxRatio"]


def test_too_few_sources_message_gives_the_counts_and_the_fix() -> None:
    rng = np.random.default_rng(3)
    blank = [Exposure(image=rng.normal(0.0, 1.0, (SIZE, SIZE)), variance=np.ones((SIZE, SIZE))) for _ in range(2)]
    with pytest.raises(NoKernelCandidatesError, match=r"only 0 usable kernel sources, need at least 3") as info:
        SelectKernelCandidatesTask().run(blank[0], blank[1], KSIZE)
    message = str(info.value)
    assert "detected at 5 sigma on the reference image" in message and "give images with more stars" in message
    assert info.value.metadata["nSelected"] == 0


def test_candidate_list_only_gets_the_stamp_cut() -> None:
    template, science = _pair()
    given = Table({"x": [40.0, 70.0, 6.0, 160.0], "y": [40.0, 130.0, 100.0, 160.0], "flux": [1.0, 5.0, 9.0, 3.0]})
    result = SelectKernelCandidatesTask().run(template, science, KSIZE, candidateList=given, minSources=2)
    # near-NaN and near-edge dropped, the rest ordered by flux
    assert [(round(x), round(y)) for x, y in zip(result.kernelSources["x"], result.kernelSources["y"])] == [
        (160, 160), (40, 40)
    ]
    with pytest.raises(ValueError, match="candidateList has no 'y' column"):
        SelectKernelCandidatesTask().run(template, science, KSIZE, candidateList=Table({"x": [1.0]}))


def test_stamp_is_clean_checks_both_images_masks_and_edges() -> None:
    a = MaskedImage(np.zeros((50, 60)), variance=1.0, xy0=(100, 200))
    b = MaskedImage(np.zeros((50, 60)), variance=1.0, xy0=(100, 200))
    b.mask.set_plane("SAT", np.zeros((50, 60), dtype=bool) | (np.arange(60)[None, :] == 30))
    a.variance.array[10, 10] = 0.0  # unusable weight
    x = np.array([110.0, 130.0, 145.0, 102.0, 150.4])
    y = np.array([225.0, 225.0, 225.0, 225.0, 225.0])
    ok = stamp_is_clean([a, b], x, y, 5, ["SAT", "NO_DATA"])
    # 110: clean; 130: SAT column; 145: clean; 102: off the left edge; 150.4: rounds to 150, clean
    assert ok.tolist() == [True, False, True, False, True]
    assert not stamp_is_clean([a, b], np.array([110.0]), np.array([210.0]), 5, [])[0]  # zero variance


def test_config_checks_the_snr_window() -> None:
    config = SelectKernelCandidatesConfig()
    config.snrMin, config.snrMax = 50.0, 20.0
    with pytest.raises(Exception, match="snrMax"):
        config.validate()
