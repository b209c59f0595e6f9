"""SpatialCellSet semantics (spec §5): cells, rating order, visiting limits, BAD skipping."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from diffim.tasks.image import Box2I
from diffim.tasks.matching.cells import CandidateVisitor, CellOutOfRangeError, SpatialCellSet


@dataclass(eq=False)
class FakeCandidate:
    x: float
    y: float
    rating: float
    bad: bool = False

    def getXCenter(self) -> float:
        return self.x

    def getYCenter(self) -> float:
        return self.y

    def getCandidateRating(self) -> float:
        return self.rating

    def isBad(self) -> bool:
        return self.bad


class Recorder(CandidateVisitor):
    def __init__(self, make_bad: set[int] | None = None, raise_on: set[int] | None = None) -> None:
        self.seen: list[FakeCandidate] = []
        self.resets = 0
        self.make_bad = make_bad or set()
        self.raise_on = raise_on or set()

    def reset(self) -> None:
        self.resets += 1

    def processCandidate(self, candidate: FakeCandidate) -> None:
        if id(candidate) in self.raise_on:
            raise RuntimeError("fit failed")
        self.seen.append(candidate)
        if id(candidate) in self.make_bad:
            candidate.bad = True


def test_cell_layout_absorbs_remainder() -> None:
    cells = SpatialCellSet(Box2I((10, 20), (300, 200)), 128, 128)
    assert (cells.nx, cells.ny) == (3, 2)
    boxes = [cell.getBBox() for cell in cells]
    assert boxes[0] == Box2I((10, 20), (128, 128))
    assert boxes[2] == Box2I((266, 20), (44, 128))  # last column smaller
    assert boxes[5] == Box2I((266, 148), (44, 72))
    assert [cell.getLabel() for cell in cells][:4] == ["Cell 0x0", "Cell 1x0", "Cell 2x0", "Cell 0x1"]


def test_insert_rounds_to_nearest_pixel_and_rejects_outside() -> None:
    cells = SpatialCellSet(Box2I((0, 0), (256, 256)), 128, 128)
    assert cells.insertCandidate(FakeCandidate(127.4, 0.0, 1.0)).getLabel() == "Cell 0x0"
    assert cells.insertCandidate(FakeCandidate(127.5, 0.0, 1.0)).getLabel() == "Cell 1x0"
    with pytest.raises(CellOutOfRangeError, match="outside the cell set"):
        cells.insertCandidate(FakeCandidate(256.0, 3.0, 1.0))


def test_visit_order_limit_and_bad_skipping() -> None:
    cells = SpatialCellSet(Box2I((0, 0), (100, 100)), 100, 100)
    cands = [FakeCandidate(50, 50, r) for r in (1.0, 5.0, 3.0, 4.0)]
    for c in cands:
        cells.insertCandidate(c)
    visitor = Recorder()
    cells.visitCandidates(visitor, 2)
    assert [c.rating for c in visitor.seen] == [5.0, 4.0] and visitor.resets == 1
    visitor = Recorder(make_bad={id(cands[1])})  # the best turns BAD during its visit: still counts
    cells.visitCandidates(visitor, 2)
    assert [c.rating for c in visitor.seen] == [5.0, 4.0]
    visitor = Recorder()
    cells.visitCandidates(visitor, 2)  # next visit skips it and exposes the next best
    assert [c.rating for c in visitor.seen] == [4.0, 3.0]
    visitor = Recorder()
    cells.visitCandidates(visitor, -1)
    assert [c.rating for c in visitor.seen] == [4.0, 3.0, 1.0]


def test_exceptions_propagate_or_are_ignored_without_counting() -> None:
    cells = SpatialCellSet(Box2I((0, 0), (100, 100)), 100, 100)
    cands = [FakeCandidate(10, 10, r) for r in (3.0, 2.0, 1.0)]
    for c in cands:
        cells.insertCandidate(c)
    with pytest.raises(RuntimeError, match="fit failed"):
        cells.visitCandidates(Recorder(raise_on={id(cands[0])}), 1)
    visitor = Recorder(raise_on={id(cands[0])})
    cells.visitCandidates(visitor, 1, ignoreExceptions=True)
    assert [c.rating for c in visitor.seen] == [2.0]


def test_empty_cells_and_visit_all() -> None:
    cells = SpatialCellSet(Box2I((0, 0), (200, 100)), 100, 100)
    cand = FakeCandidate(10, 10, 1.0, bad=True)
    cells.insertCandidate(cand)
    assert cells.allEmpty() and all(cell.empty() for cell in cells)
    visitor = Recorder()
    cells.visitAllCandidates(visitor)
    assert visitor.seen == [cand]
    assert list(cells.candidates()) == [cand] and list(cells.candidates(include_bad=False)) == []
