"""Built-in candidate visitors of the kernel fit (LSST's ip_diffim visitors, spec §5).

Registered by :mod:`diffim.plugins.visitor_hooks` under the names ``PsfMatchTask._solve`` looks
up: ``buildSingleKernel``, ``kernelSum``, ``kernelPca``, ``buildSpatialKernel`` and
``assessSpatialKernel``. A plugin can register one of these names with ``replace=True`` to swap in
its own visitor.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from diffim.tasks.matching.candidate import (
    CandidateSolution,
    CandidateStatus,
    KernelCandidateError,
)
from diffim.tasks.matching.cells import CandidateVisitor
from diffim.tasks.matching.clipping import clipped_mean_std

__all__ = [
    "BuildSingleKernelVisitor",
    "KernelSumVisitor",
    "KernelPcaVisitor",
    "BuildSpatialKernelVisitor",
    "AssessSpatialKernelVisitor",
]

#: Smallest kernel-sum deviation ever rejected, relative to the mean kernel sum.
KSUM_RELATIVE_FLOOR = 1e-6

RECENT = CandidateSolution.RECENT
ORIG = CandidateSolution.ORIG
GOOD = CandidateStatus.GOOD
BAD = CandidateStatus.BAD


def _residual_stats(candidate: Any, diffim: Any, config: Any) -> Any:
    from diffim.tasks.matching.statistics import ImageStatistics

    stats = ImageStatistics(config)
    stats.apply(diffim, config.candidateCoreRadius if config.useCoreStats else -1)
    return stats


def _clip(candidate: Any, stats: Any, config: Any, clipping: bool) -> bool:
    """Set GOOD/BAD from residual statistics; True when the candidate is rejected."""
    mean, rms = stats.getMean(), stats.getRms()
    if not (math.isfinite(mean) and math.isfinite(rms)):
        candidate.setStatus(BAD)
        return True
    if clipping and (abs(mean) > config.candidateResidualMeanMax or rms > config.candidateResidualStdMax):
        candidate.setStatus(BAD)
        return True
    candidate.setStatus(GOOD)
    return False


class BuildSingleKernelVisitor(CandidateVisitor):
    """Fit each candidate's own kernel and reject it on its residuals (spec §5.1)."""

    def __init__(self, basisList: list[Any], config: Any, hMat: Any = None) -> None:
        self.basisList = basisList
        self.config = config
        self.hMat = hMat
        self.skipBuilt = True
        self.nRejected = 0
        self.nProcessed = 0

    def setSkipBuilt(self, skip: bool) -> None:
        self.skipBuilt = bool(skip)

    def reset(self) -> None:
        self.nRejected = 0
        self.nProcessed = 0

    def processCandidate(self, candidate: Any) -> None:
        if self.skipBuilt and candidate.isInitialized():
            return
        try:
            candidate.build(self.basisList, self.hMat)
        except Exception:
            candidate.setStatus(BAD)
            self.nRejected += 1
            return
        if candidate.getStatus() == BAD:  # condition number too large
            self.nRejected += 1
            return
        try:
            stats = _residual_stats(candidate, candidate.getDifferenceImage(RECENT), self.config)
        except Exception:
            candidate.setStatus(BAD)
            return
        self.nProcessed += 1
        candidate.setChi2(stats.getVariance())
        if _clip(candidate, stats, self.config, self.config.singleKernelClipping):
            self.nRejected += 1


