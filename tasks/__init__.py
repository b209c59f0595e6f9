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

import importlib as _importlib
from typing import Any as _Any

# public name -> submodule; loaded on first use so `import diffim.tasks` stays light
_EXPORTS: dict[str, str] = {
    "Box2I": "image",
    "Extent2I": "image",
    "Point2I": "image",
    "Image": "image",
    "Mask": "image",
    "MaskedImage": "image",
    "Exposure": "image",
    "PhotoCalib": "image",
    "ImageError": "image",
    "mask_planes": "image",
    "PsfMatchTask": "psfMatch",
    "PsfMatchConfig": "psfMatch",
    "PsfMatchConfigAL": "psfMatch",
    "PsfMatchConfigDF": "psfMatch",
    "PsfMatchTaskConfig": "psfMatch",
    "NoKernelCandidatesError": "psfMatch",
    "ModelPsfMatchConfig": "modelPsfMatch",
    "ModelPsfMatchTask": "modelPsfMatch",
    "KernelCandidate": "matching",
    "SpatialCellSet": "matching.cells",
    "LinearCombinationKernel": "kernel",
    "makeKernelBasisList": "kernel.bases",
    "read_exposure": "io",
    "write_exposure": "io",
    "detect_sources": "detection",
    "estimate_psf": "psf",
    "check_registration": "registration",
    "ImagePsfMatchTask": "imagePsfMatch",
    "ImagePsfMatchConfig": "imagePsfMatch",
    "SelectKernelCandidatesTask": "selectKernelCandidates",
    "SelectKernelCandidatesConfig": "selectKernelCandidates",
}


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'diffim.tasks' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
