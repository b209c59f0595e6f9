"""The ``"gauss-hermite"`` kernel basis: Gaussians times Hermite polynomials, orthonormalised.

The Alard–Lupton basis multiplies each Gaussian by the monomials ``u^p v^q``; monomials of one
parity look alike, so the basis kernels overlap strongly and the normal equations of the kernel
fit are poorly conditioned. Here each Gaussian of sigma ``σ`` is multiplied by products of
(physicists') Hermite polynomials, ``H_p(x/σ) H_q(y/σ)`` for ``p + q <= degree``: the same
functions span the same kernels, but the Hermite functions of one Gaussian are orthogonal. The
kernels after the first are then orthonormalised (QR), which keeps the span — and so the fitted
kernel — while the Gram matrix of the basis becomes far better conditioned.

The Gaussian widths and the kernel size follow the Alard–Lupton rule of diffim (and LSST):
sigmas from the two PSF FWHMs, ``sqrt(σ_ref² − σ_target²)`` then times ``alardGaussBeta``; the
kernel is ``kernelSizeFwhmScaling`` times the widest sigma, clamped to ``kernelSizeMin`` ..
``kernelSizeMax``. Use it with the Alard–Lupton kernel config (``kernel.name = "AL"``), whose
``alard*`` fields it reads::

    config.kernel.active.kernelBasisSet = "gauss-hermite"
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from diffim.tasks.kernel import (
    FWHM_PER_SIGMA,
    FixedKernel,
    renormalizeKernelList,
    term_powers,
)
from numpy.polynomial import hermite

__all__ = ["NAME", "basis_widths", "gauss_hermite_basis", "make_gauss_hermite_basis"]

#: The name users give as ``kernelBasisSet``.
NAME = "gauss-hermite"


def make_gauss_hermite_basis(
    half_width: int, sigmas: Sequence[float], degrees: Sequence[int], *, orthonormalize: bool = True
) -> list[FixedKernel]:
    """Build Gaussians times Hermite polynomials on a ``(2·half_width+1)²`` pixel grid.

    For each ``(σ, degree)`` pair, the kernels ``H_p(x/σ) H_q(y/σ) exp(−(x²+y²)/2σ²)`` for every
    ``p + q <= degree`` in the order ``1, x, y, x², xy, y², …`` (diffim's AL order). The list goes
    through `~diffim.tasks.kernel.renormalizeKernelList` (the first kernel sums to 1, the others
    to 0), then kernels 1.. are orthonormalised, which keeps their sums at 0.

    Parameters
    ----------
    half_width : `int`
        Kernel half size in pixels (>= 1).
    sigmas : sequence of `float`
        Gaussian sigmas in pixels (> 0).
    degrees : sequence of `int`
        Largest total Hermite degree for each Gaussian (>= 0), same length as ``sigmas``.
    orthonormalize : `bool`, optional
        Orthonormalise kernels 1..; False keeps diffim's AL renormalisation only.

    Returns
    -------
    basis : `list` [`~diffim.tasks.kernel.FixedKernel`]
        ``Σ (d+1)(d+2)/2`` kernels; the first one carries the kernel sum.

    Raises
    ------
    ValueError
        For a half width below 1, lists of different lengths, a sigma <= 0 or a degree < 0.
    """
    if int(half_width) != half_width or half_width < 1:
        msg = f"Gauss-Hermite basis half_width must be an integer >= 1, got {half_width!r}"
        raise ValueError(msg)
    sigmas, degrees = [float(s) for s in sigmas], [int(d) for d in degrees]
    if len(sigmas) != len(degrees) or not sigmas:
        msg = f"give one degree per sigma, got sigmas {sigmas!r} and degrees {degrees!r}"
        raise ValueError(msg)
    if not all(math.isfinite(s) and s > 0 for s in sigmas) or min(degrees) < 0:
        msg = f"Gauss-Hermite sigmas must be > 0 and degrees >= 0, got {sigmas!r} and {degrees!r}"
        raise ValueError(msg)
    offsets = np.arange(-int(half_width), int(half_width) + 1, dtype=float)
    kernels = []
    for sigma, degree in zip(sigmas, degrees, strict=True):
        t = offsets / sigma
        gaussian = np.exp(-0.5 * t * t)
        # 1-D Hermite functions H_n(t)·exp(−t²/2); the 2-D kernel is an outer product (rows are y)
        factors = [hermite.hermval(t, [0] * n + [1]) * gaussian for n in range(degree + 1)]
        for px, py in term_powers(degree):
            kernels.append(FixedKernel(np.outer(factors[py], factors[px])))
    basis = renormalizeKernelList(kernels)
    if not orthonormalize or len(basis) < 3:
        return basis
    shape = basis[0].array.shape
    rest = np.column_stack([k.array.ravel() for k in basis[1:]])
    q, r = np.linalg.qr(rest)
    # a zero on R's diagonal would mean two kernels span the same function
    if np.min(np.abs(np.diag(r))) < 1e-10 * np.max(np.abs(np.diag(r))):
        msg = (
            f"Gauss-Hermite basis with sigmas {sigmas!r} and degrees {degrees!r} is degenerate on a "
            f"{shape[1]}x{shape[0]} kernel; use fewer or more distinct Gaussians, or a larger kernel"
        )
        raise ValueError(msg)
    return [basis[0], *(FixedKernel(q[:, i].reshape(shape)) for i in range(q.shape[1]))]


def basis_widths(
    config: Any,
    target_fwhm: float | None = None,
    reference_fwhm: float | None = None,
    sigmas: Sequence[float] | None = None,
) -> tuple[list[float], int, str]:
    """Gaussian sigmas, kernel size and mode, by diffim's Alard–Lupton rule.

    Parameters
    ----------
    config : `~diffim.tasks.psfMatch.PsfMatchConfigAL`
        Kernel config: ``alardNGauss``, ``alardSigGauss``, ``alardGaussBeta``, ``alardMinSig``,
        ``alardMinSigDeconv``, ``scaleByFwhm``, ``kernelSize``, ``kernelSizeFwhmScaling``,
        ``kernelSizeMin``, ``kernelSizeMax``.
    target_fwhm, reference_fwhm : `float`, optional
        PSF FWHMs (pixels) of the image convolved and of the image matched to.
    sigmas : sequence of `float`, optional
        Sigmas for the ``"config"`` mode; default ``config.alardSigGauss``.

    Returns
    -------
    sigmas : `list` [`float`]
        One sigma per Gaussian, in pixels.
    kernel_size : `int`
        Odd kernel side in pixels.
    mode : `str`
        ``"config"``, ``"convolution"`` or ``"deconvolution"``.

    Raises
    ------
    ValueError
        If the config lacks the Alard–Lupton fields (a delta-function config).
    """
    if not hasattr(config, "alardSigGauss"):
        msg = (
            f"kernel basis {NAME!r} reads the Alard-Lupton fields (alardSigGauss, ...) that "
            f"{type(config).__name__} lacks; set config.kernel.name = 'AL' before kernelBasisSet"
        )
        raise ValueError(msg)
    n_gauss = int(config.alardNGauss)
    sigmas = [float(s) for s in (config.alardSigGauss if sigmas is None else sigmas)]
    size = int(config.kernelSize)
    if target_fwhm is None or reference_fwhm is None or not config.scaleByFwhm:
        return sigmas, size, "config"
    target, reference = target_fwhm / FWHM_PER_SIGMA, reference_fwhm / FWHM_PER_SIGMA
    if target == reference:
        mode = "config"
    else:
        wider, narrower = max(target, reference), min(target, reference)
        mode = "convolution" if reference > target else "deconvolution"
        floor = float(config.alardMinSig if mode == "convolution" else config.alardMinSigDeconv)
        beta = float(config.alardGaussBeta)
        sigma_k = max(math.sqrt(wider * wider - narrower * narrower), floor)
        first = max(floor, sigma_k / beta) if n_gauss > 1 else sigma_k
        sigmas = [first * beta**i for i in range(n_gauss)]
    size = int(config.kernelSizeFwhmScaling * sigmas[-1])
    size += 1 - size % 2  # odd
    size = min(max(size, int(config.kernelSizeMin)), int(config.kernelSizeMax))
    size += 1 - size % 2
    return sigmas, size, mode


def gauss_hermite_basis(
    config: Any,
    targetFwhmPix: float | None = None,  # noqa: N803 - the generator call diffim makes
    referenceFwhmPix: float | None = None,  # noqa: N803
    basisDegGauss: Sequence[int] | None = None,  # noqa: N803
    basisSigmaGauss: Sequence[float] | None = None,  # noqa: N803
    metadata: Any = None,
) -> list[FixedKernel]:
    """Gaussians times Hermite polynomials, orthonormalised, sized by the PSF FWHMs.

    This is the generator registered as ``"gauss-hermite"``; diffim calls it with the keyword
    arguments of ``diffim_register_kernel_bases``.

    Parameters
    ----------
    config : `~diffim.tasks.psfMatch.PsfMatchConfigAL`
        Active kernel config (see `basis_widths`); ``alardDegGauss`` gives the Hermite degrees.
    targetFwhmPix, referenceFwhmPix : `float`, optional
        PSF FWHMs (pixels) of the image convolved and of the image matched to.
    basisDegGauss : sequence of `int`, optional
        Degrees; default ``config.alardDegGauss``.
    basisSigmaGauss : sequence of `float`, optional
        Sigmas for the ``"config"`` mode.
    metadata : `~diffim.framework.TaskMetadata`, optional
        Receives ``GHBasisSigGauss``, ``GHBasisDegGauss``, ``GHKernelSize`` and ``GHBasisMode``.

    Returns
    -------
    basis : `list` [`~diffim.tasks.kernel.FixedKernel`]
        See `make_gauss_hermite_basis`.
    """
    sigmas, size, mode = basis_widths(config, targetFwhmPix, referenceFwhmPix, basisSigmaGauss)
    degrees = [int(d) for d in (config.alardDegGauss if basisDegGauss is None else basisDegGauss)]
    if metadata is not None:
        metadata.add("GHBasisSigGauss", sigmas)
        metadata.add("GHBasisDegGauss", degrees)
        metadata.add("GHKernelSize", size)
        metadata.add("GHBasisMode", mode)
    return make_gauss_hermite_basis(size // 2, sigmas, degrees)
