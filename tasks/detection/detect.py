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

Only step 2 touches every pixel, and it keeps no S/N map: it returns the few pixels that may pass
the threshold with their S/N (:func:`~._smoothing.matched_filter_candidates`). Labelling, the peak
image (made only around the footprints) and the flags (mask planes read at footprint and aperture
pixels) then cost in proportion to the footprints, not the image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.stats import mad_std
from astropy.table import Table
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from diffim.tasks.image import Mask

from ._pixels import Pixels, unpack_pixels
from ._smoothing import BoxImages, gaussian_taps, matched_filter_candidates, smooth_boxes
from .background import Background, estimate_background
from .measure import FWHM_PER_SIGMA, Apertures, cutouts, guess_fwhm, take, windowed_centroid

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

#: Offsets (row, column) of the 8 neighbours of a pixel.
_NEIGHBOURS = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))

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
    # Mask planes are read at footprint and aperture pixels only; a whole-image plane is built only
    # where every pixel matters (excluded pixels) and only if some pixel has one of its bits.
    mask_arr = px.mask.array if px.mask is not None else None
    present = px.mask.present_bits() if px.mask is not None else 0
    valid = np.isfinite(image)
    if mask_arr is not None and exclude_mask_planes:
        exclude_bits = Mask.getPlaneBitMask(list(exclude_mask_planes))
        if exclude_bits & present:
            valid &= (mask_arr & exclude_bits) == 0
    if px.variance is not None:
        with np.errstate(invalid="ignore"):
            valid &= np.isfinite(px.variance) & (px.variance > 0)
    if not valid.any():
        msg = f"no usable pixel in the {ny}x{nx} image (all NaN, zero variance or in {list(exclude_mask_planes)!r})"
        raise DetectionError(msg)
    any_invalid = not bool(valid.all())
    invalid = ~valid if any_invalid else None

    if background is None:
        # a model kept as such: its finiteness is known from the mesh (no whole-image check below)
        background = estimate_background(data, box=background_box, mask=~valid)
    bg_value, bg_rms, bg_sigma = _resolve_background(background, image.shape)
    # One float64 working copy of the image: background subtracted, unusable pixels 0.
    if isinstance(bg_value, np.ndarray):
        resid = np.subtract(image, bg_value, dtype=np.float64)
    else:
        resid = image.astype(np.float64)
        resid -= bg_value
    if invalid is not None:
        resid[invalid] = 0.0
    finite = _finite_background(background, bg_value)
    if px.variance is not None:
        # a float plane is used as it is (float32 stays float32: every use promotes it to float64),
        # copied only to fill its unusable pixels
        var = px.variance if px.variance.dtype.kind == "f" else px.variance.astype(np.float64)
    elif bg_rms is not None:
        var = np.square(bg_rms() if callable(bg_rms) else bg_rms)
    else:
        var = np.full(image.shape, mad_std(resid[valid]) ** 2)
    if any_invalid or bg_sigma is None:
        var_median = _median_where(var, valid)
        if invalid is not None:
            if var is px.variance:
                var = var.copy()
            var[invalid] = var_median
        if bg_sigma is None:
            bg_sigma = float(math.sqrt(var_median))

    saturation = _resolve_saturation(saturation, px)
    flags = _PixelFlags(image, mask_arr, present, invalid, saturation, bad_mask_planes)

    fwhm, fwhm_source = _resolve_fwhm(smooth_fwhm, px, resid, var, lambda: valid & ~flags.unusable_map())
    smoothing = fwhm if smooth_fwhm is None else float(smooth_fwhm)
    # Candidate pixels (all those with |S/N| >= threshold, sorted) and their S/N: no S/N map
    if smoothing > 0:
        cand, cand_snr = matched_filter_candidates(resid, var, gaussian_taps(smoothing), threshold, finite=finite)
    else:
        snr_map = resid / np.sqrt(var)
        cand = np.flatnonzero(np.abs(snr_map) >= threshold)
        cand_snr = snr_map.ravel()[cand]
        del snr_map
    if any_invalid:
        usable_cand = valid.ravel()[cand]
        cand, cand_snr = cand[usable_cand], cand_snr[usable_cand]
    ap_radius = float(aperture_radius) if aperture_radius is not None else max(2.0 * fwhm, 3.0)
    iso_radius = float(isolation_radius) if isolation_radius is not None else 2.0 * ap_radius
    margin = int(edge_margin) if edge_margin is not None else int(math.ceil(ap_radius))

    # Peaks (and their significance) are found with half the smoothing: the full matched filter
    # merges a faint star 2 FWHM from a bright one, which then escapes flag_blended. That image is
    # only read on and next to footprint pixels, so it is computed only around the footprints.
    peak_fwhm = _PEAK_SMOOTHING * smoothing
    peak_img = _PeakImage(resid, peak_fwhm)
    signs = {"positive": (1,), "negative": (-1,), "both": (1, -1)}[polarity]
    parts: list[dict[str, np.ndarray]] = []
    fp_offset = 0
    for sign in signs:
        above = cand_snr > threshold if sign > 0 else cand_snr < -threshold
        part, pixels, nfp = _detect_one_sign(
            sign, (ny, nx), cand[above], cand_snr[above], peak_img, var, peak_fwhm, valid if any_invalid else None,
            npix_min, blend_nsigma, flags, margin,
        )
        part["footprint"] += fp_offset
        fp_offset += nfp
        parts.append(part)
        if set_mask and px.mask is not None:
            plane = "DETECTED" if sign > 0 else "DETECTED_NEGATIVE"
            footprints = np.zeros(image.shape, dtype=bool)
            footprints.ravel()[pixels] = True
            px.mask.clear_plane(plane)
            px.mask.set_plane(plane, footprints)
    del cand, cand_snr, peak_img

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
        ap_sat, ap_bad, ap_edge = flags.any_in_apertures(ap)
        cols["flag_edge"] |= ap.off_image() | ap_edge
        cols["flag_saturated"] |= ap_sat
        cols["flag_masked"] |= ap_bad
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


