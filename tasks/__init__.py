"""The astronomy: images, PSFs, kernels, candidates and the PSF-matching tasks.

Importing this package registers the LSST spellings of its names, so that an LSST user's
``debug.py`` (testing ``name == "lsst.ip.diffim.psfMatch"``) and ``trace_set_at("lsst.ip.diffim", 4)``
reach the matching diffim modules and loggers.
"""

from __future__ import annotations

from diffim.framework.debug import add_alias as _add_debug_alias
from diffim.framework.log import add_logger_alias as _add_logger_alias

#: LSST package whose names this package answers to.
LSST_PACKAGE = "lsst.ip.diffim"

_add_debug_alias(__name__, LSST_PACKAGE)
_add_logger_alias("diffim", LSST_PACKAGE)
