"""Test kit for diffim plugin authors (``diffim.testing``), also shipped as a pytest plugin.

Installing diffim registers :mod:`diffim.testing.pytest_plugin` under the ``pytest11`` entry point
(name ``diffim``), so every pytest run in an environment with diffim offers these fixtures, with
no ``conftest.py`` needed:

``diffim_plugin_manager``
    Factory: a fresh process-wide plugin manager holding only the plugins you choose (see
    :func:`plugin_manager`).
``diffim_hook_recorder``
    Factory: a :class:`HookRecorder` that logs every hook call on a manager.
``diffim_image_pair``
    A small synthetic template/science pair with a known kernel (:func:`make_image_pair`).
``diffim_image_pair_factory``
    :func:`make_image_pair` itself, for pairs with other parameters.

The same tools are importable for use outside pytest. Importing this package is cheap: its
modules (and numpy, astropy) load only when a name is first used. Disable the pytest plugin with
``pytest -p no:diffim``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "HookCall",
    "HookRecorder",
    "SyntheticPair",
    "make_image_pair",
    "plugin_manager",
    "refresh_registries",
]

# public name -> submodule defining it; loaded on first access (PEP 562)
_LAZY = {
    "HookCall": "recorder",
    "HookRecorder": "recorder",
    "SyntheticPair": "images",
    "make_image_pair": "images",
    "plugin_manager": "managers",
    "refresh_registries": "managers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
