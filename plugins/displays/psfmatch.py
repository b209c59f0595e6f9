"""Displays of the PSF-matching fit (module ``diffim.tasks.psfMatch``, stage ``"psfMatch.solve"``).

What each draws follows LSST's ip_diffim display helpers (spec §8):

* `displayCandidates` — three frames: "Candidates & residuals" (per candidate: science stamp,
  template stamp, difference with its own kernel, difference with the spatial kernel), "Kernels"
  (its own kernel, the spatial kernel at its centre) and "chi Diffim" (both differences over
  sigma). Each strip is labelled with the candidate id and chi², green for GOOD, red for BAD.
* `displayKernelBasis` — every basis image ("Kernel Basis Images").
* `displayKernelMosaic` — the spatial kernel realized on a grid across the image ("Model
  Kernel") with its adaptive centroid (blue +) and shape ellipse (red).
* `plotKernelSpatialModel` — one figure per coefficient: its spatial model over the image,
  the candidates' own coefficients against instrumental magnitude, and their residuals from the
  model against x and y.
* `plotKernelCoefficients` — the three DM-17825 figures: candidates' coefficient vectors on an
  8×8 image grid, one histogram per coefficient marked with the spatial value at the image
  centre, and the spatial solution's coefficient vectors on the same grid.

``showBadCandidates`` adds the BAD candidates (red) to the candidate, spatial-model and
coefficient figures; without it only the others are drawn. Unlike LSST, the candidates'
coefficients are taken from their latest fit (``RECENT``), which is on the spatial kernel's basis
also when a PCA basis is used.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .render import (
    DisplayContext,
    add_colorbar,
    colormap,
    finish_figure,
    grid_columns,
    image_norm,
    image_panels,
    mosaic,
    new_figure,
    no_data,
)

__all__ = [
    "GRID",
    "MAX_HISTOGRAMS",
    "displayCandidates",
    "displayKernelBasis",
    "displayKernelMosaic",
    "plotKernelCoefficients",
    "plotKernelSpatialModel",
    "usable_candidates",
]

GRID = 8
"""Panels per side of the image grids of `plotKernelCoefficients`."""

MAX_HISTOGRAMS = 36
"""Most coefficient histograms drawn (a delta-function basis has hundreds of coefficients)."""

_GOOD, _BAD = "limegreen", "red"  # candidate mosaics (LSST's colours)
_GOOD_PLOT, _BAD_PLOT = "tab:blue", "red"  # plots
_CHI2_MAX = 1e100  # LSST shows larger (never fitted) chi² as NaN
_log = logging.getLogger("diffim.plugins.displays")


def _context(ctx: DisplayContext | None) -> DisplayContext:
    return DisplayContext() if ctx is None else ctx


def usable_candidates(cellSet: Any, include_bad: bool) -> list[Any]:  # noqa: N803 - LSST name
    """Candidates with a solved ``ORIG`` fit, BAD ones only when ``include_bad``."""
    usable = []
    for candidate in cellSet.candidates(include_bad=True):
        if candidate.isBad() and not include_bad:
            continue
        try:
            candidate.getKernelSolution("ORIG")
        except Exception:  # noqa: BLE001 - never built (beyond nStarPerCell) or failed: not shown
            continue
        usable.append(candidate)
    return usable


def _kernel_at(kernel: Any, x: float, y: float) -> Any:
    fixed_at = getattr(kernel, "fixed_at", None)
    if callable(fixed_at):
        return fixed_at(x, y)
    from diffim.tasks.kernel import FixedKernel

    return FixedKernel(kernel.computeImage(x, y))


def _background_at(background: Any, x: float, y: float) -> float:
    if background is None:
        return 0.0
    if callable(background):
        return float(background(x, y))
    return float(background)


def _chi2_text(candidate: Any) -> str:
    chi2 = float(candidate.getChi2())
    return "nan" if not chi2 < _CHI2_MAX else f"{chi2:.2f}"


def _centre(candidate: Any) -> tuple[int, int]:
    """The integer pixel nearest the candidate centre (where LSST realizes the spatial kernel)."""
    return int(math.floor(candidate.getXCenter() + 0.5)), int(math.floor(candidate.getYCenter() + 0.5))


def _trimmed(masked: Any, box: Any) -> Any:
    return masked[box] if box is not None and not box.isEmpty() else masked


def _strip_norm(science: np.ndarray, residual: np.ndarray) -> Any:
    """One stretch for a candidate's panels: −3σ .. science peak, asinh softened at the noise σ.

    σ is the robust width of the residual; softening the asinh at about the noise (Lupton et al.
    2004) shows the star's core, its wings and the residual noise in the same picture, which a
    zscale of a star-dominated stamp does not.
    """
    from astropy.visualization import AsinhStretch, ImageNormalize

    finite = residual[np.isfinite(residual)]
    sigma = 1.4826 * float(np.median(np.abs(finite - np.median(finite)))) if finite.size else 0.0
    peak = float(np.nanmax(science)) if np.isfinite(science).any() else 1.0
    if not sigma > 0:
        sigma = max(abs(peak), 1.0) * 1e-3
    vmin, vmax = -3.0 * sigma, max(peak, 3.0 * sigma)
    softening = min(max(sigma / (vmax - vmin), 1e-4), 1.0)
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(softening), clip=True)


def _strip_figure(ctx: DisplayContext, strips: list[list[np.ndarray]], candidates: list[Any], *, name: str,
                  title: str, caption: str, description: str, norm: Any, cmap: str,
                  bar_label: str | None, gutter_color: str) -> Any:
    """A mosaic of candidate strips (panels side by side), each framed and labelled by status."""
    from matplotlib.patches import Rectangle

    if not strips:
        fig = new_figure(ctx, (6.0, 3.0))
        no_data(fig.add_subplot(), "no kernel candidate with a kernel fit to show")
        return finish_figure(fig, ctx, name, title, description=description)
    tiles = []
    for panels in strips:
        h = max(p.shape[0] for p in panels)
        sep = np.full((h, 1), np.nan)
        padded = [np.pad(p, ((0, h - p.shape[0]), (0, 0)), constant_values=np.nan) for p in panels]
        tiles.append(np.hstack([x for p in padded for x in (p, sep)][:-1]))
    tile_h = max(t.shape[0] for t in tiles)
    tile_w = max(t.shape[1] for t in tiles)
    image, boxes = mosaic(tiles, grid_columns(len(tiles), tile_w, tile_h), gutter=max(3, tile_h // 10))
    fig, (ax,), caxes = image_panels(ctx, 1, 1, image.shape[1], image.shape[0], panel_width=9.0,
                                     colorbar=bar_label is not None, ticks=False, max_panel_height=9.0)
    shown = ax.imshow(image, origin="lower", cmap=colormap(cmap, gutter_color), norm=norm, interpolation="nearest")
    for (x0, y0, w, h), candidate in zip(boxes, candidates):
        color = _BAD if candidate.isBad() else _GOOD
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, edgecolor=color, linewidth=1.5))
        ax.text(x0 + 0.5, y0 + h - 1.5, f"{candidate.getId()}  χ² {_chi2_text(candidate)}", color="black",
                fontsize=7, va="top", ha="left",
                bbox={"facecolor": color, "alpha": 0.8, "pad": 1.0, "edgecolor": "none"})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(caption, fontsize=9)
    if bar_label is not None:
        add_colorbar(shown, caxes[0], bar_label)
    return finish_figure(fig, ctx, name, title, description=description)


def _candidate_panels(candidate: Any, spatialKernel: Any, spatialBackground: Any) -> tuple[list[np.ndarray], ...]:  # noqa: N803
    """The three strips of one candidate: normalized stamps and residuals, kernels, chi images."""
    x, y = _centre(candidate)
    kernel = _kernel_at(spatialKernel, x, y)
    own = candidate.getDifferenceImage("ORIG")
    spatial = candidate.getDifferenceImage(kernel, _background_at(spatialBackground, x, y))
    box = kernel.shrinkBBox(candidate.getScienceMaskedImage().getBBox())
    science = _trimmed(candidate.getScienceMaskedImage(), box).image.array
    template = _trimmed(candidate.getTemplateMaskedImage(), box).image.array
    own_t, spatial_t = _trimmed(own, box), _trimmed(spatial, box)
    panels = [p - np.nanmedian(p) for p in (science, template, own_t.image.array, spatial_t.image.array)]
    norm = _strip_norm(panels[0], panels[2])
    stamps = [np.ma.filled(norm(p), np.nan) for p in panels]
    kernels = [candidate.getKernelImage("ORIG"), kernel.computeImage()]
    with np.errstate(divide="ignore", invalid="ignore"):
        chis = [d.image.array / np.sqrt(d.variance.array) for d in (own_t, spatial_t)]
    return stamps, kernels, chis


def displayCandidates(cellSet: Any, spatialKernel: Any, spatialBackground: Any = None, *,  # noqa: N802, N803
                      ctx: DisplayContext | None = None) -> list[Any]:
    """Draw the candidates' stamps and residuals, their kernels, and their chi images (3 frames).

    Parameters
    ----------
    cellSet : SpatialCellSet
        The fitted kernel candidates.
    spatialKernel : Kernel
        The spatial kernel (realized at each candidate's nearest integer pixel).
    spatialBackground : SpatialFunction or float, optional
        The spatial background model.
    ctx : DisplayContext, optional
        Caller and flags (``showBadCandidates``).

    Returns
    -------
    list of pathlib.Path
        The three PNG files.
    """
    ctx = _context(ctx)
    candidates = usable_candidates(cellSet, ctx.showBadCandidates)
    stamps, kernels, chis, shown = [], [], [], []
    for candidate in candidates:
        try:
            strip = _candidate_panels(candidate, spatialKernel, spatialBackground)
        except Exception as err:  # noqa: BLE001 - one odd stamp must not cost the whole mosaic
            _log.debug("candidate %s not shown: %s", candidate.getId(), err)
            continue
        stamps.append(strip[0])
        kernels.append(strip[1])
        chis.append(strip[2])
        shown.append(candidate)
    bad = "GOOD (green) and BAD (red)" if ctx.showBadCandidates else "GOOD"
    paths = [
        _strip_figure(
            ctx, stamps, shown, name="candidates", title="Candidates & residuals",
            caption="each strip: science | template | diffim (own kernel) | diffim (spatial kernel)\n"
                    "medians subtracted; one asinh stretch per strip, −3σ to the science peak, softened at σ",
            description=f"{len(shown)} {bad} kernel candidates over the fitted (kernel-trimmed) area; "
                        "labels: candidate id and chi².",
            norm=image_norm(np.zeros(1), "linear", vmin=0.0, vmax=1.0), cmap="gray", bar_label=None,
            gutter_color="white",
        )
    ]
    kmax = max((float(np.nanmax(np.abs(k))) for strip in kernels for k in strip), default=1.0) or 1.0
    paths.append(_strip_figure(
        ctx, kernels, shown, name="kernels", title="Kernels",
        caption="each strip: own kernel (ORIG fit) | spatial kernel at the candidate",
        description="Each candidate's own PSF-matching kernel next to the spatial model realized at its centre.",
        norm=image_norm(np.zeros(1), "linear", vmin=-kmax, vmax=kmax), cmap="RdBu_r", bar_label="kernel value",
        gutter_color="0.55",
    ))
    paths.append(_strip_figure(
        ctx, chis, shown, name="chi_diffim", title="chi Diffim",
        caption="each strip: diffim/σ with own kernel | diffim/σ with spatial kernel",
        description="Residuals in units of their noise over the kernel-trimmed stamp; a good fit looks like "
                    "featureless noise of unit width.",
        norm=image_norm(np.zeros(1), "linear", vmin=-5.0, vmax=5.0), cmap="RdBu_r", bar_label="D / σ",
        gutter_color="0.55",
    ))
    return paths


def displayKernelBasis(kernel: Any, *, ctx: DisplayContext | None = None) -> Any:  # noqa: N802 - LSST name
    """Draw every basis image of ``kernel`` (a LinearCombinationKernel), each scaled to its max |value|.

    Returns
    -------
    pathlib.Path
        The PNG file.
    """
    ctx = _context(ctx)
    images = np.asarray(kernel.basis_images, dtype=float)
    n, h, w = images.shape
    scale = np.nanmax(np.abs(images.reshape(n, -1)), axis=1)
    scale[~(scale > 0)] = 1.0
    tiles = [images[i] / scale[i] for i in range(n)]
    cols = grid_columns(n, w, h, aspect=1.2)
    image, boxes = mosaic(tiles, cols, gutter=max(2, w // 8))
    fig, (ax,), (cax,) = image_panels(ctx, 1, 1, image.shape[1], image.shape[0], panel_width=7.0, ticks=False)
    shown = ax.imshow(image, origin="lower", cmap=colormap("RdBu_r", "0.55"), vmin=-1.0, vmax=1.0,
                      interpolation="nearest")
    if n <= 100:
        for index, (x0, y0, _, bh) in enumerate(boxes):
            ax.text(x0 + 0.5, y0 + bh - 1.5, str(index), fontsize=7, va="top", ha="left", color="black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{n} basis kernels of {w}×{h} pixels, in order from the top left", fontsize=9)
    add_colorbar(shown, cax, "basis value / max |value| of that basis")
    return finish_figure(fig, ctx, "kernel_basis", "Kernel Basis Images",
                         description="The (unnormalized) basis kernels the PSF-matching kernel is a combination of.")


def _moments_overlay(ax: Any, tile: np.ndarray, x0: float, y0: float) -> None:
    from matplotlib.patches import Ellipse

    from diffim.tasks.psf.measure import measure_centroid, measure_shape

    cy, cx = tile.shape[0] // 2, tile.shape[1] // 2
    try:
        dx, dy = measure_centroid(tile, adaptive=True)
        shape = measure_shape(tile)
    except Exception:  # noqa: BLE001 - LSST draws only what measures
        return
    px, py = x0 + cx + dx, y0 + cy + dy
    ax.plot([px], [py], marker="+", color="blue", markersize=7, mew=1.2)
    cov = np.array([[shape.ixx, shape.ixy], [shape.ixy, shape.iyy]])
    values, vectors = np.linalg.eigh(cov)
    if np.all(values > 0):
        angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
        ax.add_patch(Ellipse((px, py), 2 * math.sqrt(values[1]), 2 * math.sqrt(values[0]), angle=angle,
                             fill=False, edgecolor="red", linewidth=1.0))


def displayKernelMosaic(bbox: Any, kernel: Any, *, nx: int = 7, ny: int | None = None,  # noqa: N802 - LSST name
                        ctx: DisplayContext | None = None) -> Any:
    """Draw the spatial kernel realized on an ``nx × ny`` grid across ``bbox`` ("Model Kernel").

    The bottom-left tile is the kernel at the bottom left of the image; ticks give the image
    position of each realization. Blue +: adaptive centroid; red ellipse: adaptive second moments
    (1σ), drawn where they can be measured.

    Returns
    -------
    pathlib.Path
        The PNG file.
    """
    ctx = _context(ctx)
    width, height = bbox.width, bbox.height
    if ny is None:
        ny = max(1, round(nx * height / width))
    xs = bbox.minX - 0.5 + (np.arange(nx) + 0.5) * width / nx
    ys = bbox.minY - 0.5 + (np.arange(ny) + 0.5) * height / ny
    tiles, sums = [], []
    for j in reversed(range(ny)):  # mosaic() fills from the top row
        for i in range(nx):
            image = np.asarray(kernel.computeImage(float(xs[i]), float(ys[j])), dtype=float)
            tiles.append(image)
            sums.append(float(image.sum()))
    kh, kw = tiles[0].shape
    gutter = max(2, kw // 6)
    image, boxes = mosaic(tiles, nx, gutter=gutter)
    kmax = float(np.nanmax(np.abs(image))) or 1.0
    fig, (ax,), (cax,) = image_panels(ctx, 1, 1, image.shape[1], image.shape[0], panel_width=7.5)
    shown = ax.imshow(image, origin="lower", cmap=colormap("RdBu_r", "0.55"), vmin=-kmax, vmax=kmax,
                      interpolation="nearest")
    for (x0, y0, _, _), tile, total in zip(boxes, tiles, sums):
        _moments_overlay(ax, tile, x0, y0)
        ax.text(x0 + 0.5, y0 + 0.5, f"Σ {total:.3f}", fontsize=6, va="bottom", ha="left", color="black")
    ax.set_xticks([i * (kw + gutter) + kw // 2 for i in range(nx)], [f"{x:.0f}" for x in xs], fontsize=7)
    ax.set_yticks([j * (kh + gutter) + kh // 2 for j in range(ny)], [f"{y:.0f}" for y in ys], fontsize=7)
    ax.set_xlabel("image x of the realization (pixels)")
    ax.set_ylabel("image y of the realization (pixels)")
    varying = kernel.isSpatiallyVarying() if hasattr(kernel, "isSpatiallyVarying") else True
    ax.set_title(f"{nx}×{ny} realizations of {kw}×{kh} pixels{'' if varying else ' (constant kernel)'}: "
                 "blue + centroid, red ellipse 1σ shape, Σ sum", fontsize=9)
    add_colorbar(shown, cax, "kernel value")
    return finish_figure(fig, ctx, "kernel_mosaic", "Model Kernel",
                         description="The spatial PSF-matching kernel realized across the image.")


# ------------------------------------------------------------------ coefficients


def _coefficient_table(cellSet: Any, nbasis: int, include_bad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # noqa: N803
    """``(positions (n, 2), coefficients (n, nbasis), instrumental mags (n), bad flags (n))``."""
    positions, coefficients, mags, bad = [], [], [], []
    for candidate in usable_candidates(cellSet, include_bad):
        try:
            values = np.asarray(candidate.getKernel("RECENT").getKernelParameters(), dtype=float)
        except Exception:  # noqa: BLE001 - e.g. a refit that failed: nothing to plot
            continue
        if values.size != nbasis:
            continue
        rating = float(candidate.getCandidateRating())
        positions.append((candidate.getXCenter(), candidate.getYCenter()))
        coefficients.append(values)
        mags.append(-2.5 * math.log10(rating) if rating > 0 else math.nan)
        bad.append(candidate.isBad())
    if not positions:
        return np.zeros((0, 2)), np.zeros((0, nbasis)), np.zeros(0), np.zeros(0, dtype=bool)
    return np.array(positions), np.array(coefficients), np.array(mags), np.array(bad, dtype=bool)


def plotKernelSpatialModel(kernel: Any, cellSet: Any, *, numSample: int = 64,  # noqa: N802, N803 - LSST names
                           maxCoeff: int | None = None, ctx: DisplayContext | None = None) -> list[Any]:  # noqa: N803
    """One figure per kernel coefficient (up to ``maxCoeff``): its spatial model and the candidates.

    Lower left: the spatial model of the coefficient over the cell-set box (colour bar). Upper
    left: each candidate's own coefficient against its instrumental magnitude (−2.5 log10 of its
    rating). Right: the candidates' residuals from the model against x (top) and y (bottom).
    GOOD in blue, BAD (``showBadCandidates``) in red.

    Returns
    -------
    list of pathlib.Path
        One PNG per coefficient drawn.
    """
    ctx = _context(ctx)
    nbasis = kernel.getNBasisKernels()
    limit = ctx.options.maxCoeff if maxCoeff is None else maxCoeff
    bbox = cellSet.getBBox()
    positions, coefficients, mags, bad = _coefficient_table(cellSet, nbasis, ctx.showBadCandidates)
    xs = np.linspace(bbox.minX, bbox.maxX, numSample)
    ys = np.linspace(bbox.minY, bbox.maxY, numSample)
    model = kernel.coefficients_at(xs[None, :], ys[:, None])  # (ny, nx, nbasis)
    at_candidates = (kernel.coefficients_at(positions[:, 0], positions[:, 1]) if len(positions)
                     else np.zeros((0, nbasis)))
    extent = (bbox.minX - 0.5, bbox.maxX + 0.5, bbox.minY - 0.5, bbox.maxY + 0.5)
    paths = []
    for k in range(min(nbasis, limit)):
        fig = new_figure(ctx, (9.0, 7.0), layout=None)  # a fixed layout: 10 of these are drawn, fast
        fig.subplots_adjust(left=0.08, right=0.97, bottom=0.08, top=0.9, wspace=0.32, hspace=0.35)
        (ax_mag, ax_x), (ax_img, ax_y) = fig.subplots(2, 2)
        shown = ax_img.imshow(model[:, :, k], origin="lower", extent=extent, cmap="viridis", aspect="auto")
        bar = fig.colorbar(shown, ax=ax_img, pad=0.02)
        bar.set_label(f"coefficient {k}", fontsize=8)
        ax_img.set_xlabel("x (pixels)")
        ax_img.set_ylabel("y (pixels)")
        ax_img.set_title("spatial model", fontsize=9)
        residual = coefficients[:, k] - at_candidates[:, k] if len(positions) else np.zeros(0)
        for flag, color, label in ((False, _GOOD_PLOT, "GOOD"), (True, _BAD_PLOT, "BAD")):
            sel = bad == flag
            if not sel.any():
                continue
            ax_img.plot(positions[sel, 0], positions[sel, 1], "+", color=color, markersize=6)
            ax_mag.plot(mags[sel], coefficients[sel, k], "+", color=color, label=f"{label} ({sel.sum()})")
            ax_x.plot(positions[sel, 0], residual[sel], "+", color=color)
            ax_y.plot(positions[sel, 1], residual[sel], "+", color=color)
        ax_mag.set_xlabel("instrumental mag (−2.5 log10 rating)")
        ax_mag.set_ylabel(f"coefficient {k} (own fit)")
        ax_mag.set_title("candidates' own coefficients", fontsize=9)
        if len(positions):
            ax_mag.legend(fontsize=7)
        for ax, axis in ((ax_x, "x"), (ax_y, "y")):
            ax.axhline(0.0, color="black", linewidth=0.8, linestyle=":")
            ax.set_xlabel(f"{axis} (pixels)")
            ax.set_ylabel("own − spatial model")
            ax.set_title(f"residual vs {axis}", fontsize=9)
        paths.append(finish_figure(
            fig, ctx, f"spatial_model_coeff{k:03d}", f"Spatial model of kernel coefficient {k} of {nbasis}",
            description="How well the spatial model of this coefficient follows the candidates' own fits.",
        ))
    return paths


def _grid_cells(bbox: Any) -> tuple[np.ndarray, np.ndarray]:
    """Edges (GRID + 1 each) of the GRID × GRID panels over ``bbox`` (pixel-edge coordinates)."""
    x_edges = np.linspace(bbox.minX - 0.5, bbox.maxX + 0.5, GRID + 1)
    y_edges = np.linspace(bbox.minY - 0.5, bbox.maxY + 0.5, GRID + 1)
    return x_edges, y_edges


def _vector_grid(ax: Any, bbox: Any, cells: list[tuple[int, int, np.ndarray, str]], caption: str) -> None:
    """Draw coefficient vectors as small step plots inside the GRID × GRID panels of ``bbox``."""
    x_edges, y_edges = _grid_cells(bbox)
    cw, ch = x_edges[1] - x_edges[0], y_edges[1] - y_edges[0]
    values = np.concatenate([v for _, _, v, _ in cells]) if cells else np.zeros(1)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    for edge in x_edges:
        ax.axvline(edge, color="0.8", linewidth=0.6)
    for edge in y_edges:
        ax.axhline(edge, color="0.8", linewidth=0.6)
    occupied = set()
    for ix, iy, vector, color in cells:
        n = vector.size
        px = x_edges[ix] + cw * (0.06 + 0.88 * (np.arange(n) / max(n - 1, 1)))
        py = y_edges[iy] + ch * (0.08 + 0.84 * (vector - lo) / (hi - lo))
        ax.step(px, py, where="mid", color=color, linewidth=0.9)
        occupied.add((ix, iy))
    if lo < 0.0 < hi:
        zero = 0.08 + 0.84 * (0.0 - lo) / (hi - lo)
        for ix, iy in occupied:
            y0 = y_edges[iy] + ch * zero
            ax.plot([x_edges[ix], x_edges[ix + 1]], [y0, y0], color="0.5", linestyle=":", linewidth=0.7)
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(f"{caption}\neach panel: coefficient vs basis index; vertical range "
                 f"[{lo:.3g}, {hi:.3g}] in every panel, dotted: 0", fontsize=9)


def _cell_of(bbox: Any, x: float, y: float) -> tuple[int, int]:
    fx = (x - (bbox.minX - 0.5)) / bbox.width
    fy = (y - (bbox.minY - 0.5)) / bbox.height
    return min(max(int(fx * GRID), 0), GRID - 1), min(max(int(fy * GRID), 0), GRID - 1)


def _histogram_panels(ax: Any, coefficients: np.ndarray, bad: np.ndarray, centre: np.ndarray, shown: int,
                      cols: int) -> None:
    """Small histograms, one per coefficient, drawn in unit cells of one axes (fast for many)."""
    from matplotlib.patches import Rectangle

    rows = math.ceil(shown / cols) if shown else 1
    base, height = 0.16, 0.62
    for k in range(shown):
        row, col = divmod(k, cols)
        x0, y0 = float(col), float(rows - 1 - row)
        values = coefficients[:, k]
        finite = values[np.isfinite(values)]
        lo = float(min(finite.min(), centre[k])) if finite.size else float(centre[k])
        hi = float(max(finite.max(), centre[k])) if finite.size else float(centre[k])
        pad = 0.05 * (hi - lo) if hi > lo else (abs(lo) * 0.05 or 1.0)
        lo, hi = lo - pad, hi + pad
        good, edges = np.histogram(values[~bad & np.isfinite(values)], bins=20, range=(lo, hi))
        worse, _ = np.histogram(values[bad & np.isfinite(values)], bins=20, range=(lo, hi))
        top = float(max((good + worse).max(), 1))
        xs = x0 + 0.05 + 0.9 * (edges - lo) / (hi - lo)
        good_top = y0 + base + height * good / top
        ax.stairs(good_top, xs, baseline=y0 + base, fill=True, color=_GOOD_PLOT, alpha=0.85)
        if worse.any():
            ax.stairs(good_top + height * worse / top, xs, baseline=good_top, fill=True, color="lightcoral")
        xc = x0 + 0.05 + 0.9 * (centre[k] - lo) / (hi - lo)
        ax.plot([xc, xc], [y0 + base, y0 + base + height + 0.04], color="darkred", linewidth=1.3)
        ax.add_patch(Rectangle((x0 + 0.02, y0 + 0.02), 0.96, 0.96, fill=False, edgecolor="0.75", linewidth=0.8))
        ax.text(x0 + 0.05, y0 + 0.93, f"coefficient {k}", fontsize=7, va="top", ha="left")
        ax.text(x0 + 0.95, y0 + 0.93, f"{centre[k]:.3g}", fontsize=7, va="top", ha="right", color="darkred")
        ax.text(x0 + 0.5, y0 + 0.05, f"{lo:.3g} … {hi:.3g}  (max {int(top)})", fontsize=6, va="bottom",
                ha="center", color="0.3")
    ax.set_xlim(0, cols)
    ax.set_ylim(0, rows)
    ax.set_axis_off()


def plotKernelCoefficients(spatialKernel: Any, cellSet: Any, *,  # noqa: N802, N803 - LSST names
                           ctx: DisplayContext | None = None) -> list[Any]:
    """The three coefficient figures of DM-17825 (candidates on a grid, histograms, spatial grid).

    Returns
    -------
    list of pathlib.Path
        The three PNG files.
    """
    ctx = _context(ctx)
    bbox = cellSet.getBBox()
    nbasis = spatialKernel.getNBasisKernels()
    positions, coefficients, _, bad = _coefficient_table(cellSet, nbasis, ctx.showBadCandidates)
    paths = []

    # 1: each candidate's own coefficient vector, in the panel of its position
    fig, (ax,), _ = image_panels(ctx, 1, 1, bbox.width, bbox.height, panel_width=7.5, colorbar=False)
    cells = [(*_cell_of(bbox, x, y), coefficients[i], _BAD_PLOT if bad[i] else _GOOD_PLOT)
             for i, (x, y) in enumerate(positions)]
    who = "GOOD (blue) and BAD (red)" if ctx.showBadCandidates else "GOOD"
    _vector_grid(ax, bbox, cells, f"{len(cells)} {who} candidates' own fits ({nbasis} coefficients)")
    paths.append(finish_figure(fig, ctx, "kernel_coefficients_candidates",
                               "Kernel candidate parameters on an image grid",
                               description="Each candidate's fitted coefficient vector, in the panel of the "
                                           "image where the candidate is (bottom-left panel = bottom left)."))

    # 2: histograms of each coefficient with the spatial value at the image centre
    shown = min(nbasis, MAX_HISTOGRAMS)
    cols = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / cols)
    fig = new_figure(ctx, (max(1.7 * cols, 6.0), 1.35 * rows + 1.2))
    ax = fig.add_subplot()
    cx, cy = bbox.getCenter()
    centre = np.asarray(spatialKernel.coefficients_at(float(cx), float(cy)), dtype=float).ravel()
    _histogram_panels(ax, coefficients, bad, centre, shown, cols)
    ax.set_title(f"each panel: histogram (20 bins) of one coefficient over the {who} candidates"
                 f"{' (red: BAD)' if bad.any() else ''}; red line and value: spatial model at the image centre"
                 f"{'; x range below' if shown else ''}", fontsize=8)
    more = f" (first {shown} of {nbasis})" if shown < nbasis else ""
    paths.append(finish_figure(fig, ctx, "kernel_coefficients_histograms",
                               f"Hist. of parameters marked with spatial solution at img center{more}",
                               description=f"Histogram of each coefficient over the {who} candidates' own fits; "
                                           "red line and value: the spatial model at the image centre."))

    # 3: the spatial solution's coefficient vector at each panel centre
    fig, (ax,), _ = image_panels(ctx, 1, 1, bbox.width, bbox.height, panel_width=7.5, colorbar=False)
    x_edges, y_edges = _grid_cells(bbox)
    mid_x = 0.5 * (x_edges[:-1] + x_edges[1:])
    mid_y = 0.5 * (y_edges[:-1] + y_edges[1:])
    grid = spatialKernel.coefficients_at(mid_x[None, :], mid_y[:, None])  # (GRID, GRID, nbasis)
    cells = [(ix, iy, np.asarray(grid[iy, ix], dtype=float), "black") for iy in range(GRID) for ix in range(GRID)]
    _vector_grid(ax, bbox, cells, f"spatial solution at the panel centres ({nbasis} coefficients)")
    paths.append(finish_figure(fig, ctx, "kernel_coefficients_spatial",
                               "Spatial solution of kernel parameters on an image grid",
                               description="The spatial model's coefficient vector evaluated at the centre of "
                                           "each panel."))
    return paths
