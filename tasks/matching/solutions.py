"""Kernel solutions: the linear least-squares fits of a PSF-matching kernel (spec §4.1–§4.4).

* :class:`StaticKernelSolution` fits one stamp: the science stamp ``I`` as a linear combination of
  the template stamp correlated with each basis kernel, ``I ≈ Σ a_k (B_k ⋆ T) + b``.
* :class:`RegularizedKernelSolution` adds a penalty ``λ aᵀHa`` with ``λ`` chosen by
  ``lambdaType`` (all four modes work, unlike LSST's C++).
* :class:`SpatialKernelSolution` fits the spatial variation of the coefficients to the local
  normal equations of many candidates.

All solutions keep the normal equations ``M a = B`` (``getM``/``getB``), record how they were
solved (:class:`~diffim.tasks.matching.linalg.SolvedBy`) and carry a process-wide unique id.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg
from numpy.lib.stride_tricks import sliding_window_view

from ..image import Box2I, Image, MaskedImage
from ..kernel import Chebyshev1Function2, Kernel, LinearCombinationKernel, PolynomialFunction2, SpatialFunction
from .linalg import ConditionNumberType, SolvedBy, condition_number, eigen_pseudo_inverse, solve_system

__all__ = [
    "KernelSolution",
    "KernelSolutionError",
    "RegularizedKernelSolution",
    "SpatialKernelSolution",
    "StaticKernelSolution",
    "lambda_grid",
    "risk_curve",
]

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


def _stamp_array(stamp: Any, what: str) -> tuple[np.ndarray, Box2I]:
    if isinstance(stamp, MaskedImage):
        return stamp.image.array, stamp.getBBox()
    if isinstance(stamp, Image):
        return stamp.array, stamp.getBBox()
    msg = f"{what} must be a MaskedImage or an Image, got {type(stamp).__name__}"
    raise TypeError(msg)


def _variance_array(variance: Any, bbox: Box2I) -> np.ndarray:
    if isinstance(variance, MaskedImage):
        variance = variance.variance
    if isinstance(variance, Image):
        if variance.getBBox() != bbox:
            msg = f"the variance image covers {variance.getBBox()} but the stamps cover {bbox}"
            raise KernelSolutionError(msg)
        return variance.array
    array = np.asarray(variance, dtype=float)
    if array.shape != bbox.shape:
        msg = f"the variance array has shape {array.shape} but the stamps have shape {bbox.shape}"
        raise KernelSolutionError(msg)
    return array


class StaticKernelSolution(KernelSolution):
    """Least-squares kernel for one candidate: ``I ≈ Σ_k a_k (B_k ⋆ T) + b`` (spec §4.1).

    Parameters
    ----------
    basis_list : sequence of Kernel
        Fixed basis kernels, all of one size.
    fit_background : bool
        Also fit a constant background ``b``.

    Notes
    -----
    Over the part of the stamp where the kernel fits (``shrinkBBox``), with ``C_k = B_k ⋆ T``
    (afw correlation), ``w = 1/variance`` and ``I`` the science pixels, the normal equations are
    ``M = Cᵀ diag(w) C`` and ``B = Cᵀ diag(w) I``. ``C`` is built as one matrix product of the
    basis images with the template's sliding windows (exact, no FFT round-off); for a complete
    delta-function basis the windows *are* the design matrix. Masks are ignored: stamps must be
    screened for bad pixels beforehand (as in LSST).
    """

    def __init__(self, basis_list: Sequence[Kernel], fit_background: bool) -> None:
        super().__init__(fit_background)
        basis = list(basis_list)
        if not basis:
            msg = "a kernel solution needs at least one basis kernel"
            raise KernelSolutionError(msg)
        dims = basis[0].getDimensions()
        if any(k.getDimensions() != dims for k in basis):
            msg = "all basis kernels must have the same dimensions"
            raise KernelSolutionError(msg)
        if any(k.isSpatiallyVarying() for k in basis):
            msg = "basis kernels of a kernel solution must not vary spatially"
            raise KernelSolutionError(msg)
        self._basis = basis
        images = np.stack([k.computeImage() for k in basis])
        self._basis_matrix = images.reshape(len(basis), -1)
        # a complete delta-function basis in row-major order: C is the template's windows as is
        self._identity_basis = self._basis_matrix.shape[0] == self._basis_matrix.shape[1] and np.array_equal(
            self._basis_matrix, np.eye(self._basis_matrix.shape[0])
        )
        self._kernel: LinearCombinationKernel | None = None
        self._background = 0.0
        self._good_bbox: Box2I | None = None

    # -- building --------------------------------------------------------------------------------
    def getBasisList(self) -> list[Kernel]:  # noqa: N802 - LSST-style name
        """The basis kernels."""
        return list(self._basis)

    def getGoodBBox(self) -> Box2I:  # noqa: N802 - LSST-style name
        """Pixels used by the fit: the stamp shrunk by the kernel (``shrinkBBox``)."""
        if self._good_bbox is None:
            msg = f"{type(self).__name__} {self._id} is not built; call build() first"
            raise KernelSolutionError(msg)
        return self._good_bbox

    def _design_transposed(self, template: np.ndarray) -> np.ndarray:
        """``Cᵀ`` over the good region, shape ``(n_unknowns, n_pixels)`` (background row = 1)."""
        kh, kw = self._basis[0].shape
        sh, sw = template.shape
        gh, gw = sh - kh + 1, sw - kw + 1
        # windows[ky, kx] = T[ky:ky+gh, kx:kx+gw] = the correlation input seen by kernel pixel (kx, ky)
        windows = sliding_window_view(np.asarray(template, dtype=float), (gh, gw)).reshape(kh * kw, gh * gw)
        nb = len(self._basis)
        design = np.empty((nb + int(self._fit_background), gh * gw))
        if self._identity_basis:
            design[:nb] = windows
        else:
            np.matmul(self._basis_matrix, windows, out=design[:nb])
        if self._fit_background:
            design[nb] = 1.0
        return design

    def build(self, template: MaskedImage | Image, science: MaskedImage | Image, variance: Any) -> None:
        """Compute the normal equations ``M``, ``B`` of the stamp pair.

        Parameters
        ----------
        template : MaskedImage or Image
            Stamp to be convolved (``T``).
        science : MaskedImage or Image
            Stamp to match (``I``), on the same pixel grid.
        variance : Image, numpy.ndarray or MaskedImage
            Per-pixel variance used as ``1/w`` (a MaskedImage contributes its variance plane).

        Raises
        ------
        KernelSolutionError
            If the grids differ, the stamp is smaller than the kernel, or a variance in the fitted
            region is negative, zero or not finite.
        """
        t_array, bbox = _stamp_array(template, "template")
        s_array, s_bbox = _stamp_array(science, "science")
        if s_bbox != bbox:
            msg = f"template stamp {bbox} and science stamp {s_bbox} must cover the same pixels"
            raise KernelSolutionError(msg)
        kernel = self._basis[0]
        if bbox.width < kernel.width or bbox.height < kernel.height:
            msg = (
                f"stamp {bbox.width}x{bbox.height} is smaller than the {kernel.width}x{kernel.height} kernel; "
                "use larger stamps"
            )
            raise KernelSolutionError(msg)
        good = kernel.shrinkBBox(bbox)
        rows, cols = good.slices(bbox.getMin())
        var = np.asarray(_variance_array(variance, bbox)[rows, cols], dtype=float)
        vmin = float(var.min())
        if not np.isfinite(vmin) or not np.all(np.isfinite(var)):
            msg = f"variance has non-finite values inside the fitted region {good}; fix the variance planes"
            raise KernelSolutionError(msg)
        if vmin < 0:
            msg = f"variance less than 0.0 ({vmin!r}) inside the fitted region {good}; fix the variance planes"
            raise KernelSolutionError(msg)
        if vmin == 0:
            msg = (
                f"variance equals 0.0 inside the fitted region {good}, cannot inverse-variance weight; "
                "fix the variance planes or set constantVarianceWeighting=True"
            )
            raise KernelSolutionError(msg)
        sqrt_w = 1.0 / np.sqrt(var.ravel())
        design = self._design_transposed(t_array)
        design *= sqrt_w  # rows of Cᵀ scaled by sqrt(w): M = (√w C)ᵀ(√w C) is exactly symmetric
        target = np.asarray(s_array[rows, cols], dtype=float).ravel() * sqrt_w
        self._m = design @ design.T
        self._b = design @ target
        self._good_bbox = good
        self._a = None
        self._kernel = None
        self._solved_by = SolvedBy.NONE

    # -- solving ---------------------------------------------------------------------------------
    def solve(self) -> None:
        """Solve ``M a = B`` (LU, eigen pseudo-inverse if singular); NaN coefficients raise."""
        m, b = self._require_built()
        self._set_solution(self._solve_equations(m, b))

    def _set_solution(self, solution: np.ndarray) -> None:
        nb = len(self._basis)
        self._a = solution
        self._kernel = LinearCombinationKernel(self._basis, solution[:nb])
        self._background = float(solution[nb]) if self._fit_background else 0.0

    # -- results ---------------------------------------------------------------------------------
    def getKernel(self) -> LinearCombinationKernel:  # noqa: N802 - LSST name
        """The fitted kernel (fixed coefficients)."""
        self._require_solved()
        assert self._kernel is not None
        return self._kernel

    def getBackground(self) -> float:  # noqa: N802 - LSST name
        """The fitted background (0 when not fitted)."""
        self._require_solved()
        return self._background

    def getKsum(self) -> float:  # noqa: N802 - LSST name
        """Sum of the fitted kernel image (the photometric scale)."""
        return self.getKernel().computeSum()

    def getKernelImage(self) -> np.ndarray:  # noqa: N802 - LSST-style name
        """The fitted kernel image ``[y, x]``."""
        return self.getKernel().computeImage()

    def makeKernelImage(self) -> np.ndarray:  # noqa: N802 - LSST name
        """Alias of :meth:`getKernelImage` (LSST's name)."""
        return self.getKernelImage()

    def getSolutionPair(self) -> tuple[LinearCombinationKernel, float]:  # noqa: N802 - LSST name
        """``(kernel, background)``."""
        return self.getKernel(), self.getBackground()

    def __repr__(self) -> str:
        state = "solved" if self.isSolved() else ("built" if self._m is not None else "empty")
        return f"{type(self).__name__}(id={self._id}, {len(self._basis)} bases, bg={self._fit_background}, {state})"


# ------------------------------------------------------------------------------------------------
# Regularized solution
# ------------------------------------------------------------------------------------------------


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
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError, ValueError):
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
    gamma, x = scipy.linalg.eigh(h, m + lam0 * h)  # raises LinAlgError unless M + λ0 H is definite
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