def _resolve_background(background: Any, shape: tuple[int, ...]) -> tuple[np.ndarray | float, Any, float | None]:
    """Background (array, or a number for a constant), rms map or a callable making it (if known),
    and the global sigma (if known)."""
    if isinstance(background, Background):
        # the rms map is only needed without a variance plane: interpolate it only then
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
    smooth_fwhm: float | None, px: Pixels, resid: np.ndarray, var: np.ndarray, usable: Callable[[], np.ndarray]
) -> tuple[float, str]:
    """FWHM (pixels) used for the window, aperture and default filter, and where it came from.

    ``usable()`` gives the pixels that may hold a peak, only computed when the FWHM is measured.
    """
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
    return guess_fwhm(resid, None, usable(), variance=var), "estimated"


def _finite_background(background: Any, value: np.ndarray | float) -> bool:
    """Whether the background subtracted is finite everywhere (a model from the mesh always is)."""
    if isinstance(background, Background):
        return bool(np.isfinite(background.mesh).all() and np.isfinite(background.mesh_rms).all())
    if isinstance(value, np.ndarray):
        return bool(np.isfinite(value).all())
    return math.isfinite(value)


class _PixelFlags:
    """Saturated, bad and edge tests of chosen pixels, without whole-image boolean maps.

    Footprints and apertures cover a few per cent of an image, so their flags are looked up pixel
    by pixel: a mask plane costs nothing when no pixel of the image has its bit.
    """

    def __init__(
        self,
        image: np.ndarray,
        mask: np.ndarray | None,
        present: int,
        invalid: np.ndarray | None,
        saturation: float | None,
        bad_mask_planes: Sequence[str],
    ) -> None:
        self.image = image
        self.mask = mask
        self.invalid = invalid
        self.saturation = saturation
        if mask is not None:
            self.sat_bits = Mask.getPlaneBitMask("SAT") & present
            self.bad_bits = (Mask.getPlaneBitMask(list(bad_mask_planes)) if bad_mask_planes else 0) & present
            self.edge_bits = Mask.getPlaneBitMask("EDGE") & present
        else:
            self.sat_bits = self.bad_bits = self.edge_bits = 0

    def at(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(saturated, bad, edge)`` of the pixels ``(rows, cols)``."""
        none = np.zeros(rows.shape, dtype=bool)
        bits = take(self.mask, rows, cols) if self.mask is not None and (self.sat_bits | self.bad_bits | self.edge_bits) else None
        sat = (bits & self.sat_bits) != 0 if self.sat_bits else none.copy()
        if self.saturation is not None:
            with np.errstate(invalid="ignore"):
                sat |= take(self.image, rows, cols) >= np.float64(self.saturation)
        bad = take(self.invalid, rows, cols) if self.invalid is not None else none.copy()
        if self.bad_bits:
            bad |= (bits & self.bad_bits) != 0
        edge = (bits & self.edge_bits) != 0 if self.edge_bits else none
        return sat, bad, edge

    def saturated_map(self) -> np.ndarray:
        """Whole-image saturated map (SAT plane or at/above the saturation level)."""
        sat = np.zeros(self.image.shape, dtype=bool)
        if self.sat_bits:
            sat |= (self.mask & self.sat_bits) != 0
        if self.saturation is not None:
            with np.errstate(invalid="ignore"):
                sat |= self.image >= np.float64(self.saturation)
        return sat

    def unusable_map(self) -> np.ndarray:
        """Whole-image map of pixels that must not define a source's size: saturated or bad-plane.

        Cosmic rays and hot pixels flagged CR/BAD are single-pixel "sources"; measured, they pull
        the rough FWHM far below the stars' (the PSF estimate then rejects every star as too big).
        """
        unusable = self.saturated_map()
        if self.bad_bits:
            unusable |= (self.mask & self.bad_bits) != 0
        return unusable

    def any_in_apertures(self, ap: Apertures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per aperture, whether a pixel of it (weight > 0, on the image) is saturated, bad, edge."""
        use = ap.inside & (ap.weight > 0)
        source = np.nonzero(use)[0]
        n = ap.weight.shape[0]
        return tuple(  # type: ignore[return-value]
            np.bincount(source[f], minlength=n) > 0 for f in self.at(ap.rows[use], ap.cols[use])
        )


class _PeakImage:
    """The peak-finding image (``resid`` smoothed with ``fwhm``), made only inside chosen boxes.

    With ``fwhm <= 0`` it is ``resid`` itself.
    """

    def __init__(self, resid: np.ndarray, fwhm: float) -> None:
        self.resid = resid
        self.taps = gaussian_taps(fwhm) if fwhm > 0 else None

    def cover(self, boxes: np.ndarray) -> BoxImages:
        """The image inside ``boxes`` (``(n, 4)``: y0, y1, x0, x1, half-open), exact there."""
        if self.taps is not None:
            return smooth_boxes(self.resid, self.taps, boxes)
        return BoxImages.cut(self.resid, boxes)


def _smoothed_sigma_at(var: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: float) -> np.ndarray:
    """Sigma of the Gaussian-smoothed noise at a few pixels only (no full-image convolution)."""
    if fwhm <= 0:
        return np.sqrt(var[y, x])
    g = gaussian_taps(fwhm)
    half = g.size // 2
    return np.sqrt((cutouts(var, x, y, half, fill=None) * np.outer(g * g, g * g)).sum(axis=(1, 2)))


def _footprint_boxes(rows: np.ndarray, cols: np.ndarray, fp_of: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Bounding boxes ``(y0, y1, x0, x1)`` (half-open) of footprints ``1..n`` from their pixels.

    ``rows``/``cols`` are in raster order, ``fp_of`` the footprint of each (all >= 1) and
    ``sizes[k]`` the pixel count of footprint ``k + 1`` (all > 0): the ``find_objects`` slices.
    """
    order = np.argsort(fp_of, kind="stable")  # raster order kept within a footprint
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    r, c = rows[order], cols[order]
    ends = starts + sizes - 1
    return np.column_stack(
        [r[starts], r[ends] + 1, np.minimum.reduceat(c, starts), np.maximum.reduceat(c, starts) + 1]
    )


def _label_pixels(pixels: np.ndarray, nx: int) -> tuple[np.ndarray, int]:
    """8-connected labels of a sparse set of pixels: ``ndimage.label`` on their map, without the map.

    Parameters
    ----------
    pixels : numpy.ndarray
        Sorted flat indices (row-major, ``nx`` columns).
    nx : int
        Image width.

    Returns
    -------
    labels : numpy.ndarray
        Label (1..n) of each pixel, numbered by first pixel in raster order, as ``ndimage.label``.
    n : int
        Number of labels.

    Notes
    -----
    Pixels are grouped into runs along rows; a run touches the runs of the next row that overlap
    it grown by one pixel each side, and the connected components of that graph are the labels.
    The cost follows the number of pixels, not the image size.
    """
    if pixels.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    rows = pixels // nx
    starts = np.flatnonzero(np.concatenate([[True], (np.diff(pixels) != 1) | (np.diff(rows) != 0)]))
    ends = np.concatenate([starts[1:], [pixels.size]]) - 1
    run_row = rows[starts]
    width = nx + 2  # row keys: a column -1 .. nx of one row never reaches another row's keys
    first = run_row * width + (pixels[starts] - run_row * nx)
    last = run_row * width + (pixels[ends] - run_row * nx)
    # runs of the next row with last >= first - 1 and first <= last + 1: a contiguous range
    lo = np.searchsorted(last, first + width - 1, side="left")
    hi = np.searchsorted(first, last + width + 1, side="right")
    count = np.maximum(hi - lo, 0)
    n_runs = starts.size
    src = np.repeat(np.arange(n_runs), count)
    dst = np.repeat(lo, count) + (np.arange(src.size) - np.repeat(np.cumsum(count) - count, count))
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n_runs, n_runs))
    n, comp = connected_components(graph, directed=False)
    _, first_run = np.unique(comp, return_index=True)  # first run of each component, raster order
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(first_run)] = np.arange(1, n + 1)
    return np.repeat(rank[comp], ends - starts + 1), int(n)


def _detect_one_sign(
    sign: int,
    shape: tuple[int, int],
    pixels: np.ndarray,
    snr: np.ndarray,
    peak_image: _PeakImage,
    var: np.ndarray,
    peak_fwhm: float,
    valid: np.ndarray | None,
    npix_min: int,
    blend_nsigma: float,
    flags: _PixelFlags,
    margin: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Footprints and significant peaks of one polarity; per-row footprint properties.

    ``pixels`` are the sorted flat indices above the threshold (this sign, usable), ``snr`` their
    S/N. Everything works on those pixels (a few per cent of the image), never on whole-image
    arrays. ``valid`` is None when every pixel is usable. Returns the rows, the flat indices of the
    kept footprints' pixels and their number.
    """
    ny, nx = shape
    fp_of, nlab = _label_pixels(pixels, nx)
    if nlab == 0:
        return _empty_part(), pixels[:0], 0
    in_fp = pixels
    sizes = np.bincount(fp_of, minlength=nlab + 1)
    keep = sizes >= npix_min
    keep[0] = False
    n_keep = int(keep.sum())
    if n_keep < nlab:
        relabel = np.zeros(nlab + 1, dtype=fp_of.dtype)
        relabel[keep] = np.arange(1, n_keep + 1)
        fp_of = relabel[fp_of]
        kept = fp_of > 0
        in_fp, fp_of, snr = in_fp[kept], fp_of[kept], snr[kept]
    sizes = sizes[keep]
    nlab = n_keep
    if nlab == 0:
        return _empty_part(), in_fp, 0
    rows, cols = np.divmod(in_fp, nx)

    # Per-footprint "any pixel set", counting only footprint pixels.
    fp_sat, fp_bad, fp_edge = (
        np.bincount(fp_of, weights=f, minlength=nlab + 1)[1:] > 0 for f in flags.at(rows, cols)
    )
    boxes = _footprint_boxes(rows, cols, fp_of, sizes)
    fp_edge |= (boxes[:, 0] < margin) | (boxes[:, 2] < margin) | (boxes[:, 1] > ny - margin) | (boxes[:, 3] > nx - margin)

    # The peak image is read on footprint pixels, their 8 neighbours and the lines between two
    # peaks of a footprint: all inside the footprint's box grown by one pixel.
    grown = np.column_stack(
        [np.maximum(boxes[:, 0] - 1, 0), np.minimum(boxes[:, 1] + 1, ny), np.maximum(boxes[:, 2] - 1, 0),
         np.minimum(boxes[:, 3] + 1, nx)]
    )
    windows = peak_image.cover(grown)  # window k: footprint k + 1
    box_of = fp_of - 1

    # Local maxima of the peak image among the footprint pixels: >= each of the 8 neighbours
    # (edge pixels compare with themselves, as a "nearest" 3x3 maximum filter; unusable pixels
    # can carry smoothed light from their neighbours, so they never win).
    value = sign * windows.at(box_of, rows, cols)
    is_max = np.ones(in_fp.size, dtype=bool)
    for dr, dc in _NEIGHBOURS:
        nr, nc = np.clip(rows + dr, 0, ny - 1), np.clip(cols + dc, 0, nx - 1)
        better = value >= sign * windows.at(box_of, nr, nc)
        is_max &= better if valid is None else (~valid.ravel()[nr * nx + nc] | better)
    peaks = in_fp[is_max]
    peaks = _one_pixel_per_plateau(peaks, ny, nx)
    at_peak = np.searchsorted(in_fp, peaks)
    py, pxx = np.divmod(peaks, nx)
    fp = fp_of[at_peak]
    peak_snr = snr[at_peak]
    val = sign * windows.at(fp - 1, py, pxx)
    sig = _smoothed_sigma_at(var, pxx, py, peak_fwhm)
    order = np.lexsort((-val, fp))
    py, pxx, fp, val, sig, peak_snr = py[order], pxx[order], fp[order], val[order], sig[order], peak_snr[order]

    keep = np.ones(py.size, dtype=bool)
    n_peaks = np.ones(nlab + 1, dtype=np.int64)
    counts = np.bincount(fp, minlength=nlab + 1)
    starts = np.concatenate([[0], np.cumsum(counts[1:])])
    for f in np.nonzero(counts > 1)[0]:
        lo, hi = starts[f - 1], starts[f - 1] + counts[f]
        accepted = _significant_peaks(windows.window(f - 1), sign, pxx[lo:hi], py[lo:hi], val[lo:hi], sig[lo:hi],
                                      blend_nsigma, origin=(int(windows.top[f - 1]), int(windows.left[f - 1])))
        keep[lo:hi] = False
        keep[lo + accepted] = True
        n_peaks[f] = accepted.size
    py, pxx, fp, peak_snr = py[keep], pxx[keep], fp[keep], peak_snr[keep]
    part = {
        "footprint": fp.astype(np.int64),
        "peak_x": pxx.astype(np.int64),
        "peak_y": py.astype(np.int64),
        "significance": peak_snr.astype(np.float64),
        "npix": sizes[fp - 1].astype(np.int64),
        "n_peaks": n_peaks[fp],
        "negative": np.full(py.size, sign < 0),
        "flag_edge": fp_edge[fp - 1].copy(),
        "flag_saturated": fp_sat[fp - 1].copy(),
        "flag_masked": fp_bad[fp - 1].copy(),
    }
    return part, in_fp, nlab


def _one_pixel_per_plateau(peaks: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """The first (raster order) pixel of each 8-connected group of local-maximum pixels.

    Adjacent local maxima are equal (a plateau); ``peaks`` are sorted flat indices, labelled
    sparsely (no whole-image map).
    """
    if peaks.size < 2:
        return peaks
    labels, n = _label_pixels(peaks, nx)
    if n == peaks.size:
        return peaks
    _, first = np.unique(labels, return_index=True)
    return peaks[first]


#: Nearest accepted peaks whose saddles are checked first (most rejections happen there).
_SADDLE_FIRST = 8
#: Sampling stride of the first, coarse look at the lines to the other accepted peaks.
_SADDLE_STRIDE = 4


def _significant_peaks(
    peak_img: np.ndarray, sign: int, px: np.ndarray, py: np.ndarray, val: np.ndarray, sig: np.ndarray, nsigma: float,
    *, origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Indices (into the brightness-sorted peaks of one footprint) of the significant ones.

    ``peak_img`` may be a window of the image whose pixel ``[0, 0]`` is at ``origin`` (row,
    column); positions are image coordinates and the lines are sampled in them, so a window
    gives exactly the whole image's answer.

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
            return _lines_reach(flat, nx, sign, px[k], py[k], px[j], py[j], counts, stride, val[k], limit, origin)

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
    stride: int, top: float, limit: float, origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Whether each line from ``(x0, y0)`` to ``(x1[i], y1[i])`` has a sample ``s`` of
    ``sign * image`` with ``top - s >= limit``.

    Line ``i`` has ``counts[i]`` points, exactly ``np.linspace``'s, rounded to pixels; with
    ``stride > 1`` only every ``stride``-th point and the last are looked at. ``flat`` is a window
    of ``nx`` columns whose first pixel is at ``origin`` (row, column) of the image.
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

    values = flat[(samples(y0, y1) - origin[0]) * nx + (samples(x0, x1) - origin[1])]
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
