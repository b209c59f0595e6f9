"""Figure plumbing shared by the debug displays: context, norms, image panels, mosaics, saving.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered by Agg straight to PNG, so
nothing here needs a display, touches pyplot's global state or has to be closed. Only when the
user asks for windows (``getInfo("diffim.plugins.displays").interactive = True``) *and* a GUI
backend is available are the figures made with pyplot and shown as well (the PNG is still
written, so the HTML report stays complete).

Images are drawn as astronomers expect: ``origin="lower"``, axes in parent pixel coordinates,
a ZScale interval with an asinh (direct images) or linear (residuals) stretch from
:mod:`astropy.visualization`, and the mask planes overlaid in colour with the module's
``maskTransparency`` (percent; 0 is opaque, 100 invisible).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_MASK_TRANSPARENCY",
    "MASK_COLORS",
    "MAX_DISPLAY_PIXELS",
    "NAN_COLOR",
    "NAN_LABEL",
    "OPTIONS_NAME",
    "DisplayContext",
    "DisplayOptions",
    "add_colorbar",
    "bin_image",
    "bin_mask",
    "colormap",
    "figure_size",
    "finish_figure",
    "grid_columns",
    "has_mask_planes",
    "image_arrays",
    "image_norm",
    "image_panels",
    "mask_legend",
    "mask_overlay",
    "mosaic",
    "new_figure",
    "no_data",
    "show_image",
    "take_frame",
]

OPTIONS_NAME = "diffim.plugins.displays"
"""Debug name of the displays' own options: ``interactive``, ``dpi``, ``maxCoeff``."""

DEFAULT_MASK_TRANSPARENCY = 60.0
"""Mask transparency (percent) when the module's ``maskTransparency`` flag is not set."""

#: Overlay colour of each mask plane (LSST's afwDisplay choices, with SAT and INTRP told apart);
#: planes added by plugins get the colours of `_EXTRA_COLORS` in turn.
MASK_COLORS: dict[str, str] = {
    "BAD": "red",
    "SAT": "green",
    "INTRP": "yellowgreen",
    "CR": "magenta",
    "EDGE": "yellow",
    "DETECTED": "blue",
    "DETECTED_NEGATIVE": "cyan",
    "SUSPECT": "gold",
    "NO_DATA": "darkorange",
}
_EXTRA_COLORS = ("deeppink", "turquoise", "chocolate", "mediumpurple", "olive", "navy")

#: Images larger than this (pixels on a side) are binned for display.
MAX_DISPLAY_PIXELS = 2048

#: Colour of NaN pixels (e.g. the unconvolvable edge of a convolved image), and its legend label.
NAN_COLOR = "#5a3d5c"
NAN_LABEL = "NaN pixels"

_log = logging.getLogger("diffim.plugins.displays")
_frame_lock = threading.Lock()
_gui_state: dict[str, Any] = {"checked": False, "available": False, "keep_registered": False}


@dataclasses.dataclass
class DisplayOptions:
    """Options of the displays themselves, read from ``getInfo("diffim.plugins.displays")``.

    Attributes
    ----------
    interactive : bool
        Also show each figure in a window (when a GUI backend is available); default False.
    dpi : int
        Resolution of the PNG files (default 90).
    maxCoeff : int
        Most kernel coefficients given a ``plotKernelSpatialModel`` figure (default 10, as LSST).
    """

    interactive: bool = False
    dpi: int = 90
    maxCoeff: int = 10  # noqa: N815 - LSST's argument name

    @classmethod
    def from_debug(cls) -> DisplayOptions:
        """Options from the debug flags of `OPTIONS_NAME` (unset flags keep the defaults)."""
        from diffim.framework.debug import debug_info

        info = debug_info(OPTIONS_NAME)
        options = cls()
        if info.interactive:
            options.interactive = True
        for name in ("dpi", "maxCoeff"):
            value = getattr(info, name)
            if value is not False and value is not None:
                setattr(options, name, max(1, int(value)))
        return options


