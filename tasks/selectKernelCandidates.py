"""Choose the stars whose stamps constrain the PSF-matching kernel (LSST's kernel-source selection).

The subtask of :class:`~diffim.tasks.imagePsfMatch.ImagePsfMatchTask` that replaces LSST's
``selectDetection``/``selectMeasurement`` pair and ``makeCandidateList``: detect on the *reference*
image (the one that is not convolved), keep isolated, unblended, unsaturated, unmasked sources in an
S/N window whose stamps of side ``2·kernelSize+1`` are clean in both images, and return the best
ones by S/N.

Beyond LSST, a source must also be found in the image to convolve with a flux ratio consistent
with the others': transients and variable stars would otherwise become kernel candidates (LSST
leaves them to the kernel-sum clipping, which fails when they are a good fraction of a sparse
field's candidates: on a 512x512 benchmark pair with 50 stars, 8 of 17 candidates were transients
or variables and the fit kept 4 candidates; with these cuts it keeps 11 and reaches the noise).
"""

from __future__ import annotations

from typing import Any

import math

import numpy as np

from diffim.framework.config import Config, Field, FieldValidationError
from diffim.framework.struct import Struct
from diffim.framework.task import Task
from diffim.framework.timing import timeMethod

from .image import Exposure, MaskedImage
from .image.mask_planes import mask_planes
from .psfMatch import NoKernelCandidatesError

__all__ = ["SelectKernelCandidatesConfig", "SelectKernelCandidatesTask", "stamp_is_clean"]

#: Systematic floor (fraction) of the flux-ratio error: aperture losses differ a little between images.
_FLUX_RATIO_FLOOR = 0.03


class SelectKernelCandidatesConfig(Config):
    """Configuration of the kernel-candidate selection."""

    detectionThreshold: float = Field(
        5.0, ge=3.0,
        description=(
            "Detection threshold (sigma of the matched-filtered reference image). The full catalog is "
            "also the reference catalog of the difference-image QA, so keep it low; snrMin does the cut."
        ),
    )
    snrMin: float = Field(10.0, gt=0.0, description="Smallest aperture S/N of a kernel source (LSST: 10).")
    snrMax: float = Field(
        1.0e5, gt=0.0,
        description=(
            "Largest aperture S/N of a kernel source. LSST uses 500; diffim keeps bright unsaturated "
            "stars by default (saturated ones are always rejected) because they constrain the kernel "
            "best: in a sparse 512x512 field they halve the bright-star residuals."
        ),
    )
    requireIsolated: bool = Field(
        True, description="Reject sources with another detection within the detection's isolation radius."
    )
    rejectBlended: bool = Field(True, description="Reject sources whose footprint holds more than one peak.")
    requireCounterpart: bool = Field(
        True,
        description=(
            "Keep only sources also detected in the image to convolve within counterpartRadiusPix: "
            "transients and artefacts of one image cannot constrain the kernel."
        ),
    )
    counterpartRadiusPix: float = Field(
        2.0, gt=0.0, description="Largest distance (pixels) between a source and its counterpart in the other image."
    )
    maxFluxRatioSigma: float = Field(
        5.0, ge=0.0,
        description=(
            "Reject sources whose flux ratio between the two images is this many sigma from the median "
            "ratio (errors from the fluxes plus a 3 per cent floor): variable stars. 0 disables the cut."
        ),
    )
    rejectContaminatedStamps: bool = Field(
        False,
        description=(
            "diffim only: reject a source whose stamp holds another source of S/N >= contaminantSnrMin found in "
            "one image only, or with a flux ratio maxFluxRatioSigma off the median (a transient or a variable "
            "star), which a wide kernel can absorb, biasing the kernel sum. Off by default: on transient-dense "
            "small images it leaves too few candidates (512² benchmark pairs: kernel sums worse with LSST's "
            "basis); with wide (e.g. 4-Gaussian) kernels it removes their kernel-sum bias."
        ),
    )
    contaminantSnrMin: float = Field(
        10.0, gt=0.0,
        description="Smallest S/N of a source that can contaminate a stamp (maskContaminants, rejectContaminatedStamps).",
    )
    maskContaminants: bool = Field(
        True,
        description=(
            "diffim only: give zero weight, in a candidate's kernel fit, to the stamp pixels within "
            "contaminantRadiusFwhm reference FWHMs of a contaminant (a source of S/N >= contaminantSnrMin found in "
            "one image only, or a variable star off the median flux ratio by maxFluxRatioSigma). The fit would "
            "otherwise bend the kernel, above all a wide one, to reproduce the contaminant."
        ),
    )
    contaminantRadiusFwhm: float = Field(
        3.0, gt=0.0,
        description="Radius, in FWHMs of the reference image's PSF, of the pixels given zero weight around a contaminant.",
    )
    maxContaminatedFraction: float = Field(
        0.5, gt=0.0, le=1.0,
        description=(
            "A candidate whose fitted region (the stamp less the kernel's border) would lose more than this "
            "fraction of its pixels to maskContaminants is not used."
        ),
    )
    excludeMaskPlanes: list[str] = Field(
        default_factory=lambda: ["NO_DATA", "BAD", "SAT", "EDGE"],
        description=(
            "A stamp with any of these mask planes set, in either image, is rejected (planes not "
            "registered in this process are ignored, so LSST lists with FAKE or HIGH_VARIANCE load)."
        ),
    )

    def validate(self) -> None:
        super().validate()
        if self.snrMax <= self.snrMin:
            msg = f"snrMax ({self.snrMax}) must be larger than snrMin ({self.snrMin}); widen the S/N window"
            raise FieldValidationError(msg)


