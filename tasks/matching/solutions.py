"""Kernel solutions: the linear least-squares fits of a PSF-matching kernel (spec §4.1–§4.4).

* :class:`StaticKernelSolution` fits one stamp: the science stamp ``I`` as a linear combination of
  the template stamp correlated with each basis kernel, ``I ≈ Σ a_k (B_k ⋆ T) + b``.
* :class:`RegularizedKernelSolution` adds a penalty ``λ aᵀHa`` with ``λ`` chosen by
  ``lambdaType`` (all four modes work, unlike LSST's C++).
* :class:`SpatialKernelSolution` fits the spatial variation of the coefficients to the local
  normal equations of many candidates.

All solutions keep the normal equations ``M a = B`` (``getM``/``getB``), record how they were
solved (:class:`~diffim.tasks.matching.linalg.SolvedBy`) and carry a process-wide unique id.

The implementations live in :mod:`.solution_base`, :mod:`.static_solution`,
:mod:`.regularized_solution` and :mod:`.spatial_solution`; this module gathers them.
"""

from __future__ import annotations

from .regularized_solution import RegularizedKernelSolution, lambda_grid, risk_curve
from .solution_base import KernelSolution, KernelSolutionError
from .spatial_solution import SpatialKernelSolution
from .static_solution import StaticKernelSolution

__all__ = [
    "KernelSolution",
    "KernelSolutionError",
    "RegularizedKernelSolution",
    "SpatialKernelSolution",
    "StaticKernelSolution",
    "lambda_grid",
    "risk_curve",
]
