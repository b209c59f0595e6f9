"""PSF models for diffim: one import point for every model (the classes live in small modules).

``from diffim.tasks.psf.models import ImagePsf, GaussianPsf, ...`` is equivalent to importing from
``diffim.tasks.psf``.

Modules: :mod:`.base` (the ``Psf`` interface), :mod:`.errors` (``PsfError``, validators),
:mod:`.measure` (``Quadrupole``, centroid/shape/FWHM measurement on stamps), :mod:`.analytic`
(Gaussian, double Gaussian, Moffat, ``psf_from_fwhm``), :mod:`.image` (``ImagePsf``) and :mod:`.grid`
(``GridImagePsf``).
"""

from __future__ import annotations

from .analytic import DEFAULT_MOFFAT_BETA, DoubleGaussianPsf, GaussianPsf, MoffatPsf, psf_from_fwhm
from .base import Psf
from .errors import PsfError, PsfWarning
from .grid import GridImagePsf, GridPsf
from .image import ImagePsf, crop_or_pad, validate_stamp
from .measure import FWHM_PER_SIGMA, Quadrupole, measure_centroid, measure_fwhm, measure_shape

__all__ = [
    "DEFAULT_MOFFAT_BETA",
    "FWHM_PER_SIGMA",
    "DoubleGaussianPsf",
    "GaussianPsf",
    "GridImagePsf",
    "GridPsf",
    "ImagePsf",
    "MoffatPsf",
    "Psf",
    "PsfError",
    "PsfWarning",
    "Quadrupole",
    "crop_or_pad",
    "measure_centroid",
    "measure_fwhm",
    "measure_shape",
    "psf_from_fwhm",
    "validate_stamp",
]
