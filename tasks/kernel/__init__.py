"""Kernels, spatial functions and convolution in afw's conventions."""

from __future__ import annotations

from .functions import (
    Chebyshev1Function2,
    PolynomialFunction2,
    SpatialFunction,
    make_spatial_function,
    n_terms,
    term_powers,
)
from .kernels import (
    DeltaFunctionKernel,
    FixedKernel,
    GaussianKernel,
    Kernel,
    KernelError,
    LinearCombinationKernel,
)

__all__ = [
    "Chebyshev1Function2",
    "DeltaFunctionKernel",
    "FixedKernel",
    "GaussianKernel",
    "Kernel",
    "KernelError",
    "LinearCombinationKernel",
    "PolynomialFunction2",
    "SpatialFunction",
    "make_spatial_function",
    "n_terms",
    "term_powers",
]
