"""Threshold detection of sources with centroids, aperture fluxes and quality flags.

Pipeline (all vectorised except the few multi-peak footprints):

1. background: a smooth mesh model (:func:`~.background.estimate_background`) unless one is given;
2. matched filter: the background-subtracted image and its variance are convolved with a Gaussian of
   the PSF FWHM, giving the S/N of a point source centred on each pixel;
3. footprints: 8-connected pixels above ``threshold`` in that S/N map with at least ``npix_min`` pixels;
4. peaks: local maxima of the image smoothed with half that FWHM (sharp enough to separate stars
   2 FWHM apart); a secondary peak counts only if it rises ``blend_nsigma`` sigma above the saddle
   towards a brighter peak of its footprint;
5. one row per significant peak: windowed centroid, aperture flux and error from the variance plane,
   and flags (edge, saturated, masked, blended, not isolated).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.stats import mad_std
from astropy.table import Table
from scipy import ndimage
from scipy.spatial import cKDTree

from .background import Background, estimate_background
from .measure import FWHM_PER_SIGMA, Apertures, cutouts, guess_fwhm, windowed_centroid
from ._pixels import Pixels, unpack_pixels

__all__ = ["DetectionError", "POLARITIES", "COLUMNS", "detect_sources"]

_log = logging.getLogger("diffim.tasks.detection")

#: Accepted values of ``polarity``.
POLARITIES = ("positive", "negative", "both")

#: Output columns: name -> (unit or None, description).
COLUMNS: dict[str, tuple[Any, str]] = {
    "id": (None, "Source number, 1 = largest |flux|"),
    "footprint": (None, "Footprint number; children of one blend share it"),
    "x": (u.pix, "Windowed centroid column, parent coordinates (xy0 included)"),
    "y": (u.pix, "Windowed centroid row, parent coordinates (xy0 included)"),
    "peak_x": (u.pix, "Column of the peak pixel (peak-finding image), parent coordinates"),
    "peak_y": (u.pix, "Row of the peak pixel (peak-finding image), parent coordinates"),
    "peak_value": (None, "Background-subtracted (unsmoothed) image value at the peak pixel"),
    "significance": (None, "Matched-filter S/N at the peak (what was thresholded)"),
    "flux": (None, "Background-subtracted sum in a circular aperture on the centroid (image units)"),
    "flux_err": (None, "1-sigma error of flux from the variance plane"),
    "snr": (None, "flux / flux_err"),
    "npix": (u.pix**2, "Footprint area in pixels"),
    "n_peaks": (None, "Significant peaks in the footprint"),
    "background": (None, "Background level at the peak pixel (image units)"),
    "negative": (None, "True for a source found below -threshold"),
    "flag_edge": (None, "Footprint within edge_margin of the image edge, aperture off the image, or EDGE pixels"),
    "flag_saturated": (None, "SAT pixel, or a pixel >= saturation, in the footprint or aperture"),
    "flag_masked": (None, "Pixel of bad_mask_planes, or unusable (NaN, excluded), in the footprint or aperture"),
    "flag_blended": (None, "Footprint has more than one significant peak"),
    "flag_not_isolated": (None, "Another source within isolation_radius"),
}

_EIGHT = np.ones((3, 3), dtype=bool)

#: Peaks are found on the image smoothed with this fraction of the matched filter's FWHM.
_PEAK_SMOOTHING = 0.5


class DetectionError(ValueError):
    """Detection cannot run with the inputs or options given."""


def detect_sources(
    data: Any,
    *,
    threshold: float = 5.0,
    npix_min: int = 5,
    smooth_fwhm: float | None = None,
    polarity: str = "positive",
    exclude_mask_planes: Sequence[str] = ("NO_DATA",),
    bad_mask_planes: Sequence[str] = ("BAD", "CR", "INTRP", "SUSPECT", "NO_DATA"),
    saturation: float | None = None,
    background: Background | float | np.ndarray | None = None,
    background_box: int = 64,
    aperture_radius: float | None = None,
    isolation_radius: float | None = None,
    edge_margin: int | None = None,
    blend_nsigma: float = 3.0,
    set_mask: bool = True,
) -> Table:
    """Detect sources above a S/N threshold and measure them.

    Parameters
    ----------
    data : Exposure, MaskedImage, Image or array_like
        The image. With a variance plane, thresholds and errors use it per pixel; otherwise the
        background rms.
    threshold : float, optional
        Detection threshold in sigma of the matched-filtered image (default 5).
    npix_min : int, optional
        Minimum footprint area in pixels.
    smooth_fwhm : float, optional
        FWHM (pixels) of the Gaussian matched filter. Default: the exposure PSF's FWHM, or, with no
        PSF, a rough one measured from the brightest compact peaks. ``0`` disables smoothing.
    polarity : {"positive", "negative", "both"}, optional
        Which sources to find; negative ones (e.g. in a difference image) have negative fluxes.
    exclude_mask_planes : sequence of str, optional
        Pixels in these planes are never part of a footprint and do not count in fluxes.
    bad_mask_planes : sequence of str, optional
        Planes that set ``flag_masked`` when present in a footprint or aperture.
    saturation : float, optional
        Pixel value at or above which a pixel counts as saturated (in addition to the SAT plane).
        Default: the exposure's ``SATURATE`` header card, if any.
    background : Background, float or array_like, optional
        Background to subtract; default: :func:`~.background.estimate_background` with
        ``box=background_box``. Give ``0.0`` for an image whose background is already removed
        (e.g. a difference image).
    background_box : int, optional
        Mesh box size when the background is estimated here.
    aperture_radius : float, optional
        Flux aperture radius in pixels; default ``max(2 FWHM, 3)``.
    isolation_radius : float, optional
        A source with another within this distance (pixels) gets ``flag_not_isolated``; default
        twice the aperture radius.
    edge_margin : int, optional
        Footprints closer than this to the image edge get ``flag_edge``; default the aperture radius
        (rounded up), so an unflagged aperture lies inside the image.
    blend_nsigma : float, optional
        A secondary peak is significant when it rises this many sigma (of the peak-finding image,
        smoothed with half the matched filter's FWHM) above the lowest point on the straight line to
        a brighter significant peak.
    set_mask : bool, optional
        Replace the DETECTED (and, for negative sources, DETECTED_NEGATIVE) plane of the input's
        mask with the footprints. Ignored for inputs without a mask.

    Returns
    -------
    astropy.table.Table
        One row per significant peak, sorted by decreasing ``|flux|``; columns are described in
        :data:`COLUMNS` (and in ``table.meta["columns"]``), the options used in ``table.meta``.

    Raises
    ------
    DetectionError
        For an invalid option or an image without usable pixels.

    Notes
    -----
    ``flux`` is a circular-aperture sum (not the footprint sum), so it is comparable between faint and
    bright sources; with the default radius of 2 FWHM it holds ~100 % of a Gaussian and ~95 % of a
    beta = 3 Moffat PSF. Children of a blend are measured in place without deblending, so their fluxes
    include light from their neighbours; ``flag_blended`` marks them.
    """
    _check_options(threshold, npix_min, smooth_fwhm, polarity, blend_nsigma)
    px = unpack_pixels(data)
    img = np.asarray(px.image, dtype=np.float64)
    ny, nx = img.shape
    valid = np.isfinite(img)
    if px.mask is not None and exclude_mask_planes:
        valid &= ~px.mask.plane(list(exclude_mask_planes))
    var = None
    if px.variance is not None:
        var = np.asarray(px.variance, dtype=np.float64)
        valid &= np.isfinite(var) & (var > 0)
    if not valid.any():
        msg = f"no usable pixel in the {ny}x{nx} image (all NaN, zero variance or in {list(exclude_mask_planes)!r})"
        raise DetectionError(msg)

    bg_array, bg_rms, bg_sigma = _resolve_background(background, data, valid, background_box, img.shape)
    resid = np.where(valid, img - bg_array, 0.0)
    if var is None:
        var = bg_rms**2 if bg_rms is not None else np.full(img.shape, mad_std(resid[valid]) ** 2)
    var = np.where(valid, var, float(np.median(var[valid])))
    if bg_sigma is None:
        bg_sigma = float(math.sqrt(np.median(var[valid])))

    saturation = _resolve_saturation(saturation, px)
    sat_map = np.zeros(img.shape, dtype=bool)
    if px.mask is not None:
        sat_map |= px.mask.plane("SAT")
    if saturation is not None:
        with np.errstate(invalid="ignore"):
            sat_map |= img >= saturation
    bad_map = ~valid
    edge_map = np.zeros(img.shape, dtype=bool)
    if px.mask is not None:
        if bad_mask_planes:
            bad_map |= px.mask.plane(list(bad_mask_planes))
        edge_map = px.mask.plane("EDGE")

    fwhm, fwhm_source = _resolve_fwhm(smooth_fwhm, px, resid, var, valid & ~sat_map)
    smoothing = fwhm if smooth_fwhm is None else float(smooth_fwhm)
    smoothed, sm_sigma = _matched_filter(resid, var, smoothing)
    ap_radius = float(aperture_radius) if aperture_radius is not None else max(2.0 * fwhm, 3.0)
    iso_radius = float(isolation_radius) if isolation_radius is not None else 2.0 * ap_radius
    margin = int(edge_margin) if edge_margin is not None else int(math.ceil(ap_radius))

    # Peaks (and their significance) are found with half the smoothing: the full matched filter
    # merges a faint star 2 FWHM from a bright one, which then escapes flag_blended.
    peak_fwhm = _PEAK_SMOOTHING * smoothing
    peak_img = _smooth(resid, peak_fwhm)
    signs = {"positive": (1,), "negative": (-1,), "both": (1, -1)}[polarity]
    parts: list[dict[str, np.ndarray]] = []
    fp_offset = 0
    for sign in signs:
        part, labels, nfp = _detect_one_sign(
            sign, smoothed, sm_sigma, peak_img, var, peak_fwhm, valid, threshold, npix_min, blend_nsigma, sat_map, bad_map, edge_map, margin
        )
        part["footprint"] += fp_offset
        fp_offset += nfp
        parts.append(part)
        if set_mask and px.mask is not None:
            plane = "DETECTED" if sign > 0 else "DETECTED_NEGATIVE"
            px.mask.clear_plane(plane)
            px.mask.set_plane(plane, labels > 0)

    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    sign_arr = np.where(cols["negative"], -1.0, 1.0)
    n = sign_arr.size
    if n:
        # Centroid on the unsmoothed pixels, sign-flipped so negative sources are bumps too.
        xc = np.empty(n)
        yc = np.empty(n)
        for s in signs:
            sel = sign_arr == s
            xc[sel], yc[sel] = windowed_centroid(s * resid, cols["peak_x"][sel], cols["peak_y"][sel], fwhm / FWHM_PER_SIGMA)
        ap = Apertures.build(img.shape, xc, yc, ap_radius)
        flux = ap.sum(resid)
        flux_err = np.sqrt(ap.sum(var, power=2))
        cols["flag_edge"] |= ap.off_image() | ap.any(edge_map)
        cols["flag_saturated"] |= ap.any(sat_map)
        cols["flag_masked"] |= ap.any(bad_map)
    else:
        xc = yc = flux = flux_err = np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(flux_err > 0, flux / flux_err, np.nan)
    if n > 1:
        dist, _ = cKDTree(np.column_stack([xc, yc])).query(np.column_stack([xc, yc]), k=2)
        not_isolated = dist[:, 1] < iso_radius
    else:
        not_isolated = np.zeros(n, dtype=bool)

    pyi, pxi = cols["peak_y"], cols["peak_x"]
    x0, y0 = px.xy0
    out = {
        "footprint": cols["footprint"],
        "x": xc + x0,
        "y": yc + y0,
        "peak_x": pxi + x0,
        "peak_y": pyi + y0,
        "peak_value": resid[pyi, pxi],
        "significance": cols["significance"],
        "flux": flux,
        "flux_err": flux_err,
        "snr": snr,
        "npix": cols["npix"],
        "n_peaks": cols["n_peaks"],
        "background": bg_array[pyi, pxi] if n else np.zeros(0),
        "negative": cols["negative"],
        "flag_edge": cols["flag_edge"],
        "flag_saturated": cols["flag_saturated"],
        "flag_masked": cols["flag_masked"],
        "flag_blended": cols["n_peaks"] > 1,
        "flag_not_isolated": not_isolated,
    }
    order = np.argsort(-np.nan_to_num(np.abs(flux), nan=-1.0), kind="stable")
    table = _make_table(out, order)
    table.meta.update(
        {
            "threshold": float(threshold),
            "polarity": polarity,
            "npix_min": int(npix_min),
            "fwhm": float(fwhm),
            "fwhm_source": fwhm_source,
            "smooth_fwhm": float(smoothing),
            "peak_smooth_fwhm": float(_PEAK_SMOOTHING * smoothing),
            "aperture_radius": ap_radius,
            "isolation_radius": iso_radius,
            "edge_margin": margin,
            "blend_nsigma": float(blend_nsigma),
            "saturation": saturation,
            "background_sigma": float(bg_sigma),
            "flux_definition": f"circular aperture of radius {ap_radius:.3g} px on the centroid, background subtracted",
            "columns": {k: f"[{unit}] {doc}" if unit is not None else doc for k, (unit, doc) in COLUMNS.items()},
        }
    )
    _log.debug("detected %d sources (threshold %.3g sigma, FWHM %.3g px from %s)", len(table), threshold, fwhm, fwhm_source)
    return table


def _check_options(threshold: Any, npix_min: Any, smooth_fwhm: Any, polarity: Any, blend_nsigma: Any) -> None:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        msg = f"threshold must be a finite number of sigma > 0, got {threshold!r}"
        raise DetectionError(msg)
    if not (isinstance(npix_min, (int, np.integer)) and npix_min >= 1):
        msg = f"npix_min must be an integer >= 1, got {npix_min!r}"
        raise DetectionError(msg)
    if smooth_fwhm is not None and not (isinstance(smooth_fwhm, (int, float)) and math.isfinite(smooth_fwhm) and smooth_fwhm >= 0):
        msg = f"smooth_fwhm must be None (use the PSF), 0 (no smoothing) or a FWHM in pixels > 0, got {smooth_fwhm!r}"
        raise DetectionError(msg)
    if polarity not in POLARITIES:
        msg = f"polarity must be one of {POLARITIES!r}, got {polarity!r}"
        raise DetectionError(msg)
    if not (isinstance(blend_nsigma, (int, float)) and blend_nsigma >= 0):
        msg = f"blend_nsigma must be a number >= 0, got {blend_nsigma!r}"
        raise DetectionError(msg)


def _resolve_background(
    background: Any, data: Any, valid: np.ndarray, box: int, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """Background array, rms map (if known) and global sigma (if known)."""
    if background is None:
        bg = estimate_background(data, box=box, mask=~valid)
        return bg.array, bg.rms, bg.sigma
    if isinstance(background, Background):
        if background.array.shape != shape:
            msg = f"background has shape {background.array.shape} but the image has shape {shape}"
            raise DetectionError(msg)
        return background.array, background.rms, background.sigma
    arr = np.asarray(getattr(background, "array", background), dtype=np.float64)
    if arr.ndim == 0:
        return np.full(shape, float(arr)), None, None
    if arr.shape != shape:
        msg = f"background array has shape {arr.shape} but the image has shape {shape}; give a Background, a number or an array of the image's shape"
        raise DetectionError(msg)
    return arr, None, None


def _resolve_saturation(saturation: float | None, px: Pixels) -> float | None:
    if saturation is not None:
        return float(saturation)
    meta = px.metadata
    if meta is not None:
        value = meta.get("SATURATE")
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            return float(value)
    return None


def _resolve_fwhm(
    smooth_fwhm: float | None, px: Pixels, resid: np.ndarray, var: np.ndarray, usable: np.ndarray
) -> tuple[float, str]:
    """FWHM (pixels) used for the window, aperture and default filter, and where it came from."""
    if smooth_fwhm is not None and smooth_fwhm > 0:
        return float(smooth_fwhm), "smooth_fwhm"
    if px.psf is not None and hasattr(px.psf, "computeFwhm"):
        try:
            value = float(px.psf.computeFwhm())
        except (ValueError, TypeError, ArithmeticError, NotImplementedError) as err:
            _log.warning("could not get the FWHM of the exposure's PSF (%s); measuring one from the image", err)
        else:
            if math.isfinite(value) and value > 0:
                return value, "psf"
    snr = resid / np.sqrt(var)
    return guess_fwhm(resid, snr, usable), "estimated"


def _gaussian_kernel(fwhm: float) -> np.ndarray:
    sigma = fwhm / FWHM_PER_SIGMA
    half = max(1, int(math.ceil(4.0 * sigma)))
    g = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return g / g.sum()


def _smooth(resid: np.ndarray, fwhm: float) -> np.ndarray:
    """Image correlated with a unit-sum Gaussian of this FWHM (separable); unchanged for fwhm <= 0."""
    if fwhm <= 0:
        return resid
    g = _gaussian_kernel(fwhm)
    return ndimage.correlate1d(ndimage.correlate1d(resid, g, axis=0, mode="constant"), g, axis=1, mode="constant")


def _smoothed_sigma_at(var: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: float) -> np.ndarray:
    """Sigma of the Gaussian-smoothed noise at a few pixels only (no full-image convolution)."""
    if fwhm <= 0:
        return np.sqrt(var[y, x])
    g = _gaussian_kernel(fwhm)
    half = g.size // 2
    return np.sqrt((cutouts(var, x, y, half, fill=None) * np.outer(g * g, g * g)).sum(axis=(1, 2)))


def _matched_filter(resid: np.ndarray, var: np.ndarray, fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed image and the exact per-pixel sigma of the smoothed noise (separable Gaussian)."""
    if fwhm <= 0:
        return resid, np.sqrt(var)
    sm = _smooth(resid, fwhm)
    g = _gaussian_kernel(fwhm)
    g2 = g * g
    sv = ndimage.correlate1d(ndimage.correlate1d(var, g2, axis=0, mode="nearest"), g2, axis=1, mode="nearest")
    return sm, np.sqrt(sv)


def _detect_one_sign(
    sign: int,
    smoothed: np.ndarray,
    sm_sigma: np.ndarray,
    peak_img: np.ndarray,
    var: np.ndarray,
    peak_fwhm: float,
    valid: np.ndarray,
    threshold: float,
    npix_min: int,
    blend_nsigma: float,
    sat_map: np.ndarray,
    bad_map: np.ndarray,
    edge_map: np.ndarray,
    margin: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Footprints and significant peaks of one polarity; per-row footprint properties."""
    ny, nx = smoothed.shape
    sm = smoothed if sign > 0 else -smoothed
    labels, nlab = ndimage.label(valid & (sm > threshold * sm_sigma), structure=_EIGHT)
    if nlab:
        sizes = np.bincount(labels.ravel(), minlength=nlab + 1)
        keep = sizes >= npix_min
        keep[0] = False
        relabel = np.zeros(nlab + 1, dtype=labels.dtype)
        relabel[keep] = np.arange(1, int(keep.sum()) + 1)
        labels = relabel[labels]
        sizes = sizes[keep]
        nlab = int(keep.sum())
    if nlab == 0:
        return _empty_part(), labels, 0

    # Per-footprint "any pixel set", counting only footprint pixels (a few % of the image).
    in_fp = np.flatnonzero(labels)
    fp_of = labels.ravel()[in_fp]
    fp_sat, fp_bad, fp_edge = (
        np.bincount(fp_of, weights=m.ravel()[in_fp], minlength=nlab + 1)[1:] > 0 for m in (sat_map, bad_map, edge_map)
    )
    for k, (sy, sx) in enumerate(ndimage.find_objects(labels)):
        if sy.start < margin or sx.start < margin or sy.stop > ny - margin or sx.stop > nx - margin:
            fp_edge[k] = True

    # Local maxima of the smoothed image inside footprints; one pixel per plateau.
    pk = peak_img if sign > 0 else -peak_img
    # Unusable pixels can carry smoothed light from their neighbours: never let them win.
    pk_masked = np.where(valid, pk, -np.inf)
    peak_map = (pk_masked == ndimage.maximum_filter(pk_masked, size=3, mode="nearest")) & (labels > 0)
    plab, npk = ndimage.label(peak_map, structure=_EIGHT)
    flat = plab.ravel()
    _, first = np.unique(flat, return_index=True)
    first = first[flat[first] > 0]
    py, pxx = np.unravel_index(first, sm.shape)
    fp = labels[py, pxx]
    val = pk[py, pxx]
    sig = _smoothed_sigma_at(var, pxx, py, peak_fwhm)
    order = np.lexsort((-val, fp))
    py, pxx, fp, val, sig = py[order], pxx[order], fp[order], val[order], sig[order]

    keep = np.ones(py.size, dtype=bool)
    n_peaks = np.ones(nlab + 1, dtype=np.int64)
    counts = np.bincount(fp, minlength=nlab + 1)
    starts = np.concatenate([[0], np.cumsum(counts[1:])])
    for f in np.nonzero(counts > 1)[0]:
        lo, hi = starts[f - 1], starts[f - 1] + counts[f]
        accepted = _significant_peaks(pk, pxx[lo:hi], py[lo:hi], val[lo:hi], sig[lo:hi], blend_nsigma)
        keep[lo:hi] = False
        keep[lo + np.asarray(accepted)] = True
        n_peaks[f] = len(accepted)
    py, pxx, fp = py[keep], pxx[keep], fp[keep]
    part = {
        "footprint": fp.astype(np.int64),
        "peak_x": pxx.astype(np.int64),
        "peak_y": py.astype(np.int64),
        "significance": (smoothed[py, pxx] / sm_sigma[py, pxx]).astype(np.float64),
        "npix": sizes[fp - 1].astype(np.int64),
        "n_peaks": n_peaks[fp],
        "negative": np.full(py.size, sign < 0),
        "flag_edge": fp_edge[fp - 1].copy(),
        "flag_saturated": fp_sat[fp - 1].copy(),
        "flag_masked": fp_bad[fp - 1].copy(),
    }
    return part, labels, nlab


def _significant_peaks(
    sm: np.ndarray, px: np.ndarray, py: np.ndarray, val: np.ndarray, sig: np.ndarray, nsigma: float
) -> list[int]:
    """Indices (into the brightness-sorted peaks of one footprint) of the significant ones."""
    accepted = [0]
    for k in range(1, px.size):
        saddle = -np.inf
        for j in accepted:
            n = int(math.ceil(2 * math.hypot(px[k] - px[j], py[k] - py[j]))) + 2
            xs = np.rint(np.linspace(px[k], px[j], n)).astype(np.intp)
            ys = np.rint(np.linspace(py[k], py[j], n)).astype(np.intp)
            saddle = max(saddle, float(sm[ys, xs].min()))
        if val[k] - saddle >= nsigma * sig[k]:
            accepted.append(k)
    return accepted


def _empty_part() -> dict[str, np.ndarray]:
    ints = ("footprint", "peak_x", "peak_y", "npix", "n_peaks")
    bools = ("negative", "flag_edge", "flag_saturated", "flag_masked")
    part: dict[str, np.ndarray] = {k: np.zeros(0, dtype=np.int64) for k in ints}
    part.update({k: np.zeros(0, dtype=bool) for k in bools})
    part["significance"] = np.zeros(0)
    return part


def _make_table(values: dict[str, np.ndarray], order: np.ndarray) -> Table:
    table = Table()
    table["id"] = np.arange(1, order.size + 1, dtype=np.int64)
    for name, arr in values.items():
        table[name] = np.asarray(arr)[order]
    for name, (unit, doc) in COLUMNS.items():
        table[name].description = doc
        if unit is not None:
            table[name].unit = unit
    return table