@dataclasses.dataclass
class DisplayContext:
    """What a display needs besides its data: who called, with which flags, and the options.

    Attributes
    ----------
    stage : str
        The hook stage (e.g. ``"psfMatch.solve"``); ``"direct"`` when a display is called by hand.
    module : str
        Debug name of the calling module.
    task : object or None
        The calling task (for the report's metadata).
    debug : object or None
        The module's `~diffim.framework.debug.DebugInfo` (unset flags read as False).
    flag : str
        The debug flag that asked for this display (shown in the report).
    options : DisplayOptions
        The displays' own options.
    """

    stage: str = "direct"
    module: str = ""
    task: Any = None
    debug: Any = None
    flag: str = ""
    options: DisplayOptions = dataclasses.field(default_factory=DisplayOptions)

    def _flag(self, name: str) -> Any:
        return False if self.debug is None else getattr(self.debug, name, False)

    @property
    def maskTransparency(self) -> float:  # noqa: N802 - LSST flag name
        """Mask overlay transparency in percent (0 opaque .. 100 invisible)."""
        value = self._flag("maskTransparency")
        if value is False or value is None:  # unset (0 is a legitimate, opaque, choice)
            return DEFAULT_MASK_TRANSPARENCY
        return float(min(max(float(value), 0.0), 100.0))

    @property
    def showBadCandidates(self) -> bool:  # noqa: N802 - LSST flag name
        """Whether BAD candidates are drawn (in red) next to the GOOD ones (green)."""
        return bool(self._flag("showBadCandidates"))


def take_frame() -> int:
    """Return ``diffim.framework.debug.frame`` and advance it (LSST's ``lsstDebug.frame``)."""
    from diffim.framework import debug

    with _frame_lock:
        try:
            frame = int(debug.frame)
        except (TypeError, ValueError):  # a debug file set something odd: start again
            frame = 1
        debug.frame = frame + 1
    return frame


# ------------------------------------------------------------------------------ figures


def _gui_available() -> bool:
    """Whether matplotlib's backend can open windows (checked once, only when asked)."""
    if not _gui_state["checked"]:
        import matplotlib

        backend = str(matplotlib.get_backend()).lower()
        try:
            from matplotlib.backends import BackendFilter, backend_registry

            interactive = {name.lower() for name in backend_registry.list_builtin(BackendFilter.INTERACTIVE)}
        except ImportError:  # matplotlib < 3.9
            from matplotlib import rcsetup

            interactive = {name.lower() for name in rcsetup.interactive_bk}
        available = backend in interactive
        if not available:
            _log.info("debug displays: no GUI backend (matplotlib backend %r); writing PNG files only", backend)
        _gui_state.update(checked=True, available=available)
    return bool(_gui_state["available"])


def figure_size(width_px: float, height_px: float, *, width: float = 9.0, extra: float = 1.2,
                max_height: float = 13.0) -> tuple[float, float]:
    """Figure size (inches) for content of the given pixel aspect, ``width`` inches wide."""
    aspect = height_px / max(width_px, 1.0)
    height = min(max(width * aspect + extra, 3.0), max_height)
    return (width, height)


def new_figure(ctx: DisplayContext, size: tuple[float, float], *, layout: str | None = "constrained") -> Figure:
    """A new figure: pyplot-managed when windows are asked for and possible, else a bare Agg one."""
    if ctx.options.interactive and _gui_available():
        import matplotlib.pyplot as plt

        return plt.figure(figsize=size, dpi=ctx.options.dpi, layout=layout)
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=ctx.options.dpi, layout=layout)


# fixed margins of an image panel (inches): the axes keep the image aspect and the colour bar
# exactly spans their height, which layout engines do not do for aspect-locked axes
_LEFT, _RIGHT, _TOP, _BOTTOM = 0.85, 1.05, 0.55, 0.6
_CBAR_PAD, _CBAR_WIDTH = 0.08, 0.16
_SUPTITLE, _LEGEND = 0.4, 0.6


