"""The Alard-Lupton kernel basis used for one subtraction: with or without its 'wing' Gaussian.

:class:`~diffim.tasks.imagePsfMatch.ImagePsfMatchConfig`'s default basis is LSST's three
Gaussians plus a degree-0 'wing' Gaussian carrying the PSF wings. :func:`basis_and_sources` keeps
it only where it helps (template convolved, a PSF with Moffat wings, enough kernel sources) and
makes the kernel-source selection for the stamps of the basis kept; :func:`profile_beta` gives
the Moffat index of a PSF it decides on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffim.framework.struct import Struct

from ..psfMatch import NoKernelCandidatesError
from .psf_info import PsfInfo

__all__ = ["basis_and_sources", "has_wing_gauss", "profile_beta", "without_wing_gauss"]


def has_wing_gauss(config: Any) -> bool:
    """Whether an Alard-Lupton kernel config's basis ends with a degree-0 'wing' Gaussian."""
    return (getattr(config, "kernelBasisSet", None) == "alard-lupton" and int(config.alardNGauss) > 1
            and int(config.alardDegGauss[-1]) == 0)


def without_wing_gauss(config: Any) -> Any:
    """A copy of ``config`` whose basis leaves out its last (wing) Gaussian."""
    trimmed = config.copy()
    trimmed.alardNGauss = int(config.alardNGauss) - 1
    trimmed.alardDegGauss = list(config.alardDegGauss)[:-1]
    trimmed.alardSigGauss = list(config.alardSigGauss)[:-1]
    return trimmed


def basis_and_sources(config: Any, conv_info: PsfInfo, ref_info: PsfInfo, convolve_template: bool,
                      select: Callable[[int], Struct], *, min_sources: int, max_beta: float,
                      metadata: Any, log: Any) -> tuple[list[Any], Struct]:
    """The kernel basis and the kernel-source selection made for its stamps.

    A configured basis ending with a degree-0 'wing' Gaussian keeps it only when the template
    is convolved, the PSF of the image matched to has Moffat wings (index below ``max_beta``,
    ``wingGaussMaxBeta``) and at least ``min_sources`` (``wingGaussMinSources``) kernel sources
    are found with its larger stamps; otherwise the basis without it is used (metadata
    ``ALWingGauss``).

    Parameters
    ----------
    config : PsfMatchConfig
        The active kernel config (``kConfig``).
    conv_info, ref_info : PsfInfo
        PSFs of the image convolved and of the image matched to.
    convolve_template : bool
        Whether the template is the image convolved.
    select : callable
        ``select(kernel_width)`` runs the kernel-source selection for stamps fitting a kernel
        of that width and returns its Struct.
    min_sources : int
        Fewest kernel sources keeping the wing Gaussian.
    max_beta : float
        Moffat index below which the PSF matched to has wings.
    metadata : TaskMetadata
        Receives ``ALWingGauss`` and the ``ALBasis*``/``ALKernelSize`` keys of the basis used.
    log : logging.Logger
        Where leaving out the wing Gaussian (and a failed profile fit, :func:`profile_beta`) is explained.

    Returns
    -------
    tuple
        The basis (list of kernels) and the selection Struct.
    """
    from ..kernel.bases import makeKernelBasisList

    if not has_wing_gauss(config):
        basis = makeKernelBasisList(config, conv_info.fwhm, ref_info.fwhm, metadata=metadata)
        return basis, select(basis[0].getWidth())
    basis = makeKernelBasisList(config, conv_info.fwhm, ref_info.fwhm)
    selection = None
    beta = profile_beta(ref_info, log) if convolve_template else None
    if not convolve_template:
        reason = "the science image is convolved"
    elif beta is not None and not beta < max_beta:
        reason = (f"the PSF of the image matched to has no wings (Moffat index {beta:.3g} >= "
                  f"wingGaussMaxBeta={max_beta:g})")
    else:
        try:
            selection = select(basis[0].getWidth())
        except NoKernelCandidatesError:
            pass  # the wing's larger stamps may be what leaves too few: try without it
        reason = (f"{'too few' if selection is None else len(selection.kernelSources)} kernel sources, "
                  f"fewer than wingGaussMinSources={min_sources}")
    keep = selection is not None and len(selection.kernelSources) >= min_sources
    if not keep:
        config = without_wing_gauss(config)
        basis = makeKernelBasisList(config, conv_info.fwhm, ref_info.fwhm)
        log.info("Kernel basis without its wing Gaussian: %s", reason)
        selection = select(basis[0].getWidth())
    metadata["ALWingGauss"] = keep
    makeKernelBasisList(config, conv_info.fwhm, ref_info.fwhm, metadata=metadata)
    return basis, selection


def profile_beta(info: PsfInfo, log: Any) -> float | None:
    """Moffat index of a PSF: the estimate's, else a profile fit to the model's image; None if unknown.

    A fitted index is stored in ``info.beta`` for the next call; a model that cannot be fitted
    is reported on ``log`` (debug) and gives None.
    """
    if info.beta is not None:
        return float(info.beta)
    if info.psf is None:
        return None
    from ..psf import fit_psf_profile

    try:
        image = info.psf.computeImage()
        stamp = np.asarray(getattr(image, "array", image), dtype=float)
        beta = float(fit_psf_profile(stamp).beta)
    except Exception as err:  # noqa: BLE001 - a model we cannot fit keeps the default basis
        log.debug("No Moffat fit of the PSF model (%s); keeping the wing Gaussian", err)
        return None
    info.beta = beta
    return beta
