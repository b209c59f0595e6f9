"""Built-in debug displays: the ``diffim_debug_display`` hook, drawn with matplotlib.

The tasks call the hook at named stages when their module's ``display`` flag is set; this
plugin then draws every display whose own flag is set, numbering the figures with
``diffim.framework.debug.frame`` and writing ``<frame>_<name>.png`` files plus an ``index.html``
report into `diffim.framework.debug.display_dir` (``OUTDIR/debug`` under ``diffim run``).

=========================  ===========================  ==========================================
stage                      flag                         drawn by
=========================  ===========================  ==========================================
``psfMatch.solve``         ``displayCandidates``        `psfmatch.displayCandidates` (3 frames)
``psfMatch.solve``         ``displayKernelBasis``       `psfmatch.displayKernelBasis`
``psfMatch.solve``         ``displayKernelMosaic``      `psfmatch.displayKernelMosaic`
``psfMatch.solve``         ``plotKernelSpatialModel``   `psfmatch.plotKernelSpatialModel`
``psfMatch.solve``         ``plotKernelCoefficients``   `psfmatch.plotKernelCoefficients` (3)
``imagePsfMatch.template`` ``displayTemplate``          `imagepsfmatch.displayTemplate`
``imagePsfMatch.science``  ``displaySciIm``             `imagepsfmatch.displaySciIm`
``imagePsfMatch.cells``    ``displaySpatialCells``      `imagepsfmatch.displaySpatialCells`
``imagePsfMatch.difference`` ``displayDiffIm``          `imagepsfmatch.displayDiffIm`
``modelPsfMatch.cells``    ``displaySpatialCells``      `modelpsfmatch.displaySpatialCells`
=========================  ===========================  ==========================================

``maskTransparency`` (percent, 0 opaque; unset: 60) and ``showBadCandidates`` modify them. The
displays' own options are flags of ``diffim.plugins.displays``: ``interactive`` (also open a
window per figure when matplotlib has a GUI backend), ``dpi`` (PNG resolution, 90) and
``maxCoeff`` (most ``plotKernelSpatialModel`` figures, 10).

Import-light: matplotlib, numpy and astropy load only when a display is drawn. A display that
raises is reported once (by name) and skipped; the others and the run go on. Another plugin
(e.g. one sending images to ds9) implements the same hook and needs nothing from here.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from diffim.framework.plugins import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from .render import DisplayContext

__all__ = ["DISPLAYS", "diffim_debug_display", "draw"]

_log = logging.getLogger("diffim.plugins.displays")
_reported: set[str] = set()


def _candidates(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .psfmatch import displayCandidates

    return displayCandidates(data["cellSet"], data["spatialKernel"], data.get("spatialBackground"), ctx=ctx)


def _basis(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .psfmatch import displayKernelBasis

    return displayKernelBasis(data["spatialKernel"], ctx=ctx)


def _mosaic(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .psfmatch import displayKernelMosaic

    return displayKernelMosaic(data["cellSet"].getBBox(), data["spatialKernel"], ctx=ctx)


def _spatial_model(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .psfmatch import plotKernelSpatialModel

    return plotKernelSpatialModel(data["spatialKernel"], data["cellSet"], ctx=ctx)


def _coefficients(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .psfmatch import plotKernelCoefficients

    return plotKernelCoefficients(data["spatialKernel"], data["cellSet"], ctx=ctx)


def _template(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .imagepsfmatch import displayTemplate

    return displayTemplate(data["image"], title=data.get("title") or "Image to convolve", ctx=ctx)


def _science(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .imagepsfmatch import displaySciIm

    return displaySciIm(data["image"], title=data.get("title") or "Image to not convolve", ctx=ctx)


def _cells(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .imagepsfmatch import displaySpatialCells

    return displaySpatialCells(data["maskedImage"], data["cellSet"], ctx=ctx)


def _difference(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .imagepsfmatch import displayDiffIm

    return displayDiffIm(
        data["difference"], template=data.get("template"), science=data.get("science"),
        matchedTemplate=data.get("matchedTemplate"), matchedScience=data.get("matchedScience"),
        title=data.get("title"), ctx=ctx,
    )


def _model_cells(data: Mapping[str, Any], ctx: DisplayContext) -> Any:
    from .modelpsfmatch import displaySpatialCells

    return displaySpatialCells(data["maskedImage"], data["cellSet"], ctx=ctx)


Drawer = Callable[[Mapping[str, Any], "DisplayContext"], Any]

#: stage -> ((flag, drawer), ...) in drawing order (LSST's order within each stage).
DISPLAYS: dict[str, tuple[tuple[str, Drawer], ...]] = {
    "psfMatch.solve": (
        ("displayCandidates", _candidates),
        ("displayKernelBasis", _basis),
        ("displayKernelMosaic", _mosaic),
        ("plotKernelSpatialModel", _spatial_model),
        ("plotKernelCoefficients", _coefficients),
    ),
    "imagePsfMatch.template": (("displayTemplate", _template),),
    "imagePsfMatch.science": (("displaySciIm", _science),),
    "imagePsfMatch.cells": (("displaySpatialCells", _cells),),
    "imagePsfMatch.difference": (("displayDiffIm", _difference),),
    "modelPsfMatch.cells": (("displaySpatialCells", _model_cells),),
}


def draw(stage: str, module: str, debug: Any, task: Any, data: Mapping[str, Any]) -> list[str]:
    """Draw every display of ``stage`` whose flag is set in ``debug``; return the flags drawn.

    A display that raises is logged once per flag (with its name) and skipped.

    Parameters
    ----------
    stage : str
        Hook stage.
    module : str
        Debug name of the calling module.
    debug : DebugInfo
        The module's flags.
    task : Task
        The calling task.
    data : mapping
        The stage's data.

    Returns
    -------
    list of str
        The flags whose display succeeded.
    """
    entries = DISPLAYS.get(stage, ())
    wanted = [(flag, drawer) for flag, drawer in entries if getattr(debug, flag, False)]
    if not wanted:
        return []
    render = importlib.import_module(f"{__name__}.render")
    options = render.DisplayOptions.from_debug()
    done = []
    for flag, drawer in wanted:
        ctx = render.DisplayContext(stage=stage, module=module, task=task, debug=debug, flag=flag, options=options)
        try:
            drawer(data, ctx)
        except Exception as err:  # noqa: BLE001 - a display must never break the run
            key = f"{stage}:{flag}"
            if key not in _reported:
                _reported.add(key)
                _log.warning("debug display %s (%s, stage %s) failed and is skipped: %s: %s", flag, __name__,
                             stage, type(err).__name__, " ".join(str(err).split()), exc_info=_log.isEnabledFor(logging.DEBUG))
            continue
        done.append(flag)
    return done


@hookimpl(tryfirst=True)  # before third-party displays: one of them raising cannot skip these
def diffim_debug_display(stage: str, module: str, debug: Any, task: Any, data: Mapping[str, Any]) -> None:
    """Draw the built-in displays of ``stage`` (see the module docstring)."""
    draw(stage, module, debug, task, data)
