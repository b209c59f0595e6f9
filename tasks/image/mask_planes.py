"""Named mask bit planes, in LSST's default order; plugins add planes by name.

Config fields and user code refer to planes by *name* only; bits are an implementation detail
fixed by the order planes are registered. A file written with another name -> bit map is
remapped to this registry when read.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["MaskPlane", "MaskPlaneRegistry", "DEFAULT_MASK_PLANES", "MAX_MASK_PLANES", "mask_planes"]

#: Bits available in the int32 mask (the sign bit is left unused).
MAX_MASK_PLANES = 31

#: LSST's default planes, in LSST's bit order.
DEFAULT_MASK_PLANES: tuple[tuple[str, str], ...] = (
    ("BAD", "Bad pixel in the detector (e.g. a bad column)."),
    ("SAT", "Saturated pixel, or one whose value is unreliable because of saturation."),
    ("INTRP", "Pixel value was interpolated over."),
    ("CR", "Pixel affected by a cosmic ray."),
    ("EDGE", "Pixel near the image edge, e.g. not fully covered by a convolution kernel."),
    ("DETECTED", "Pixel in a footprint of a source detected above threshold."),
    ("DETECTED_NEGATIVE", "Pixel in a footprint of a negative source detected below -threshold."),
    ("SUSPECT", "Pixel whose value is suspect (e.g. close to saturation or non-linear)."),
    ("NO_DATA", "No usable data (e.g. NaN, outside the exposure, or beyond a kernel's reach)."),
)


@dataclass(frozen=True)
class MaskPlane:
    """One registered plane: its name, bit index and meaning."""

    name: str
    bit: int
    doc: str

    @property
    def bitmask(self) -> int:
        """``1 << bit``."""
        return 1 << self.bit


class MaskPlaneRegistry:
    """Name -> bit of every mask plane known to this process.

    Parameters
    ----------
    defaults : iterable of (name, doc)
        Planes registered first, in order.
    populate : callable, optional
        Called once, on first use, to let plugins add their planes
        (diffim calls the ``diffim_add_mask_planes`` hook here).
    """

    def __init__(
        self,
        defaults: Iterable[tuple[str, str]] = DEFAULT_MASK_PLANES,
        *,
        populate: Callable[[MaskPlaneRegistry], None] | None = None,
    ) -> None:
        self._planes: dict[str, MaskPlane] = {}
        self._lock = threading.RLock()
        for name, doc in defaults:
            self._add(name, doc)
        self._populate = populate
        self._populated = populate is None

    def _ensure(self) -> None:
        if not self._populated:
            with self._lock:
                if not self._populated:
                    self._populated = True
                    assert self._populate is not None
                    self._populate(self)

    def _add(self, name: str, doc: str) -> MaskPlane:
        if not isinstance(name, str) or not name or not name.replace("_", "").isalnum() or name.upper() != name:
            msg = f"invalid mask plane name {name!r}: use UPPER_CASE letters, digits and underscores"
            raise ValueError(msg)
        plane = self._planes.get(name)
        if plane is not None:
            return plane
        if len(self._planes) >= MAX_MASK_PLANES:
            msg = f"cannot add mask plane {name!r}: all {MAX_MASK_PLANES} bits of the mask are taken"
            raise ValueError(msg)
        plane = self._planes[name] = MaskPlane(name, len(self._planes), doc)
        return plane

    def add(self, name: str, doc: str = "") -> MaskPlane:
        """Register a plane (or return the existing one of that name)."""
        self._ensure()
        with self._lock:
            return self._add(name, doc)

    def __getitem__(self, name: str) -> MaskPlane:
        self._ensure()
        try:
            return self._planes[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._planes), n=3)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            msg = f"unknown mask plane {name!r}; {hint}known planes: {', '.join(self._planes)}"
            raise KeyError(msg) from None

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._planes

    def __iter__(self) -> Iterator[MaskPlane]:
        self._ensure()
        return iter(list(self._planes.values()))

    def __len__(self) -> int:
        self._ensure()
        return len(self._planes)

    def names(self) -> list[str]:
        """Plane names in bit order."""
        return [plane.name for plane in self]

    def bit_dict(self) -> dict[str, int]:
        """Name -> bit index (LSST's ``getMaskPlaneDict()``)."""
        return {plane.name: plane.bit for plane in self}

    def bitmask(self, names: str | Iterable[str]) -> int:
        """OR of the bits of the named planes (LSST's ``getPlaneBitMask``)."""
        if isinstance(names, str):
            names = [names]
        value = 0
        for name in names:
            value |= self[name].bitmask
        return value

    def __repr__(self) -> str:
        return f"MaskPlaneRegistry({', '.join(f'{p.name}={p.bit}' for p in self._planes.values())})"


def _populate_from_plugins(registry: MaskPlaneRegistry) -> None:
    from ..hooks import add_mask_planes

    add_mask_planes(registry)


#: The process-wide registry every Mask uses.
mask_planes = MaskPlaneRegistry(populate=_populate_from_plugins)
