"""Per-candidate weighted least squares (spec §4.1): ``I ≈ Σ a_k (B_k ⋆ T) + b``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..image import Box2I, Image, MaskedImage
from ..kernel import Kernel, LinearCombinationKernel
from ..kernel.kernels import basis_image_stack, cached_by_identity
from .linalg import SolvedBy, solve_system
from .solution_base import KernelSolution, KernelSolutionError

__all__ = ["StaticKernelSolution"]


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


#: Below this many multiply-adds (n_basis·K²·G²) the design matrix is the exact direct product
#: (LSST's default 21x21 kernels on 2·21+1 stamps: 6e6); larger kernels go through FFTs.
_DIRECT_DESIGN_MAX = 15_000_000

#: FFTs of recently used bases: ``((basis stack,), {transform shape: spectra})``, most recent last.
_SPECTRA: list[tuple[tuple[Any, ...], Any]] = []


def _basis_spectra(basis_stack: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of every basis image flipped (correlation as convolution), zero-padded to ``shape``.

    Cached: every candidate of a fit shares one basis stack (see ``basis_image_stack``).
    """
    from scipy import fft

    by_shape = cached_by_identity(_SPECTRA, (basis_stack,), dict, kept=4)
    if shape not in by_shape:
        by_shape[shape] = fft.rfft2(basis_stack[:, ::-1, ::-1], s=shape, axes=(-2, -1))
    return by_shape[shape]


def _correlate_valid_fft(template: np.ndarray, basis_stack: np.ndarray) -> np.ndarray:
    """``(n_basis, G_h·G_w)``: each basis image correlated with ``template``, 'valid' part only.

    ``C_k[i, j] = Σ B_k[ky, kx] T[i + ky, j + kx]``. A circular convolution of any length at
    least the stamp's is exact on the valid part (the wrap-around only reaches the first
    ``K - 1`` rows and columns), so the transform length is just the next fast size.
    """
    from scipy import fft

    kh, kw = basis_stack.shape[1:]
    sh, sw = template.shape
    shape = (fft.next_fast_len(sh, real=True), fft.next_fast_len(sw, real=True))
    spectra = _basis_spectra(basis_stack, shape)
    product = spectra * fft.rfft2(template, s=shape)
    full = fft.irfft2(product, s=shape, axes=(-2, -1))
    return full[:, kh - 1 : sh, kw - 1 : sw].reshape(len(spectra), -1)


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
        self._basis_stack = basis_image_stack(basis)
        self._basis_matrix = self._basis_stack.reshape(len(basis), -1)
        # a complete delta-function basis in row-major order: C is the template's windows as is
        self._identity_basis = self._basis_matrix.shape[0] == self._basis_matrix.shape[1] and np.array_equal(
            self._basis_matrix, np.eye(self._basis_matrix.shape[0])
        )
        self._kernel: LinearCombinationKernel | None = None
        self._ksum_error: float | None = None
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
        nb = len(self._basis)
        design = np.empty((nb + int(self._fit_background), gh * gw))
        if self._identity_basis:
            # windows[ky, kx] = T[ky:ky+gh, kx:kx+gw] = the correlation input seen by kernel pixel (kx, ky)
            windows = sliding_window_view(np.asarray(template, dtype=float), (gh, gw))
            design[:nb] = windows.reshape(kh * kw, gh * gw)
        elif nb * kh * kw * gh * gw < _DIRECT_DESIGN_MAX:
            windows = sliding_window_view(np.asarray(template, dtype=float), (gh, gw)).reshape(kh * kw, gh * gw)
            np.matmul(self._basis_matrix, windows, out=design[:nb])
        else:
            # B_k ⋆ T for every basis at once by FFT: the direct product costs n_basis·K²·G² and
            # dominated the fit once kernels reach 33x33 (spec §3.2 sizes); round-off ~1e-16 of max|T|
            design[:nb] = _correlate_valid_fft(np.asarray(template, dtype=float), self._basis_stack)
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
            Per-pixel variance used as ``1/w`` (a MaskedImage contributes its variance plane); +inf
            gives a pixel zero weight.

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
        # +inf is a pixel given zero weight (e.g. near a contaminant); NaN and -inf are errors
        if vmin == np.inf:
            msg = f"every pixel of the fitted region {good} has zero weight (+inf variance); use another stamp"
            raise KernelSolutionError(msg)
        if not np.isfinite(vmin) or np.isnan(var).any():
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
        self._ksum_error = None
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

    def getKsumError(self) -> float:  # noqa: N802 - LSST-style name
        """Statistical error of :meth:`getKsum`: ``sqrt(sᵀ M⁻¹ s)`` with ``s`` the basis sums.

        From the normal matrix of the weighted fit (so it assumes the weights are inverse
        variances); NaN when ``M`` is singular in the direction of ``s``.
        """
        m, _ = self._require_built()
        self._require_solved()
        if self._ksum_error is None:
            sums = np.zeros(m.shape[0])
            # the shared basis stack's per-image sums (every candidate of a fit shares the stack)
            sums[: len(self._basis)] = self._basis_stack.sum(axis=(1, 2))
            x, _ = solve_system(m, sums)  # the fit's own solver (LU, pseudo-inverse if singular)
            variance = float(sums @ x)
            self._ksum_error = math.sqrt(variance) if variance > 0 and math.isfinite(variance) else math.nan
        return self._ksum_error

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
