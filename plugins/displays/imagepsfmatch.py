"""Displays of image matching and subtraction (module ``diffim.tasks.imagePsfMatch``).

* `displayTemplate` — stage ``"imagePsfMatch.template"``: the image to convolve.
* `displaySciIm` — stage ``"imagePsfMatch.science"``: the image not convolved.
* `displaySpatialCells` — stage ``"imagePsfMatch.cells"``: the kernel spatial cells and their
  candidates over the image not convolved (`showKernelSpatialCells`).
* `displayDiffIm` — stage ``"imagePsfMatch.difference"``: template, matched image, science and
  difference side by side (``subtractExposures``), or the difference alone
  (``subtractMaskedImages``, "Subtracted masked image").
"""

from __future__ import annotations

from typing import Any

from .render import (
    DisplayContext,
    finish_figure,
    has_mask_planes,
    image_arrays,
    image_panels,
    mask_legend,
    show_image,
)

__all__ = [
    "CANDIDATE_COLORS",
    "displayDiffIm",
    "displaySciIm",
    "displaySpatialCells",
    "displayTemplate",
    "showKernelSpatialCells",
]

#: Marker colour by candidate status (LSST: GOOD cyan, unused yellow, BAD red).
CANDIDATE_COLORS = {"GOOD": "cyan", "UNKNOWN": "yellow", "BAD": "red"}
_CELL_COLOR = "orange"
_CHI2_MAX = 1e100


def _context(ctx: DisplayContext | None) -> DisplayContext:
    return DisplayContext() if ctx is None else ctx


def _image_figure(image: Any, ctx: DisplayContext, name: str, title: str, description: str) -> Any:
    pixels = image_arrays(image)[0]
    fig, (ax,), (cax,) = image_panels(ctx, 1, 1, pixels.shape[1], pixels.shape[0], legend=has_mask_planes(image))
    drawn = show_image(ax, image, ctx=ctx, title=f"{pixels.shape[1]}×{pixels.shape[0]} pixels", cax=cax)
    mask_legend(fig, drawn, ctx.maskTransparency)
    return finish_figure(fig, ctx, name, title, description=description)


def displayTemplate(image: Any, *, title: str = "Image to convolve", ctx: DisplayContext | None = None) -> Any:  # noqa: N802
    """Draw the image to be convolved (usually the template).

    Parameters
    ----------
    image : MaskedImage or Exposure
        The image (mask planes overlaid).
    title : str, optional
        Figure title.
    ctx : DisplayContext, optional
        Caller and flags (``maskTransparency``).

    Returns
    -------
    pathlib.Path
        The PNG file.
    """
    return _image_figure(image, _context(ctx), "template", title,
                         "The image the PSF-matching kernel convolves (usually the template).")


def displaySciIm(image: Any, *, title: str = "Image to not convolve", ctx: DisplayContext | None = None) -> Any:  # noqa: N802
    """Draw the image that is not convolved (usually the science image); see `displayTemplate`."""
    return _image_figure(image, _context(ctx), "science", title,
                         "The image the convolved one is matched to (usually the science image).")


def _status(candidate: Any) -> str:
    status = getattr(candidate.getStatus(), "name", str(candidate.getStatus()))
    return status if status in CANDIDATE_COLORS else "UNKNOWN"


