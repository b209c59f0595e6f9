"""Registries of the PSF-matching layer, each filled by its plugin hook on first use."""

from __future__ import annotations

from diffim.framework.config import Registry

from . import hooks

__all__ = ["kernel_bases", "candidate_visitors"]

#: Kernel basis generators by name ("alard-lupton", "delta-function", ...): config ``kernelBasisSet``.
kernel_bases = Registry(
    "kernel basis",
    "Functions building a list of basis kernels from the kernel config and the PSF widths.",
    populate=hooks.register_kernel_bases,
)

#: Candidate visitors by name ("buildSingleKernel", "kernelSum", ...), used by ``PsfMatchTask._solve``.
candidate_visitors = Registry(
    "candidate visitor",
    "Classes visiting kernel candidates in spatial cells during the kernel fit.",
    populate=hooks.register_candidate_visitors,
)
