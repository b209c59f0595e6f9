"""The PSF interface, in the habits of LSST's ``afw.detection.Psf``.

Every model returns its kernel image through :meth:`Psf.computeImage`: an odd-sized float64 array,
centred on its central pixel and summing to exactly 1.
"""

from __future__ import annotations

import abc
import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from diffim.tasks.image.geom import Box2I, Extent2I

from .errors import PsfError, check_odd_size
from .measure import Quadrupole, measure_fwhm, measure_shape

__all__ = ["Psf"]


class Psf(abc.ABC):
    """Abstract point-spread function (LSST's ``afw.detection.Psf``).

    Parameters
    ----------
    width, height : int
        Odd size of the kernel images in pixels.

    Notes
    -----
    Subclasses implement :meth:`_doComputeImage` (an unnormalised, centred array of this size at a
    parent position), :meth:`_key` (the parameters, for ``==`` and ``hash``), :meth:`resized` and
    ``__repr__``; they may override :meth:`computeFwhm` and :meth:`computeShape` with analytic values.
    A model's parameters never change after construction (arrays are stored read-only), so
    :meth:`clone` shares them, and kernel images are cached (one per position for spatially varying
    models, thread-safe) and returned as copies.

    Unlike LSST, :meth:`computeImage` returns the *kernel* image: centred on the central pixel of an
    odd-sized array, not shifted to the sub-pixel position of ``(x, y)`` in a parent-coordinate box.
    :meth:`computeKernelImage` is the same method under LSST's name. Positions only select the PSF of a
    spatially varying model.
    """

    #: True when the image depends on the position (so caching is per position).
    positionDependent: bool = False
    #: How many per-position kernel images a position-dependent model keeps.
    _CACHE_SIZE = 32

    def __init__(self, width: int, height: int) -> None:
        self._width, self._height = check_odd_size(width, height)
        self._cache: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # -- subclass interface ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _doComputeImage(self, x: float, y: float) -> np.ndarray:  # noqa: N802 - LSST name
        """Unnormalised kernel image at ``(x, y)``, shape ``(height, width)``, centred."""

    @abc.abstractmethod
    def _key(self) -> tuple:
        """Hashable tuple of everything that defines the model (for ``==`` and ``hash``)."""

    @abc.abstractmethod
    def resized(self, width: int, height: int) -> Psf:
        """This PSF with kernel images of ``width`` x ``height`` pixels, both odd (LSST's ``Psf.resized``)."""

    # -- LSST API --------------------------------------------------------------------------------------
    def getDimensions(self) -> Extent2I:  # noqa: N802 - LSST name
        """Kernel image size ``(width, height)`` in pixels (both odd)."""
        return Extent2I(self._width, self._height)

    @property
    def size(self) -> Extent2I:
        """Kernel image size ``(width, height)``; the numpy shape is ``(height, width)``."""
        return self.getDimensions()

    def computeKernelBBox(self) -> Box2I:  # noqa: N802 - LSST name
        """Box of the kernel image in kernel coordinates, centred on ``(0, 0)``."""
        return Box2I((-(self._width // 2), -(self._height // 2)), (self._width, self._height))

    def getAveragePosition(self) -> tuple[float, float]:  # noqa: N802 - LSST name
        """Position ``(x, y)`` used when none is given; ``(0, 0)`` unless the model says otherwise."""
        return (0.0, 0.0)

    def computeImage(self, x: float | None = None, y: float | None = None) -> np.ndarray:  # noqa: N802
        """Kernel image at parent position ``(x, y)``.

        Parameters
        ----------
        x, y : float or None, optional
            Parent pixel position; both None (default) means :meth:`getAveragePosition`. A point
            ``(x, y)`` (tuple, ``Point2I``...) may be passed as ``x`` alone, as in LSST.

        Returns
        -------
        numpy.ndarray
            New float64 array of shape ``(height, width)`` (odd), centred on its central pixel,
            summing to 1.

        Raises
        ------
        PsfError
            If only one coordinate is given or it is not finite.
        """
        px, py = self._position(x, y)
        key = (round(px, 6), round(py, 6)) if self.positionDependent else None
        with self._lock:
            img = self._cache.get(key)
            if img is not None:
                self._cache.move_to_end(key)
                return img.copy()
        img = np.array(self._doComputeImage(px, py), dtype=np.float64)
        total = img.sum()
        if not (np.isfinite(total) and total > 0):
            msg = f"{type(self).__name__} kernel image at ({px!r}, {py!r}) has non-positive sum {total!r}"
            raise PsfError(msg)
        img /= total
        with self._lock:
            self._cache[key] = img
            if len(self._cache) > self._CACHE_SIZE:
                self._cache.popitem(last=False)
        return img.copy()

    computeKernelImage = computeImage  # noqa: N815 - LSST name

    def computeShape(self, x: float | None = None, y: float | None = None) -> Quadrupole:  # noqa: N802
        """Adaptive second moments of the kernel image at ``(x, y)`` (see :func:`measure_shape`)."""
        return measure_shape(self.computeImage(x, y))

    def computeFwhm(self, x: float | None = None, y: float | None = None) -> float:  # noqa: N802
        """True FWHM of the profile at ``(x, y)`` in pixels, measured on the kernel image.

        See :func:`~diffim.tasks.psf.measure.measure_fwhm`; analytic models override this with the
        value from their parameters.
        """
        return measure_fwhm(self.computeImage(x, y))

    def clone(self) -> Psf:
        """An equal, independent PSF (it shares the immutable parameters and read-only arrays)."""
        new = object.__new__(type(self))
        new.__setstate__(self.__getstate__())
        return new

    # -- helpers ---------------------------------------------------------------------------------------
    def _position(self, x: float | None, y: float | None) -> tuple[float, float]:
        if x is None and y is None:
            return tuple(float(v) for v in self.getAveragePosition())  # type: ignore[return-value]
        if y is None and isinstance(x, tuple | list | np.ndarray) and len(x) == 2:
            x, y = x  # an LSST-style point
        if x is None or y is None:
            msg = f"give both x and y or neither, got x={x!r}, y={y!r}"
            raise PsfError(msg)
        try:
            px, py = float(x), float(y)
        except (TypeError, ValueError):
            px = py = math.nan
        if not (math.isfinite(px) and math.isfinite(py)):
            msg = f"PSF position must be finite numbers, got ({x!r}, {y!r})"
            raise PsfError(msg)
        return px, py

    # -- Python protocol -------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __getstate__(self) -> dict[str, Any]:
        # Cached images are cheap to recompute (and keep pickles small); locks cannot be pickled.
        return {k: v for k, v in self.__dict__.items() if k not in ("_cache", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for value in state.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False  # unpickled arrays come back writeable
        self.__dict__.update(state)
        self._cache = OrderedDict()
        self._lock = threading.Lock()

    def __copy__(self) -> Psf:
        return self.clone()

    def __deepcopy__(self, memo: dict[int, Any]) -> Psf:
        return self.clone()
