"""Integer pixel geometry in LSST's "parent" coordinates: points and inclusive boxes."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Point2I", "Extent2I", "Box2I"]


class Point2I(NamedTuple):
    """An integer pixel position ``(x, y)`` (what ``getXY0()`` returns)."""

    x: int
    y: int


class Extent2I(NamedTuple):
    """An integer size ``(width, height)`` in pixels."""

    x: int
    y: int


class Box2I:
    """An integer pixel box, inclusive of both corners (LSST's ``Box2I``).

    Parameters
    ----------
    minimum : tuple of int
        ``(x, y)`` of the lower-left pixel.
    dimensions : tuple of int
        ``(width, height)`` in pixels; both must be >= 0.

    Notes
    -----
    Pixel centres are integers; the box covers ``minX..maxX`` and ``minY..maxY``.
    A numpy array ``a`` holding the box starting at ``xy0`` is indexed ``a[y - y0, x - x0]``.
    """

    __slots__ = ("_x0", "_y0", "_w", "_h")

    def __init__(self, minimum: tuple[int, int], dimensions: tuple[int, int]) -> None:
        x0, y0 = (int(v) for v in minimum)
        w, h = (int(v) for v in dimensions)
        if w < 0 or h < 0:
            msg = f"box dimensions must be >= 0, got {w}x{h}"
            raise ValueError(msg)
        self._x0, self._y0, self._w, self._h = x0, y0, w, h

    @classmethod
    def from_corners(cls, minimum: tuple[int, int], maximum: tuple[int, int]) -> Box2I:
        """Box from inclusive lower-left and upper-right pixels."""
        return cls(minimum, (int(maximum[0]) - int(minimum[0]) + 1, int(maximum[1]) - int(minimum[1]) + 1))

    @property
    def minX(self) -> int:  # noqa: N802 - LSST name
        return self._x0

    @property
    def minY(self) -> int:  # noqa: N802 - LSST name
        return self._y0

    @property
    def maxX(self) -> int:  # noqa: N802 - LSST name
        return self._x0 + self._w - 1

    @property
    def maxY(self) -> int:  # noqa: N802 - LSST name
        return self._y0 + self._h - 1

    @property
    def width(self) -> int:
        return self._w

    @property
    def height(self) -> int:
        return self._h

    def getMin(self) -> Point2I:  # noqa: N802 - LSST name
        """Lower-left pixel."""
        return Point2I(self._x0, self._y0)

    def getMax(self) -> Point2I:  # noqa: N802 - LSST name
        """Upper-right pixel (inclusive)."""
        return Point2I(self.maxX, self.maxY)

    def getDimensions(self) -> Extent2I:  # noqa: N802 - LSST name
        return Extent2I(self._w, self._h)

    def getWidth(self) -> int:  # noqa: N802 - LSST name
        return self._w

    def getHeight(self) -> int:  # noqa: N802 - LSST name
        return self._h

    def getCenter(self) -> tuple[float, float]:  # noqa: N802 - LSST name
        """Centre ``(x, y)`` in pixel coordinates (a half-integer for even sizes)."""
        return (self._x0 + (self._w - 1) / 2.0, self._y0 + (self._h - 1) / 2.0)

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)``."""
        return (self._h, self._w)

    def isEmpty(self) -> bool:  # noqa: N802 - LSST name
        return self._w == 0 or self._h == 0

    def contains(self, other: Box2I | tuple[int, int]) -> bool:
        """Whether a pixel or a whole box lies inside."""
        if isinstance(other, Box2I):
            return other.isEmpty() or (
                other.minX >= self.minX and other.maxX <= self.maxX
                and other.minY >= self.minY and other.maxY <= self.maxY
            )
        x, y = other
        return self.minX <= x <= self.maxX and self.minY <= y <= self.maxY

    def overlaps(self, other: Box2I) -> bool:
        return not self.clippedTo(other).isEmpty()

    def clippedTo(self, other: Box2I) -> Box2I:  # noqa: N802 - LSST name
        """Intersection (possibly empty)."""
        x0, y0 = max(self.minX, other.minX), max(self.minY, other.minY)
        x1, y1 = min(self.maxX, other.maxX), min(self.maxY, other.maxY)
        if x1 < x0 or y1 < y0:
            return Box2I((x0, y0), (0, 0))
        return Box2I.from_corners((x0, y0), (x1, y1))

    def dilatedBy(self, n: int) -> Box2I:  # noqa: N802 - LSST name
        """Grown by ``n`` pixels on every side (shrunk for negative ``n``)."""
        return Box2I((self._x0 - n, self._y0 - n), (max(self._w + 2 * n, 0), max(self._h + 2 * n, 0)))

    def shiftedBy(self, dx: int, dy: int) -> Box2I:  # noqa: N802 - LSST name
        return Box2I((self._x0 + dx, self._y0 + dy), (self._w, self._h))

    def slices(self, xy0: tuple[int, int] = (0, 0)) -> tuple[slice, slice]:
        """Numpy ``(rows, columns)`` slices selecting this box in an array whose origin is ``xy0``."""
        x0, y0 = xy0
        return (slice(self._y0 - y0, self._y0 - y0 + self._h), slice(self._x0 - x0, self._x0 - x0 + self._w))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Box2I):
            return NotImplemented
        return (self._x0, self._y0, self._w, self._h) == (other._x0, other._y0, other._w, other._h)

    def __hash__(self) -> int:
        return hash((self._x0, self._y0, self._w, self._h))

    def __repr__(self) -> str:
        return f"Box2I(minimum=({self._x0}, {self._y0}), dimensions=({self._w}, {self._h}))"

    def __reduce__(self) -> tuple:
        return (Box2I, ((self._x0, self._y0), (self._w, self._h)))