def _zero_background(function: SpatialFunction) -> SpatialFunction:
    """An order-0 function of the same family (and domain) with parameter 0: "no background"."""
    if isinstance(function, Chebyshev1Function2):
        return Chebyshev1Function2(0, function.xy_range, [0.0])
    if function.order == 0:
        return function.copy_with([0.0])
    return PolynomialFunction2(0, [0.0])


class SpatialKernelSolution(KernelSolution):
    """Spatially varying kernel and background from the candidates' local normal equations (spec §4.4).

    Parameters
    ----------
    basis_list : sequence of Kernel
        Basis of the spatial kernel (the candidates' basis, or a PCA basis).
    spatial_kernel_function : SpatialFunction
        Template of each coefficient's spatial function ``P`` (``nkt`` terms); copied.
    background_function : SpatialFunction or None
        Template of the background's spatial function ``R`` (``nbt`` terms); used only when
        ``config.fitForBackground``.
    config : PsfMatchConfig
        Kernel config: ``fitForBackground``, ``kernelBasisSet``, ``usePcaForSpatialKernel``.
    constant_first_term : bool, optional
        Keep coefficient 0 spatially constant (default: AL basis or PCA basis, whose first basis
        carries the whole kernel sum, so the photometric scale stays constant).

    Notes
    -----
    Unknowns ``θ = [c0, p_{k≥1, j}, q_l]`` (constant first term) or ``[p_{k, j}, q_l]``. A candidate
    at ``(x, y)`` has local parameters ``α = Φ(x, y) θ`` with ``a_k = Σ_j p_kj P_j(x, y)`` and
    ``b = Σ_l q_l R_l(x, y)``; its constraint adds ``ΦᵀQΦ`` and ``Φᵀw`` (``Q``, ``w`` = its local
    ``M``, ``B``), which minimises the sum of the candidates' χ² exactly. ``Φ`` is block diagonal,
    so ``ΦᵀQΦ`` is assembled from Kronecker products instead of dense products.
    """

    def __init__(
        self,
        basis_list: Sequence[Kernel],
        spatial_kernel_function: SpatialFunction,
        background_function: SpatialFunction | None,
        config: Any,
        *,
        constant_first_term: bool | None = None,
    ) -> None:
        super().__init__(bool(config.fitForBackground))
        self._basis = list(basis_list)
        if not self._basis:
            msg = "a spatial kernel solution needs at least one basis kernel"
            raise KernelSolutionError(msg)
        if self._fit_background and background_function is None:
            msg = "fitForBackground is True but no background spatial function was given"
            raise KernelSolutionError(msg)
        self._kfunc = spatial_kernel_function.copy_with(np.zeros(spatial_kernel_function.getNParameters()))
        self._bgfunc = background_function
        if constant_first_term is None:
            constant_first_term = config.kernelBasisSet == "alard-lupton" or bool(config.usePcaForSpatialKernel)
        self._cft = bool(constant_first_term)
        nb = len(self._basis)
        self._nkt = self._kfunc.getNParameters()
        self._nbt = background_function.getNParameters() if (self._fit_background and background_function) else 0
        n_kernel = (nb - 1) * self._nkt + 1 if self._cft else nb * self._nkt
        self._n_kernel = n_kernel
        self._n_unknowns = n_kernel + self._nbt
        self._n_local = nb + int(self._fit_background)
        self._m = np.zeros((self._n_unknowns, self._n_unknowns))
        self._b = np.zeros(self._n_unknowns)
        self._n_constraints = 0
        self._kernel: LinearCombinationKernel | None = None
        self._background: SpatialFunction | None = None

    # -- structure -------------------------------------------------------------------------------
    def getNConstraints(self) -> int:  # noqa: N802 - LSST-style name
        """Number of candidates added."""
        return self._n_constraints

    def getNUnknowns(self) -> int:  # noqa: N802 - LSST-style name
        """Length of ``θ``."""
        return self._n_unknowns

    def hasConstantFirstTerm(self) -> bool:  # noqa: N802 - LSST-style name
        """Whether coefficient 0 is spatially constant."""
        return self._cft

    def design_matrix(self, x: float, y: float) -> np.ndarray:
        """``Φ(x, y)``: the map from ``θ`` to a candidate's local parameters (dense, for checks)."""
        p = self._kfunc.term_values(x, y)
        nb, nkt = len(self._basis), self._nkt
        phi = np.zeros((self._n_local, self._n_unknowns))
        first = 0
        if self._cft:
            phi[0, 0] = 1.0
            first = 1
        for k in range(first, nb):
            start = (1 + (k - 1) * nkt) if self._cft else k * nkt
            phi[k, start : start + nkt] = p
        if self._nbt:
            phi[nb, self._n_kernel :] = self._bgfunc.term_values(x, y)  # type: ignore[union-attr]
        return phi

    # -- accumulation ----------------------------------------------------------------------------
    def addConstraint(self, x: float, y: float, Q: Any, w: Any) -> None:  # noqa: N802, N803 - LSST name
        """Add a candidate at ``(x, y)`` with local normal equations ``Q α = w``.

        Parameters
        ----------
        x, y : float
            Candidate centre (parent pixels).
        Q : array_like
            The candidate's (unregularized) ``M``, ``(nb [+1], nb [+1])``.
        w : array_like
            The candidate's ``B``.
        """
        q = np.asarray(Q, dtype=float)
        vec = np.asarray(w, dtype=float).ravel()
        n = self._n_local
        if q.shape != (n, n) or vec.shape != (n,):
            msg = (
                f"constraint at ({x}, {y}) has M {q.shape} and B {vec.shape} but the spatial fit expects {n} local "
                f"unknowns ({len(self._basis)} bases{' + background' if self._fit_background else ''}); "
                "build candidates with the same basis and fitForBackground"
            )
            raise KernelSolutionError(msg)
        nb, nkt = len(self._basis), self._nkt
        p = self._kfunc.term_values(x, y)
        # groups of local parameters: "varying" bases (terms P) and scalar ones (constant first term,
        # background with terms R), each with its slice of θ
        v0 = 1 if self._cft else 0
        va = slice(v0, nb)
        vt = slice(v0 * 1, v0 + (nb - v0) * nkt)
        scalars: list[tuple[int, slice, np.ndarray]] = []
        if self._cft:
            scalars.append((0, slice(0, 1), np.ones(1)))
        if self._nbt:
            r = self._bgfunc.term_values(x, y)  # type: ignore[union-attr]
            scalars.append((nb, slice(self._n_kernel, self._n_unknowns), r))
        m, b = self._m, self._b
        if nb > v0:
            m[vt, vt] += np.kron(q[va, va], np.outer(p, p))
            b[vt] += np.kron(vec[va], p)
        for i, ts, u in scalars:
            if nb > v0:
                cross = np.kron(q[va, i], p)[:, None] * u[None, :]
                m[vt, ts] += cross
                m[ts, vt] += cross.T
            for j, ts2, u2 in scalars:
                m[ts, ts2] += q[i, j] * np.outer(u, u2)
            b[ts] += vec[i] * u
        self._n_constraints += 1
        self._a = None
        self._kernel = None
        self._background = None

    # -- solving and results ---------------------------------------------------------------------
    def solve(self) -> None:
        """Solve the spatial normal equations; NaN raises with the condition number."""
        if self._n_constraints == 0:
            msg = "the spatial kernel solution has no constraints; add candidates before solve()"
            raise KernelSolutionError(msg)
        m, b = self._require_built()
        theta = self._solve_equations(m, b)
        self._a = theta
        nb, nkt = len(self._basis), self._nkt
        kernel_part = theta[: self._n_kernel]
        if self._cft:
            params = np.zeros((nb, nkt))
            params[0, 0] = kernel_part[0]
            params[1:] = kernel_part[1:].reshape(nb - 1, nkt)
        else:
            params = kernel_part.reshape(nb, nkt)
        if nkt == 1:
            self._kernel = LinearCombinationKernel(self._basis, params[:, 0])
        else:
            kernel = LinearCombinationKernel(self._basis, spatialFunction=self._kfunc.copy_with(np.zeros(nkt)))
            kernel.setSpatialParameters(params)
            self._kernel = kernel
        if self._nbt:
            assert self._bgfunc is not None
            self._background = self._bgfunc.copy_with(theta[self._n_kernel :])
        elif self._bgfunc is not None:
            self._background = _zero_background(self._bgfunc)
        else:
            self._background = PolynomialFunction2(0, [0.0])
        _log.debug("spatial solution %d: %d constraints, ksum(0,0) = %.6g", self._id, self._n_constraints,
                   self._kernel.computeSum(0.0, 0.0))

    def getSolutionPair(self) -> tuple[LinearCombinationKernel, SpatialFunction]:  # noqa: N802 - LSST name
        """``(kernel, background function)``: fixed kernel if ``nkt == 1``, else spatially varying."""
        self._require_solved()
        assert self._kernel is not None and self._background is not None
        return self._kernel, self._background

    def getKernel(self) -> LinearCombinationKernel:  # noqa: N802 - LSST name
        """The spatial kernel."""
        return self.getSolutionPair()[0]

    def getBackground(self) -> SpatialFunction:  # noqa: N802 - LSST name
        """The background function."""
        return self.getSolutionPair()[1]

    def getKsum(self, x: float = 0.0, y: float = 0.0) -> float:  # noqa: N802 - LSST name
        """Kernel sum at ``(x, y)`` (LSST records it at (0, 0); pass the image centre instead)."""
        return self.getKernel().computeSum(x, y)

    def __repr__(self) -> str:
        return (
            f"SpatialKernelSolution(id={self._id}, {len(self._basis)} bases x {self._nkt} terms, bg terms "
            f"{self._nbt}, {self._n_constraints} constraints{', solved' if self.isSolved() else ''})"
        )
