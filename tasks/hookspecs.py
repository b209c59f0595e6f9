"""Hook specifications of the astronomy layer (diffim.tasks).

Registered with the plugin manager through the ``diffim.hookspecs`` entry-point group; plugins
implement them with ``@diffim.framework.plugins.hookimpl``. An implementation may accept any
subset of a hook's arguments; hooks only ever gain arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffim.framework.plugins import hookspec

if TYPE_CHECKING:  # pragma: no cover
    from .image.mask_planes import MaskPlaneRegistry

__all__ = ["diffim_add_mask_planes"]


@hookspec
def diffim_add_mask_planes(registry: MaskPlaneRegistry) -> None:
    """Add mask planes, by name, to the process-wide mask plane registry.

    Called once, the first time any mask plane is looked up. Config fields refer to planes by
    name, so a plugin that flags pixels (e.g. satellite trails) registers its plane here and
    users list it in ``badMaskPlanes``.

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

    .. versionadded:: 0.1
    """
