"""PSF models: analytic (Gaussian, double Gaussian, Moffat), a fixed image PSF, and grid-interpolated PSFs.

Every model's :meth:`~Psf.computeImage` returns an odd-sized float64 kernel image centred on its
central pixel with unit sum (LSST's ``computeKernelImage`` semantics).
"""

from __future__ import annotations

from . import models as _models
from .models import *  # noqa: F403 - the models module lists every model once

# The estimator pulls in detection (astropy.table, scipy): loaded on first use.
_ESTIMATE = ("estimate_psf", "PsfEstimate", "PsfEstimationError", "ProfileFit", "fit_psf_profile")

__all__ = [*_models.__all__, *_ESTIMATE]


def __getattr__(name: str) -> object:
    if name in _ESTIMATE:
        from . import estimate

        return getattr(estimate, name)
    msg = f"module 'diffim.tasks.psf' has no attribute {name!r}"
    raise AttributeError(msg)
