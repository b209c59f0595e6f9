"""LSST's standard synthetic kernel candidate (spec §10): a unit delta and a delta of ``ksum``."""

from __future__ import annotations

import numpy as np

from diffim.tasks.image import MaskedImage


def delta_pair(ksum: float = 1.0, size: int = 51, variance: float = 1.0) -> tuple[MaskedImage, MaskedImage]:
    """Template: centre pixel 1 (variance ``variance`` everywhere); science: centre ``ksum`` (variance ``ksum`` there)."""
    c = size // 2
    template = np.zeros((size, size))
    template[c, c] = 1.0
    science = template * ksum
    s_var = np.full((size, size), float(variance))
    s_var[c, c] = ksum
    return MaskedImage(template, variance=np.full((size, size), float(variance))), MaskedImage(science, variance=s_var)
