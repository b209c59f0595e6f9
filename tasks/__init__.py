"""The astronomy: images, PSFs, kernels, candidates and the PSF-matching tasks."""
