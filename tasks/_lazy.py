"""Modules imported on first use.

The launcher imports the task modules to resolve their configs, and its worker processes import
them before their first job; neither needs ``scipy.fft`` (~0.15 s with ``scipy.special``) until
a task runs. A module-level ``_fft = LazyModule("scipy.fft")`` keeps ``_fft.rfft2(...)`` call
sites unchanged.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stand-in for the module ``name``: imported, then delegated to, on first attribute access.

    Parameters
    ----------
    name : str
        Absolute module name, e.g. ``"scipy.fft"``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        # only reached for names not set in __init__
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"LazyModule({self._name!r}, loaded={self._module is not None})"
