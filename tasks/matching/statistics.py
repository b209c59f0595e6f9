"""``ImageStatistics``: mean and scatter of ``pixel / sigma`` over a stamp (spec §6.1).

Used to rate kernel candidates (mean core S/N of the science stamp) and to judge a kernel fit
from the normalised residuals ``D/σ`` of its difference image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..image import MaskedImage, mask_planes

__all__ = ["ImageStatistics", "ImageStatisticsError"]


class ImageStatisticsError(RuntimeError):
    """The statistics of a stamp cannot be computed (non-finite pixels that are not masked)."""


class ImageStatistics:
    """Statistics of ``z = pixel · sqrt(1/variance)`` over the good pixels of a masked image.

    Parameters
    ----------
    config : PsfMatchConfig
        Kernel config; ``badMaskPlanes`` names the planes whose pixels are ignored (planes not
        registered are ignored too, as in LSST).

    Notes
    -----
    A pixel counts when it has none of the bad bits and ``1/variance`` is finite (so
    zero-variance pixels are skipped). The variance is the unbiased one,
    ``(Σz²/n − mean²)·n/(n−1)``; the mean is NaN for ``n == 0`` and the variance for ``n <= 1``.
    A NaN pixel that is not masked (e.g. a convolution edge when ``NO_DATA`` is not in
    ``badMaskPlanes``) makes :meth:`apply` raise, which turns the candidate BAD.
    """

    def __init__(self, config: Any) -> None:
        names = [name for name in config.badMaskPlanes if name in mask_planes]
        self._bp_mask = mask_planes.bitmask(names) if names else 0
        self._reset()

    def _reset(self) -> None:
        self._npix = 0
        self._mean = float("nan")
        self._variance = float("nan")

    # -- LSST accessors -------------------------------------------------------------------------
    def setBpMask(self, bp_mask: int) -> None:  # noqa: N802 - LSST name
        """Replace the bit mask of bad pixels."""
        self._bp_mask = int(bp_mask)

    def getBpMask(self) -> int:  # noqa: N802 - LSST name
        """The bit mask of bad pixels."""
        return self._bp_mask

    def getNpix(self) -> int:  # noqa: N802 - LSST name
        """Number of pixels used by the last :meth:`apply`."""
        return self._npix

    def getMean(self) -> float:  # noqa: N802 - LSST name
        """Mean of ``pixel/σ`` (NaN when no pixel was used)."""
        return self._mean

    def getVariance(self) -> float:  # noqa: N802 - LSST name
        """Unbiased variance of ``pixel/σ`` (NaN with fewer than 2 pixels)."""
        return self._variance

    def getRms(self) -> float:  # noqa: N802 - LSST name
        """Square root of :meth:`getVariance` (LSST's "rms" is a standard deviation)."""
        variance = self.getVariance()
        return float(np.sqrt(variance)) if variance >= 0 else float("nan")

    def evaluateQuality(self, config: Any) -> bool:  # noqa: N802 - LSST name
        """Whether the residuals pass ``candidateResidualMeanMax`` and ``candidateResidualStdMax``."""
        mean, rms = self.getMean(), self.getRms()
        if not (np.isfinite(mean) and np.isfinite(rms)):
            return False
        return abs(mean) <= config.candidateResidualMeanMax and rms <= config.candidateResidualStdMax

    # -- computation ------------------------------------------------------------------------------
    def apply(self, masked_image: MaskedImage, core: int = -1) -> None:
        """Accumulate the statistics of ``masked_image`` (or of its central core).

        Parameters
        ----------
        masked_image : MaskedImage
            Stamp, e.g. a difference image.
        core : int, optional
            If >= 0, use only rows and columns ``n//2 - core .. n//2 + core`` (clipped to the
            image): ``(2·core+1)²`` pixels.

        Raises
        ------
        ImageStatisticsError
            If the sums are not finite (unmasked NaN/inf pixels or negative variances).
        """
        self._reset()
        image = masked_image.image.array
        variance = masked_image.variance.array
        mask = masked_image.mask.array
        if core >= 0:
            height, width = image.shape
            rows = slice(max(height // 2 - core, 0), min(height // 2 + core, height - 1) + 1)
            cols = slice(max(width // 2 - core, 0), min(width // 2 + core, width - 1) + 1)
            image, variance, mask = image[rows, cols], variance[rows, cols], mask[rows, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            ivar = 1.0 / variance.astype(float)
            # an infinite variance (ivar 0) is a pixel the kernel fit gave zero weight: not counted
            use = ((mask & self._bp_mask) == 0) & np.isfinite(ivar) & ~(np.isposinf(variance) & np.isfinite(image))
            z = image[use].astype(float) * np.sqrt(ivar[use])
        xsum = float(z.sum())
        x2sum = float((z * z).sum())
        if not (np.isfinite(xsum) and np.isfinite(x2sum)):
            bad = int(np.count_nonzero(~np.isfinite(z)))
            msg = (
                f"ImageStatistics: {bad} unmasked pixel(s) have a non-finite value or variance; "
                f"mask them with one of badMaskPlanes ({self._bp_mask:#x})"
            )
            raise ImageStatisticsError(msg)
        n = int(z.size)
        self._npix = n
        if n > 0:
            self._mean = xsum / n
        if n > 1:
            # (Σz²/n − mean²)·n/(n−1), evaluated in the two-pass form to avoid cancellation
            self._variance = float(((z - self._mean) ** 2).sum()) / (n - 1)

    def __repr__(self) -> str:
        return f"ImageStatistics(npix={self._npix}, mean={self.getMean():.6g}, rms={self.getRms():.6g})"
