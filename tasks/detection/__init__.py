"""Source detection and measurement: background, threshold detection, centroids, fluxes, flags.

Used to pick kernel candidates and for QA of difference images. Everything returns plain astropy
objects (:class:`~astropy.table.Table`) and numpy arrays.
"""

from __future__ import annotations

from .background import DEFAULT_BACKGROUND_IGNORED_PLANES, Background, BackgroundError, estimate_background
from .detect import COLUMNS, POLARITIES, DetectionError, detect_sources
from .measure import Apertures, adaptive_sigma, cutouts, guess_fwhm, windowed_centroid

__all__ = [
    "COLUMNS",
    "DEFAULT_BACKGROUND_IGNORED_PLANES",
    "POLARITIES",
    "Apertures",
    "Background",
    "BackgroundError",
    "DetectionError",
    "adaptive_sigma",
    "cutouts",
    "detect_sources",
    "estimate_background",
    "guess_fwhm",
    "windowed_centroid",
]