class KernelSumVisitor(CandidateVisitor):
    """Collect kernel sums, then reject outliers (spec §5.2); modes ``AGGREGATE`` and ``REJECT``."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.mode = "AGGREGATE"
        self.resetKernelSum()

    def setMode(self, mode: str) -> None:
        if mode not in ("AGGREGATE", "REJECT"):
            msg = f"KernelSumVisitor mode must be 'AGGREGATE' or 'REJECT', got {mode!r}"
            raise ValueError(msg)
        self.mode = mode

    def resetKernelSum(self) -> None:
        self.kSums: list[float] = []
        self.kSumErrors: list[float] = []
        self.errorClipping = False
        self._median: _LeaveOneOutMedian | None = None
        self.kSumMean = 0.0
        self.kSumStd = 0.0
        self.dkSumMax = 0.0
        self.kSumNpts = 0
        self.nRejected = 0

    def reset(self) -> None:
        """A no-op, as in LSST: sums survive across visits until resetKernelSum()."""

    def _error_aware(self) -> bool:
        return self.config.maxKsumErrorSigma > 0

    def _ksum_error(self, candidate: Any) -> float:
        """The candidate's kernel-sum error, fit and systematic floor in quadrature (NaN if unknown)."""
        try:
            fit = candidate.getKernelSolution(ORIG).getKsumError()
        except (AttributeError, KernelCandidateError, np.linalg.LinAlgError):
            return math.nan
        floor = self.config.ksumErrorFloor * abs(candidate.getKsum(ORIG))
        return math.hypot(fit, floor)

    def processCandidate(self, candidate: Any) -> None:
        if self.mode == "AGGREGATE":
            self.kSums.append(candidate.getKsum(ORIG))
            if self._error_aware():
                self.kSumErrors.append(self._ksum_error(candidate))
        elif self.config.kernelSumClipping:
            ksum = candidate.getKsum(ORIG)
            reject = abs(ksum - self.kSumMean) > self.dkSumMax
            if not reject and self.errorClipping:
                assert self._median is not None  # built with errorClipping
                error = self._ksum_error(candidate)
                # the others' weighted median: a precise outlier would pull a median taken with it
                centre = self._median.without(ksum, error)
                reject = (math.isfinite(error) and math.isfinite(centre)
                          and abs(ksum - centre) > self.config.maxKsumErrorSigma * error)
            if reject:
                candidate.setStatus(BAD)
                self.nRejected += 1

    def processKsumDistribution(self) -> None:
        if not self.kSums:
            msg = "Unable to determine kernel sum; 0 candidates"
            raise RuntimeError(msg)
        if len(self.kSums) == 1:
            self.kSumMean, self.kSumStd = self.kSums[0], 0.0
        else:
            self.kSumMean, self.kSumStd = clipped_mean_std(self.kSums)
            if not (math.isfinite(self.kSumMean) and math.isfinite(self.kSumStd)):
                msg = f"Unable to determine kernel sum: clipped statistics of {len(self.kSums)} sums are NaN"
                raise RuntimeError(msg)
        # LSST's bound is maxKsumSigma * std alone, so identical kernel sums (std ~ 1e-15) reject
        # candidates over round-off (spec §11.6); a relative floor of 1e-6 keeps them.
        self.dkSumMax = max(self.config.maxKsumSigma * self.kSumStd, KSUM_RELATIVE_FLOOR * abs(self.kSumMean))
        self.kSumNpts = len(self.kSums)
        n_errors = int(np.count_nonzero(np.isfinite(self.kSumErrors))) if self.kSumErrors else 0
        self.errorClipping = self._error_aware() and n_errors >= self.config.ksumErrorMinCandidates
        self._median = _LeaveOneOutMedian(self.kSums, self.kSumErrors) if self.errorClipping else None


class _LeaveOneOutMedian:
    """Medians of ``values`` weighted by ``1/errors²``, each without one of them (sorted once).

    NaN errors and values are left out; the median is NaN when none is left.
    """

    def __init__(self, values: list[float], errors: list[float]) -> None:
        v = np.asarray(values, dtype=float)
        e = np.asarray(errors, dtype=float)
        ok = np.isfinite(v) & np.isfinite(e) & (e > 0)
        order = np.argsort(v[ok], kind="stable")
        self.values = v[ok][order]
        self.errors = e[ok][order]
        self.weights = 1.0 / self.errors**2

    def without(self, value: float, error: float) -> float:
        """The weighted median of the others: one ``(value, error)`` pair (the candidate judged) left out."""
        values, weights = self.values, self.weights
        same = np.flatnonzero((values == value) & (self.errors == error))
        if same.size:  # the rest stays sorted: no new sort per candidate
            values, weights = np.delete(values, same[0]), np.delete(weights, same[0])
        if not values.size:
            return math.nan
        cumulative = np.cumsum(weights)
        return float(values[np.searchsorted(cumulative, 0.5 * cumulative[-1])])


