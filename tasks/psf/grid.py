"""A spatially varying PSF: stamps on a rectilinear grid of positions, bilinearly interpolated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .base import Psf
from .errors import PsfError, array_key, check_odd_size
from .image import crop_or_pad

__all__ = ["GridImagePsf", "GridPsf"]


def _axis(name: str, values: Any, n: int) -> np.ndarray:
    """Validate one grid axis: 1-D, ``n`` finite strictly increasing values."""
    try:
        a = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        msg = f"{name} must be a 1-D sequence of numbers, got {values!r}"
        raise PsfError(msg) from None
    if a.ndim != 1 or a.size != n:
        msg = f"{name} must be 1-D with {n} values (one per stamp column/row), got shape {a.shape!r}"
        raise PsfError(msg)
    if not np.isfinite(a).all() or (a.size > 1 and not (np.diff(a) > 0).all()):
        msg = f"{name} must be finite and strictly increasing, got {a.tolist()!r}"
        raise PsfError(msg)
    a.flags.writeable = False
    return a


def _bracket(nodes: np.ndarray, v: float) -> tuple[int, int, float]:
    """Indices ``(i0, i1)`` and weight ``t`` of ``i1`` for ``v`` clamped to the node range."""
    if nodes.size == 1 or v <= nodes[0]:
        return 0, 0, 0.0
    if v >= nodes[-1]:
        last = nodes.size - 1
        return last, last, 0.0
    i1 = int(np.searchsorted(nodes, v, side="right"))
    i0 = i1 - 1
    return i0, i1, float((v - nodes[i0]) / (nodes[i1] - nodes[i0]))


class GridImagePsf(Psf):
    """A spatially varying PSF known as stamps at the nodes of a rectilinear grid.

    Parameters
    ----------
    stamps : array_like
        Shape ``(ny, nx, height, width)``: ``stamps[j, i]`` is the PSF at ``(xs[i], ys[j])``. Odd
        height/width; every stamp finite with a positive sum. Each is normalised to unit sum.
    xs, ys : array_like
        Parent x (column) and y (row) positions of the nodes, 1-D, strictly increasing (regular or not).

    Raises
    ------
    PsfError
        For a wrong shape, an even stamp size, non-finite pixels, a non-positive stamp sum, or node
        positions that are not finite and strictly increasing.

    Notes
    -----
    :meth:`computeImage` blends the four surrounding stamps bilinearly in ``(x, y)`` and renormalises
    to unit sum. Positions outside the grid are clamped to its edge (the nearest edge stamps are used,
    never extrapolated). At a node the stamp itself is returned. Images are cached per position
    (last 32 positions). FWHM and shape are measured on the interpolated image.
    ``GridPsf`` is an alias of this class.
    """

    positionDependent = True

    def __init__(self, stamps: Any, xs: Any, ys: Any) -> None:
        try:
            s = np.array(stamps, dtype=np.float64)
        except (TypeError, ValueError):
            kind = type(stamps).__name__
            msg = f"stamps must be an array of numbers of shape (ny, nx, height, width), got {kind}"
            raise PsfError(msg) from None
        if s.ndim != 4 or 0 in s.shape[:2]:
            msg = f"stamps must have shape (ny, nx, height, width) with ny, nx >= 1, got {s.shape!r}"
            raise PsfError(msg)
        super().__init__(s.shape[3], s.shape[2])  # checks odd sizes
        if not np.isfinite(s).all():
            msg = f"stamps hold {int((~np.isfinite(s)).sum())} non-finite (NaN/inf) pixels; replace them first"
            raise PsfError(msg)
        sums = s.sum(axis=(2, 3))
        if not (sums > 0).all():
            j, i = np.argwhere(~(sums > 0))[0]
            msg = f"stamp [{j}, {i}] must have a positive sum, got {float(sums[j, i])!r}"
            raise PsfError(msg)
        s /= sums[:, :, None, None]
        s.flags.writeable = False
        self._stamps = s
        self._xs = _axis("xs", xs, s.shape[1])
        self._ys = _axis("ys", ys, s.shape[0])

    @classmethod
    def from_function(
        cls,
        fn: Callable[[float, float], Psf],
        bbox: Any,
        n: tuple[int, int] = (3, 3),
    ) -> GridImagePsf:
        """Sample a PSF-valued function on an ``nx`` x ``ny`` grid spanning a box.

        Parameters
        ----------
        fn : callable
            ``fn(x, y) -> Psf``; the node stamp is ``fn(x, y).computeImage(x, y)``.
        bbox : Box2I
            Parent box (anything with ``minX``, ``maxX``, ``minY``, ``maxY``); nodes run from edge to
            edge pixel centre (``numpy.linspace(minX, maxX, nx)``), or sit at the centre if ``n`` is 1.
        n : tuple of int, optional
            ``(nx, ny)`` nodes per axis, each >= 1.

        Returns
        -------
        GridImagePsf
            The grid PSF; stamps of different sizes are zero-padded to the largest.
        """
        try:
            nx, ny = (int(v) for v in n)
        except (TypeError, ValueError):
            nx = ny = 0
        if nx < 1 or ny < 1:
            msg = f"n must be a pair of node counts (nx, ny) >= 1, got {n!r}"
            raise PsfError(msg)

        def nodes(lo: float, hi: float, k: int) -> np.ndarray:
            return np.array([0.5 * (lo + hi)]) if k == 1 else np.linspace(lo, hi, k)

        xs = nodes(float(bbox.minX), float(bbox.maxX), nx)
        ys = nodes(float(bbox.minY), float(bbox.maxY), ny)
        images = [[fn(float(x), float(y)).computeImage(float(x), float(y)) for x in xs] for y in ys]
        height = max(im.shape[0] for row in images for im in row)
        width = max(im.shape[1] for row in images for im in row)
        stamps = np.stack([np.stack([crop_or_pad(im, width, height) for im in row]) for row in images])
        return cls(stamps, xs, ys)

    @property
    def stamps(self) -> np.ndarray:
        """Normalised node stamps, shape ``(ny, nx, height, width)`` (read-only)."""
        return self._stamps

    @property
    def xs(self) -> np.ndarray:
        """Node x positions (read-only)."""
        return self._xs

    @property
    def ys(self) -> np.ndarray:
        """Node y positions (read-only)."""
        return self._ys

    def getAveragePosition(self) -> tuple[float, float]:  # noqa: N802 - LSST name
        """Centre of the grid, ``((xs[0] + xs[-1]) / 2, (ys[0] + ys[-1]) / 2)``."""
        return (0.5 * float(self._xs[0] + self._xs[-1]), 0.5 * float(self._ys[0] + self._ys[-1]))

    def _doComputeImage(self, x: float, y: float) -> np.ndarray:  # noqa: N802 - LSST name
        i0, i1, tx = _bracket(self._xs, x)
        j0, j1, ty = _bracket(self._ys, y)
        s = self._stamps
        return (
            (1 - ty) * ((1 - tx) * s[j0, i0] + tx * s[j0, i1])
            + ty * ((1 - tx) * s[j1, i0] + tx * s[j1, i1])
        )

    def resized(self, width: int, height: int) -> GridImagePsf:
        """Every stamp cropped or zero-padded symmetrically to ``width`` x ``height`` (odd), renormalised."""
        width, height = check_odd_size(width, height, "resized PSF")
        return GridImagePsf(crop_or_pad(self._stamps, width, height), self._xs, self._ys)

    def _key(self) -> tuple:
        return (array_key(self._stamps), array_key(self._xs), array_key(self._ys))

    def __repr__(self) -> str:
        ny, nx = self._stamps.shape[:2]
        return (
            f"GridImagePsf(<{nx}x{ny} stamps of {self._width}x{self._height}>, "
            f"x=[{self._xs[0]:g}..{self._xs[-1]:g}], y=[{self._ys[0]:g}..{self._ys[-1]:g}])"
        )


#: Short alias of :class:`GridImagePsf`.
GridPsf = GridImagePsf
