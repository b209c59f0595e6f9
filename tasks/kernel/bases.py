"""Kernel basis lists: Alard–Lupton Gaussians × polynomials and delta functions (LSST's
``lsst.ip.diffim.makeKernelBasisList`` and the afw/ip_diffim C++ basis builders).

:func:`makeKernelBasisList` picks the generator named by ``config.kernelBasisSet`` from the
registry :data:`diffim.tasks.registries.kernel_bases`, which plugins fill through the
``diffim_register_kernel_bases`` hook; the built-in "alard-lupton" and "delta-function" entries
(``diffim.plugins.kernel_bases``) call :func:`generateAlardLuptonBasisList` and
:func:`makeDeltaFunctionBasisList` here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registries import kernel_bases
from .functions import term_powers
from .kernels import DeltaFunctionKernel, FixedKernel, Kernel

__all__ = [
    "FWHM_PER_SIGMA",
    "generateAlardLuptonBasisList",
    "makeAlardLuptonBasisList",
    "makeDeltaFunctionBasisList",
    "makeKernelBasisList",
    "renormalizeKernelList",
]

#: FWHM of a Gaussian in units of its sigma (the constant LSST uses, not 2·sqrt(2 ln 2) exactly).
FWHM_PER_SIGMA = 2.35482

# Sums below this are "zero" for renormalizeKernelList (afw compares with float32 epsilon).
_SUM_EPSILON = float(np.finfo(np.float32).eps)


def renormalizeKernelList(kernels: Sequence[Kernel]) -> list[FixedKernel]:
    """Renormalise a basis so that only its first kernel carries the kernel sum.

    Basis 0 is scaled to sum 1. Every other kernel with a sum ``s`` (``|s|`` above float32
    epsilon) becomes ``image / s - B0``, which sums to 0; odd-parity kernels (sum ≈ 0) are left
    alone. Each kernel after the first is then scaled to unit ``Σ pixel²``. A kernel
    ``a0·B0 + Σ a_k·B_k`` built from the result has sum exactly ``a0``, so holding ``a0``
    spatially constant conserves the photometric scale.

    Parameters
    ----------
    kernels : sequence of Kernel
        The basis; all kernels must share one size. Spatially varying kernels are evaluated at
        (0, 0).

    Returns
    -------
    basis : list of FixedKernel
        The renormalised basis, same length and order.

    Raises
    ------
    ValueError
        If the list is empty, sizes differ, the first kernel sums to 0, or a later kernel is
        identically 0 after the subtraction (it cannot be scaled to unit norm).
    """
    kernels = list(kernels)
    if not kernels:
        msg = "renormalizeKernelList got an empty kernel list; pass at least one kernel"
        raise ValueError(msg)
    shapes = {k.getDimensions() for k in kernels}
    if len(shapes) != 1:
        msg = f"renormalizeKernelList needs kernels of one size, got sizes {sorted(shapes)}; build them alike"
        raise ValueError(msg)
    first = kernels[0].computeImage(doNormalize=False)
    total = first.sum()
    if total == 0:
        msg = "renormalizeKernelList: the first kernel sums to 0, so it cannot carry the kernel sum; reorder the basis"
        raise ValueError(msg)
    b0 = first / total
    result = [FixedKernel(b0)]
    for index, kernel in enumerate(kernels[1:], start=1):
        image = kernel.computeImage(doNormalize=False)
        s = image.sum()
        if abs(s) > _SUM_EPSILON:
            image = image / s - b0
        norm = math.sqrt(float(np.sum(image * image)))
        if norm == 0:
            msg = (
                f"renormalizeKernelList: kernel {index} is identically 0 after removing the first kernel "
                "(it is a multiple of it); drop it from the basis"
            )
            raise ValueError(msg)
        result.append(FixedKernel(image / norm))
    return result


def makeAlardLuptonBasisList(
    halfWidth: int,  # noqa: N803 - LSST names
    nGauss: int,  # noqa: N803
    sigGauss: Sequence[float],  # noqa: N803
    degGauss: Sequence[int],  # noqa: N803
) -> list[FixedKernel]:
    """Alard–Lupton basis: unit-sum Gaussians times polynomials, renormalised.

    For each Gaussian ``i`` the sampled circular Gaussian of sigma ``sigGauss[i]`` (normalised to
    sum 1) is multiplied by every term of a 2-D polynomial of total degree ``degGauss[i]``, in
    afw order ``1, u, v, u², uv, v², …`` with ``(u, v)`` the integer offsets from the centre
    divided by ``halfWidth`` (so they span −1…+1 edge to edge). The list is then passed through
    :func:`renormalizeKernelList`.

    Parameters
    ----------
    halfWidth : int
        Kernel half size; kernels are ``2·halfWidth+1`` pixels square.
    nGauss : int
        Number of Gaussians.
    sigGauss : sequence of float
        Gaussian sigmas in pixels, one per Gaussian.
    degGauss : sequence of int
        Polynomial degree multiplying each Gaussian.

    Returns
    -------
    basis : list of FixedKernel
        ``Σ_i (d_i+1)(d_i+2)/2`` kernels (27 for degrees (4, 2, 2)).

    Raises
    ------
    ValueError
        If ``halfWidth < 1``, ``nGauss < 1``, the list lengths differ from ``nGauss``, a sigma is
        not positive or a degree is negative.
    """
    if int(halfWidth) != halfWidth or halfWidth < 1:
        msg = f"Alard-Lupton basis halfWidth must be an integer >= 1, got {halfWidth!r}"
        raise ValueError(msg)
    if int(nGauss) != nGauss or nGauss < 1:
        msg = f"Alard-Lupton basis nGauss must be an integer >= 1, got {nGauss!r}"
        raise ValueError(msg)
    sigmas = [float(s) for s in sigGauss]
    degrees = list(degGauss)
    if len(sigmas) != nGauss:
        msg = f"sigGauss has {len(sigmas)} entries {sigmas!r} but nGauss is {nGauss}; give one sigma per Gaussian"
        raise ValueError(msg)
    if len(degrees) != nGauss:
        msg = f"degGauss has {len(degrees)} entries {degrees!r} but nGauss is {nGauss}; give one degree per Gaussian"
        raise ValueError(msg)
    if not all(math.isfinite(s) and s > 0 for s in sigmas):
        msg = f"Alard-Lupton sigmas must be finite and > 0, got {sigmas!r}"
        raise ValueError(msg)
    if not all(int(d) == d and d >= 0 for d in degrees):
        msg = f"Alard-Lupton degrees must be integers >= 0, got {degrees!r}"
        raise ValueError(msg)

    half = int(halfWidth)
    offsets = np.arange(-half, half + 1, dtype=float)
    # images are [y, x]: rows vary with v, columns with u
    v, u = np.meshgrid(offsets, offsets, indexing="ij")
    u_scaled, v_scaled = u / half, v / half
    r2 = u * u + v * v
    kernels: list[FixedKernel] = []
    for sigma, degree in zip(sigmas, degrees, strict=True):
        gaussian = np.exp(-0.5 * r2 / (sigma * sigma))
        gaussian /= gaussian.sum()
        for px, py in term_powers(int(degree)):
            kernels.append(FixedKernel(gaussian * u_scaled**px * v_scaled**py))
    return renormalizeKernelList(kernels)


def makeDeltaFunctionBasisList(width: int, height: int) -> list[FixedKernel]:
    """One delta-function kernel per pixel of a ``width`` x ``height`` kernel.

    Kernel ``n = row·width + col`` is 1 at ``(col, row)`` and 0 elsewhere; the list is
    orthonormal and every kernel sums to 1.

    Parameters
    ----------
    width, height : int
        Kernel size in pixels (>= 1).

    Returns
    -------
    basis : list of FixedKernel
        ``width·height`` :class:`~diffim.tasks.kernel.DeltaFunctionKernel` instances.

    Raises
    ------
    ValueError
        If either size is below 1.
    """
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        msg = f"delta-function basis size must be integers >= 1, got {width!r}x{height!r}"
        raise ValueError(msg)
    width, height = int(width), int(height)
    return [DeltaFunctionKernel(width, height, (col, row)) for row in range(height) for col in range(width)]


def _sigma_ladder(wider: float, narrower: float, min_sigma: float, n_gauss: int, beta: float) -> list[float]:
    """Sigmas of the matching Gaussians: start near sqrt(wider² − narrower²), then × beta."""
    sigma_k = max(math.sqrt(wider * wider - narrower * narrower), min_sigma)
    first = max(min_sigma, sigma_k / beta) if n_gauss > 1 else sigma_k
    return [first * beta**i for i in range(n_gauss)]


def generateAlardLuptonBasisList(  # noqa: N802 - LSST name
    config: Any,
    targetFwhmPix: float | None = None,  # noqa: N803 - LSST names
    referenceFwhmPix: float | None = None,  # noqa: N803
    basisDegGauss: Sequence[int] | None = None,  # noqa: N803
    basisSigmaGauss: Sequence[float] | None = None,  # noqa: N803
    metadata: Any = None,
) -> list[FixedKernel]:
    """Alard–Lupton basis with sigmas and kernel size scaled by the two PSF widths.

    *Target* is the image to be convolved (normally the template), *reference* the image it is
    matched to. Modes (written to ``ALBasisMode``):

    ``"config"``
        No FWHMs, ``scaleByFwhm`` False, or equal FWHMs: the config (or explicit) sigmas. With
        no FWHMs or no scaling ``config.kernelSize`` is kept; with equal FWHMs the size is
        derived from the config sigmas like below (LSST HEAD behaviour).
    ``"convolution"``
        Reference wider: sigmas ``max(alardMinSig, σ_K/β)·β^i`` with
        ``σ_K = sqrt(σ_ref² − σ_tgt²)`` (at least ``alardMinSig``), ``β = alardGaussBeta``.
    ``"deconvolution"``
        Target wider: the same ladder from ``sqrt(σ_tgt² − σ_ref²)`` with ``alardMinSigDeconv``.

    When scaled, ``kernelSize = int(kernelSizeFwhmScaling · σ_last)``, plus 1 if even, clamped
    to ``[kernelSizeMin, kernelSizeMax]``. σ = FWHM / 2.35482.

    Parameters
    ----------
    config : PsfMatchConfigAL
        Active kernel config; ``kernelBasisSet`` must be ``"alard-lupton"``.
    targetFwhmPix, referenceFwhmPix : float, optional
        PSF FWHMs (pixels) of the image to convolve and of the image matched to.
    basisDegGauss : sequence of int, optional
        Polynomial degrees; default ``config.alardDegGauss``.
    basisSigmaGauss : sequence of float, optional
        Sigmas for the ``"config"`` mode; default ``config.alardSigGauss``.
    metadata : TaskMetadata, optional
        Receives ``ALBasisNGauss``, ``ALBasisDegGauss``, ``ALBasisSigGauss``, ``ALKernelSize``
        and ``ALBasisMode`` (with ``metadata.add``).

    Returns
    -------
    basis : list of FixedKernel
        See :func:`makeAlardLuptonBasisList`.

    Raises
    ------
    RuntimeError
        If ``config.kernelBasisSet`` is not ``"alard-lupton"``.
    ValueError
        If the degree or sigma list length differs from ``alardNGauss``, ``kernelSize`` is even,
        a FWHM is not positive, or the clamped derived size is even.
    """
    if config.kernelBasisSet != "alard-lupton":
        msg = (
            f"generateAlardLuptonBasisList needs kernelBasisSet 'alard-lupton', got {config.kernelBasisSet!r}; "
            "use makeKernelBasisList to dispatch on the basis set"
        )
        raise RuntimeError(msg)
    n_gauss = int(config.alardNGauss)
    degrees = list(config.alardDegGauss if basisDegGauss is None else basisDegGauss)
    sigmas = [float(s) for s in (config.alardSigGauss if basisSigmaGauss is None else basisSigmaGauss)]
    if len(degrees) != n_gauss:
        msg = f"{len(degrees)} Gaussian degrees {degrees!r} given but alardNGauss is {n_gauss}; give one per Gaussian"
        raise ValueError(msg)
    if len(sigmas) != n_gauss:
        msg = f"{len(sigmas)} Gaussian sigmas {sigmas!r} given but alardNGauss is {n_gauss}; give one per Gaussian"
        raise ValueError(msg)
    kernel_size = int(config.kernelSize)
    if kernel_size % 2 != 1:
        msg = f"Alard-Lupton kernels need an odd kernelSize, got {kernel_size!r}; use {kernel_size + 1}"
        raise ValueError(msg)

    if targetFwhmPix is None or referenceFwhmPix is None or not config.scaleByFwhm:
        mode = "config"
    else:
        for name, fwhm in (("targetFwhmPix", targetFwhmPix), ("referenceFwhmPix", referenceFwhmPix)):
            if not (math.isfinite(fwhm) and fwhm > 0):
                msg = f"{name} must be a finite FWHM > 0 in pixels, got {fwhm!r}"
                raise ValueError(msg)
        sigma_target = targetFwhmPix / FWHM_PER_SIGMA
        sigma_reference = referenceFwhmPix / FWHM_PER_SIGMA
        beta = float(config.alardGaussBeta)
        if sigma_reference == sigma_target:
            # LSST HEAD: keep the config sigmas but still derive the size from them
            mode = "config"
        elif sigma_reference > sigma_target:
            mode = "convolution"
            sigmas = _sigma_ladder(sigma_reference, sigma_target, float(config.alardMinSig), n_gauss, beta)
        else:
            mode = "deconvolution"
            sigmas = _sigma_ladder(sigma_target, sigma_reference, float(config.alardMinSigDeconv), n_gauss, beta)
        kernel_size = int(config.kernelSizeFwhmScaling * sigmas[-1])
        if kernel_size % 2 == 0:
            kernel_size += 1
        kernel_size = min(max(kernel_size, int(config.kernelSizeMin)), int(config.kernelSizeMax))
        if kernel_size % 2 == 0:
            # an even clamp bound would silently give a kernel one pixel larger than reported
            msg = (
                f"derived Alard-Lupton kernel size {kernel_size} is even because kernelSizeMin "
                f"({config.kernelSizeMin}) or kernelSizeMax ({config.kernelSizeMax}) is even; make both odd"
            )
            raise ValueError(msg)

    if metadata is not None:
        metadata.add("ALBasisNGauss", n_gauss)
        metadata.add("ALBasisDegGauss", [int(d) for d in degrees])
        metadata.add("ALBasisSigGauss", sigmas)
        metadata.add("ALKernelSize", kernel_size)
        metadata.add("ALBasisMode", mode)
    return makeAlardLuptonBasisList(kernel_size // 2, n_gauss, sigmas, degrees)


def makeKernelBasisList(  # noqa: N802 - LSST name
    config: Any,
    targetFwhmPix: float | None = None,  # noqa: N803 - LSST names
    referenceFwhmPix: float | None = None,  # noqa: N803
    basisDegGauss: Sequence[int] | None = None,  # noqa: N803
    basisSigmaGauss: Sequence[float] | None = None,  # noqa: N803
    metadata: Any = None,
) -> list[Kernel]:
    """Build the kernel basis named by ``config.kernelBasisSet``.

    The generator is looked up in :data:`diffim.tasks.registries.kernel_bases` (built-ins
    "alard-lupton" and "delta-function", plus whatever plugins register) and called as
    ``generator(config, targetFwhmPix=..., referenceFwhmPix=..., basisDegGauss=...,
    basisSigmaGauss=..., metadata=...)``. The delta-function generator ignores the widths.

    Parameters
    ----------
    config : PsfMatchConfig
        Active kernel config.
    targetFwhmPix, referenceFwhmPix : float, optional
        PSF FWHMs (pixels) of the image to convolve (normally the template) and of the image
        matched to (normally the science image).
    basisDegGauss, basisSigmaGauss : sequence, optional
        Explicit Alard–Lupton degrees / sigmas.
    metadata : TaskMetadata, optional
        Where generators record what they built.

    Returns
    -------
    basis : list of Kernel
        The basis kernels.

    Raises
    ------
    ValueError
        If no generator is registered under ``config.kernelBasisSet``.
    TypeError
        If the generator returns something other than a non-empty sequence of kernels.
    """
    name = config.kernelBasisSet
    if name not in kernel_bases:
        raise ValueError(kernel_bases.unknown_message(name))
    basis = kernel_bases[name].target(
        config,
        targetFwhmPix=targetFwhmPix,
        referenceFwhmPix=referenceFwhmPix,
        basisDegGauss=basisDegGauss,
        basisSigmaGauss=basisSigmaGauss,
        metadata=metadata,
    )
    if not isinstance(basis, list | tuple) or not basis:
        msg = f"kernel basis generator {name!r} returned {type(basis).__name__}; it must return a non-empty list of kernels"
        raise TypeError(msg)
    bad = [type(k).__name__ for k in basis if not isinstance(k, Kernel)]
    if bad:
        msg = f"kernel basis generator {name!r} returned non-kernels ({', '.join(sorted(set(bad)))}); return Kernel objects"
        raise TypeError(msg)
    return list(basis)