def image_panels(ctx: DisplayContext, nrows: int, ncols: int, width_px: float, height_px: float, *,
                 panel_width: float = 5.5, colorbar: bool = True, legend: bool = False,
                 max_panel_height: float = 7.5, ticks: bool = True) -> tuple[Figure, list[Any], list[Any]]:
    """A figure of ``nrows × ncols`` image panels of the given pixel aspect, each with a colour-bar slot.

    Parameters
    ----------
    ctx : DisplayContext
        For the options (dpi, windows).
    nrows, ncols : int
        Panel grid.
    width_px, height_px : float
        Size of what each panel shows (its aspect is kept).
    panel_width : float
        Width of each panel's axes (inches), reduced if the panel would be taller than
        ``max_panel_height``.
    colorbar : bool
        Reserve a colour-bar axes at the right of each panel.
    legend : bool
        Reserve a strip at the bottom for a figure legend (`mask_legend`).
    max_panel_height : float
        Tallest panel (inches).
    ticks : bool
        Reserve room for tick labels and axis labels.

    Returns
    -------
    figure, axes, colour-bar axes
        The figure, its panels (row-major) and their colour-bar axes (empty without ``colorbar``).
    """
    aspect = max(height_px, 1.0) / max(width_px, 1.0)
    panel_h = panel_width * aspect
    if panel_h > max_panel_height:
        panel_h = max_panel_height
        panel_width = panel_h / aspect
    left = _LEFT if ticks else 0.15
    bottom = _BOTTOM if ticks else 0.15
    right = (_CBAR_PAD + _CBAR_WIDTH + _RIGHT - 0.2) if colorbar else 0.2
    cell_w = left + panel_width + right
    cell_h = _TOP + panel_h + bottom
    fig_w = ncols * cell_w
    fig_h = nrows * cell_h + _SUPTITLE + (_LEGEND if legend else 0.0)
    fig = new_figure(ctx, (fig_w, fig_h), layout=None)
    axes, caxes = [], []
    base = _LEGEND if legend else 0.0
    for row in range(nrows):
        for col in range(ncols):
            x0 = col * cell_w + left
            y0 = base + (nrows - 1 - row) * cell_h + bottom
            axes.append(fig.add_axes((x0 / fig_w, y0 / fig_h, panel_width / fig_w, panel_h / fig_h)))
            if colorbar:
                cx = x0 + panel_width + _CBAR_PAD
                caxes.append(fig.add_axes((cx / fig_w, y0 / fig_h, _CBAR_WIDTH / fig_w, panel_h / fig_h)))
    fig._diffim_suptitle_y = 1.0 - 0.12 / fig_h  # type: ignore[attr-defined]
    return fig, axes, caxes


def _keep_windows_open() -> None:
    import matplotlib.pyplot as plt

    plt.show()


def finish_figure(fig: Figure, ctx: DisplayContext, name: str, title: str, *, description: str = "") -> Path:
    """Number, title and save a figure as ``<display_dir>/<frame>_<name>.png``; add it to the report.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The drawn figure.
    ctx : DisplayContext
        The caller (for the report) and options (dpi, windows).
    name : str
        File-name part (``[A-Za-z0-9_-]``).
    title : str
        Figure title (the frame number is prepended).
    description : str, optional
        What the figure shows, for the report.

    Returns
    -------
    pathlib.Path
        The PNG file.
    """
    from diffim.framework.debug import display_dir

    from . import report

    frame = take_frame()
    top = getattr(fig, "_diffim_suptitle_y", None)  # figures without a layout engine place it themselves
    if top is None:
        fig.suptitle(f"[{frame}] {title}", fontsize=12, fontweight="bold")
    else:
        fig.suptitle(f"[{frame}] {title}", fontsize=12, fontweight="bold", y=top, va="top")
    folder = display_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{frame:03d}_{name}.png"
    # write then rename: a browser reloading index.html never sees half a PNG
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=ctx.options.dpi, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    report.add_figure(folder, path, frame=frame, title=title, description=description, ctx=ctx)
    if ctx.options.interactive and _gui_available():
        import matplotlib.pyplot as plt

        manager = getattr(fig.canvas, "manager", None)
        if manager is not None:
            manager.set_window_title(f"diffim frame {frame}: {title}")
        plt.show(block=False)
        plt.pause(0.001)
        if not _gui_state["keep_registered"]:  # LSST's keepPlots: windows stay until closed at exit
            atexit.register(_keep_windows_open)
            _gui_state["keep_registered"] = True
    return path


# ------------------------------------------------------------------------------- images


