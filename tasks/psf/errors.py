"""PSF errors and the small validators every model shares."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["PsfError", "PsfWarning", "array_key", "check_odd_size", "check_positive"]


class PsfError(ValueError):
    """A PSF parameter or stamp that cannot be used (size, width, values)."""


class PsfWarning(UserWarning):
    """A PSF stamp that is usable but suspicious (e.g. its centroid is off the central pixel)."""


def check_odd_size(width: Any, height: Any, what: str = "PSF") -> tuple[int, int]:
    """Validate a kernel size: positive odd integers.

    Parameters
    ----------
    width, height : int
        Requested size in pixels.
    what : str, optional
        Name used in the error message.

    Returns
    -------
    tuple of int
        ``(width, height)``.

    Raises
    ------
    PsfError
        If either is not a positive odd integer.
    """
    out = []
    for name, v in (("width", width), ("height", height)):
        try:
            iv = int(v)
        except (TypeError, ValueError):
            iv = None
        if iv is None or iv != v or iv < 1 or iv % 2 == 0:
            msg = f"{what} {name} must be a positive odd integer (pad or crop to odd), got {v!r}"
            raise PsfError(msg)
        out.append(iv)
    return out[0], out[1]


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise :class:`PsfError` unless it is finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        msg = f"{name} must be a finite number > 0, got {value!r}"
        raise PsfError(msg)
    return v


def array_key(a: np.ndarray) -> tuple:
    """Hashable, exact key for an array (shape, dtype and bytes)."""
    a = np.ascontiguousarray(a)
    return (a.shape, a.dtype.str, a.tobytes())
