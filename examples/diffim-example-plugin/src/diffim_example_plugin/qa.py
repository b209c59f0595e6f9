"""The ``"residualChi2"`` QA visitor: how well the final spatial kernel fits each kernel candidate.

diffim runs QA visitors named in the kernel config's ``qaVisitors`` at the visit point their
class names (``visitPoint``, one of ``diffim.tasks.psfMatch.VISIT_POINTS``). This one runs at
``"final"``, once the spatial kernel is chosen. For each candidate kept by the fit it computes the
residual stamp ``D = S − (K(x, y) ⋆ T + bg(x, y))`` with the spatial kernel and background at the
candidate, then the reduced chi² ``Σ (D²/V) / N`` over the good pixels (finite, positive variance,
outside ``badMaskPlanes``): about 1 for a good fit, far more for a variable star or a bad kernel.

Metadata written on the task (arrays in candidate order, refreshed at every visit):

``exampleQaCandidateId``, ``exampleQaX``, ``exampleQaY``, ``exampleQaChi2``, ``exampleQaNPix``
    Per candidate: id, position (parent pixels), reduced chi², pixels used.
``exampleQaChi2Median``, ``exampleQaChi2Max``, ``exampleQaNCandidates``
    Summary over the candidates.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from diffim.tasks.kernel import FixedKernel, convolveAndSubtract
from diffim.tasks.matching.cells import CandidateVisitor

__all__ = ["NAME", "ResidualChi2Visitor", "reduced_chi2"]

#: The name users list in ``qaVisitors``.
NAME = "residualChi2"

#: Prefix of every metadata key this visitor writes.
PREFIX = "exampleQa"


def reduced_chi2(difference: Any, bad_mask_planes: list[str] | None = None) -> tuple[float, int]:
    """Return the reduced chi² of a difference stamp and the number of pixels used.

    Parameters
    ----------
    difference : `~diffim.tasks.image.MaskedImage`
        Residual stamp with its variance and mask.
    bad_mask_planes : `list` [`str`], optional
        Mask planes whose pixels are left out.

    Returns
    -------
    chi2 : `float`
        ``mean(D² / V)`` over the good pixels; NaN when there are none.
    npix : `int`
        Good pixels used.
    """
    image = np.asarray(difference.image.array, dtype=float)
    variance = np.asarray(difference.variance.array, dtype=float)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    if bad_mask_planes:
        bits = difference.mask.getPlaneBitMask(bad_mask_planes)
        good &= (difference.mask.array & bits) == 0
    npix = int(good.sum())
    if npix == 0:
        return math.nan, 0
    return float(np.mean(image[good] ** 2 / variance[good])), npix


class ResidualChi2Visitor(CandidateVisitor):
    """Record each candidate's reduced chi² under the final spatial kernel (see the module notes).

    Parameters
    ----------
    task : `~diffim.tasks.psfMatch.PsfMatchTask`
        The task running the fit; its ``metadata`` receives the results.
    config : `~diffim.tasks.psfMatch.PsfMatchConfig`
        The kernel config (``badMaskPlanes``).
    spatialKernel : `~diffim.tasks.kernel.LinearCombinationKernel`
        The spatial kernel (given by diffim at this visit point).
    spatialBackground : callable or `None`, optional
        The spatial background ``bg(x, y)``, `None` without ``fitForBackground``.
    **context
        Other visit-point data (``basisList``), unused.
    """

    #: Where ``PsfMatchTask._solve`` runs this visitor.
    visitPoint: ClassVar[str] = "final"

    def __init__(self, task: Any, config: Any, spatialKernel: Any, spatialBackground: Any = None,  # noqa: N803
                 **context: Any) -> None:
        self.task = task
        self.config = config
        self.kernel = spatialKernel
        self.background = spatialBackground
        self.rows: list[tuple[int, float, float, float, int]] = []

    def reset(self) -> None:
        """Start a new visit: forget the rows of a previous one."""
        self.rows = []

    def processCandidate(self, candidate: Any) -> None:  # noqa: N802 - the visitor protocol's name
        """Compute one candidate's chi² and rewrite the metadata with every row so far.

        Parameters
        ----------
        candidate : `~diffim.tasks.matching.candidate.KernelCandidate`
            A candidate of the cell set (diffim skips BAD ones).
        """
        x, y = candidate.getXCenter(), candidate.getYCenter()
        kernel = FixedKernel(self.kernel.computeImage(x, y))
        background = 0.0 if self.background is None else float(self.background(x, y))
        difference = convolveAndSubtract(
            candidate.getTemplateMaskedImage(), candidate.getScienceMaskedImage(), kernel, background
        )
        chi2, npix = reduced_chi2(difference, list(self.config.badMaskPlanes))
        self.rows.append((int(candidate.getId()), float(x), float(y), chi2, npix))
        self._write()

    def _write(self) -> None:
        # diffim gives no end-of-visit call, so the metadata is rewritten after each candidate
        md = self.task.metadata
        ids, xs, ys, chi2s, npixs = (list(column) for column in zip(*self.rows, strict=True))
        md[f"{PREFIX}CandidateId"] = ids
        md[f"{PREFIX}X"] = xs
        md[f"{PREFIX}Y"] = ys
        md[f"{PREFIX}Chi2"] = chi2s
        md[f"{PREFIX}NPix"] = npixs
        finite = [c for c in chi2s if math.isfinite(c)]
        md[f"{PREFIX}NCandidates"] = len(self.rows)
        md[f"{PREFIX}Chi2Median"] = float(np.median(finite)) if finite else math.nan
        md[f"{PREFIX}Chi2Max"] = max(finite) if finite else math.nan