def showKernelSpatialCells(maskedImage: Any, cellSet: Any, *, ctx: DisplayContext | None = None,  # noqa: N802, N803
                           title: str = "Kernel spatial cells", name: str = "spatial_cells",
                           showChi2: bool = True, description: str = "") -> Any:  # noqa: N803
    """Draw an image with the spatial cells and each kernel candidate coloured by status.

    GOOD candidates are cyan, not (yet) used ones yellow, BAD ones red; each is labelled with its
    id and, once fitted and with ``showChi2``, its chi².

    Returns
    -------
    pathlib.Path
        The PNG file.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    ctx = _context(ctx)
    pixels = image_arrays(maskedImage)[0]
    fig, (ax,), (cax,) = image_panels(ctx, 1, 1, pixels.shape[1], pixels.shape[0], panel_width=6.5,
                                      legend=has_mask_planes(maskedImage))
    drawn = show_image(ax, maskedImage, ctx=ctx, title="", cax=cax)
    for cell in cellSet.getCellList():
        box = cell.getBBox()
        ax.add_patch(Rectangle((box.minX - 0.5, box.minY - 0.5), box.width, box.height, fill=False,
                               edgecolor=_CELL_COLOR, linewidth=0.8, linestyle="--"))
    counts = dict.fromkeys(CANDIDATE_COLORS, 0)
    for candidate in cellSet.candidates(include_bad=True):
        status = _status(candidate)
        counts[status] += 1
        color = CANDIDATE_COLORS[status]
        x, y = candidate.getXCenter(), candidate.getYCenter()
        ax.plot([x], [y], marker="o", markersize=11, markerfacecolor="none", markeredgecolor=color, mew=1.4)
        label = str(candidate.getId())
        chi2 = float(candidate.getChi2()) if hasattr(candidate, "getChi2") else float("inf")
        if showChi2 and chi2 < _CHI2_MAX:
            label += f" {chi2:.2f}"
        ax.annotate(label, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=7, color=color,
                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5, "edgecolor": "none"})
    n_cells = len(cellSet.getCellList())
    labels = "id and chi² once fitted" if showChi2 else "id"
    ax.set_title(f"{n_cells} spatial cells (dashed); kernel candidates labelled with their {labels}", fontsize=9)
    handles = [Line2D([], [], marker="o", linestyle="none", markerfacecolor="none", markeredgecolor=c,
                      label=f"{s} ({counts[s]})") for s, c in CANDIDATE_COLORS.items()]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.7)
    mask_legend(fig, drawn, ctx.maskTransparency)
    return finish_figure(fig, ctx, name, title, description=description or
                         "Kernel candidates in their spatial cells: GOOD cyan, unused yellow, BAD red.")


def displaySpatialCells(maskedImage: Any, cellSet: Any, *, ctx: DisplayContext | None = None) -> Any:  # noqa: N802, N803
    """Draw the kernel spatial cells and candidates over the image not convolved."""
    return showKernelSpatialCells(maskedImage, cellSet, ctx=ctx, title="Image to not convolve: kernel spatial cells",
                                  name="spatial_cells")


def displayDiffIm(difference: Any, *, template: Any = None, science: Any = None, matchedTemplate: Any = None,  # noqa: N802, N803
                  matchedScience: Any = None, title: str | None = None,  # noqa: N803
                  ctx: DisplayContext | None = None) -> Any:
    """Draw the difference image, next to the images it came from when given.

    Parameters
    ----------
    difference : Exposure or MaskedImage
        The difference image (linear stretch).
    template, science : Exposure or MaskedImage, optional
        The (warped) template and the science image.
    matchedTemplate, matchedScience : Exposure or MaskedImage, optional
        The convolved image (whichever was convolved).
    title : str, optional
        Figure title (default "Difference image" or "Subtracted masked image" when alone).
    ctx : DisplayContext, optional
        Caller and flags.

    Returns
    -------
    pathlib.Path
        The PNG file.
    """
    ctx = _context(ctx)
    panels = [(data, label, "asinh") for data, label in (
        (template, "Template"), (matchedTemplate, "Matched template"), (matchedScience, "Matched science"),
        (science, "Science Image")) if data is not None]
    panels.append((difference, "Difference Image", "linear"))
    pixels = image_arrays(difference)[0]
    cols = 1 if len(panels) == 1 else 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes, caxes = image_panels(ctx, rows, cols, pixels.shape[1], pixels.shape[0],
                                    panel_width=5.5 if cols == 1 else 4.2,
                                    legend=any(has_mask_planes(data) for data, _, _ in panels))
    for ax, cax in list(zip(axes, caxes))[len(panels):]:
        ax.set_axis_off()
        cax.set_axis_off()
    drawn: list[tuple[str, str]] = []
    for ax, cax, (data, label, stretch) in zip(axes, caxes, panels):
        drawn += show_image(ax, data, ctx=ctx, title=label, stretch=stretch, cax=cax)
    mask_legend(fig, drawn, ctx.maskTransparency)
    default = "Difference image" if len(panels) > 1 else "Subtracted masked image"
    return finish_figure(fig, ctx, "difference", title or default,
                         description="The difference image (linear zscale) and the images it was made from.")
