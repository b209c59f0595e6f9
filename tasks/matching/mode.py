"""Which image to convolve: the ``mode`` decision of image differencing, from the two PSFs.

:func:`convolve_template` applies LSST's ``_shapeTest`` rule for ``mode`` "auto" (convolve the
template unless its PSF is wider than the science PSF along both x and y) and refuses, with
:class:`DeconvolutionError`, a direction whose kernel would have to deconvolve more than the
kernel basis can (``maxDeconvolutionFwhmRatio``).
"""

from __future__ import annotations

from typing import Any

from diffim.framework.task import AlgorithmError

from .psf_info import PsfInfo

__all__ = ["DeconvolutionError", "convolve_template"]


class DeconvolutionError(AlgorithmError):
    """The image to convolve has a much wider PSF than the other: matching would need deconvolution."""


def convolve_template(mode: str, template: PsfInfo, science: PsfInfo, max_ratio: float, log: Any) -> bool:
    """Whether to convolve the template (True) or the science image (False).

    Parameters
    ----------
    mode : str
        "convolveTemplate", "convolveScience" or "auto" (see
        :data:`~diffim.tasks.imagePsfMatch.MODES`).
    template, science : PsfInfo
        What is known of the two PSFs.
    max_ratio : float
        Largest FWHM(image to convolve) / FWHM(other image) accepted (``maxDeconvolutionFwhmRatio``).
    log : logging.Logger
        Where the choice made for "auto" is explained.

    Returns
    -------
    bool
        True to convolve the template. "auto" convolves the template when a PSF width is
        unknown, and the other image when the chosen one's PSF is more than ``max_ratio`` times
        wider.

    Raises
    ------
    DeconvolutionError
        A forced direction whose convolved PSF is more than ``max_ratio`` times wider than the other.
    """
    t_info, s_info = template, science
    known = t_info.sigmaX is not None and s_info.sigmaX is not None
    if mode == "auto":
        if not known:
            log.warning("PSF widths unknown: convolving the template (mode 'auto' needs both PSFs)")
            conv_template = True
        else:
            conv_template = bool(t_info.sigmaX <= s_info.sigmaX or t_info.sigmaY <= s_info.sigmaY)
    else:
        conv_template = mode == "convolveTemplate"
    if t_info.fwhm is not None and s_info.fwhm is not None:
        target, reference = (t_info, s_info) if conv_template else (s_info, t_info)
        ratio = target.fwhm / reference.fwhm
        if ratio > max_ratio:
            if mode == "auto":
                log.info("Convolved PSF %.2f times wider than the other: convolving the other image", ratio)
                conv_template = not conv_template
            else:
                conv_name, other = ("template", "science") if conv_template else ("science", "template")
                other_mode = "convolveScience" if conv_template else "convolveTemplate"
                msg = (
                    f"mode={mode!r} convolves the {conv_name} image, whose PSF (FWHM {target.fwhm:.3g} px) is "
                    f"{ratio:.3g} times wider than the {other} PSF (FWHM {reference.fwhm:.3g} px): the kernel would "
                    f"have to deconvolve beyond what its basis can (maxDeconvolutionFwhmRatio="
                    f"{max_ratio!r}); set mode='auto' or mode={other_mode!r} to "
                    f"convolve the {other} image instead"
                )
                raise DeconvolutionError(msg, ratio=ratio)
    return conv_template
