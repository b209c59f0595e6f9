"""``PsfMatchTask._diagnostic``: how well constrained the spatial fit is, and substamp metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import aggregate_metrics, kernel_shape_metrics, residual_metrics

__all__ = ["diagnose", "candidate_metrics"]


def candidate_metrics(candidate: Any, spatial_kernel: Any, spatial_background: Any) -> dict[str, float]:
    """LOCAL and SPATIAL residual metrics of one candidate, kernel shapes and kernel MSE."""
    from ..kernel.convolve import convolveAndSubtract
    from ..kernel.kernels import FixedKernel
    from .candidate import CandidateSolution

    recent = CandidateSolution.RECENT
    x, y = candidate.getXCenter(), candidate.getYCenter()
    local_kernel = candidate.getKernelImage(recent)
    n_local = candidate.getKernel(recent).getNBasisKernels() + (1 if candidate.getBackground(recent) != 0 else 0)
    out = residual_metrics(candidate.getDifferenceImage(recent), n_parameters=n_local, suffix="LOCAL")
    out.update(kernel_shape_metrics(local_kernel, suffix="LOCAL"))
    spatial_image = spatial_kernel.computeImage(x, y)
    diffim = convolveAndSubtract(
        candidate.getTemplateMaskedImage(), candidate.getScienceMaskedImage(),
        FixedKernel(spatial_image), float(spatial_background(x, y)),
    )
    out.update(residual_metrics(diffim, n_parameters=0, suffix="SPATIAL"))
    out.update(kernel_shape_metrics(spatial_image, suffix="SPATIAL"))
    if spatial_image.shape == local_kernel.shape:
        out["KCDiffimMseKernel_SPATIAL"] = float(np.mean((spatial_image - local_kernel) ** 2))
    return out


def diagnose(task: Any, cell_set: Any, solution: Any, kernel: Any, background: Any) -> None:
    """Log the spatial fit's quality with advice and write the metadata keys (spec §7.4)."""
    from .candidate import CandidateStatus

    config = task.kConfig
    log = task.log
    cx, cy = cell_set.getBBox().getCenter()
    ksum = kernel.computeSum(cx, cy)
    log.info("Final spatial kernel sum %.3f", ksum)
    cond = float(solution.getConditionNumber(config.conditionNumberType))
    if cond < 0:
        log.warning("Condition number is negative (%.3e): the spatial fit is numerically unstable", cond)
    if cond > config.maxSpatialConditionNumber:
        log.warning(
            "Spatial solution exceeds max condition number (%.3e > %.3e); consider lowering spatialKernelOrder",
            cond, config.maxSpatialConditionNumber,
        )
    task.metadata["spatialConditionNum"] = cond
    task.metadata["spatialKernelSum"] = ksum

    n_kernel_terms = max(kernel.getNSpatialParameters(), 1) if kernel.isSpatiallyVarying() else 1
    bg_params = np.asarray(background.getParameters())
    n_bg_terms = 0 if (bg_params.size == 1 and bg_params[0] == 0.0) else bg_params.size
    candidates = list(cell_set.candidates(include_bad=True))
    n_good = sum(1 for c in candidates if c.getStatus() == CandidateStatus.GOOD)
    n_bad = sum(1 for c in candidates if c.getStatus() == CandidateStatus.BAD)
    n_total = len(candidates)
    task.metadata["nGoodCandidates"] = n_good
    task.metadata["nBadCandidates"] = n_bad
    log.info("Doing stats of kernel candidates used in the spatial fit.")
    if n_bad > 2 * n_good:
        log.warning("Many more candidates rejected than accepted; %d total, %d rejected, %d used", n_total, n_bad, n_good)
    else:
        log.info("%d candidates total, %d rejected, %d used", n_total, n_bad, n_good)
    _constraint_advice(log, "kernel", n_good, n_kernel_terms)
    if n_bg_terms > 0:
        _constraint_advice(log, "background", n_good, n_bg_terms)

    rows = []
    for candidate in candidates:
        if candidate.getStatus() != CandidateStatus.GOOD:
            continue
        try:
            metrics = candidate_metrics(candidate, kernel, background)
        except Exception as err:  # noqa: BLE001 - metrics are QA: never fail the fit for them
            log.debug("No substamp metrics for candidate %s: %s", candidate.getId(), err)
            continue
        candidate.metrics = metrics
        rows.append(metrics)
    aggregate_metrics(rows, task.metadata)


def _constraint_advice(log: Any, what: str, n_good: int, n_terms: int) -> None:
    if n_good < n_terms:
        log.warning(
            "Spatial %s model underconstrained; %d candidates, %d terms; consider lowering the spatial order",
            what, n_good, n_terms,
        )
    elif n_good <= 2 * n_terms:
        log.warning(
            "Spatial %s model poorly constrained; %d candidates, %d terms; consider lowering the spatial order",
            what, n_good, n_terms,
        )
    else:
        log.info("Spatial %s model well constrained; %d candidates, %d terms", what, n_good, n_terms)


