"""Regularization matrix ``H = Bᵀ B`` for delta-function kernel fits (LSST's
``makeRegularizationMatrix``).

A delta-function basis has one coefficient per kernel pixel, so an unregularized fit is noisy;
the solver minimises ``χ² + λ aᵀ H a`` where ``B a`` measures the roughness of the kernel image
``a``. Pixel ``i`` of a ``width`` x ``height`` kernel is coefficient ``i = y·width + x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "REGULARIZATION_KINDS",
    "makeRegularizationMatrix",
    "make_regularization_matrix",
]

#: Names accepted for the regularization type (``PsfMatchConfigDF.regularizationType``).
REGULARIZATION_KINDS = ("centralDifference", "forwardDifference")

# 3x3 Laplacian stencils indexed [dy + 1, dx + 1].
_STENCILS: dict[int, np.ndarray] = {
    5: np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
    9: np.array([[1.0, 4.0, 1.0], [4.0, -20.0, 4.0], [1.0, 4.0, 1.0]]) / 6.0,
}


def _forward_coefficients(border_penalty: float) -> list[list[float]]:
    """Forward-difference rows c0..c3; c0 is the penalty used where no difference fits."""
    return [[border_penalty], [-1.0, 1.0], [-1.0, 2.0, -1.0], [-1.0, 3.0, -3.0, 1.0]]


def _central_difference(width: int, height: int, stencil: int, border_penalty: float, n: int) -> np.ndarray:
    b = np.zeros((n, n))
    y, x = np.divmod(np.arange(width * height), width)
    ring = (x == 0) | (x == width - 1) | (y == 0) | (y == height - 1)
    border = np.flatnonzero(ring)
    b[border, border] = border_penalty
    interior = np.flatnonzero(~ring)
    coefficients = _STENCILS[stencil]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            b[interior, interior + dx + dy * width] += coefficients[dy + 1, dx + 1]
    return b


def _forward_difference(
    width: int, height: int, orders: Sequence[int], border_penalty: float, n: int
) -> np.ndarray:
    coefficients = _forward_coefficients(border_penalty)
    b = np.zeros((n, n))
    index = np.arange(width * height)
    y, x = np.divmod(index, width)
    for order in orders:
        # Bx and By of every order are ADDED into one B (LSST), not stacked, before squaring.
        for distance, stride in ((width - 1 - x, 1), (height - 1 - y, width)):
            m = np.minimum(order, distance)
            for used in np.unique(m):
                rows = index[m == used]
                for j, c in enumerate(coefficients[used]):
                    b[rows, rows + j * stride] += c
    return b


def make_regularization_matrix(
    width: int,
    height: int,
    *,
    kind: str,
    stencil: int = 9,
    orders: Sequence[int] = (1, 2),
    border_penalty: float = 3.0,
    fit_background: bool = False,
) -> np.ndarray:
    """Regularization matrix ``H = Bᵀ B`` of a ``width`` x ``height`` delta-function kernel.

    ``centralDifference``
        Row ``i`` of ``B`` is the 3x3 Laplacian stencil (5-point ``[0,1,0; 1,−4,1; 0,1,0]`` or
        9-point ``[1,4,1; 4,−20,4; 1,4,1]/6``) centred on pixel ``i``; pixels of the outer
        ring instead get ``border_penalty`` on the diagonal.
    ``forwardDifference``
        For each order ``o``, ``Bx[i, i+j] = c_m[j]`` (``j = 0..m``) with
        ``m = min(o, distance of pixel i to the right edge)`` and coefficient rows
        ``c0 = [border_penalty]``, ``c1 = [−1, 1]``, ``c2 = [−1, 2, −1]``, ``c3 = [−1, 3, −3, 1]``;
        ``By`` likewise along y (stride ``width``, distance to the top edge). ``B`` is the sum
        over orders of ``Bx + By``.

    Parameters
    ----------
    width, height : int
        Kernel size in pixels.
    kind : str
        ``"centralDifference"`` or ``"forwardDifference"``.
    stencil : int, optional
        5 or 9 (central difference).
    orders : sequence of int, optional
        Derivative orders, each 1..3 (forward difference).
    border_penalty : float, optional
        Diagonal penalty on border pixels (>= 0).
    fit_background : bool, optional
        Append an all-zero row and column for the background parameter.

    Returns
    -------
    H : numpy.ndarray
        Symmetric positive semi-definite float64 matrix of shape
        ``(width·height + nbg, width·height + nbg)``.

    Raises
    ------
    ValueError
        On a size below 1, an unknown kind, a stencil other than 5/9, an order outside 1..3 (or
        none), or a negative or non-finite border penalty.
    """
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        msg = f"regularization kernel size must be integers >= 1, got {width!r}x{height!r}"
        raise ValueError(msg)
    width, height = int(width), int(height)
    if kind not in REGULARIZATION_KINDS:
        msg = f"unknown regularization type {kind!r}; use one of {', '.join(map(repr, REGULARIZATION_KINDS))}"
        raise ValueError(msg)
    penalty = float(border_penalty)
    if not math.isfinite(penalty) or penalty < 0:
        msg = f"regularization border penalty must be finite and >= 0, got {border_penalty!r}"
        raise ValueError(msg)
    n = width * height + (1 if fit_background else 0)
    if kind == "centralDifference":
        if stencil not in _STENCILS:
            msg = f"central-difference regularization stencil must be 5 or 9, got {stencil!r}"
            raise ValueError(msg)
        b = _central_difference(width, height, int(stencil), penalty, n)
    else:
        orders = list(orders)
        if not orders:
            msg = "forward-difference regularization needs at least one order; use e.g. orders=(1, 2)"
            raise ValueError(msg)
        bad = [o for o in orders if o not in (1, 2, 3)]
        if bad:
            msg = f"forward-difference regularization orders must be 1, 2 or 3, got {bad!r}"
            raise ValueError(msg)
        b = _forward_difference(width, height, [int(o) for o in orders], penalty, n)
    return b.T @ b


def makeRegularizationMatrix(config: Any) -> np.ndarray:  # noqa: N802 - LSST name
    """Regularization matrix ``H = Bᵀ B`` for a delta-function kernel config.

    Parameters
    ----------
    config : PsfMatchConfigDF
        Reads ``kernelSize``, ``regularizationType``, ``centralRegularizationStencil``,
        ``forwardRegularizationOrders``, ``regularizationBorderPenalty`` and
        ``fitForBackground``.

    Returns
    -------
    H : numpy.ndarray
        ``(kernelSize² + nbg)`` square matrix (441 x 441 by default); see
        :func:`make_regularization_matrix`.

    Raises
    ------
    ValueError
        If the config has no regularization fields, or on a bad value (see
        :func:`make_regularization_matrix`).
    """
    if not hasattr(config, "regularizationType"):
        msg = (
            f"{type(config).__name__} has no regularization settings; "
            "build the regularization matrix from a delta-function config (PsfMatchConfigDF)"
        )
        raise ValueError(msg)
    return make_regularization_matrix(
        config.kernelSize,
        config.kernelSize,
        kind=config.regularizationType,
        stencil=config.centralRegularizationStencil,
        orders=tuple(config.forwardRegularizationOrders),
        border_penalty=config.regularizationBorderPenalty,
        fit_background=bool(config.fitForBackground),
    )
