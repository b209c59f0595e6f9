"""PSF-matching kernels and background models as FITS files.

A kernel file holds the basis images as a cube in the primary HDU (``NBASIS`` × height × width,
centre at index ``(W-1)//2`` as afw) and the coefficients in the ``COEFFS`` extension: one row of
spatial parameters per basis (afw term order) for a spatially varying kernel, a single row of
coefficients otherwise. Header cards say which spatial function family, order and domain apply.
A background model file holds the spatial function's parameters the same way. Both reload with
:func:`read_kernel` / :func:`read_spatial_function`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..kernel import (
    Chebyshev1Function2,
    FixedKernel,
    LinearCombinationKernel,
    PolynomialFunction2,
    SpatialFunction,
)
from .errors import FitsReadError
from .write import write_hdulist_atomic

__all__ = ["write_kernel", "read_kernel", "write_spatial_function", "read_spatial_function"]


def _function_cards(function: SpatialFunction | None, header: Any, prefix: str) -> None:
    if function is None:
        header[f"{prefix}FUNC"] = ("none", "spatial function family")
        return
    kind = "chebyshev1" if isinstance(function, Chebyshev1Function2) else "polynomial"
    header[f"{prefix}FUNC"] = (kind, "spatial function family")
    header[f"{prefix}ORD"] = (function.order, "spatial function order")
    if isinstance(function, Chebyshev1Function2):
        for key, value in zip(("XMIN", "XMAX", "YMIN", "YMAX"), function.xy_range, strict=True):
            header[f"{prefix}{key}"] = (value, "Chebyshev domain (parent pixels)")


def _function_from_cards(header: Any, prefix: str, path: Path) -> SpatialFunction | None:
    kind = header.get(f"{prefix}FUNC", "none")
    if kind == "none":
        return None
    order = int(header[f"{prefix}ORD"])
    if kind == "polynomial":
        return PolynomialFunction2(order)
    if kind == "chebyshev1":
        domain = tuple(float(header[f"{prefix}{k}"]) for k in ("XMIN", "XMAX", "YMIN", "YMAX"))
        return Chebyshev1Function2(order, domain)  # type: ignore[arg-type]
    msg = f"{path}: unknown spatial function family {kind!r} in card {prefix}FUNC"
    raise FitsReadError(msg)


def write_kernel(kernel: LinearCombinationKernel, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write a linear-combination kernel (basis cube + coefficients) atomically."""
    from astropy.io import fits

    if not isinstance(kernel, LinearCombinationKernel):
        msg = f"can only write a LinearCombinationKernel, got {type(kernel).__name__}"
        raise TypeError(msg)
    primary = fits.PrimaryHDU(np.asarray(kernel.basis_images, dtype=np.float64))
    primary.header["NBASIS"] = (kernel.getNBasisKernels(), "number of basis kernels")
    primary.header["KCTRX"] = (kernel.getCtr()[0], "kernel centre column (0-based)")
    primary.header["KCTRY"] = (kernel.getCtr()[1], "kernel centre row (0-based)")
    if kernel.isSpatiallyVarying():
        coeffs = kernel.getSpatialParameters()
        _function_cards(kernel.getSpatialFunction(), primary.header, "SP")
    else:
        coeffs = kernel.getKernelParameters()[:, None]
        _function_cards(None, primary.header, "SP")
    table = fits.ImageHDU(np.asarray(coeffs, dtype=np.float64), name="COEFFS")
    return write_hdulist_atomic(fits.HDUList([primary, table]), Path(path), overwrite=overwrite)


def read_kernel(path: str | Path) -> LinearCombinationKernel:
    """Read a kernel written by :func:`write_kernel`."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path) as hdus:
            cube = np.array(hdus[0].data, dtype=float)
            header = hdus[0].header
            coeffs = np.array(hdus["COEFFS"].data, dtype=float)
            function = _function_from_cards(header, "SP", path)
    except (OSError, KeyError) as err:
        msg = f"{path}: not a diffim kernel file ({err}); write one with write_kernel"
        raise FitsReadError(msg) from None
    basis = [FixedKernel(image) for image in cube]
    if function is None:
        return LinearCombinationKernel(basis, coeffs[:, 0])
    kernel = LinearCombinationKernel(basis, spatialFunction=function)
    kernel.setSpatialParameters(coeffs)
    return kernel


def write_spatial_function(function: SpatialFunction, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write a background model (a spatial function and its parameters) atomically."""
    from astropy.io import fits

    primary = fits.PrimaryHDU(np.asarray(function.getParameters(), dtype=np.float64))
    _function_cards(function, primary.header, "BG")
    return write_hdulist_atomic(fits.HDUList([primary]), Path(path), overwrite=overwrite)


def read_spatial_function(path: str | Path) -> SpatialFunction:
    """Read a background model written by :func:`write_spatial_function`."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path) as hdus:
            params = np.array(hdus[0].data, dtype=float)
            function = _function_from_cards(hdus[0].header, "BG", path)
    except (OSError, KeyError) as err:
        msg = f"{path}: not a diffim background model file ({err})"
        raise FitsReadError(msg) from None
    if function is None:
        msg = f"{path}: no background function described (BGFUNC card)"
        raise FitsReadError(msg)
    function.setParameters(params)
    return function
