"""A debug display: one PNG of the matching kernel per stage, in diffim's display folder.

diffim calls the ``diffim_debug_display`` hook at named stages when the calling module's
``display`` flag is set in a ``debug.py``; this display also needs its own flag,
``exampleKernelPng``, on that module::

    # debug.py
    import diffim.framework.debug as debug

    def DebugInfo(name):
        di = debug.getInfo(name)
        if name == "diffim.tasks.psfMatch":
            di.display = True
            di.exampleKernelPng = True
        return di

    debug.Info = DebugInfo

Stages drawn:

``psfMatch.solve``
    The spatial kernel evaluated on a 3x3 grid across the cell set (how it varies).
``imagePsfMatch.cells``
    Each kept candidate's own kernel (flag on module ``diffim.tasks.imagePsfMatch``).

Each figure takes the next frame number (``diffim.framework.debug.frame``) and is written as
``<frame>_example_kernel_<stage>.png`` into `diffim.framework.debug.display_dir`. matplotlib is
imported only when a figure is drawn, and without pyplot (no GUI backend, thread-safe).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FLAG", "STAGES", "draw_kernels", "show"]

#: The debug flag turning this display on.
FLAG = "exampleKernelPng"

#: Stages this display draws.
STAGES = ("psfMatch.solve", "imagePsfMatch.cells")


def _next_frame() -> int:
    # LSST's lsstDebug.frame convention: read the counter, then advance it for the next display
    from diffim.framework import debug

    frame = int(debug.frame)
    debug.frame = frame + 1
    return frame


def _spatial_grid(data: Mapping[str, Any]) -> tuple[list[np.ndarray], list[str]]:
    kernel, box = data["spatialKernel"], data["cellSet"].getBBox()
    images, labels = [], []
    for fy in (0.0, 0.5, 1.0):
        for fx in (0.0, 0.5, 1.0):
            x = box.minX + fx * (box.width - 1)
            y = box.minY + fy * (box.height - 1)
            images.append(np.asarray(kernel.computeImage(x, y)))
            labels.append(f"({x:.0f}, {y:.0f})")
    # rows of the figure go top to bottom, images bottom to top: show the top row first
    order = [6, 7, 8, 3, 4, 5, 0, 1, 2]
    return [images[i] for i in order], [labels[i] for i in order]


def _candidate_kernels(data: Mapping[str, Any], limit: int = 16) -> tuple[list[np.ndarray], list[str]]:
    images, labels = [], []
    for candidate in data["cellSet"].candidates():
        if not candidate.isInitialized():
            continue
        images.append(np.asarray(candidate.getKernelImage()))
        labels.append(f"#{candidate.getId()} ({candidate.getXCenter():.0f}, {candidate.getYCenter():.0f})")
        if len(images) == limit:
            break
    return images, labels


def _crop(images: list[np.ndarray], fraction: float = 0.01, pad: int = 2) -> list[np.ndarray]:
    """Cut every image to the central square holding all pixels above ``fraction`` of the peak."""
    half = 0
    for image in images:
        cy, cx = (image.shape[0] - 1) // 2, (image.shape[1] - 1) // 2
        ys, xs = np.nonzero(np.abs(image) >= fraction * np.max(np.abs(image)))
        if ys.size:
            half = max(half, int(np.max(np.abs(ys - cy))), int(np.max(np.abs(xs - cx))))
    cropped = []
    for image in images:
        cy, cx = (image.shape[0] - 1) // 2, (image.shape[1] - 1) // 2
        h = min(half + pad, cy, cx)
        cropped.append(image[cy - h : cy + h + 1, cx - h : cx + h + 1])
    return cropped


def draw_kernels(images: list[np.ndarray], labels: list[str], title: str, path: Path) -> Path:
    """Draw kernel images side by side on one colour scale and write them as a PNG.

    The images are cut to the central square where the kernels are non-negligible (1 % of the
    peak), the sums shown are those of the whole images.

    Parameters
    ----------
    images : `list` [`numpy.ndarray`]
        Kernel images (at least one).
    labels : `list` [`str`]
        One label per image.
    title : `str`
        Figure title.
    path : `pathlib.Path`
        PNG file to write (written to a temporary file, then renamed).

    Returns
    -------
    path : `pathlib.Path`
        The PNG written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(len(images), 3 if len(images) == 9 else 4)
    nrows = -(-len(images) // ncols)
    fig = Figure(figsize=(2.2 * ncols + 0.8, 2.2 * nrows + 0.6))
    FigureCanvasAgg(fig)
    sums = [float(image.sum()) for image in images]
    images = _crop(images)
    limit = max(float(np.max(np.abs(image))) for image in images) or 1.0
    axes = fig.subplots(nrows, ncols, squeeze=False)
    shown = None
    for ax, image, label, total in zip(axes.ravel(), images, labels, sums, strict=False):
        shown = ax.imshow(image, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"{label}\nsum {total:.4f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(images):]:
        ax.set_axis_off()
    if shown is not None:
        fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=80, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def show(stage: str, debug: Any, data: Mapping[str, Any]) -> Path | None:
    """Draw the kernel PNG of ``stage`` when ``debug`` has the ``exampleKernelPng`` flag.

    Parameters
    ----------
    stage : `str`
        The hook's stage.
    debug : `~diffim.framework.debug.DebugInfo`
        The calling module's debug flags.
    data : mapping
        The stage's data (``spatialKernel`` and ``cellSet``, or ``cellSet``).

    Returns
    -------
    path : `pathlib.Path` or `None`
        The PNG written, `None` when the flag is off or the stage has no kernel to show.
    """
    if stage not in STAGES or not getattr(debug, FLAG, False):
        return None
    if stage == "psfMatch.solve":
        images, labels = _spatial_grid(data)
        title = "Spatial matching kernel across the image (example plugin)"
    else:
        images, labels = _candidate_kernels(data)
        title = "Kernels of the kept candidates (example plugin)"
    if not images:
        return None
    from diffim.framework.debug import display_dir

    frame = _next_frame()
    name = stage.replace(".", "_")
    return draw_kernels(images, labels, f"[{frame}] {title}", display_dir() / f"{frame:03d}_example_kernel_{name}.png")
