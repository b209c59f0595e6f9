"""The per-candidate design matrix: FFT path for large kernels equals the direct product; shared basis stacks."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from diffim.tasks.image import MaskedImage
from diffim.tasks.kernel import FixedKernel, LinearCombinationKernel
from diffim.tasks.kernel.kernels import basis_image_stack
from diffim.tasks.matching import static_solution
from diffim.tasks.matching.static_solution import StaticKernelSolution, _correlate_valid_fft


def _direct(template: np.ndarray, stack: np.ndarray) -> np.ndarray:
    nb, kh, kw = stack.shape
    gh, gw = template.shape[0] - kh + 1, template.shape[1] - kw + 1
    windows = sliding_window_view(template, (gh, gw)).reshape(kh * kw, gh * gw)
    return stack.reshape(nb, -1) @ windows


def test_fft_correlation_equals_the_direct_product_on_odd_and_rectangular_stamps() -> None:
    rng = np.random.default_rng(3)
    for k, shape in ((33, (67, 67)), (21, (43, 50)), (5, (9, 13))):
        stack = rng.normal(size=(7, k, k))
        template = 1000.0 + 50.0 * rng.normal(size=shape)
        direct = _direct(template, stack)
        fast = _correlate_valid_fft(template, stack)
        assert fast.shape == direct.shape
        assert np.abs(fast - direct).max() <= 1e-12 * np.abs(direct).max()


def test_large_kernel_solution_matches_the_direct_normal_equations(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    k, side = 33, 67
    y, x = np.mgrid[-(k // 2): k // 2 + 1, -(k // 2): k // 2 + 1]
    basis = [FixedKernel(np.exp(-(x**2 + y**2) / (2 * s**2)) * x**i) for s in (1.0, 2.5, 6.0) for i in (0, 1)]
    yy, xx = np.mgrid[:side, :side] - side // 2
    star = 5e4 * np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    template = MaskedImage(star + 100 + rng.normal(size=star.shape), variance=100.0)
    science = MaskedImage(1.3 * star + 80 + rng.normal(size=star.shape), variance=100.0)
    monkeypatch.setattr(static_solution, "_DIRECT_DESIGN_MAX", 0)
    fast = StaticKernelSolution(basis, True)
    fast.build(template, science, template.variance)
    monkeypatch.setattr(static_solution, "_DIRECT_DESIGN_MAX", float("inf"))
    direct = StaticKernelSolution(basis, True)
    direct.build(template, science, template.variance)
    np.testing.assert_allclose(fast.getM(), direct.getM(), rtol=1e-10, atol=1e-12 * np.abs(direct.getM()).max())
    np.testing.assert_allclose(fast.getB(), direct.getB(), rtol=1e-10, atol=1e-12 * np.abs(direct.getB()).max())


def test_fixed_kernel_bases_share_one_image_stack() -> None:
    basis = [FixedKernel(np.eye(5) * i) for i in range(1, 4)]
    first = LinearCombinationKernel(basis, [1.0, 0.0, 0.0])
    second = LinearCombinationKernel(basis, [0.0, 1.0, 0.0])
    assert first.basis_images is second.basis_images
    assert not first.basis_images.flags.writeable
    assert basis_image_stack(list(basis)) is first.basis_images
    other = [FixedKernel(np.eye(5) * i) for i in range(1, 4)]  # equal images, different kernels
    assert basis_image_stack(other) is not first.basis_images
    np.testing.assert_array_equal(basis_image_stack(other), first.basis_images)


def _star_field(fwhm: float, scale: float, seed: int, size: int = 384) -> "Exposure":
    from diffim.tasks.image import Exposure
    from diffim.tasks.psf import GaussianPsf

    rng = np.random.default_rng(99)
    xs, ys = rng.uniform(30, size - 30, 60), rng.uniform(30, size - 30, 60)
    fluxes = rng.uniform(2e4, 2e5, 60)
    sigma = fwhm / 2.354820045
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size), 100.0)
    for x, y, f in zip(xs, ys, fluxes):
        box = (slice(max(0, int(y) - 15), int(y) + 16), slice(max(0, int(x) - 15), int(x) + 16))
        image[box] += scale * f / (2 * np.pi * sigma**2) * np.exp(
            -((xx[box] - x) ** 2 + (yy[box] - y) ** 2) / (2 * sigma**2))
    variance = image.copy()
    image += np.random.default_rng(seed).normal(size=image.shape) * np.sqrt(variance)
    return Exposure(image=image.astype(np.float32), variance=variance.astype(np.float32), psf=GaussianPsf(31, 31, sigma))


def test_fit_region_scaling_shrinks_the_stamps_but_keeps_the_kernel() -> None:
    from diffim.tasks import ImagePsfMatchTask

    template, science = _star_field(2.5, 1.0, 1), _star_field(4.0, 1.2, 2)
    sides = {}
    for scaling in (0.0, 1.0):
        config = ImagePsfMatchTask.ConfigClass()
        config.fitRegionFwhmScaling = scaling
        config.doDecorrelation = False
        config.doQa = False
        for name in ("spatialKernelOrder", "spatialBgOrder"):
            setattr(config.kernel.active, name, 0)
        config.kernel.active.kernelSizeMin = 11  # derived size 17 (sigmas 0.7, 1.4, 2.8)
        config.wingGaussMinSources = 10**6  # LSST's three Gaussians: no wing term
        task = ImagePsfMatchTask(config=config)
        result = task.subtractExposures(template, science)
        size = task.metadata["ALKernelSize"]
        size = size[-1] if isinstance(size, list) else size
        candidate = next(iter(result.kernelCellSet.candidates()))
        side = candidate.getScienceMaskedImage().getWidth()
        assert side == task.metadata["kernelStampSize"]
        assert task.metadata["kernelFitRegionSize"] == side - size + 1
        assert result.kernelSum == pytest.approx(1.2, rel=0.02)
        sides[scaling] = (side, size)
    assert sides[0.0][0] == 2 * sides[0.0][1] + 1  # LSST's stamps
    # region 2·ceil(1·4)+1 = 9, raised to kernelSizeMin + 2 = 13: stamps of side K + 12
    assert sides[1.0][1] == sides[0.0][1] == 17
    assert sides[1.0][0] == 17 + 12 < sides[0.0][0]


def test_a_renormalised_plugin_basis_keeps_the_kernel_sum_spatially_constant() -> None:
    from diffim.tasks.kernel import Chebyshev1Function2
    from diffim.tasks.kernel.bases import makeAlardLuptonBasisList
    from diffim.tasks.matching.spatial_solution import SpatialKernelSolution, _is_renormalized
    from diffim.tasks.psfMatch import PsfMatchConfigDF

    basis = makeAlardLuptonBasisList(5, 2, [1.0, 2.0], [2, 1])  # renormalised: sums 1, 0, 0, ...
    assert _is_renormalized(basis)
    raw = [FixedKernel(k.computeImage() + 0.01) for k in basis]  # every kernel has a sum
    assert not _is_renormalized(raw)
    config = PsfMatchConfigDF()  # any basis name other than alard-lupton, as a plugin's
    config.kernelBasisSet = "delta-function"
    config.usePcaForSpatialKernel = False
    spatial = Chebyshev1Function2(2, (0.0, 100.0, 0.0, 100.0))
    constant = SpatialKernelSolution(basis, spatial, None, config)
    varying = SpatialKernelSolution(raw, spatial, None, config)
    n, terms = len(basis), spatial.getNParameters()
    assert constant.getM is not None
    assert constant._n_kernel == (n - 1) * terms + 1
    assert varying._n_kernel == n * terms
