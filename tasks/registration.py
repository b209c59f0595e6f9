"""Check that a template and a science exposure share one pixel grid before PSF matching.

PSF matching convolves the template pixel by pixel onto the science image, so both must cover the
same parent pixels (same bounding box: shape and origin ``xy0``) and, when both carry a WCS, the
two WCSs must put every sky position on the same pixel to within a small tolerance. Resampling onto a
common grid is a separate step (e.g. with ``reproject``), not done here.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from diffim.tasks.image import Box2I

__all__ = ["RegistrationError", "check_registration"]

_log = logging.getLogger("diffim.tasks.registration")

_RESAMPLE_HINT = "resample the template onto the science grid (e.g. with reproject) before matching"


class RegistrationError(ValueError):
    """The template and science images are not on the same pixel grid."""


def check_registration(template: Any, science: Any, *, tolerance_pix: float = 0.05, n_grid: int = 5) -> None:
    """Raise unless ``template`` and ``science`` share their pixel grid.

    Parameters
    ----------
    template, science : Exposure, MaskedImage, Image or numpy.ndarray
        The two images. Arrays have origin ``(0, 0)`` and no WCS.
    tolerance_pix : float, optional
        Largest allowed distance (pixels) between a science pixel and the template pixel that the
        template WCS assigns to the same sky position.
    n_grid : int, optional
        The WCSs are compared on an ``n_grid x n_grid`` grid of science pixels spanning the bounding
        box, corners included (at least 2).

    Raises
    ------
    RegistrationError
        If the shapes or origins differ (with wording for a template that does not cover the science
        image, or one that is larger and only needs cutting), or if the WCSs disagree by more than
        ``tolerance_pix`` somewhere on the grid. The message names the property, the values and the fix.
    ValueError
        For a non-positive tolerance or ``n_grid < 2``.

    Notes
    -----
    When either image has no WCS only the bounding boxes are compared, and a warning is logged on
    ``diffim.tasks.registration``.
    """
    if not (isinstance(tolerance_pix, (int, float)) and math.isfinite(tolerance_pix) and tolerance_pix > 0):
        msg = f"tolerance_pix must be a finite number of pixels > 0, got {tolerance_pix!r}"
        raise ValueError(msg)
    if not (isinstance(n_grid, (int, np.integer)) and n_grid >= 2):
        msg = f"n_grid must be an integer >= 2, got {n_grid!r}"
        raise ValueError(msg)
    t_box, s_box = _bbox(template, "template"), _bbox(science, "science")
    if t_box != s_box:
        raise RegistrationError(_bbox_message(t_box, s_box))

    t_wcs, s_wcs = _wcs(template), _wcs(science)
    if t_wcs is None or s_wcs is None:
        missing = " and ".join(name for name, w in (("template", t_wcs), ("science", s_wcs)) if w is None)
        _log.warning("%s has no WCS: checked only the pixel grid (shape and xy0), not the sky alignment", missing)
        return
    xs = np.linspace(s_box.minX, s_box.maxX, n_grid)
    ys = np.linspace(s_box.minY, s_box.maxY, n_grid)
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    world = s_wcs.pixel_to_world_values(gx, gy)
    tx, ty = t_wcs.world_to_pixel_values(*world)
    dist = np.hypot(np.asarray(tx, dtype=float) - gx, np.asarray(ty, dtype=float) - gy)
    if not np.isfinite(dist).all():
        k = int(np.nonzero(~np.isfinite(dist))[0][0])
        msg = (
            f"the template WCS cannot map the sky position of science pixel ({gx[k]:.1f}, {gy[k]:.1f}) back to a pixel "
            f"(different projections or sky regions?); {_RESAMPLE_HINT}"
        )
        raise RegistrationError(msg)
    k = int(np.argmax(dist))
    if dist[k] > tolerance_pix:
        msg = (
            f"template and science WCSs disagree by {dist[k]:.3g} px at science pixel ({gx[k]:.1f}, {gy[k]:.1f}) "
            f"(worst of {dist.size} test points; offset dx={tx[k] - gx[k]:+.3g}, dy={ty[k] - gy[k]:+.3g}; "
            f"tolerance_pix={tolerance_pix!r}); {_RESAMPLE_HINT}"
        )
        raise RegistrationError(msg)
    _log.debug("registration ok: WCSs agree to %.3g px over %s", float(dist.max()), s_box)


def _bbox(obj: Any, name: str) -> Box2I:
    if hasattr(obj, "getBBox"):
        return obj.getBBox()
    arr = np.asarray(obj)
    if arr.ndim != 2:
        msg = f"{name} must be an Exposure, MaskedImage, Image or 2-D array, got {type(obj).__name__} of shape {arr.shape}"
        raise TypeError(msg)
    return Box2I((0, 0), (arr.shape[1], arr.shape[0]))


def _wcs(obj: Any) -> Any:
    wcs = getattr(obj, "wcs", None)
    if wcs is None:
        return None
    # A cube or spectral WCS: compare only the sky axes.
    if getattr(wcs, "pixel_n_dim", 2) != 2 and getattr(wcs, "has_celestial", False):
        return wcs.celestial
    return wcs


def _shape(box: Box2I) -> str:
    return f"shape ({box.height}, {box.width})"


def _bbox_message(t: Box2I, s: Box2I) -> str:
    """One line saying how the boxes differ and what to do."""
    described = f"template {_shape(t)} at xy0=({t.minX}, {t.minY}), science {_shape(s)} at xy0=({s.minX}, {s.minY})"
    if t.contains(s):
        return (
            f"template bounding box is larger than the science one ({described}); "
            "cut it with template[science.getBBox()] (same parent pixels) before matching"
        )
    if t.getDimensions() == s.getDimensions():
        return (
            f"template and science have the same shape but different origins ({described}), so the same array index "
            f"is a different parent pixel; if they are the same pixels set template.setXY0(science.getXY0()), otherwise {_RESAMPLE_HINT}"
        )
    return (
        f"template bounding box does not contain the science one ({described}): the template must cover every "
        f"science pixel; {_RESAMPLE_HINT}"
    )
