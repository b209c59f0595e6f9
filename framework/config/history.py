"""Per-field history of config values: what was set, and where it came from.

LSST's pex_config keeps a full call stack for every assignment, forever. We keep the value
and one readable source (``default``, ``file.yaml:3``, ``-c kernel.name=DF``, or the Python
caller's ``file:line``), bounded per field by :data:`MAX_HISTORY`.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_HISTORY", "HistoryEntry", "History", "history_source", "current_source"]

#: Entries kept per field; the oldest are dropped first.
MAX_HISTORY = 100

_SOURCE: ContextVar[str | None] = ContextVar("diffim_config_source", default=None)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_PYDANTIC_MARK = f"{os.sep}pydantic{os.sep}"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One recorded value of a field.

    Attributes
    ----------
    value : object
        The value after the change.
    source : str
        Where the change came from.
    """

    value: Any
    source: str


History = dict[str, deque[HistoryEntry]]


@contextmanager
def history_source(label: str) -> Iterator[None]:
    """Attribute every assignment made inside the block to ``label``.

    Parameters
    ----------
    label : str
        The source to record, e.g. ``"-c kernel.name=DF"`` or ``"overrides.yaml:4"``.
    """
    token = _SOURCE.set(label)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def current_source() -> str:
    """Return the source label for an assignment happening now.

    The innermost :func:`history_source` label wins; otherwise the first caller frame outside
    the config package and pydantic, as ``file:line``.
    """
    label = _SOURCE.get()
    if label is not None:
        return label
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith(_PACKAGE_DIR) or _PYDANTIC_MARK in filename):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "python"


def record(history: History, name: str, value: Any, source: str) -> None:
    """Append one entry to ``history[name]``, creating the bounded queue if needed."""
    entries = history.get(name)
    if entries is None:
        entries = history[name] = deque(maxlen=MAX_HISTORY)
    if isinstance(value, list):
        value = list(value)
    entries.append(HistoryEntry(value, source))