def image_arrays(data: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[int, int]]:
    """``(image, mask, variance, xy0)`` of an Exposure, MaskedImage, Image or array."""
    masked = getattr(data, "maskedImage", None)
    if masked is not None and not callable(masked):
        data = masked
    if hasattr(data, "image") and hasattr(data, "mask"):
        xy0 = tuple(data.getXY0())
        variance = getattr(data, "variance", None)
        return (np.asarray(data.image.array, dtype=float), np.asarray(data.mask.array),
                None if variance is None else np.asarray(variance.array, dtype=float), (int(xy0[0]), int(xy0[1])))
    if hasattr(data, "array"):
        xy0 = tuple(data.getXY0()) if hasattr(data, "getXY0") else (0, 0)
        return np.asarray(data.array, dtype=float), None, None, (int(xy0[0]), int(xy0[1]))
    return np.asarray(data, dtype=float), None, None, (0, 0)


def image_norm(values: np.ndarray, stretch: str = "asinh", *, vmin: float | None = None,
               vmax: float | None = None) -> Any:
    """An astropy `ImageNormalize`: ZScale limits (unless given) and an asinh or linear stretch."""
    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch, ZScaleInterval

    if vmin is None or vmax is None:
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = (float(v) for v in ZScaleInterval().get_limits(finite))
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    if not vmax > vmin:
        vmax = vmin + (abs(vmin) if vmin else 1.0)
    # a = 0.3: sky (about a third of the way up a zscale range) stays mid-grey, cores are not flat
    stretch_object = AsinhStretch(0.3) if stretch == "asinh" else LinearStretch()
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=stretch_object, clip=False)


