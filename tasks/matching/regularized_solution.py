"""Regularized per-candidate fit (spec §4.2): ``(M + λH) a = B`` with λ by ``lambdaType``.

All four modes work (LSST's risk modes read undefined config keys)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._lazy import LazyModule
from ..kernel import Kernel
from .linalg import eigen_pseudo_inverse
from .solution_base import KernelSolutionError, _log
from .static_solution import StaticKernelSolution

_scipy_linalg = LazyModule("scipy.linalg")  # imported on first solve, not with the task modules

__all__ = ["RegularizedKernelSolution", "lambda_grid", "risk_curve"]


def lambda_grid(config: Any) -> np.ndarray:
    """The λ values scanned by the risk-minimising modes (config ``lambdaMin/Max/Step/StepType``).

    ``log``: ``10**l`` for ``l = lambdaMin, lambdaMin + lambdaStep, …, lambdaMax`` (inclusive);
    ``linear``: the ``l`` themselves, which must then be >= 0.
    """
    lo, hi, step = float(config.lambdaMin), float(config.lambdaMax), float(config.lambdaStep)
    if not step > 0:
        msg = f"lambdaStep must be > 0, got {step!r}"
        raise KernelSolutionError(msg)
    if hi < lo:
        msg = f"lambdaMax ({hi!r}) is below lambdaMin ({lo!r}); swap them"
        raise KernelSolutionError(msg)
    count = int(np.floor((hi - lo) / step + 1e-9)) + 1  # inclusive of lambdaMax despite round-off
    values = lo + step * np.arange(count)
    kind = config.lambdaStepType
    if kind == "log":
        return 10.0**values
    if kind == "linear":
        if lo < 0:
            msg = f"a linear lambda grid must not go below 0, but lambdaMin is {lo!r}; set lambdaMin >= 0"
            raise KernelSolutionError(msg)
        return values
    msg = f"unknown lambdaStepType {kind!r}; use 'log' or 'linear'"
    raise KernelSolutionError(msg)


class RegularizedKernelSolution(StaticKernelSolution):
    """Kernel fit with a smoothness penalty: solve ``(M + λH) a = B`` (spec §4.2).

    Parameters
    ----------
    basis_list : sequence of Kernel
        Basis kernels (normally the delta-function basis).
    fit_background : bool
        Also fit a constant background.
    H : array_like
        Regularization matrix, ``(n, n)`` with ``n`` the number of unknowns (bases + background).
        An ``(nb, nb)`` matrix is accepted with a background and padded with a zero row and column
        (the background is never penalised).
    config : PsfMatchConfigDF
        Kernel config: ``lambdaType``, ``lambdaValue``, ``lambdaScaling``, ``lambdaMin``,
        ``lambdaMax``, ``lambdaStep``, ``lambdaStepType`` and ``maxConditionNumber``.

    Notes
    -----
    ``lambdaType``:

    * ``absolute``: ``λ = lambdaValue``.
    * ``relative``: ``λ = lambdaScaling · tr(M)/tr(H)`` (Numerical Recipes eq. 18.5.8 balance).
    * ``minimizeUnbiasedRisk`` / ``minimizeBiasedRisk``: ``λ`` minimising, over
      :func:`lambda_grid`, the risk estimate of spec §4.2,

      ``risk(λ) = âᵀ G â + 2·[tr(G (M+λH)⁻¹) − âᵀ G M⁺ B]``,  ``â = (M+λH)⁻¹ B``,

      which is the spec's ``aᵀVVᵀa + 2·[tr(VVᵀ(M+λH)⁻¹) − aᵀM⁺B]`` with ``VVᵀ`` read as the
      projector ``P`` discussed below and ``G = P N P``, ``N`` selecting the kernel coefficients.

      *Derivation.* With ``I = C a + n``, ``Cov(n) = W⁻¹`` (the weights are inverse variances),
      ``B = CᵀWI`` has mean ``M a`` and covariance ``M``. Then ``M⁺B`` has mean ``P a`` (``P`` the
      projector onto the subspace ``M⁺`` inverts) and ``Cov(M⁺B, â) = M⁺M(M+λH)⁻¹ = P(M+λH)⁻¹``.
      Hence, for any ``G`` with ``GP = G``, ``E[âᵀ G M⁺B] = E[â]ᵀ G a + tr(G (M+λH)⁻¹)`` and
      ``risk(λ)`` is an unbiased estimate of ``E‖â − a‖²_G − ‖a‖²_G``: the mean squared error of
      the kernel coefficients (Stein's unbiased risk estimate) up to a λ-independent constant.

      *Why ``N``.* Kernel coefficients are dimensionless (science/template) but the background
      is in counts, so LSST's sum over the whole vector adds unlike units; ``N`` leaves the
      (unpenalised) background out of the loss. Without ``fitForBackground`` ``N = 1`` and the
      formula is exactly the spec's.

      *What ``V`` is.* LSST writes ``VVᵀ`` with ``V`` from the SVD of the *unweighted* design
      matrix ``C = U S Vᵀ``. The full ``V`` is orthogonal, so ``VVᵀ = 1`` (LSST's C++ asks for ``V``
      without computing it — spec §11.1); ``V`` only matters truncated to the numerical row space
      of ``C``, which equals the range of ``M = CᵀWC`` because ``W`` is positive diagonal. We take
      ``P`` from the eigenvectors of ``M`` kept by ``M⁺``, which is what makes the estimate
      unbiased; with constant weighting (the pipeline default) they are exactly the right
      singular vectors of ``C``.

      *Biased vs unbiased.* ``minimizeUnbiasedRisk`` uses the full pseudo-inverse (only
      numerically zero eigenvalues dropped, ``P = 1`` for a full-rank ``M``).
      ``minimizeBiasedRisk`` drops eigenvalues with ``λmax/λi > maxConditionNumber``: the noisy
      least-squares estimate ``M⁺B`` loses its worst-determined directions and the risk is
      measured in the well-determined subspace only — a biased, lower-variance estimate.

      All λ are evaluated at once by simultaneously diagonalising ``M`` and ``H`` (one generalized
      eigen-decomposition), with a per-λ fallback when that is not possible.

    ``getM()`` returns the **unregularized** ``M`` (what the spatial fit uses, as in LSST).
    """

    def __init__(self, basis_list: Sequence[Kernel], fit_background: bool, H: Any, config: Any) -> None:  # noqa: N803
        super().__init__(basis_list, fit_background)
        n = len(self._basis) + int(self._fit_background)
        h = np.asarray(H, dtype=float)
        if h.ndim == 2 and h.shape == (n - 1, n - 1) and self._fit_background:
            h = np.pad(h, ((0, 1), (0, 1)))
        if h.shape != (n, n):
            msg = (
                f"regularization matrix has shape {h.shape} but the fit has {n} unknowns; build H for "
                f"{len(self._basis)} bases{' plus a background' if self._fit_background else ''}"
            )
            raise KernelSolutionError(msg)
        self._h = h
        self._config = config
        self._lambda: float | None = None
        self._risk_curve: tuple[np.ndarray, np.ndarray] | None = None

    def getH(self) -> np.ndarray:  # noqa: N802 - LSST-style name
        """The regularization matrix (a copy)."""
        return self._h.copy()

    def getM(self, includeHmat: bool = False) -> np.ndarray:  # noqa: N802, N803 - LSST name
        """``M`` (default, as the spatial fit sees it) or ``M + λH`` with ``includeHmat=True``."""
        m = super().getM()
        if includeHmat:
            m = m + self.getLambda() * self._h
        return m

    def getLambda(self) -> float:  # noqa: N802 - LSST name
        """The λ used by :meth:`solve`."""
        if self._lambda is None:
            msg = f"{type(self).__name__} {self._id} has no lambda yet; call solve() first"
            raise KernelSolutionError(msg)
        return self._lambda

    def getRiskCurve(self) -> tuple[np.ndarray, np.ndarray]:  # noqa: N802 - LSST-style name
        """``(lambdas, risks)`` of the last risk scan (for diagnostics)."""
        if self._risk_curve is None:
            msg = f"{type(self).__name__} {self._id} has no risk curve; lambdaType must be a risk mode and solve() run"
            raise KernelSolutionError(msg)
        return self._risk_curve[0].copy(), self._risk_curve[1].copy()

    def _choose_lambda(self) -> float:
        m, _ = self._require_built()
        cfg = self._config
        kind = cfg.lambdaType
        if kind == "absolute":
            value = float(cfg.lambdaValue)
            if not value >= 0:
                msg = f"lambdaValue must be >= 0, got {value!r}"
                raise KernelSolutionError(msg)
            return value
        if kind == "relative":
            trace_h = float(np.trace(self._h))
            if not trace_h > 0:
                msg = f"lambdaType 'relative' needs tr(H) > 0, got {trace_h!r}; use lambdaType 'absolute'"
                raise KernelSolutionError(msg)
            return float(cfg.lambdaScaling) * float(np.trace(m)) / trace_h
        if kind == "minimizeBiasedRisk":
            return self.estimateRisk(float(cfg.maxConditionNumber))
        if kind == "minimizeUnbiasedRisk":
            return self.estimateRisk(None)
        msg = (
            f"unknown lambdaType {kind!r}; use 'absolute', 'relative', 'minimizeBiasedRisk' "
            "or 'minimizeUnbiasedRisk'"
        )
        raise KernelSolutionError(msg)

    def estimateRisk(self, maxCond: float | None) -> float:  # noqa: N802, N803 - LSST name
        """Scan :func:`lambda_grid` and return the λ of minimum risk (see the class notes).

        Parameters
        ----------
        maxCond : float or None
            Truncation of the pseudo-inverse ``M⁺`` (``None``: untruncated, the unbiased risk).

        Returns
        -------
        float
            The chosen λ; the whole curve is kept for :meth:`getRiskCurve`.
        """
        m, b = self._require_built()
        lambdas = lambda_grid(self._config)
        risks = risk_curve(m, b, self._h, lambdas, max_condition=maxCond, fit_background=self._fit_background)
        self._risk_curve = (lambdas, risks)
        if not np.any(np.isfinite(risks)):
            msg = f"{type(self).__name__} {self._id}: the risk is not finite for any lambda on the grid"
            raise KernelSolutionError(msg)
        best = int(np.nanargmin(risks))
        _log.debug(
            "solution %d: risk minimum %.6g at lambda %.6g (grid index %d)", self._id, risks[best], lambdas[best], best
        )
        return float(lambdas[best])

    def solve(self) -> None:
        """Choose λ (``lambdaType``) and solve ``(M + λH) a = B``."""
        m, b = self._require_built()
        self._risk_curve = None
        lam = self._choose_lambda()
        self._lambda = lam
        self._set_solution(self._solve_equations(m + lam * self._h, b))


def risk_curve(
    m: np.ndarray,
    b: np.ndarray,
    h: np.ndarray,
    lambdas: np.ndarray,
    *,
    max_condition: float | None = None,
    fit_background: bool = False,
) -> np.ndarray:
    """The risk estimate of :class:`RegularizedKernelSolution` for every λ.

    Parameters
    ----------
    m, h : numpy.ndarray
        Normal matrix and regularization matrix, ``(n, n)``.
    b : numpy.ndarray
        Right-hand side ``(n,)``, or a stack ``(..., n)`` of right-hand sides sharing ``M``.
    lambdas : numpy.ndarray
        The λ grid.
    max_condition : float, optional
        Truncation of ``M⁺`` (``minimizeBiasedRisk``); None for the unbiased risk.
    fit_background : bool, optional
        Whether the last unknown is the (unpenalised) background, left out of the loss.

    Returns
    -------
    numpy.ndarray
        ``risk(λ)``, shape ``(..., len(lambdas))``.
    """
    n = m.shape[0]
    pinv, kept = eigen_pseudo_inverse(m, max_condition)
    if kept.shape[1] == 0:
        msg = "M has no usable eigenvalue (the stamp carries no signal); cannot estimate a risk"
        raise KernelSolutionError(msg)
    select = np.ones(n)
    if fit_background:
        select[-1] = 0.0
    # G = P N P: N selects the kernel coefficients, P projects onto the eigenvectors M⁺ inverts
    loss = np.diag(select) if kept.shape[1] == n else kept @ ((kept.T * select) @ kept) @ kept.T
    try:
        solutions, traces = _regularized_family(m, b, h, lambdas, loss)
    except (np.linalg.LinAlgError, _scipy_linalg.LinAlgError, ValueError):
        solutions, traces = _regularized_family_direct(m, b, h, lambdas, loss)
    weighted = solutions @ loss
    ls_estimate = np.asarray(b) @ pinv  # M⁺B (pinv is symmetric)
    cross = np.einsum("...li,...i->...l", weighted, ls_estimate)
    return np.einsum("...li,...li->...l", weighted, solutions) + 2.0 * (traces - cross)


def _regularized_family(
    m: np.ndarray, b: np.ndarray, h: np.ndarray, lambdas: np.ndarray, loss: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``â(λ)`` (shape ``(..., nλ, n)``) and ``tr(G (M+λH)⁻¹)`` for every λ, by one generalized eigen-decomposition.

    With ``A0 = M + λ0 H`` positive definite, ``eigh(H, A0)`` gives ``X`` with ``XᵀA0X = 1`` and
    ``XᵀHX = diag(γ)``, so ``(M+λH)⁻¹ = X diag(1/(1 + (λ−λ0)γ)) Xᵀ`` for every λ.
    """
    trace_h = float(np.trace(h))
    trace_m = float(np.trace(m))
    lam0 = trace_m / trace_h if trace_h > 0 and trace_m > 0 else 1.0
    gamma, x = _scipy_linalg.eigh(h, m + lam0 * h)  # raises LinAlgError unless M + λ0 H is definite
    denom = 1.0 + (lambdas[:, None] - lam0) * gamma[None, :]
    if np.any(denom <= 0):
        msg = "lambda grid reaches a singular M + lambda H"
        raise ValueError(msg)
    scale = 1.0 / denom
    solutions = (scale * (np.asarray(b) @ x)[..., None, :]) @ x.T
    weight = np.einsum("ij,ij->j", x, loss @ x)  # x_iᵀ G x_i
    return solutions, scale @ weight


def _regularized_family_direct(
    m: np.ndarray, b: np.ndarray, h: np.ndarray, lambdas: np.ndarray, loss: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-λ version of :func:`_regularized_family` (used when ``M + λ0 H`` is not definite)."""
    inverses = [np.linalg.pinv(m + lam * h, hermitian=True) for lam in lambdas]
    solutions = np.stack([np.asarray(b) @ inverse for inverse in inverses], axis=-2)
    traces = np.array([np.einsum("ij,ji->", loss, inverse) for inverse in inverses])
    return solutions, traces


# ------------------------------------------------------------------------------------------------
# Spatial solution
# ------------------------------------------------------------------------------------------------
