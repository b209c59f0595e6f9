"""Dense linear algebra of the kernel fits: solves, pseudo-inverses and condition numbers.

The normal matrices of the kernel fits are symmetric and positive semi-definite. As in LSST
(spec §4.3) a system is solved by LU decomposition and, when the matrix is numerically singular,
by an eigen-decomposition pseudo-inverse; :class:`SolvedBy` records which path was taken.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from .._lazy import LazyModule

_scipy_linalg = LazyModule("scipy.linalg")  # imported on first solve, not with the task modules

__all__ = [
    "ConditionNumberType",
    "SolvedBy",
    "condition_number",
    "eigen_pseudo_inverse",
    "solve_system",
]


class SolvedBy(enum.Enum):
    """How a linear system was solved (LSST's ``KernelSolution::KernelSolvedBy``)."""

    NONE = 0
    CHOLESKY_LDLT = 1
    CHOLESKY_LLT = 2
    LU = 3
    EIGENVECTOR = 4


class ConditionNumberType(enum.Enum):
    """Definition of a condition number (config ``conditionNumberType``)."""

    #: Ratio of the largest to the smallest eigenvalue (signed: negative if an eigenvalue is < 0).
    EIGENVALUE = 0
    #: Ratio of the largest to the smallest singular value.
    SVD = 1

    @classmethod
    def coerce(cls, kind: ConditionNumberType | str) -> ConditionNumberType:
        """Accept a member or its name (``"EIGENVALUE"``, ``"SVD"``) as the config gives it."""
        if isinstance(kind, cls):
            return kind
        try:
            return cls[str(kind)]
        except KeyError:
            msg = f"unknown condition number type {kind!r}; use 'EIGENVALUE' or 'SVD'"
            raise ValueError(msg) from None


def _ratio(top: float, bottom: float) -> float:
    # C++ double division semantics (x/0 -> ±inf) without numpy's divide warnings
    if bottom == 0.0:
        return float("inf") if top >= 0 else float("-inf")
    return float(top / bottom)


def condition_number(matrix: Any, kind: ConditionNumberType | str = ConditionNumberType.EIGENVALUE) -> float:
    """Condition number of a square matrix.

    Parameters
    ----------
    matrix : array_like
        Square matrix; symmetric for ``EIGENVALUE`` (only its lower triangle is read).
    kind : ConditionNumberType or str
        ``EIGENVALUE``: λmax/λmin of the symmetric eigen-decomposition, which is negative when
        the smallest eigenvalue is (round-off on a singular matrix) and infinite when it is 0;
        ``SVD``: σmax/σmin.

    Returns
    -------
    float
        The condition number (NaN if the matrix has non-finite entries).
    """
    kind = ConditionNumberType.coerce(kind)
    mat = np.asarray(matrix, dtype=float)
    if not np.all(np.isfinite(mat)):
        return float("nan")
    if kind is ConditionNumberType.EIGENVALUE:
        values = np.linalg.eigvalsh(mat)
        return _ratio(values[-1], values[0])
    values = np.linalg.svd(mat, compute_uv=False)
    return _ratio(values[0], values[-1])


def eigen_pseudo_inverse(matrix: Any, max_condition: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-inverse of a symmetric matrix from its eigen-decomposition.

    Parameters
    ----------
    matrix : array_like
        Symmetric (positive semi-definite) matrix.
    max_condition : float, optional
        Also drop eigenvalues λ with λmax/λ > ``max_condition`` (and all λ <= 0): a truncated,
        better-behaved inverse. Without it only numerically zero eigenvalues are dropped.

    Returns
    -------
    pinv : numpy.ndarray
        ``Σ v vᵀ / λ`` over the kept eigenpairs.
    kept : numpy.ndarray
        The kept eigenvectors as columns (an orthonormal basis of the inverted subspace).

    Notes
    -----
    LSST drops only eigenvalues exactly equal to 0, so round-off eigenvalues of a singular matrix
    (≈1e-16 λmax) get inverted into huge, meaningless terms. Here "zero" means
    ``|λ| <= n·eps·max|λ|``, numpy's ``pinv`` tolerance.
    """
    mat = np.asarray(matrix, dtype=float)
    values, vectors = np.linalg.eigh(mat)
    scale = np.abs(values).max() if values.size else 0.0
    keep = np.abs(values) > mat.shape[0] * np.finfo(float).eps * scale
    if max_condition is not None:
        top = values.max() if values.size else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            keep &= (values > 0) & (top / np.where(values > 0, values, 1.0) <= max_condition)
    kept = vectors[:, keep]
    pinv = (kept / values[keep]) @ kept.T
    return pinv, kept


def solve_system(matrix: Any, rhs: Any) -> tuple[np.ndarray, SolvedBy]:
    """Solve ``matrix @ x = rhs`` by LU, falling back to the eigen pseudo-inverse if singular.

    Parameters
    ----------
    matrix : array_like
        Square (symmetric, for the fallback) matrix.
    rhs : array_like
        Right-hand side vector.

    Returns
    -------
    x : numpy.ndarray
        The solution (may contain NaN if the inputs do; callers check).
    solved_by : SolvedBy
        ``LU`` or ``EIGENVECTOR``.

    Notes
    -----
    LSST uses a full-pivot LU and its ``isInvertible()`` (rank by a pivot threshold of
    ``n·eps``); here LAPACK's partial-pivot LU is judged by its reciprocal condition number
    estimate: below ``n·eps`` the matrix is treated as singular and the pseudo-inverse is used.
    """
    mat = np.asarray(matrix, dtype=float)
    vec = np.asarray(rhs, dtype=float)
    n = mat.shape[0]
    if np.all(np.isfinite(mat)) and n > 0:
        lu, piv, info = _scipy_linalg.lapack.dgetrf(mat)
        if info == 0:
            anorm = np.abs(mat).sum(axis=0).max()
            rcond, _ = _scipy_linalg.lapack.dgecon(lu, anorm, norm="1")
            if rcond > n * np.finfo(float).eps:
                x, _ = _scipy_linalg.lapack.dgetrs(lu, piv, vec)
                return np.asarray(x, dtype=float), SolvedBy.LU
        pinv, _ = eigen_pseudo_inverse(mat)
        return pinv @ vec, SolvedBy.EIGENVECTOR
    # non-finite matrix: the answer is NaN; the callers turn that into a clear error
    return np.full(vec.shape, np.nan), SolvedBy.NONE