def colormap(name: str, bad: str = NAN_COLOR) -> Any:
    """A copy of matplotlib's colour map ``name`` drawing NaN pixels in ``bad``."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=bad)


def _plane_colors() -> list[tuple[str, int, str]]:
    """``(name, bit mask, colour)`` of every registered mask plane, in bit order."""
    from diffim.tasks.image import mask_planes

    extra = iter(_EXTRA_COLORS * 4)
    planes = []
    for plane in mask_planes:
        color = MASK_COLORS.get(plane.name) or next(extra, "white")
        planes.append((plane.name, int(plane.bitmask), color))
    return planes


def has_mask_planes(data: Any) -> bool:
    """Whether ``data`` has a mask plane set or a NaN pixel (so a legend will be drawn)."""
    image, mask, _, _ = image_arrays(data)
    return (mask is not None and bool(mask.any())) or not bool(np.isfinite(image).all())


def mask_overlay(mask: np.ndarray, transparency: float) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """RGBA (uint8) overlay of the set mask planes (later bits on top) and ``[(plane, colour)]`` drawn."""
    from matplotlib.colors import to_rgba

    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)  # a quarter of float32's memory on big images
    alpha = 1.0 - transparency / 100.0
    drawn = []
    if alpha <= 0.0:
        return rgba, drawn
    for name, bits, color in _plane_colors():
        where = (mask & bits) != 0
        if where.any():
            rgba[where] = [round(255 * c) for c in (*to_rgba(color)[:3], alpha)]
            drawn.append((name, color))
    return rgba, drawn


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor × factor`` blocks (NaN-aware; a partial last row/column is dropped)."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(blocks, axis=(1, 3))


def bin_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """Bitwise OR of ``factor × factor`` blocks (a partial last row/column is dropped)."""
    h, w = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    blocks = mask[:h, :w].reshape(h // factor, factor, w // factor, factor)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)


def show_image(ax: Axes, data: Any, *, ctx: DisplayContext, title: str, stretch: str = "asinh",
               show_mask: bool = True, cax: Axes | None = None, cmap: str = "gray",
               units: str = "counts") -> list[tuple[str, str]]:
    """Draw an image panel in parent pixel coordinates; return the legend entries (planes, NaN).

    Images larger than `MAX_DISPLAY_PIXELS` on a side are binned for display.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    data : Exposure, MaskedImage, Image or numpy.ndarray
        The image (its mask is overlaid when it has one).
    ctx : DisplayContext
        For ``maskTransparency``.
    title : str
        Panel title.
    stretch : {"asinh", "linear"}
        Stretch within the ZScale limits.
    show_mask : bool
        Overlay the mask planes.
    cax : matplotlib.axes.Axes, optional
        Where to draw the colour bar (labelled ``units``); none without it.
    cmap : str
        Colour map of the pixel values.
    units : str
        Colour bar label.
    """
    image, mask, _, (x0, y0) = image_arrays(data)
    factor = max(1, math.ceil(max(image.shape) / MAX_DISPLAY_PIXELS))
    if factor > 1:  # a big image: bin it for display (mean of pixels, OR of mask bits)
        image, mask = bin_image(image, factor), None if mask is None else bin_mask(mask, factor)
        title = f"{title} (binned {factor}×{factor})".strip()
    height, width = image.shape[0] * factor, image.shape[1] * factor
    extent = (x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5)
    norm = image_norm(image, stretch)
    shown = ax.imshow(image, origin="lower", extent=extent, norm=norm, cmap=colormap(cmap), interpolation="nearest")
    drawn: list[tuple[str, str]] = []
    if not np.isfinite(image).all():
        drawn.append((NAN_LABEL, NAN_COLOR))
    if show_mask and mask is not None and mask.any():
        rgba, planes = mask_overlay(mask, ctx.maskTransparency)
        if planes:
            ax.imshow(rgba, origin="lower", extent=extent, interpolation="nearest")
            drawn += planes
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    if cax is not None:
        add_colorbar(shown, cax, f"{units} ({'asinh' if stretch == 'asinh' else 'linear'} zscale)")
    return drawn


def add_colorbar(mappable: Any, cax: Axes, label: str) -> Any:
    """A colour bar for ``mappable`` in ``cax``, labelled."""
    bar = cax.figure.colorbar(mappable, cax=cax)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def mask_legend(fig: Figure, drawn: Iterable[tuple[str, str]], transparency: float) -> None:
    """One figure-level legend for the mask planes overlaid in any panel."""
    from matplotlib.patches import Patch

    unique = dict(drawn)
    if not unique:
        return
    handles = [Patch(facecolor=color, edgecolor="black", label=name) for name, color in unique.items()]
    placement = {"loc": "outside lower center"} if fig.get_layout_engine() is not None else {
        "loc": "lower center", "bbox_to_anchor": (0.5, 0.0)}
    fig.legend(handles=handles, ncols=min(len(handles), 6), fontsize=8, frameon=False,
               title=f"mask planes (transparency {transparency:g} %)", title_fontsize=8, **placement)


# ------------------------------------------------------------------------------- mosaics


def mosaic(tiles: Sequence[np.ndarray], ncols: int, *, gutter: int = 4,
           fill: float = math.nan) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Lay tiles out in reading order (first at the top left) for an ``origin="lower"`` display.

    Parameters
    ----------
    tiles : sequence of 2-D arrays
        The tiles (sizes may differ: each is centred in a slot of the largest size).
    ncols : int
        Tiles per row.
    gutter : int
        Pixels between slots (filled with ``fill``).
    fill : float
        Value of the gutters and of slot padding.

    Returns
    -------
    image : numpy.ndarray
        The mosaic.
    boxes : list of (x0, y0, width, height)
        Where each tile went (array column/row of its lower-left pixel, and its size).
    """
    if not tiles:
        return np.full((1, 1), fill), []
    ncols = max(1, min(int(ncols), len(tiles)))
    nrows = math.ceil(len(tiles) / ncols)
    slot_h = max(t.shape[0] for t in tiles)
    slot_w = max(t.shape[1] for t in tiles)
    out = np.full((nrows * slot_h + (nrows - 1) * gutter, ncols * slot_w + (ncols - 1) * gutter), fill)
    boxes = []
    for index, tile in enumerate(tiles):
        row, col = divmod(index, ncols)
        h, w = tile.shape
        y0 = (nrows - 1 - row) * (slot_h + gutter) + (slot_h - h) // 2
        x0 = col * (slot_w + gutter) + (slot_w - w) // 2
        out[y0:y0 + h, x0:x0 + w] = tile
        boxes.append((x0, y0, w, h))
    return out, boxes


def grid_columns(n: int, tile_w: float, tile_h: float, *, aspect: float = 4.0 / 3.0) -> int:
    """Columns for ``n`` tiles of the given size so that the mosaic is about ``aspect`` wide/high."""
    if n <= 0:
        return 1
    cols = math.ceil(math.sqrt(n * aspect * tile_h / max(tile_w, 1.0)))
    return max(1, min(cols, n))


def no_data(ax: Axes, message: str) -> None:
    """Write ``message`` in an empty panel (a display asked for has nothing to show)."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, transform=ax.transAxes, wrap=True)
