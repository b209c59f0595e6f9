"""Kernels, spatial functions and convolution in afw's conventions."""

from __future__ import annotations

from .bases import (
    FWHM_PER_SIGMA,
    generateAlardLuptonBasisList,
    makeAlardLuptonBasisList,
    makeDeltaFunctionBasisList,
    makeKernelBasisList,
    renormalizeKernelList,
)
from .convolve import convolve, convolve_array, convolveAndSubtract
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
from .regularization import REGULARIZATION_KINDS, make_regularization_matrix, makeRegularizationMatrix

__all__ = [
    "FWHM_PER_SIGMA",
    "REGULARIZATION_KINDS",
    "Chebyshev1Function2",
    "DeltaFunctionKernel",
    "FixedKernel",
    "GaussianKernel",
    "Kernel",
    "KernelError",
    "LinearCombinationKernel",
    "PolynomialFunction2",
    "SpatialFunction",
    "convolve",
    "convolveAndSubtract",
    "convolve_array",
    "generateAlardLuptonBasisList",
    "makeAlardLuptonBasisList",
    "makeDeltaFunctionBasisList",
    "makeKernelBasisList",
    "makeRegularizationMatrix",
    "make_regularization_matrix",
    "make_spatial_function",
    "n_terms",
    "renormalizeKernelList",
    "term_powers",
]
