"""PSF models: analytic (Gaussian, double Gaussian, Moffat), a fixed image PSF, and grid-interpolated PSFs.

Every model's :meth:`~Psf.computeImage` returns an odd-sized float64 kernel image centred on its
central pixel with unit sum (LSST's ``computeKernelImage`` semantics).
"""

from __future__ import annotations

from .models import (
    DEFAULT_MOFFAT_BETA,
    FWHM_PER_SIGMA,
    DoubleGaussianPsf,
    GaussianPsf,
    GridImagePsf,
    GridPsf,
    ImagePsf,
    MoffatPsf,
    Psf,
    PsfError,
    PsfWarning,
    Quadrupole,
    crop_or_pad,
    measure_centroid,
    measure_fwhm,
    measure_shape,
    psf_from_fwhm,
    validate_stamp,
)

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
    "estimate_psf",
    "PsfEstimate",
    "PsfEstimationError",
    "ProfileFit",
    "fit_psf_profile",
]

# The estimator pulls in detection (astropy.table, scipy): loaded on first use.
_ESTIMATE = {"estimate_psf", "PsfEstimate", "PsfEstimationError", "ProfileFit", "fit_psf_profile"}


def __getattr__(name: str) -> object:
    if name in _ESTIMATE:
        from . import estimate

        return getattr(estimate, name)
    msg = f"module 'diffim.tasks.psf' has no attribute {name!r}"
    raise AttributeError(msg)
