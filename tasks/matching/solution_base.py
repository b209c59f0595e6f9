"""Common base of the kernel solutions: normal equations, solve bookkeeping, unique ids."""

from __future__ import annotations

import itertools
import logging

import numpy as np

from .linalg import ConditionNumberType, SolvedBy, condition_number, solve_system

__all__ = ["KernelSolution", "KernelSolutionError"]


_log = logging.getLogger("diffim.tasks.matching.solutions")

#: Process-wide solution ids (LSST's static ``KernelSolution::_SolutionId``).
_solution_ids = itertools.count()


class KernelSolutionError(RuntimeError):
    """A kernel fit cannot be built or solved (bad variances, NaN coefficients, misuse)."""


class KernelSolution:
    """Base of all kernel solutions: normal equations ``M a = B``, solve state and id.

    Parameters
    ----------
    fit_background : bool
        Whether the last unknown is a background term.
    """

    def __init__(self, fit_background: bool) -> None:
        self._id = next(_solution_ids)
        self._fit_background = bool(fit_background)
        self._solved_by = SolvedBy.NONE
        self._m: np.ndarray | None = None
        self._b: np.ndarray | None = None
        self._a: np.ndarray | None = None

    def getId(self) -> int:  # noqa: N802 - LSST name
        """Unique (process-wide, incrementing) id of this solution."""
        return self._id

    def getSolvedBy(self) -> SolvedBy:  # noqa: N802 - LSST name
        """How the normal equations were solved (``NONE`` before :meth:`solve`)."""
        return self._solved_by

    def getFitForBackground(self) -> bool:  # noqa: N802 - LSST-style name
        """Whether a background term is fitted."""
        return self._fit_background

    def isSolved(self) -> bool:  # noqa: N802 - LSST-style name
        """Whether :meth:`solve` has succeeded."""
        return self._a is not None

    def _require_built(self) -> tuple[np.ndarray, np.ndarray]:
        if self._m is None or self._b is None:
            msg = (
                f"{type(self).__name__} {self._id} has no normal equations yet; "
                "call build() (or addConstraint()) first"
            )
            raise KernelSolutionError(msg)
        return self._m, self._b

    def _require_solved(self) -> np.ndarray:
        if self._a is None:
            msg = f"{type(self).__name__} {self._id} is not solved; call solve() first"
            raise KernelSolutionError(msg)
        return self._a

    def getM(self) -> np.ndarray:  # noqa: N802 - LSST name
        """The normal matrix ``M`` (a copy)."""
        return self._require_built()[0].copy()

    def getB(self) -> np.ndarray:  # noqa: N802 - LSST name
        """The right-hand side ``B`` (a copy)."""
        return self._require_built()[1].copy()

    def getSolution(self) -> np.ndarray:  # noqa: N802 - LSST-style name
        """The solved parameter vector (a copy)."""
        return self._require_solved().copy()

    def getConditionNumber(  # noqa: N802 - LSST name
        self, kind: ConditionNumberType | str = ConditionNumberType.EIGENVALUE
    ) -> float:
        """Condition number of ``M`` (``EIGENVALUE`` or ``SVD``, see :func:`~.linalg.condition_number`)."""
        return condition_number(self._require_built()[0], kind)

    def _solve_equations(self, matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        solution, solved_by = solve_system(matrix, rhs)
        self._solved_by = solved_by
        if not np.all(np.isfinite(solution)):
            cond = condition_number(matrix, ConditionNumberType.EIGENVALUE)
            msg = (
                f"{type(self).__name__} {self._id}: the solution has NaN/inf coefficients "
                f"(eigenvalue condition number {cond:.4g}); check the stamps for non-finite pixels "
                "or lower the number of unknowns"
            )
            raise KernelSolutionError(msg)
        return solution


# ------------------------------------------------------------------------------------------------
# Per-candidate (static) solution
# ------------------------------------------------------------------------------------------------
