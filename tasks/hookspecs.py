"""Hook specifications of the astronomy layer (diffim.tasks).

Registered with the plugin manager through the ``diffim.hookspecs`` entry-point group; plugins
implement them with ``@diffim.framework.plugins.hookimpl``. An implementation may accept any
subset of a hook's arguments; hooks only ever gain arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffim.framework.plugins import hookspec

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping
    from typing import Any

    from diffim.framework.config import Registry
    from diffim.framework.debug import DebugInfo
    from diffim.framework.task import Task

    from .image.mask_planes import MaskPlaneRegistry

__all__ = [
    "diffim_add_mask_planes",
    "diffim_register_kernel_bases",
    "diffim_register_candidate_visitors",
    "diffim_debug_display",
]


@hookspec
def diffim_add_mask_planes(registry: MaskPlaneRegistry) -> None:
    """Add mask planes, by name, to the process-wide mask plane registry.

    Called once, the first time any mask plane is looked up. Config fields refer to planes by
    name, so a plugin that flags pixels (e.g. satellite trails) registers its plane here and
    users list it in ``badMaskPlanes``.

    .. versionadded:: 0.1

    Parameters
    ----------
    registry : MaskPlaneRegistry
        Call ``registry.add("NAME", "what it means")``; the bit is assigned for you.

    Examples
    --------
    >>> from diffim.framework.plugins import hookimpl
    >>> @hookimpl
    ... def diffim_add_mask_planes(registry):
    ...     registry.add("STREAK", "Pixel on a satellite or meteor trail.")
    """


@hookspec
def diffim_register_kernel_bases(registry: Registry) -> None:
    """Register kernel basis generators; their names are the values of ``kernelBasisSet``.

    Called once, the first time the kernel basis registry is read.

    .. versionadded:: 0.1

    Parameters
    ----------
    registry : diffim.framework.config.Registry
        Call ``registry.register(name, generator, doc=...)``. A generator is called as
        ``generator(config, targetFwhmPix=None, referenceFwhmPix=None, basisDegGauss=None,
        basisSigmaGauss=None, metadata=None)`` and returns a list of fixed basis kernels
        (the first one carrying the kernel sum when the set is renormalised, see
        ``renormalizeKernelList``). ``config`` is the active kernel config (``PsfMatchConfig``).
    """


@hookspec
def diffim_register_candidate_visitors(registry: Registry) -> None:
    """Register candidate visitors by name, or replace a built-in one.

    ``PsfMatchTask._solve`` looks its visitors up by name: ``buildSingleKernel``, ``kernelSum``,
    ``kernelPca``, ``buildSpatialKernel``, ``assessSpatialKernel``. Registering one of these names
    with ``replace=True`` swaps the built-in; other names are QA visitors run at the named points
    listed in ``diffim.tasks.psfMatch`` (see ``qaVisitors`` in the config).

    .. versionadded:: 0.1

    Parameters
    ----------
    registry : diffim.framework.config.Registry
        Call ``registry.register(name, VisitorClass, doc=...)``.
    """


@hookspec
def diffim_debug_display(
    stage: str, module: str, debug: DebugInfo, task: Task, data: Mapping[str, Any]
) -> None:
    """Draw debug displays at a named point of a task, when its module's ``display`` flag is set.

    The tasks call this hook only when ``debug.display`` is true (LSST's gate); each display
    implementation then checks its own flag (e.g. ``debug.displayCandidates``) and uses and
    advances ``diffim.framework.debug.frame`` for each frame it draws. A display that raises is
    reported once, with its name, and the run goes on.

    .. versionadded:: 0.1

    Parameters
    ----------
    stage : str
        Where the task is, e.g. ``"psfMatch.solve"`` (after the spatial kernel fit),
        ``"imagePsfMatch.template"``, ``"imagePsfMatch.science"``, ``"imagePsfMatch.cells"``,
        ``"imagePsfMatch.difference"``, ``"modelPsfMatch.cells"``.
    module : str
        Debug name of the calling module, e.g. ``"diffim.tasks.psfMatch"``.
    debug : DebugInfo
        The module's debug flags (unset flags read as False).
    task : Task
        The calling task (its ``metadata``, ``config`` and ``log`` are available).
    data : mapping
        What the stage offers; for ``"psfMatch.solve"``: ``cellSet``, ``basisList``,
        ``spatialKernel``, ``spatialBackground``, ``spatialSolution``.
    """
