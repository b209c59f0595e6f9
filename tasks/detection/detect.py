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

from ._pixels import Pixels, unpack_pixels
from .background import Background, estimate_background
from .measure import FWHM_PER_SIGMA, Apertures, cutouts, guess_fwhm, windowed_centroid

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
    image = px.image if px.image.dtype.kind == "f" else np.asarray(px.image, dtype=np.float64)
    ny, nx = image.shape
    valid = np.isfinite(image)
    if px.mask is not None and exclude_mask_planes:
        valid &= ~px.mask.plane(list(exclude_mask_planes))
    if px.variance is not None:
        with np.errstate(invalid="ignore"):
            valid &= np.isfinite(px.variance) & (px.variance > 0)
    if not valid.any():
        msg = f"no usable pixel in the {ny}x{nx} image (all NaN, zero variance or in {list(exclude_mask_planes)!r})"
        raise DetectionError(msg)
    invalid = ~valid
    any_invalid = bool(invalid.any())

    bg_value, bg_rms, bg_sigma = _resolve_background(background, data, valid, background_box, image.shape)
    # One float64 working copy of the image: background subtracted, unusable pixels 0.
    resid = image.astype(np.float64)
    resid -= bg_value
    resid[invalid] = 0.0
    if px.variance is not None:
        # a float32 plane stays float32 (every use promotes it to float64 before arithmetic)
        var = px.variance.astype(px.variance.dtype if px.variance.dtype.kind == "f" else np.float64)
    elif bg_rms is not None:
        var = np.square(bg_rms() if callable(bg_rms) else bg_rms)
    else:
        var = np.full(image.shape, mad_std(resid[valid]) ** 2)
    if any_invalid or bg_sigma is None:
        var_median = _median_where(var, valid)
        var[invalid] = var_median
        if bg_sigma is None:
            bg_sigma = float(math.sqrt(var_median))

    saturation = _resolve_saturation(saturation, px)
    sat_map = np.zeros(image.shape, dtype=bool)
    if px.mask is not None:
        sat_map |= px.mask.plane("SAT")
    if saturation is not None:
        with np.errstate(invalid="ignore"):
            sat_map |= image >= np.float64(saturation)
    bad_map = invalid
    edge_map = np.zeros(image.shape, dtype=bool)
    if px.mask is not None:
        if bad_mask_planes:
            bad_map = bad_map | px.mask.plane(list(bad_mask_planes))
        edge_map = px.mask.plane("EDGE")

    fwhm, fwhm_source = _resolve_fwhm(smooth_fwhm, px, resid, var, valid & ~sat_map)
    smoothing = fwhm if smooth_fwhm is None else float(smooth_fwhm)
    snr_map = _matched_filter(resid, var, smoothing)
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
            sign, snr_map, peak_img, var, peak_fwhm, valid, threshold, npix_min, blend_nsigma, sat_map, bad_map, edge_map, margin
        )
        part["footprint"] += fp_offset
        fp_offset += nfp
        parts.append(part)
        if set_mask and px.mask is not None:
            plane = "DETECTED" if sign > 0 else "DETECTED_NEGATIVE"
            px.mask.clear_plane(plane)
            px.mask.set_plane(plane, labels > 0)
        del labels
    del snr_map, peak_img

    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    sign_arr = np.where(cols["negative"], -1.0, 1.0)
    n = sign_arr.size
    if n:
        # Centroid on the unsmoothed pixels, sign-flipped so negative sources are bumps too.
        xc = np.empty(n)
        yc = np.empty(n)
        for s in signs:
            sel = sign_arr == s
            xc[sel], yc[sel] = windowed_centroid(resid, cols["peak_x"][sel], cols["peak_y"][sel], fwhm / FWHM_PER_SIGMA, scale=s)
        ap = Apertures.build(image.shape, xc, yc, ap_radius)
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
        "background": _background_at(bg_value, pyi, pxi),
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
) -> tuple[np.ndarray | float, Any, float | None]:
    """Background (array, or a number for a constant), rms map or a callable making it (if known),
    and the global sigma (if known)."""
    if background is None:
        bg = estimate_background(data, box=box, mask=~valid)
        # the rms map is only needed without a variance plane: interpolate it only then
        return bg.array, lambda: bg.rms, bg.sigma
    if isinstance(background, Background):
        if background.shape != shape:
            msg = f"background has shape {background.shape} but the image has shape {shape}"
            raise DetectionError(msg)
        return background.array, lambda: background.rms, background.sigma
    arr = np.asarray(getattr(background, "array", background), dtype=np.float64)
    if arr.ndim == 0:
        return float(arr), None, None
    if arr.shape != shape:
        msg = f"background array has shape {arr.shape} but the image has shape {shape}; give a Background, a number or an array of the image's shape"
        raise DetectionError(msg)
    return arr, None, None