class KernelPcaVisitor(CandidateVisitor):
    """Add each candidate's unit-sum ORIG kernel image to a :class:`KernelPca` (spec §5.3)."""

    def __init__(self, imagePca: Any) -> None:
        self.imagePca = imagePca

    def processCandidate(self, candidate: Any) -> None:
        # as LSST: a candidate without an ORIG kernel (or of another kernel size) is skipped, and
        # still counts toward nMaxPerCell of the visit
        try:
            image = candidate.getKernelImage(ORIG)
            self.imagePca.addImage(image / candidate.getKsum(ORIG), 1.0)
        except (KernelCandidateError, ValueError):
            return


class BuildSpatialKernelVisitor(CandidateVisitor):
    """Accumulate the candidates' normal equations into the spatial fit (spec §5.4)."""

    def __init__(self, basisList: list[Any], regionBBox: Any, config: Any) -> None:
        from diffim.tasks.kernel.functions import make_spatial_function
        from diffim.tasks.matching.solutions import SpatialKernelSolution

        self.config = config
        kernel_function = make_spatial_function(config.spatialModelType, config.spatialKernelOrder, regionBBox)
        bg_order = config.spatialBgOrder if config.fitForBackground else 0
        background_function = make_spatial_function(config.spatialModelType, bg_order, regionBBox)
        self.solution = SpatialKernelSolution(basisList, kernel_function, background_function, config)
        self.nCandidates = 0

    def reset(self) -> None:
        self.nCandidates = 0

    def processCandidate(self, candidate: Any) -> None:
        if not candidate.isInitialized():
            candidate.setStatus(BAD)
            return
        self.nCandidates += 1
        self.solution.addConstraint(
            candidate.getXCenter(), candidate.getYCenter(), candidate.getM(RECENT), candidate.getB(RECENT)
        )

    def solveLinearEquation(self) -> None:
        self.solution.solve()

    def getSolutionPair(self) -> tuple[Any, Any]:
        return self.solution.getSolutionPair()

    def getKernelSolution(self) -> Any:
        return self.solution


class AssessSpatialKernelVisitor(CandidateVisitor):
    """Judge each candidate by the residuals of the spatial model (spec §5.5)."""

    def __init__(self, spatialKernel: Any, spatialBackground: Any, config: Any) -> None:
        self.kernel = spatialKernel
        self.background = spatialBackground
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.nGood = 0
        self.nRejected = 0
        self.nProcessed = 0

    def processCandidate(self, candidate: Any) -> None:
        from diffim.tasks.kernel.convolve import convolveAndSubtract
        from diffim.tasks.kernel.kernels import FixedKernel

        if not candidate.isInitialized():
            candidate.setStatus(BAD)
            return
        x, y = candidate.getXCenter(), candidate.getYCenter()
        kernel = FixedKernel(self.kernel.computeImage(x, y))
        background = float(self.background(x, y))
        try:
            diffim = convolveAndSubtract(
                candidate.getTemplateMaskedImage(), candidate.getScienceMaskedImage(), kernel, background
            )
            stats = _residual_stats(candidate, diffim, self.config)
        except Exception:
            candidate.setStatus(BAD)
            return
        self.nProcessed += 1
        if _clip(candidate, stats, self.config, self.config.spatialKernelClipping):
            self.nRejected += 1
        else:
            self.nGood += 1
