"""2-D spatial functions for kernel coefficients and backgrounds (afw's Function2).

Both families order their terms as afw does: ``1, x, y, x², xy, y², x³, x²y, xy², y³, ...``
(total degree ascending; within a degree the power of x descending), ``(n+1)(n+2)/2`` terms for
order ``n``. :class:`Chebyshev1Function2` uses ``T_i(x') T_j(y')`` with coordinates scaled to
``[-1, 1]`` over a box; :class:`PolynomialFunction2` uses raw parent pixel coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.polynomial import chebyshev as _cheb

__all__ = [
    "SpatialFunction",
    "PolynomialFunction2",
    "Chebyshev1Function2",
    "n_terms",
    "term_powers",
    "make_spatial_function",
]


def n_terms(order: int) -> int:
    """Number of terms of a 2-D function of total ``order``."""
    return (order + 1) * (order + 2) // 2


def term_powers(order: int) -> list[tuple[int, int]]:
    """``(x power, y power)`` of each term, in afw order."""
    return [(degree - j, j) for degree in range(order + 1) for j in range(degree + 1)]


class SpatialFunction:
    """A linear combination of 2-D terms with settable parameters.

    Parameters
    ----------
    order : int
        Total order (>= 0).
    parameters : sequence of float, optional
        Initial parameters (default zeros).
    """

    def __init__(self, order: int, parameters: Any = None) -> None:
        if int(order) != order or order < 0:
            msg = f"spatial function order must be an integer >= 0, got {order!r}"
            raise ValueError(msg)
        self.order = int(order)
        self._powers = term_powers(self.order)
        self._params = np.zeros(len(self._powers))
        if parameters is not None:
            self.setParameters(parameters)

    def getNParameters(self) -> int:  # noqa: N802 - LSST name
        return len(self._powers)

    def getParameters(self) -> np.ndarray:  # noqa: N802 - LSST name
        return self._params.copy()

    def setParameters(self, parameters: Any) -> None:  # noqa: N802 - LSST name
        values = np.asarray(parameters, dtype=float).ravel()
        if values.shape != self._params.shape:
            msg = f"{type(self).__name__} of order {self.order} takes {len(self._params)} parameters, got {values.size}"
            raise ValueError(msg)
        self._params = values.copy()

    def term_values(self, x: Any, y: Any) -> np.ndarray:
        """Value of every term at positions ``(x, y)``: shape ``(*broadcast(x, y).shape, n_terms)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __call__(self, x: Any, y: Any) -> Any:
        values = self.term_values(x, y) @ self._params
        return float(values) if np.ndim(values) == 0 else values

    def copy_with(self, parameters: Any) -> SpatialFunction:
        """A function of the same kind and domain with other parameters."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.order == other.order and np.array_equal(self._params, other._params) and self._domain() == other._domain()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def _domain(self) -> tuple[float, ...]:
        return ()


class PolynomialFunction2(SpatialFunction):
    """``Σ p_k x^i y^j`` in parent pixel coordinates (afw's ``PolynomialFunction2``)."""

    def term_values(self, x: Any, y: Any) -> np.ndarray:
        x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        xp = [np.ones_like(x)]
        yp = [np.ones_like(y)]
        for _ in range(self.order):
            xp.append(xp[-1] * x)
            yp.append(yp[-1] * y)
        return np.stack([xp[i] * yp[j] for i, j in self._powers], axis=-1)

    def copy_with(self, parameters: Any) -> PolynomialFunction2:
        return PolynomialFunction2(self.order, parameters)

    def __repr__(self) -> str:
        return f"PolynomialFunction2(order={self.order}, parameters={self._params.tolist()})"

    def __reduce__(self) -> tuple:
        return (PolynomialFunction2, (self.order, self._params))


class Chebyshev1Function2(SpatialFunction):
    """``Σ p_k T_i(x') T_j(y')`` over a box (afw's ``Chebyshev1Function2``).

    Parameters
    ----------
    order : int
        Total order.
    xy_range : tuple of float
        ``(minX, maxX, minY, maxY)`` of the continuous box mapped to ``[-1, 1]``; for an integer
        pixel box use :meth:`from_bbox`, which takes ``[minX - 0.5, maxX + 0.5]`` as afw does.
    parameters : sequence of float, optional
        Initial parameters.
    """

    def __init__(self, order: int, xy_range: tuple[float, float, float, float], parameters: Any = None) -> None:
        super().__init__(order, parameters)
        x0, x1, y0, y1 = (float(v) for v in xy_range)
        if not (x1 > x0 and y1 > y0):
            msg = f"Chebyshev1Function2 needs a non-empty box, got x {x0}..{x1}, y {y0}..{y1}"
            raise ValueError(msg)
        self.xy_range = (x0, x1, y0, y1)
        self._xscale = (0.5 * (x0 + x1), 2.0 / (x1 - x0))
        self._yscale = (0.5 * (y0 + y1), 2.0 / (y1 - y0))

    @classmethod
    def from_bbox(cls, order: int, bbox: Any, parameters: Any = None) -> Chebyshev1Function2:
        """Over the continuous extent of an integer :class:`Box2I` (pixel edges at ±0.5)."""
        return cls(order, (bbox.minX - 0.5, bbox.maxX + 0.5, bbox.minY - 0.5, bbox.maxY + 0.5), parameters)

    def term_values(self, x: Any, y: Any) -> np.ndarray:
        x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        xs = (x - self._xscale[0]) * self._xscale[1]
        ys = (y - self._yscale[0]) * self._yscale[1]
        n = self.order + 1
        tx = _cheb.chebvander(xs.ravel(), self.order).reshape(*xs.shape, n)
        ty = _cheb.chebvander(ys.ravel(), self.order).reshape(*ys.shape, n)
        return np.stack([tx[..., i] * ty[..., j] for i, j in self._powers], axis=-1)

    def copy_with(self, parameters: Any) -> Chebyshev1Function2:
        return Chebyshev1Function2(self.order, self.xy_range, parameters)

    def _domain(self) -> tuple[float, ...]:
        return self.xy_range

    def __repr__(self) -> str:
        return f"Chebyshev1Function2(order={self.order}, xy_range={self.xy_range}, parameters={self._params.tolist()})"

    def __reduce__(self) -> tuple:
        return (Chebyshev1Function2, (self.order, self.xy_range, self._params))


def make_spatial_function(kind: str, order: int, bbox: Any) -> SpatialFunction:
    """``"chebyshev1"`` over ``bbox`` or ``"polynomial"`` in parent coordinates (config ``spatialModelType``)."""
    if kind == "chebyshev1":
        return Chebyshev1Function2.from_bbox(order, bbox)
    if kind == "polynomial":
        return PolynomialFunction2(order)
    msg = f"unknown spatialModelType {kind!r}; use 'chebyshev1' or 'polynomial'"
    raise ValueError(msg)
