"""Structural comparison of configs with float tolerance."""

from __future__ import annotations

import math
from typing import Any

from .node import Node
from .paths import iter_leaf_paths

__all__ = ["diff"]


def diff(
    a: Node, b: Node, *, rtol: float = 1e-8, atol: float = 1e-8, first_only: bool = False
) -> list[tuple[str, Any, Any]]:
    """List ``(path, a value, b value)`` for every leaf that differs.

    Floats are equal when ``|x - y| <= atol + rtol * |y|`` (NaN equals NaN); lists are
    compared element by element. A leaf present on one side only shows ``None`` on the other.
    """
    left = dict(iter_leaf_paths(a))
    right = dict(iter_leaf_paths(b))
    out: list[tuple[str, Any, Any]] = []
    for path in [*left, *(p for p in right if p not in left)]:
        x, y = left.get(path), right.get(path)
        if not _equal(x, y, rtol, atol):
            out.append((path, x, y))
            if first_only:
                break
    return out


def _equal(x: Any, y: Any, rtol: float, atol: float) -> bool:
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_equal(p, q, rtol, atol) for p, q in zip(x, y, strict=True))
    if isinstance(x, float) or isinstance(y, float):
        if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
            return x == y
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return x == y or abs(x - y) <= atol + rtol * abs(y)
    return type(x) is type(y) and x == y
