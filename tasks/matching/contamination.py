"""Zero-weight pixels of a kernel stamp around contaminants (transients, variables, one-image sources).

A source present in one image only, or whose flux ratio differs from the kernel sum, leaves a
residual that the fit of ``I ≈ K ⋆ T + b`` tries to absorb: a wide kernel spreads it into its
wings and its sum. Its residual lies where the image matched to (``I``) shows it, within a few of
that image's FWHMs of the contaminant, whichever image holds it (the kernel maps a template source
onto the science PSF), so those pixels of the stamp get an infinite variance: zero weight in the
fit and no part in the candidate's residual statistics.
"""

from __future__ import annotations

import math

import numpy as np

from ..image import Box2I, MaskedImage

__all__ = ["contaminated_pixels", "mask_contaminated_pixels"]


def contaminated_pixels(bbox: Box2I, points: np.ndarray, radius: float, *, centre: tuple[float, float],
                        skip_radius: float) -> np.ndarray | None:
    """Pixels of ``bbox`` within ``radius`` of a contaminant, or None when there are none.

    Parameters
    ----------
    bbox : Box2I
        The stamp, in parent pixels.
    points : numpy.ndarray
        ``(n, 2)`` contaminant positions ``x, y`` in parent pixels.
    radius : float
        Radius (pixels) given zero weight around each contaminant.
    centre : tuple of float
        The candidate's own position: a contaminant within ``skip_radius`` of it is the candidate
        itself (judged by the selection's other cuts) and is ignored.
    skip_radius : float
        See ``centre``.

    Returns
    -------
    numpy.ndarray of bool or None
        ``[row, col]`` map of the stamp.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if not len(points):
        return None
    x0, y0 = bbox.minX, bbox.minY
    x1, y1 = bbox.maxX, bbox.maxY
    px, py = points[:, 0], points[:, 1]
    near = ((px >= x0 - radius) & (px <= x1 + radius) & (py >= y0 - radius) & (py <= y1 + radius)
            & (np.hypot(px - centre[0], py - centre[1]) > skip_radius))
    if not near.any():
        return None
    cols = np.arange(x0, x1 + 1, dtype=float)
    rows = np.arange(y0, y1 + 1, dtype=float)[:, None]
    hit = np.zeros((bbox.height, bbox.width), dtype=bool)
    r2 = radius * radius
    for x, y in zip(px[near], py[near]):
        hit |= (cols - x) ** 2 + (rows - y) ** 2 <= r2
    return hit if hit.any() else None


def mask_contaminated_pixels(stamp: MaskedImage, hit: np.ndarray) -> MaskedImage:
    """A copy of ``stamp`` whose variance is +inf on ``hit`` (zero weight; the pixels stay as they are)."""
    out = stamp.clone()
    out.variance.array[hit] = math.inf
    return out
