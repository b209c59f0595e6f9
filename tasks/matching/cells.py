"""Spatial cells of kernel candidates (afw's ``SpatialCell`` / ``SpatialCellSet``).

The image is cut into cells; each cell keeps its candidates sorted by descending rating and
visitors see at most the best ``nMaxPerCell`` non-BAD ones, so one bright star per region
drives the kernel fit and a rejected candidate is replaced by the next best of its cell.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import Any, Protocol

from ..image.geom import Box2I

__all__ = ["CandidateVisitor", "SpatialCell", "SpatialCellSet", "CellOutOfRangeError"]


class CellOutOfRangeError(ValueError):
    """A candidate lies outside every cell of the set."""


class _Candidate(Protocol):
    def getXCenter(self) -> float: ...  # noqa: N802, E704
    def getYCenter(self) -> float: ...  # noqa: N802, E704
    def getCandidateRating(self) -> float: ...  # noqa: N802, E704
    def isBad(self) -> bool: ...  # noqa: N802, E704


class CandidateVisitor:
    """Base class of the candidate visitors run by :meth:`SpatialCellSet.visitCandidates`."""

    def reset(self) -> None:
        """Called once before a visit of the whole cell set."""

    def processCandidate(self, candidate: Any) -> None:  # noqa: N802 - LSST name
        """Called for each visited candidate."""
        raise NotImplementedError  # pragma: no cover - abstract


class SpatialCell:
    """One cell: a box and its candidates in descending rating order."""

    def __init__(self, label: str, bbox: Box2I) -> None:
        self.label = label
        self.bbox = bbox
        self._candidates: list[Any] = []
        self._keys: list[float] = []  # negated ratings, ascending, for bisect

    def getLabel(self) -> str:  # noqa: N802 - LSST name
        return self.label

    def getBBox(self) -> Box2I:  # noqa: N802 - LSST name
        return self.bbox

    def insertCandidate(self, candidate: _Candidate) -> None:  # noqa: N802 - LSST name
        """Insert keeping descending rating order (equal ratings keep insertion order)."""
        key = -float(candidate.getCandidateRating())
        index = bisect.bisect_right(self._keys, key)
        self._keys.insert(index, key)
        self._candidates.insert(index, candidate)

    def candidates(self, *, include_bad: bool = False) -> Iterator[Any]:
        """Candidates in rating order; BAD ones are skipped (checked lazily) unless asked for."""
        for candidate in list(self._candidates):
            if include_bad or not candidate.isBad():
                yield candidate

    def __iter__(self) -> Iterator[Any]:
        return self.candidates()

    def empty(self) -> bool:
        """True when the cell has no non-BAD candidate."""
        return next(self.candidates(), None) is None

    def size(self) -> int:
        """Number of candidates, BAD ones included."""
        return len(self._candidates)

    def __len__(self) -> int:
        return len(self._candidates)

    def __repr__(self) -> str:
        return f"SpatialCell({self.label!r}, {self.bbox}, {len(self._candidates)} candidates)"


class SpatialCellSet:
    """A grid of :class:`SpatialCell` over a region.

    Parameters
    ----------
    region : Box2I
        The area covered.
    xSize, ySize : int
        Cell size in pixels; the last column and row take what is left (smaller cells).
    """

    def __init__(self, region: Box2I, xSize: int, ySize: int) -> None:  # noqa: N803 - LSST names
        if xSize < 1 or ySize < 1:
            msg = f"cell sizes must be >= 1 pixel, got {xSize}x{ySize}"
            raise ValueError(msg)
        if region.isEmpty():
            msg = f"cannot make spatial cells over an empty region {region}"
            raise ValueError(msg)
        self.region = region
        self.nx = math.ceil(region.width / xSize)
        self.ny = math.ceil(region.height / ySize)
        self._xsize, self._ysize = int(xSize), int(ySize)
        self._cells: list[SpatialCell] = []
        for iy in range(self.ny):
            for ix in range(self.nx):
                x0 = region.minX + ix * xSize
                y0 = region.minY + iy * ySize
                x1 = min(x0 + xSize - 1, region.maxX)
                y1 = min(y0 + ySize - 1, region.maxY)
                self._cells.append(SpatialCell(f"Cell {ix}x{iy}", Box2I.from_corners((x0, y0), (x1, y1))))

    def getBBox(self) -> Box2I:  # noqa: N802 - LSST name
        return self.region

    def getCellList(self) -> list[SpatialCell]:  # noqa: N802 - LSST name
        return list(self._cells)

    def __iter__(self) -> Iterator[SpatialCell]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)

    def insertCandidate(self, candidate: _Candidate) -> SpatialCell:  # noqa: N802 - LSST name
        """Put a candidate in the cell containing its centre (rounded to the nearest pixel)."""
        x = math.floor(candidate.getXCenter() + 0.5)
        y = math.floor(candidate.getYCenter() + 0.5)
        if not self.region.contains((x, y)):
            msg = f"candidate at ({candidate.getXCenter()}, {candidate.getYCenter()}) is outside the cell set {self.region}"
            raise CellOutOfRangeError(msg)
        ix = (x - self.region.minX) // self._xsize
        iy = (y - self.region.minY) // self._ysize
        cell = self._cells[iy * self.nx + ix]
        cell.insertCandidate(candidate)
        return cell

    def candidates(self, *, include_bad: bool = True) -> Iterator[Any]:
        """Every candidate of every cell (BAD ones included by default)."""
        for cell in self._cells:
            yield from cell.candidates(include_bad=include_bad)

    def visitCandidates(  # noqa: N802 - LSST name
        self, visitor: CandidateVisitor, nMaxPerCell: int = -1, ignoreExceptions: bool = False  # noqa: N803
    ) -> None:
        """Call ``visitor.processCandidate`` on the best ``nMaxPerCell`` non-BAD candidates of each cell.

        ``visitor.reset()`` is called once first. A candidate that turns BAD during its visit still
        counts toward the limit; with ``ignoreExceptions`` an exception from the visitor is
        swallowed and that candidate does not count. ``nMaxPerCell <= 0`` visits all.
        """
        visitor.reset()
        for cell in self._cells:
            visited = 0
            for candidate in cell.candidates():
                if 0 < nMaxPerCell <= visited:
                    break
                try:
                    visitor.processCandidate(candidate)
                except Exception:
                    if not ignoreExceptions:
                        raise
                    continue
                visited += 1

    def visitAllCandidates(self, visitor: CandidateVisitor, ignoreExceptions: bool = False) -> None:  # noqa: N802, N803
        """Visit every candidate, BAD ones included."""
        visitor.reset()
        for candidate in self.candidates(include_bad=True):
            try:
                visitor.processCandidate(candidate)
            except Exception:
                if not ignoreExceptions:
                    raise

    def allEmpty(self) -> bool:  # noqa: N802
        """True when no cell has a non-BAD candidate."""
        return all(cell.empty() for cell in self._cells)

    def __repr__(self) -> str:
        return f"SpatialCellSet({self.region}, {self.nx}x{self.ny} cells)"
