"""Spatial kernel fit (spec §4.4): local normal equations summed through the spatial functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..kernel import Chebyshev1Function2, Kernel, LinearCombinationKernel, PolynomialFunction2, SpatialFunction
from .solution_base import KernelSolution, KernelSolutionError, _log

__all__ = ["SpatialKernelSolution"]


def _zero_background(function: SpatialFunction) -> SpatialFunction:
    """An order-0 function of the same family (and domain) with parameter 0: "no background"."""
    if isinstance(function, Chebyshev1Function2):
        return Chebyshev1Function2(0, function.xy_range, [0.0])
    if function.order == 0:
        return function.copy_with([0.0])
    return PolynomialFunction2(0, [0.0])


def _is_renormalized(basis: Sequence[Kernel]) -> bool:
    """Whether only the first basis kernel has a non-zero sum (it then carries the kernel sum)."""
    if len(basis) < 2 or any(k.isSpatiallyVarying() for k in basis):
        return False
    sums = np.array([k.computeSum() for k in basis])
    scale = max(float(np.abs(k.computeImage()).max()) for k in basis)
    return bool(abs(sums[0]) > 1e-6 * scale and np.all(np.abs(sums[1:]) <= 1e-12 * scale * basis[0].width * basis[0].height))


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
        Keep coefficient 0 spatially constant (default: AL basis or PCA basis, as LSST, or any
        renormalised basis (spec §3.4: the first kernel carries the whole kernel sum, the others
        sum to 0), e.g. a plugin's; so the photometric scale stays constant).

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
            constant_first_term = (config.kernelBasisSet == "alard-lupton" or bool(config.usePcaForSpatialKernel)
                                   or _is_renormalized(self._basis))
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
