"""Kernel candidates and their solutions: the numerical core of PSF matching (LSST ip_diffim)."""

from __future__ import annotations

from .candidate import (
    CandidateSolution,
    CandidateStatus,
    CandidateSwitch,
    KernelCandidate,
    KernelCandidateError,
    SpatialCellCandidate,
)
from .linalg import ConditionNumberType, SolvedBy, condition_number, eigen_pseudo_inverse, solve_system
from .solutions import (
    KernelSolution,
    KernelSolutionError,
    RegularizedKernelSolution,
    SpatialKernelSolution,
    StaticKernelSolution,
    lambda_grid,
    risk_curve,
)
from .statistics import ImageStatistics, ImageStatisticsError

__all__ = [
    "CandidateSolution",
    "CandidateStatus",
    "CandidateSwitch",
    "ConditionNumberType",
    "ImageStatistics",
    "ImageStatisticsError",
    "KernelCandidate",
    "KernelCandidateError",
    "KernelSolution",
    "KernelSolutionError",
    "RegularizedKernelSolution",
    "SolvedBy",
    "SpatialCellCandidate",
    "SpatialKernelSolution",
    "StaticKernelSolution",
    "condition_number",
    "eigen_pseudo_inverse",
    "lambda_grid",
    "risk_curve",
    "solve_system",
]
