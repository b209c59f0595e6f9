"""An example diffim plugin: a kernel basis, a QA candidate visitor and a debug display.

diffim loads :mod:`diffim_example_plugin.plugin` through the ``diffim`` entry point ``example``.
The other modules hold the code the hooks register; they import numpy and matplotlib, so the
plugin module imports them only when diffim first asks for a basis, a visitor or a display.

* :mod:`~diffim_example_plugin.basis`: the ``"gauss-hermite"`` kernel basis (``kernelBasisSet``).
* :mod:`~diffim_example_plugin.qa`: the ``"residualChi2"`` QA visitor (``qaVisitors``).
* :mod:`~diffim_example_plugin.display`: a PNG of the matching kernel across the image (debug flag
  ``exampleKernelPng``).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