def _xy(table: Any) -> np.ndarray:
    """``(n, 2)`` source positions of a catalog."""
    return np.column_stack([np.asarray(table["x"], float), np.asarray(table["y"], float)])


def _snr(table: Any) -> np.ndarray:
    """S/N column of a catalog, NaN as 0."""
    return np.nan_to_num(np.asarray(table["snr"], float), nan=0.0)


def _planes(image: Any) -> MaskedImage:
    if isinstance(image, Exposure):
        return image.maskedImage
    if isinstance(image, MaskedImage):
        return image
    msg = f"kernel candidates need an Exposure or MaskedImage, got {type(image).__name__}"
    raise TypeError(msg)


def _bad_map(mi: MaskedImage, planes: list[str]) -> np.ndarray:
    """Pixels a kernel stamp must not contain: excluded planes, non-finite values, variance <= 0."""
    known = [name for name in planes if name in mask_planes]
    bad = mi.mask.plane(known) if known else np.zeros(mi.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        bad = bad | ~np.isfinite(mi.image.array) | ~(mi.variance.array > 0)
    return bad


def stamp_is_clean(images: list[MaskedImage], x: np.ndarray, y: np.ndarray, half: int,
                   planes: list[str]) -> np.ndarray:
    """Which square stamps of side ``2·half+1`` centred on ``(round(x), round(y))`` are usable.

    Parameters
    ----------
    images : list of MaskedImage
        Images on one pixel grid (same box); a stamp must be inside and clean in every one.
    x, y : numpy.ndarray
        Stamp centres in parent pixels.
    half : int
        Stamp half-size.
    planes : list of str
        Mask planes that spoil a stamp (non-finite pixels and variance <= 0 always do).

    Returns
    -------
    numpy.ndarray
        Boolean per centre.
    """
    box = images[0].getBBox()
    x0, y0 = box.minX, box.minY
    cx = np.floor(np.asarray(x, dtype=float) + 0.5).astype(np.int64) - x0
    cy = np.floor(np.asarray(y, dtype=float) + 0.5).astype(np.int64) - y0
    inside = (cx - half >= 0) & (cy - half >= 0) & (cx + half < box.width) & (cy + half < box.height)
    ok = inside.copy()
    idx = np.nonzero(inside)[0]
    if idx.size == 0:
        return ok
    bad = np.zeros(images[0].shape, dtype=bool)
    for mi in images:
        bad |= _bad_map(mi, planes)
    # summed-area table: bad pixels in any box in O(1)
    sat = np.zeros((bad.shape[0] + 1, bad.shape[1] + 1), dtype=np.int64 if bad.size >= 2**31 else np.int32)
    np.cumsum(bad, axis=0, dtype=sat.dtype, out=sat[1:, 1:])
    np.cumsum(sat[1:, 1:], axis=1, out=sat[1:, 1:])
    del bad
    r0, r1 = cy[idx] - half, cy[idx] + half + 1
    c0, c1 = cx[idx] - half, cx[idx] + half + 1
    counts = sat[r1, c1] - sat[r0, c1] - sat[r1, c0] + sat[r0, c0]
    ok[idx] = counts == 0
    return ok


class SelectKernelCandidatesTask(Task):
    """Select kernel sources: detection on the reference image, quality cuts, clean stamps.

    Cuts, in order (each count is written to the metadata and quoted by the error):

    1. detection on the reference image at ``detectionThreshold`` (positive sources): ``nDetected``;
    2. aperture S/N in ``[snrMin, snrMax]``: ``nSnr``;
    3. isolated (``requireIsolated``) and unblended (``rejectBlended``): ``nIsolated``;
    4. no saturated, masked or edge pixel in the detection footprint: ``nUnflagged``;
    5. a counterpart in the image to convolve (``requireCounterpart``): ``nCounterpart``;
    6. a flux ratio between the images consistent with the median (``maxFluxRatioSigma``):
       ``nFluxRatio``;
    7. a stamp of side ``2·kernelSize+1`` inside both images and free of ``excludeMaskPlanes``,
       non-finite pixels and non-positive variance in both: ``nCleanStamp``;
    8. the best ``maxSources`` by S/N: ``nSelected``.
    """

    ConfigClass = SelectKernelCandidatesConfig
    _DefaultName = "selectKernelCandidates"

    @timeMethod
    def run(
        self,
        convolved: Exposure | MaskedImage,
        reference: Exposure | MaskedImage,
        kernelSize: int,  # noqa: N803 - LSST name
        *,
        candidateList: Any = None,  # noqa: N803 - LSST name
        referenceFwhmPix: float | None = None,  # noqa: N803
        convolvedFwhmPix: float | None = None,  # noqa: N803
        referenceSources: Any = None,  # noqa: N803
        convolvedSources: Any = None,  # noqa: N803
        maxSources: int = 1000,  # noqa: N803
        minSources: int = 3,  # noqa: N803
    ) -> Struct:
        """Select the kernel sources.

        Parameters
        ----------
        convolved : Exposure or MaskedImage
            The image that will be convolved (normally the template).
        reference : Exposure or MaskedImage
            The image it is matched to, on the same pixel grid; detection runs on it.
        kernelSize : int
            Kernel size in LSST's sense of a stamp half-size: stamps have side ``2·kernelSize+1``.
        candidateList : astropy.table.Table, optional
            Sources to use instead of detecting (columns ``x``, ``y`` in parent pixels; ``snr`` or
            ``flux`` give the rating). Only the stamp cut (7) and ``maxSources`` apply to them.
        referenceFwhmPix, convolvedFwhmPix : float, optional
            PSF FWHMs of the two images (matched filters of the detections); default each image's
            PSF model, or one measured by the detection.
        referenceSources, convolvedSources : astropy.table.Table, optional
            Detection catalogs (from :func:`~diffim.tasks.detection.detect_sources`, at
            ``detectionThreshold``) of the two images, when the caller already has them.
        maxSources, minSources : int, optional
            Keep at most ``maxSources``; fewer than ``minSources`` is an error.

        Returns
        -------
        Struct
            ``kernelSources`` (Table of the selected sources, best first, with a ``rating``
            column and ``meta["kernelSize"]``), ``sources`` (the whole detection catalog of the
            reference image, or ``candidateList``), ``convolvedSources`` (the detection catalog
            of the image to convolve, None if not needed) and ``contaminants`` (``(n, 2)`` array of
            the contaminants' x, y for ``maskContaminants``; empty when it is off or a
            ``candidateList`` is given).

        Raises
        ------
        NoKernelCandidatesError
            If fewer than ``minSources`` sources survive; the message gives the count after each
            cut and what to relax.
        """
        from astropy.table import Table

        from .detection import detect_sources

        conv_mi, ref_mi = _planes(convolved), _planes(reference)
        if conv_mi.getBBox() != ref_mi.getBBox():
            msg = (
                f"the image to convolve covers {conv_mi.getBBox()} but the reference covers {ref_mi.getBBox()}; "
                "cut both to the same box before selecting kernel candidates"
            )
            raise ValueError(msg)
        half = int(kernelSize)
        config = self.config
        counts: dict[str, int] = {}
        convolved_sources = convolvedSources
        contaminants = np.empty((0, 2))
        if candidateList is None:
            sources = referenceSources
            if sources is None:
                sources = detect_sources(
                    reference, threshold=config.detectionThreshold, smooth_fwhm=referenceFwhmPix,
                    exclude_mask_planes=("NO_DATA",), set_mask=False,
                )
            keep = ~np.asarray(sources["negative"], dtype=bool)
            counts["nDetected"] = int(keep.sum())
            snr = np.nan_to_num(np.asarray(sources["snr"], dtype=float), nan=-1.0)
            keep &= (snr >= config.snrMin) & (snr <= config.snrMax)
            counts["nSnr"] = int(keep.sum())
            if config.requireIsolated:
                keep &= ~np.asarray(sources["flag_not_isolated"], dtype=bool)
            if config.rejectBlended:
                keep &= ~np.asarray(sources["flag_blended"], dtype=bool)
            counts["nIsolated"] = int(keep.sum())
            for flag in ("flag_saturated", "flag_masked", "flag_edge"):
                keep &= ~np.asarray(sources[flag], dtype=bool)
            counts["nUnflagged"] = int(keep.sum())
            contaminants_needed = config.rejectContaminatedStamps or config.maskContaminants
            if (config.requireCounterpart or config.maxFluxRatioSigma > 0 or contaminants_needed) \
                    and convolved_sources is None:
                convolved_sources = detect_sources(
                    convolved, threshold=config.detectionThreshold, smooth_fwhm=convolvedFwhmPix,
                    exclude_mask_planes=("NO_DATA",), set_mask=False,
                )
            if config.requireCounterpart or config.maxFluxRatioSigma > 0 or contaminants_needed:
                ok, match, nearest, variable = self._counterpart_cuts(sources, convolved_sources, keep, counts)
                keep &= ok
            if contaminants_needed:
                fwhm = referenceFwhmPix if referenceFwhmPix is not None else sources.meta.get("fwhm")
                contaminants = self._contaminants(sources, convolved_sources, match, nearest, variable, fwhm)
            if config.rejectContaminatedStamps:
                keep &= ~self._contaminated(sources, contaminants, keep, half)
                counts["nUncontaminated"] = int(keep.sum())
            rating = snr
        else:
            sources = candidateList if isinstance(candidateList, Table) else Table(candidateList)
            missing = [c for c in ("x", "y") if c not in sources.colnames]
            if missing:
                msg = (
                    f"candidateList has no {missing[0]!r} column (columns: {sources.colnames}); give a table "
                    "with x, y in parent pixels, e.g. from detect_sources"
                )
                raise ValueError(msg)
            keep = np.ones(len(sources), dtype=bool)
            counts["nDetected"] = len(sources)
            rating = np.ones(len(sources))
            for name in ("snr", "flux"):
                if name in sources.colnames:
                    rating = np.nan_to_num(np.asarray(sources[name], dtype=float), nan=-np.inf)
                    break
        xs = np.asarray(sources["x"], dtype=float)
        ys = np.asarray(sources["y"], dtype=float)
        if keep.any():
            keep[keep] = stamp_is_clean([conv_mi, ref_mi], xs[keep], ys[keep], half, list(config.excludeMaskPlanes))
        counts["nCleanStamp"] = int(keep.sum())
        chosen = np.nonzero(keep)[0]
        chosen = chosen[np.argsort(-rating[chosen], kind="stable")][: int(maxSources)]
        counts["nSelected"] = int(chosen.size)
        for key, value in counts.items():
            self.metadata[key] = value
        self.log.info("Selected %d kernel sources (%s)", chosen.size, ", ".join(f"{k}={v}" for k, v in counts.items()))
        if chosen.size < minSources:
            raise NoKernelCandidatesError(self._too_few_message(chosen.size, minSources, counts, half,
                                                                candidateList is None), **counts)
        selected = sources[chosen]
        selected["rating"] = rating[chosen]
        selected.meta["kernelSize"] = half
        if not config.maskContaminants:
            contaminants = np.empty((0, 2))
        return Struct(kernelSources=selected, sources=sources, convolvedSources=convolved_sources,
                      contaminants=contaminants)

    def _contaminants(self, sources: Any, others: Any, match: np.ndarray, nearest: np.ndarray,
                      variable: np.ndarray, fwhm: float | None) -> np.ndarray:
        """``(n, 2)`` positions of the sources that can contaminate a kernel stamp.

        A contaminant is a reference source flagged ``variable``, or a source of either catalog with
        no source of the other catalog within ``max(counterpartRadiusPix, FWHM)`` although it should
        have been found there: its S/N scaled to the other image (by the median S/N ratio of the
        matched sources) is at least ``contaminantSnrMin``. Faint stars seen only in the deeper
        image, and blends split differently by the two detections, are not contaminants.
        ``match`` and ``nearest`` are `_counterpart_cuts`'s counterparts and nearest distances.
        """
        from scipy.spatial import cKDTree

        config = self.config
        radius = max(config.counterpartRadiusPix, fwhm if fwhm is not None and math.isfinite(fwhm) else 0.0)
        positive = ~np.asarray(sources["negative"], dtype=bool)
        others = others[~np.asarray(others["negative"], dtype=bool)] if len(others) else others
        xy, other_xy = _xy(sources), _xy(others)
        snr, other_snr = _snr(sources), _snr(others)
        # S/N in the other image per unit S/N in this one, from the matched sources
        scale = 1.0
        matched = (match >= 0) & positive & (snr > 0)  # counterparts of _counterpart_cuts
        if matched.sum() >= 3:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = float(np.nanmedian(other_snr[match[matched]] / snr[matched]))
            if not (math.isfinite(scale) and scale > 0):
                scale = 1.0

        suspects = [xy[variable]]
        if positive.any():
            lonely = positive & ~(nearest < radius) & (snr * scale >= config.contaminantSnrMin)
            suspects.append(xy[lonely])
        if len(others):
            alone = np.ones(len(others), dtype=bool)
            if positive.any():
                dist, _ = cKDTree(xy[positive]).query(other_xy, distance_upper_bound=radius)
                alone = ~np.isfinite(dist)
            lonely = alone & (other_snr / scale >= config.contaminantSnrMin)
            suspects.append(other_xy[lonely])
        return np.concatenate(suspects).reshape(-1, 2)

    def _contaminated(self, sources: Any, points: np.ndarray, keep: np.ndarray, half: int) -> np.ndarray:
        """Kept sources whose stamp (half-size ``half``) holds one of the contaminant ``points``."""
        from scipy.spatial import cKDTree

        bad = np.zeros(len(sources), dtype=bool)
        if not keep.any() or not len(points):
            return bad
        xy = _xy(sources)
        idx = np.flatnonzero(keep)
        near = cKDTree(points).query_ball_point(xy[idx], r=half * math.sqrt(2.0) + 1.0)
        for i, found in zip(idx, near):
            offsets = np.abs(points[found] - xy[i])
            # in the stamp, and not the candidate itself (judged by the other cuts)
            inside = (offsets.max(axis=1, initial=0.0) <= half + 0.5) & (np.hypot(*offsets.T) > self.config.counterpartRadiusPix)
            bad[i] = bool(inside.any())
        return bad

    def _counterpart_cuts(self, sources: Any, others: Any, keep: np.ndarray,
                          counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cuts 5 and 6: a counterpart in the other image, and a consistent flux ratio.

        Returns the sources passing, each source's counterpart (index into the positive sources of
        ``others``, -1 for none), the distance to its nearest positive source of ``others`` (inf
        for none), and the variables among all matched sources of S/N >=
        ``contaminantSnrMin`` (flux ratio ``maxFluxRatioSigma`` off the kept
        sources' median), for the stamp contamination cut.
        """
        from scipy.spatial import cKDTree

        config = self.config
        ok = np.ones(len(sources), dtype=bool)
        variable = np.zeros(len(sources), dtype=bool)
        match = np.full(len(sources), -1, dtype=np.int64)
        nearest = np.full(len(sources), np.inf)
        others = others[~np.asarray(others["negative"], dtype=bool)] if len(others) else others
        if len(others) and len(sources):
            nearest, index = cKDTree(_xy(others)).query(_xy(sources))
            found = nearest < config.counterpartRadiusPix  # strict, as cKDTree's distance_upper_bound
            match[found] = index[found]
        has = match >= 0
        if config.requireCounterpart:
            ok &= has
        counts["nCounterpart"] = int((keep & ok).sum())
        if config.maxFluxRatioSigma > 0:
            sel = keep & ok & has
            if sel.sum() >= 3:
                # flux ratios and their relative errors of every matched source
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.full(len(sources), np.nan)
                    rel = np.full(len(sources), np.nan)
                    ratio[has] = np.asarray(sources["flux"], dtype=float)[has] / np.asarray(others["flux"], dtype=float)[match[has]]
                    rel[has] = np.sqrt(np.asarray(sources["snr"], float)[has] ** -2.0
                                       + np.asarray(others["snr"], float)[match[has]] ** -2.0 + _FLUX_RATIO_FLOOR**2)
                    median = float(np.nanmedian(ratio[sel]))
                    z = np.abs(ratio - median) / (abs(median) * rel)
                bad = sel & ~(z <= config.maxFluxRatioSigma)  # NaN counts as bad
                ok &= ~bad
                self.log.debug("Flux ratio cut: median %.4g, %d variable candidates rejected", median, int(bad.sum()))
                variable = has & (_snr(sources) >= config.contaminantSnrMin) & (z > config.maxFluxRatioSigma)
        counts["nFluxRatio"] = int((keep & ok).sum())
        return ok, match, nearest, variable

    def _too_few_message(self, n: int, needed: int, counts: dict[str, int], half: int, detected: bool) -> str:
        config = self.config
        side = 2 * half + 1
        if detected:
            steps = [
                f"{counts['nDetected']} detected at {config.detectionThreshold:g} sigma on the reference image",
                f"{counts['nSnr']} with S/N in [{config.snrMin:g}, {config.snrMax:g}]",
                f"{counts['nIsolated']} isolated and unblended",
                f"{counts['nUnflagged']} unsaturated and unmasked",
            ]
            if "nCounterpart" in counts:
                steps.append(f"{counts['nCounterpart']} also found in the image to convolve")
                steps.append(f"{counts['nFluxRatio']} with a consistent flux ratio")
            steps.append(f"{counts['nCleanStamp']} with a clean {side}x{side} stamp in both images")
            advice = (
                "give images with more stars, lower selectKernelCandidates.snrMin, set "
                "selectKernelCandidates.requireIsolated=False, lower kernel.active.kernelSizeMax, or lower minKernelSources"
            )
        else:
            steps = [f"{counts['nDetected']} given", f"{counts['nCleanStamp']} with a clean {side}x{side} stamp in both images"]
            advice = "give more candidates away from masked pixels and the image edges, or lower minKernelSources"
        return f"only {n} usable kernel sources, need at least {needed} ({', '.join(steps)}); {advice}"