def _background_at(background: np.ndarray | float, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if isinstance(background, np.ndarray):
        return background[rows, cols] if rows.size else np.zeros(0)
    return np.full(rows.size, float(background))


#: Largest number of pixels whose median is taken exactly; bigger images use a regular subsample.
_MEDIAN_SAMPLE = 1 << 20


def _median_where(values: np.ndarray, where: np.ndarray) -> float:
    """Median of ``values[where]``; over a regular subsample of ~1M pixels for bigger images."""
    flat_v, flat_w = values.ravel(), where.ravel()
    step = max(1, flat_v.size // _MEDIAN_SAMPLE)
    if step > 1:
        sample = flat_v[::step][flat_w[::step]]
        if sample.size >= 1000:
            return float(np.median(sample))
    return float(np.median(flat_v[flat_w]))


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
    return guess_fwhm(resid, None, usable, variance=var), "estimated"


def _gaussian_kernel(fwhm: float) -> np.ndarray:
    sigma = fwhm / FWHM_PER_SIGMA
    half = max(1, int(math.ceil(4.0 * sigma)))
    g = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return g / g.sum()


def _correlate_separable(array: np.ndarray, taps: np.ndarray, mode: str) -> np.ndarray:
    """``array`` correlated with ``taps`` along both axes, into one new float64 array.

    The contiguous axis first, then the other in place (as scipy's own separable filters do).
    """
    out = ndimage.correlate1d(array, taps, axis=1, mode=mode, output=np.float64)
    ndimage.correlate1d(out, taps, axis=0, mode=mode, output=out)
    return out


def _smooth(resid: np.ndarray, fwhm: float) -> np.ndarray:
    """Image correlated with a unit-sum Gaussian of this FWHM (separable); unchanged for fwhm <= 0."""
    if fwhm <= 0:
        return resid
    return _correlate_separable(resid, _gaussian_kernel(fwhm), "constant")


def _smoothed_sigma_at(var: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: float) -> np.ndarray:
    """Sigma of the Gaussian-smoothed noise at a few pixels only (no full-image convolution)."""
    if fwhm <= 0:
        return np.sqrt(var[y, x])
    g = _gaussian_kernel(fwhm)
    half = g.size // 2
    return np.sqrt((cutouts(var, x, y, half, fill=None) * np.outer(g * g, g * g)).sum(axis=(1, 2)))


def _matched_filter(resid: np.ndarray, var: np.ndarray, fwhm: float) -> np.ndarray:
    """S/N map: the smoothed image over the exact per-pixel sigma of its noise (separable Gaussian)."""
    if fwhm <= 0:
        return resid / np.sqrt(var)
    snr = _smooth(resid, fwhm)
    g = _gaussian_kernel(fwhm)
    sigma = _correlate_separable(var, g * g, "nearest")
    np.sqrt(sigma, out=sigma)
    snr /= sigma
    return snr


def _detect_one_sign(
    sign: int,
    snr_map: np.ndarray,
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
    """Footprints and significant peaks of one polarity; per-row footprint properties.

    Everything after the labelling works on the footprint pixels only (a few per cent of the
    image), never on whole-image arrays.
    """
    ny, nx = snr_map.shape
    above = snr_map > threshold if sign > 0 else snr_map < -threshold
    above &= valid
    labels, nlab = ndimage.label(above, structure=_EIGHT)
    del above
    if nlab == 0:
        return _empty_part(), labels, 0
    flat = labels.ravel()
    in_fp = np.flatnonzero(flat)
    fp_of = flat[in_fp]
    sizes = np.bincount(fp_of, minlength=nlab + 1)
    keep = sizes >= npix_min
    keep[0] = False
    n_keep = int(keep.sum())
    if n_keep < nlab:
        relabel = np.zeros(nlab + 1, dtype=labels.dtype)
        relabel[keep] = np.arange(1, n_keep + 1)
        fp_of = relabel[fp_of]
        flat[in_fp] = fp_of
        kept = fp_of > 0
        in_fp, fp_of = in_fp[kept], fp_of[kept]
    sizes = sizes[keep]
    nlab = n_keep
    if nlab == 0:
        return _empty_part(), labels, 0

    # Per-footprint "any pixel set", counting only footprint pixels.
    fp_sat, fp_bad, fp_edge = (
        np.bincount(fp_of, weights=m.ravel()[in_fp], minlength=nlab + 1)[1:] > 0 for m in (sat_map, bad_map, edge_map)
    )
    for k, (sy, sx) in enumerate(ndimage.find_objects(labels)):
        if sy.start < margin or sx.start < margin or sy.stop > ny - margin or sx.stop > nx - margin:
            fp_edge[k] = True

    # Local maxima of the peak image among the footprint pixels: >= each of the 8 neighbours
    # (edge pixels compare with themselves, as a "nearest" 3x3 maximum filter; unusable pixels
    # can carry smoothed light from their neighbours, so they never win).
    pk_flat = peak_img.ravel()
    valid_flat = valid.ravel()
    rows, cols = np.divmod(in_fp, nx)
    value = sign * pk_flat[in_fp]
    is_max = np.ones(in_fp.size, dtype=bool)
    for dr, dc in _NEIGHBOURS:
        nb = np.clip(rows + dr, 0, ny - 1) * nx + np.clip(cols + dc, 0, nx - 1)
        is_max &= ~valid_flat[nb] | (value >= sign * pk_flat[nb])
    peaks = in_fp[is_max]
    peaks = _one_pixel_per_plateau(peaks, ny, nx)
    py, pxx = np.divmod(peaks, nx)
    fp = labels[py, pxx]
    val = sign * peak_img[py, pxx]
    sig = _smoothed_sigma_at(var, pxx, py, peak_fwhm)
    order = np.lexsort((-val, fp))
    py, pxx, fp, val, sig = py[order], pxx[order], fp[order], val[order], sig[order]

    keep = np.ones(py.size, dtype=bool)
    n_peaks = np.ones(nlab + 1, dtype=np.int64)
    counts = np.bincount(fp, minlength=nlab + 1)
    starts = np.concatenate([[0], np.cumsum(counts[1:])])
    for f in np.nonzero(counts > 1)[0]:
        lo, hi = starts[f - 1], starts[f - 1] + counts[f]
        accepted = _significant_peaks(peak_img, sign, pxx[lo:hi], py[lo:hi], val[lo:hi], sig[lo:hi], blend_nsigma)
        keep[lo:hi] = False
        keep[lo + accepted] = True
        n_peaks[f] = accepted.size
    py, pxx, fp = py[keep], pxx[keep], fp[keep]
    part = {
        "footprint": fp.astype(np.int64),
        "peak_x": pxx.astype(np.int64),
        "peak_y": py.astype(np.int64),
        "significance": snr_map[py, pxx].astype(np.float64),
        "npix": sizes[fp - 1].astype(np.int64),
        "n_peaks": n_peaks[fp],
        "negative": np.full(py.size, sign < 0),
        "flag_edge": fp_edge[fp - 1].copy(),
        "flag_saturated": fp_sat[fp - 1].copy(),
        "flag_masked": fp_bad[fp - 1].copy(),
    }
    return part, labels, nlab


#: Offsets (row, column) of the 8 neighbours of a pixel.
_NEIGHBOURS = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))


def _one_pixel_per_plateau(peaks: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """The first (raster order) pixel of each 8-connected group of local-maximum pixels.

    Adjacent local maxima are equal (a plateau); they are rare, so the labelling only runs when
    two of the (sorted) flat indices ``peaks`` touch.
    """
    if peaks.size < 2:
        return peaks
    rows, cols = np.divmod(peaks, nx)
    member = np.zeros(ny * nx, dtype=bool)
    member[peaks] = True
    touching = False
    for dr, dc in _NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < ny) & (c >= 0) & (c < nx)
        if member[(r * nx + c)[inside]].any():
            touching = True
            break
    if not touching:
        return peaks
    plateau, _ = ndimage.label(member.reshape(ny, nx), structure=_EIGHT)
    _, first = np.unique(plateau.ravel()[peaks], return_index=True)
    return peaks[first]


#: Nearest accepted peaks whose saddles are checked first (most rejections happen there).
_SADDLE_FIRST = 8
#: Sampling stride of the first, coarse look at the lines to the other accepted peaks.
_SADDLE_STRIDE = 4


def _significant_peaks(
    peak_img: np.ndarray, sign: int, px: np.ndarray, py: np.ndarray, val: np.ndarray, sig: np.ndarray, nsigma: float
) -> np.ndarray:
    """Indices (into the brightness-sorted peaks of one footprint) of the significant ones.

    Peak ``k`` is significant when ``val[k] - saddle >= nsigma * sig[k]``, the saddle being the
    highest, over the brighter accepted peaks ``j``, of the lowest value of ``sign * peak_img``
    sampled along the straight line from ``k`` to ``j`` (``ceil(2 d) + 2`` points, ``d`` the
    distance). Since ``val[k] - s`` only decreases as ``s`` grows, that is: every such line holds
    a sample ``s`` with ``val[k] - s >= nsigma * sig[k]``. All lines from ``k`` are tested at once
    (no Python loop over ``j``): the nearest peaks first (where rejections happen), then the others
    on every ``_SADDLE_STRIDE``-th sample, and only the lines that found no low sample there on
    every sample.
    """
    flat = peak_img.ravel()
    nx = peak_img.shape[1]
    accepted = np.zeros(px.size, dtype=np.intp)
    n_acc = 1
    for k in range(1, px.size):
        acc = accepted[:n_acc]
        dist = np.hypot(px[acc] - px[k], py[acc] - py[k])
        limit = nsigma * sig[k]

        def lines_pass(which: np.ndarray, stride: int, k: int = k, acc: np.ndarray = acc,
                       dist: np.ndarray = dist, limit: float = limit) -> np.ndarray:
            j = acc[which]
            counts = np.ceil(2.0 * dist[which]).astype(np.intp) + 2
            return _lines_reach(flat, nx, sign, px[k], py[k], px[j], py[j], counts, stride, val[k], limit)

        if n_acc <= _SADDLE_FIRST:
            ok = bool(lines_pass(np.arange(n_acc), 1).all())
        else:
            near = np.zeros(n_acc, dtype=bool)
            near[np.argpartition(dist, _SADDLE_FIRST)[:_SADDLE_FIRST]] = True
            ok = bool(lines_pass(np.flatnonzero(near), 1).all())
            if ok:
                far = np.flatnonzero(~near)
                left = far[~lines_pass(far, _SADDLE_STRIDE)]
                ok = left.size == 0 or bool(lines_pass(left, 1).all())
        if ok:
            accepted[n_acc] = k
            n_acc += 1
    return accepted[:n_acc].copy()


def _lines_reach(
    flat: np.ndarray, nx: int, sign: int, x0: int, y0: int, x1: np.ndarray, y1: np.ndarray, counts: np.ndarray,
    stride: int, top: float, limit: float,
) -> np.ndarray:
    """Whether each line from ``(x0, y0)`` to ``(x1[i], y1[i])`` has a sample ``s`` of
    ``sign * image`` with ``top - s >= limit``.

    Line ``i`` has ``counts[i]`` points, exactly ``np.linspace``'s, rounded to pixels; with
    ``stride > 1`` only every ``stride``-th point and the last are looked at.
    """
    taken = (counts - 2) // stride + 2  # points 0, stride, 2 stride, ... and the last
    starts = np.cumsum(taken) - taken
    t = np.arange(int(taken.sum())) - np.repeat(starts, taken)
    n = np.repeat(counts, taken)
    index = np.minimum(t * stride, n - 1).astype(np.float64)
    last = index == n - 1

    def samples(a: int, b: np.ndarray) -> np.ndarray:
        # np.linspace(a, b, n)[i] = i * ((b - a) / (n - 1)) + a, its last point set to b
        end = np.repeat(b.astype(np.float64), taken)
        out = index * ((end - float(a)) / (n - 1)) + float(a)
        out[last] = end[last]
        return np.rint(out).astype(np.intp)

    values = flat[samples(y0, y1) * nx + samples(x0, x1)]
    if sign < 0:
        values = -values
    return np.logical_or.reduceat(top - values >= limit, starts)


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
