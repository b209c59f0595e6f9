"""Convolution kernels in afw's conventions.

A kernel of width ``W`` has its centre at index ``ctrX = (W - 1) // 2`` (odd sizes expected);
kernel images are indexed ``[row, column]`` = ``[y, x]``. Convolution with a kernel is afw's
*correlation* (no flip): see :mod:`diffim.tasks.kernel.convolve`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..image.geom import Box2I
from .functions import SpatialFunction

__all__ = [
    "Kernel",
    "FixedKernel",
    "GaussianKernel",
    "DeltaFunctionKernel",
    "LinearCombinationKernel",
    "KernelError",
    "basis_image_stack",
]


class KernelError(ValueError):
    """A kernel cannot be built or used as asked."""


class Kernel:
    """Base class: a ``width`` x ``height`` kernel, possibly varying over the image."""

    def __init__(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            msg = f"kernel dimensions must be >= 1, got {width}x{height}"
            raise KernelError(msg)
        self.width = int(width)
        self.height = int(height)

    # -- geometry ---------------------------------------------------------------------------
    def getWidth(self) -> int:  # noqa: N802 - LSST name
        return self.width

    def getHeight(self) -> int:  # noqa: N802 - LSST name
        return self.height

    def getDimensions(self) -> tuple[int, int]:  # noqa: N802 - LSST name
        return (self.width, self.height)

    def getCtr(self) -> tuple[int, int]:  # noqa: N802 - LSST name
        """Index ``(ctrX, ctrY)`` of the kernel centre."""
        return ((self.width - 1) // 2, (self.height - 1) // 2)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def shrinkBBox(self, bbox: Box2I) -> Box2I:  # noqa: N802 - LSST name
        """The part of ``bbox`` where the kernel fits entirely (valid convolution region)."""
        cx, cy = self.getCtr()
        w = bbox.width - self.width + 1
        h = bbox.height - self.height + 1
        if w < 1 or h < 1:
            msg = f"box {bbox} is smaller than the {self.width}x{self.height} kernel"
            raise KernelError(msg)
        return Box2I((bbox.minX + cx, bbox.minY + cy), (w, h))

    def growBBox(self, bbox: Box2I) -> Box2I:  # noqa: N802 - LSST name
        """The box of input pixels needed to compute ``bbox`` of output."""
        cx, cy = self.getCtr()
        return Box2I((bbox.minX - cx, bbox.minY - cy), (bbox.width + self.width - 1, bbox.height + self.height - 1))

    # -- values -----------------------------------------------------------------------------
    def isSpatiallyVarying(self) -> bool:  # noqa: N802 - LSST name
        return False

    def computeImage(self, x: float = 0.0, y: float = 0.0, *, doNormalize: bool = False) -> np.ndarray:  # noqa: N802, N803
        """The kernel image at parent position ``(x, y)`` (a new float64 array)."""
        image = self._image(x, y)
        if doNormalize:
            total = image.sum()
            if total == 0:
                msg = "cannot normalize a kernel whose sum is 0"
                raise KernelError(msg)
            image = image / total
        return image

    def computeSum(self, x: float = 0.0, y: float = 0.0) -> float:  # noqa: N802
        """Sum of the kernel image at ``(x, y)`` (the photometric scale for a matching kernel)."""
        return float(self._image(x, y).sum())

    def _image(self, x: float, y: float) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract


class FixedKernel(Kernel):
    """A kernel given by an image (afw's ``FixedKernel``)."""

    def __init__(self, image: Any) -> None:
        array = np.array(image, dtype=float)
        if array.ndim != 2:
            msg = f"a kernel image must be 2-D, got shape {array.shape}"
            raise KernelError(msg)
        super().__init__(array.shape[1], array.shape[0])
        self._array = array
        self._array.setflags(write=False)

    @property
    def array(self) -> np.ndarray:
        """The (read-only) kernel image."""
        return self._array

    def _image(self, x: float, y: float) -> np.ndarray:
        return self._array.copy()

    def __repr__(self) -> str:
        return f"FixedKernel({self.width}x{self.height}, sum={self._array.sum():.6g})"


class GaussianKernel(FixedKernel):
    """An elliptical Gaussian sampled at integer offsets (afw's ``AnalyticKernel`` of ``GaussianFunction2``).

    ``A · exp(-p1²/2σ1² - p2²/2σ2²)`` with ``A = 1/(2π σ1 σ2)`` and ``(p1, p2)`` the offsets rotated
    by ``angle`` (radians); not renormalised, so the sampled sum is slightly below 1 for small kernels.
    """

    def __init__(self, width: int, height: int, sigma1: float, sigma2: float | None = None, angle: float = 0.0) -> None:
        sigma2 = sigma1 if sigma2 is None else sigma2
        if not (sigma1 > 0 and sigma2 > 0):
            msg = f"Gaussian kernel sigmas must be > 0, got {sigma1!r}, {sigma2!r}"
            raise KernelError(msg)
        cx, cy = (width - 1) // 2, (height - 1) // 2
        y, x = np.mgrid[-cy : height - cy, -cx : width - cx].astype(float)
        c, s = np.cos(angle), np.sin(angle)
        p1 = c * x + s * y
        p2 = -s * x + c * y
        image = np.exp(-0.5 * (p1 / sigma1) ** 2 - 0.5 * (p2 / sigma2) ** 2) / (2 * np.pi * sigma1 * sigma2)
        super().__init__(image)
        self.sigma1, self.sigma2, self.angle = float(sigma1), float(sigma2), float(angle)


class DeltaFunctionKernel(FixedKernel):
    """1 at pixel ``(x, y)`` of a ``width`` x ``height`` kernel, 0 elsewhere."""

    def __init__(self, width: int, height: int, position: tuple[int, int]) -> None:
        x, y = position
        if not (0 <= x < width and 0 <= y < height):
            msg = f"delta position {position} is outside a {width}x{height} kernel"
            raise KernelError(msg)
        image = np.zeros((height, width))
        image[y, x] = 1.0
        super().__init__(image)
        self.position = (int(x), int(y))


#: Recently stacked bases of fixed kernels, most recent last: ``(kernels, images)``.
_STACKS: list[tuple[tuple[Any, ...], Any]] = []


def cached_by_identity(cache: list[tuple[tuple[Any, ...], Any]], key: tuple[Any, ...],
                       make: Callable[[], Any], kept: int) -> Any:
    """The value cached for ``key`` (compared item by item with ``is``), else ``make()`` cached.

    A small most-recently-used list: kernels and arrays are not hashable by value, and the few
    objects a fit shares (its basis, their stacked images) are what is looked up.
    """
    for i, (cached, value) in enumerate(cache):
        if len(cached) == len(key) and all(a is b for a, b in zip(cached, key)):
            cache.append(cache.pop(i))
            return value
    value = make()
    cache.append((key, value))
    del cache[:-kept]
    return value


def _stack(images: list[np.ndarray]) -> np.ndarray:
    stacked = np.stack(images)
    stacked.setflags(write=False)
    return stacked


def basis_image_stack(basis: Sequence[Kernel]) -> np.ndarray:
    """Basis images stacked as ``(n_basis, height, width)``, read-only.

    A basis of :class:`FixedKernel` objects (immutable images) is stacked once and shared: every
    kernel candidate's solutions and fitted kernels use the same basis, and a private copy each
    (27 images of 21x21 per solution) made up most of a kernel cell set's memory.
    """
    kernels = tuple(basis)
    if all(isinstance(k, FixedKernel) for k in kernels):
        return cached_by_identity(_STACKS, kernels, lambda: _stack([k.array for k in kernels]), kept=8)
    return _stack([k.computeImage() for k in kernels])


class LinearCombinationKernel(Kernel):
    """``K(x, y) = Σ_k a_k(x, y) B_k``: basis kernels with fixed or spatially varying coefficients.

    Parameters
    ----------
    basis : sequence of Kernel
        Fixed (not spatially varying) basis kernels of one size.
    coefficients : sequence of float, optional
        Fixed coefficients (a non-varying kernel).
    spatialFunction : SpatialFunction, optional
        Template of every coefficient's spatial function; its parameters are set per basis with
        :meth:`setSpatialParameters` (shape ``(n_basis, n_terms)``).
    """

    def __init__(
        self,
        basis: Sequence[Kernel],
        coefficients: Any = None,
        *,
        spatialFunction: SpatialFunction | None = None,  # noqa: N803 - LSST name
    ) -> None:
        basis = list(basis)
        if not basis:
            msg = "a LinearCombinationKernel needs at least one basis kernel"
            raise KernelError(msg)
        width, height = basis[0].getDimensions()
        if any(k.getDimensions() != (width, height) for k in basis):
            msg = "basis kernels must all have the same dimensions"
            raise KernelError(msg)
        if any(k.isSpatiallyVarying() for k in basis):
            msg = "basis kernels must not vary spatially"
            raise KernelError(msg)
        super().__init__(width, height)
        self._basis = basis
        self._images = basis_image_stack(basis)
        self._sums = self._images.sum(axis=(1, 2))
        self._function = spatialFunction
        nb = len(basis)
        if spatialFunction is not None:
            if coefficients is not None:
                msg = "give either fixed coefficients or a spatialFunction, not both"
                raise KernelError(msg)
            self._spatial = np.zeros((nb, spatialFunction.getNParameters()))
            self._coefficients = None
        else:
            values = np.zeros(nb) if coefficients is None else np.asarray(coefficients, dtype=float).ravel()
            if values.size != nb:
                msg = f"{nb} basis kernels need {nb} coefficients, got {values.size}"
                raise KernelError(msg)
            self._coefficients = values.copy()
            self._spatial = None

    # -- structure --------------------------------------------------------------------------
    def getKernelList(self) -> list[Kernel]:  # noqa: N802 - LSST name
        return list(self._basis)

    def getNBasisKernels(self) -> int:  # noqa: N802 - LSST name
        return len(self._basis)

    @property
    def basis_images(self) -> np.ndarray:
        """Basis images stacked as ``(n_basis, height, width)`` (read-only)."""
        return self._images

    def isSpatiallyVarying(self) -> bool:  # noqa: N802
        return self._function is not None

    def getSpatialFunction(self) -> SpatialFunction | None:  # noqa: N802
        """The spatial function template (None for fixed coefficients)."""
        return self._function

    def getSpatialFunctionList(self) -> list[SpatialFunction]:  # noqa: N802 - LSST name
        """One spatial function per basis, with its parameters."""
        if self._function is None or self._spatial is None:
            msg = "this kernel has fixed coefficients; use getKernelParameters()"
            raise KernelError(msg)
        return [self._function.copy_with(row) for row in self._spatial]

    # -- parameters -------------------------------------------------------------------------
    def getKernelParameters(self) -> np.ndarray:  # noqa: N802 - LSST name
        """Fixed coefficients (raises for a spatially varying kernel)."""
        if self._coefficients is None:
            msg = "this kernel varies spatially; use getSpatialParameters() or coefficients_at(x, y)"
            raise KernelError(msg)
        return self._coefficients.copy()

    def setKernelParameters(self, coefficients: Any) -> None:  # noqa: N802 - LSST name
        if self._coefficients is None:
            msg = "this kernel varies spatially; use setSpatialParameters()"
            raise KernelError(msg)
        values = np.asarray(coefficients, dtype=float).ravel()
        if values.shape != self._coefficients.shape:
            msg = f"expected {self._coefficients.size} coefficients, got {values.size}"
            raise KernelError(msg)
        self._coefficients = values.copy()

    def getSpatialParameters(self) -> np.ndarray:  # noqa: N802 - LSST name
        """Spatial parameters, shape ``(n_basis, n_terms)``."""
        if self._spatial is None:
            msg = "this kernel has fixed coefficients; use getKernelParameters()"
            raise KernelError(msg)
        return self._spatial.copy()

    def setSpatialParameters(self, params: Any) -> None:  # noqa: N802 - LSST name
        if self._spatial is None:
            msg = "this kernel has fixed coefficients; use setKernelParameters()"
            raise KernelError(msg)
        values = np.asarray(params, dtype=float)
        if values.shape != self._spatial.shape:
            msg = f"spatial parameters must have shape {self._spatial.shape}, got {values.shape}"
            raise KernelError(msg)
        self._spatial = values.copy()

    def getNSpatialParameters(self) -> int:  # noqa: N802 - LSST name
        return 0 if self._spatial is None else self._spatial.shape[1]

    def coefficients_at(self, x: Any, y: Any) -> np.ndarray:
        """Basis coefficients at positions ``(x, y)``: shape ``(*broadcast shape, n_basis)``."""
        if self._spatial is None:
            shape = np.broadcast(np.asarray(x), np.asarray(y)).shape
            return np.broadcast_to(self._coefficients, (*shape, self._coefficients.size)).copy()
        assert self._function is not None
        return self._function.term_values(x, y) @ self._spatial.T

    # -- values -----------------------------------------------------------------------------
    def _image(self, x: float, y: float) -> np.ndarray:
        return np.tensordot(self.coefficients_at(x, y), self._images, axes=1)

    def computeSum(self, x: float = 0.0, y: float = 0.0) -> float:  # noqa: N802
        return float(self.coefficients_at(x, y) @ self._sums)

    def fixed_at(self, x: float, y: float) -> LinearCombinationKernel:
        """A non-varying copy with the coefficients evaluated at ``(x, y)``."""
        return LinearCombinationKernel(self._basis, self.coefficients_at(x, y))

    def __repr__(self) -> str:
        kind = f"spatial {type(self._function).__name__} order {self._function.order}" if self._function else "fixed"
        return f"LinearCombinationKernel({len(self._basis)} bases {self.width}x{self.height}, {kind})"
