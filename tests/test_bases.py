"""Kernel basis lists (LSST test_basisLists, spec §3 and §10)."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from diffim.framework.config import FieldValidationError, Registry
from diffim.framework.metadata import TaskMetadata
from diffim.framework.plugins import hookimpl, isolated_plugin_manager
from diffim.tasks.kernel import (
    DeltaFunctionKernel,
    FixedKernel,
    GaussianKernel,
    generateAlardLuptonBasisList,
    makeAlardLuptonBasisList,
    makeDeltaFunctionBasisList,
    makeKernelBasisList,
    renormalizeKernelList,
)
from diffim.tasks.psfMatch import PsfMatchConfigAL, PsfMatchConfigDF
from diffim.tasks.registries import kernel_bases

PLACES = 1e-7  # LSST's assertAlmostEqual(places=7)


def _check_renormalized(basis: list[Any]) -> None:
    """Basis 0 sums to 1; the others sum to 0 and have unit sum of squares."""
    images = [k.computeImage() for k in basis]
    assert images[0].sum() == pytest.approx(1.0, abs=PLACES)
    for image in images[1:]:
        assert image.sum() == pytest.approx(0.0, abs=PLACES)
        assert np.sum(image**2) == pytest.approx(1.0, abs=PLACES)


def _stand_in(config: Any, **changes: Any) -> types.SimpleNamespace:
    """A plain copy of a config, so tests can hold values the config itself refuses."""
    fields = {name: getattr(config, name) for name in type(config).model_fields}
    return types.SimpleNamespace(**{**fields, **changes})


# ---------------------------------------------------------------------------- delta functions


def test_delta_function_basis() -> None:
    basis = makeDeltaFunctionBasisList(21, 21)
    assert len(basis) == 441
    for n, kernel in enumerate(basis):
        row, col = divmod(n, 21)
        image = kernel.computeImage()
        assert isinstance(kernel, DeltaFunctionKernel)
        assert image.shape == (21, 21)
        assert image[row, col] == 1.0
        assert np.count_nonzero(image) == 1
        assert image.sum() == 1.0


def test_delta_function_basis_rectangular_and_errors() -> None:
    basis = makeDeltaFunctionBasisList(3, 2)
    assert [k.computeImage().shape for k in basis] == [(2, 3)] * 6
    assert basis[4].computeImage()[1, 1] == 1.0  # n = 4 -> row 1, col 1
    for width, height in ((0, 5), (5, 0)):
        with pytest.raises(ValueError, match="delta-function basis size must be integers >= 1"):
            makeDeltaFunctionBasisList(width, height)


# ------------------------------------------------------------------------ renormalization


def test_renormalize_gaussians() -> None:
    kernels = [GaussianKernel(21, 21, 2, 2), GaussianKernel(21, 21, 3, 4), GaussianKernel(21, 21, 0.2, 0.25)]
    basis = renormalizeKernelList(kernels)
    assert len(basis) == 3 and all(isinstance(k, FixedKernel) for k in basis)
    _check_renormalized(basis)
    b0 = kernels[0].computeImage()
    np.testing.assert_allclose(basis[0].computeImage(), b0 / b0.sum(), rtol=1e-12)
    # not unit-L2: basis 0 keeps unit sum
    assert np.sum(basis[0].computeImage() ** 2) < 0.5


def test_renormalize_leaves_zero_sum_kernels_unsubtracted() -> None:
    gaussian = GaussianKernel(11, 11, 2.0).computeImage()
    odd = gaussian * np.arange(-5, 6)[None, :]  # sums to 0: only scaled to unit norm
    basis = renormalizeKernelList([FixedKernel(gaussian), FixedKernel(odd)])
    np.testing.assert_allclose(basis[1].computeImage(), odd / np.sqrt(np.sum(odd**2)), rtol=1e-12)


def test_renormalize_errors() -> None:
    with pytest.raises(ValueError, match="empty kernel list"):
        renormalizeKernelList([])
    with pytest.raises(ValueError, match="one size"):
        renormalizeKernelList([GaussianKernel(5, 5, 1.0), GaussianKernel(7, 7, 1.0)])
    with pytest.raises(ValueError, match="first kernel sums to 0"):
        renormalizeKernelList([FixedKernel(np.zeros((3, 3)))])
    g = GaussianKernel(5, 5, 1.0)
    with pytest.raises(ValueError, match="kernel 1 is identically 0"):
        renormalizeKernelList([g, FixedKernel(2 * g.computeImage())])


# ---------------------------------------------------------------------------- Alard-Lupton


def test_alard_lupton_basis() -> None:
    basis = makeAlardLuptonBasisList(10, 3, (0.7, 1.5, 3.0), (4, 2, 2))
    assert len(basis) == 27
    assert all(k.getDimensions() == (21, 21) for k in basis)
    _check_renormalized(basis)


def test_alard_lupton_terms_follow_afw_order() -> None:
    half, sigma = 3, 1.2
    basis = makeAlardLuptonBasisList(half, 1, [sigma], [1])
    assert len(basis) == 3
    offsets = np.arange(-half, half + 1)
    v, u = np.meshgrid(offsets, offsets, indexing="ij")
    g = np.exp(-(u**2 + v**2) / (2 * sigma**2))
    g /= g.sum()
    np.testing.assert_allclose(basis[0].computeImage(), g, rtol=1e-12)
    for term, poly in ((1, u / half), (2, v / half)):  # 1, u, v: odd terms sum to 0, no subtraction
        expected = g * poly
        np.testing.assert_allclose(basis[term].computeImage(), expected / np.sqrt(np.sum(expected**2)), atol=1e-14)
    image_u = basis[1].computeImage()
    np.testing.assert_allclose(image_u[:, ::-1], -image_u, atol=1e-15)  # u varies along columns (x)
    assert basis[1].computeImage()[half, half + 1] > 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 1, [1.0], [0]), "halfWidth must be an integer >= 1, got 0"),
        ((5, 0, [], []), "nGauss must be an integer >= 1"),
        ((5, 2, [1.0], [0, 1]), "sigGauss has 1 entries"),
        ((5, 2, [1.0, 2.0], [0]), "degGauss has 1 entries"),
        ((5, 1, [-1.0], [0]), "sigmas must be finite and > 0"),
        ((5, 1, [1.0], [-1]), "degrees must be integers >= 0"),
    ],
)
def test_alard_lupton_errors(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        makeAlardLuptonBasisList(*args)


def test_generate_alard_lupton_default_and_scaled() -> None:
    config = PsfMatchConfigAL()
    for basis in (
        generateAlardLuptonBasisList(config),
        generateAlardLuptonBasisList(config, targetFwhmPix=3.0, referenceFwhmPix=4.0),
        makeKernelBasisList(config),
        makeKernelBasisList(config, targetFwhmPix=3.0, referenceFwhmPix=4.0),
    ):
        assert len(basis) == 27
        _check_renormalized(basis)


@pytest.mark.parametrize(
    ("target", "reference", "sigmas", "size", "mode"),
    [
        (3.0, 4.0, (0.7, 1.4, 2.8), 21, "convolution"),
        (4.0, 3.0, (0.5618, 1.1235, 2.2471), 21, "deconvolution"),
        (2 * 2.35482, 3 * 2.35482, (1.118, 2.236, 4.472), 27, "convolution"),
    ],
)
def test_generate_alard_lupton_worked_numbers(
    target: float, reference: float, sigmas: tuple[float, ...], size: int, mode: str
) -> None:
    metadata = TaskMetadata()
    basis = generateAlardLuptonBasisList(PsfMatchConfigAL(), target, reference, metadata=metadata)
    assert metadata.getArray("ALBasisSigGauss") == pytest.approx(sigmas, abs=1e-3)
    assert metadata.getScalar("ALKernelSize") == size
    assert metadata.getScalar("ALBasisMode") == mode
    assert metadata.getScalar("ALBasisNGauss") == 3
    assert metadata.getArray("ALBasisDegGauss") == [4, 2, 2]
    assert basis[0].getDimensions() == (size, size)
    assert len(basis) == 27


def test_generate_alard_lupton_config_modes() -> None:
    config = PsfMatchConfigAL(kernelSize=11)
    # no FWHMs (or no scaling): config sigmas and config kernelSize
    for kwargs in ({}, {"targetFwhmPix": 3.0}, {"targetFwhmPix": 3.0, "referenceFwhmPix": 4.0}):
        metadata = TaskMetadata()
        cfg = config if kwargs.get("referenceFwhmPix") is None else PsfMatchConfigAL(kernelSize=11, scaleByFwhm=False)
        basis = generateAlardLuptonBasisList(cfg, metadata=metadata, **kwargs)
        assert metadata.getScalar("ALBasisMode") == "config"
        assert metadata.getScalar("ALKernelSize") == 11
        assert metadata.getArray("ALBasisSigGauss") == [0.7, 1.5, 3.0]
        assert basis[0].getDimensions() == (11, 11)
    # equal FWHMs (HEAD): config sigmas, but the size is derived from them: int(6*3.0)=18 -> 19 -> 21
    metadata = TaskMetadata()
    basis = generateAlardLuptonBasisList(config, 3.5, 3.5, metadata=metadata)
    assert metadata.getScalar("ALBasisMode") == "config"
    assert metadata.getArray("ALBasisSigGauss") == [0.7, 1.5, 3.0]
    assert metadata.getScalar("ALKernelSize") == 21
    assert basis[0].getDimensions() == (21, 21)
    # explicit sigmas/degrees: int(6*5.0) = 30 -> 31
    metadata = TaskMetadata()
    basis = generateAlardLuptonBasisList(config, 3.5, 3.5, [1, 0, 0], [1.0, 2.0, 5.0], metadata=metadata)
    assert metadata.getScalar("ALKernelSize") == 31
    assert metadata.getArray("ALBasisDegGauss") == [1, 0, 0]
    assert len(basis) == 5 and basis[0].getDimensions() == (31, 31)


def test_generate_alard_lupton_clamps_size_and_uses_deconv_minimum() -> None:
    metadata = TaskMetadata()
    generateAlardLuptonBasisList(PsfMatchConfigAL(), 2.0, 20.0, metadata=metadata)
    assert metadata.getScalar("ALKernelSize") == 35  # clamped at kernelSizeMax
    metadata = TaskMetadata()
    generateAlardLuptonBasisList(PsfMatchConfigAL(), 3.0, 2.999, metadata=metadata)
    assert metadata.getArray("ALBasisSigGauss") == pytest.approx([0.4, 0.8, 1.6])  # alardMinSigDeconv
    assert metadata.getScalar("ALBasisMode") == "deconvolution"
    metadata = TaskMetadata()
    one = PsfMatchConfigAL(alardNGauss=1, alardDegGauss=[2], alardSigGauss=[1.0])
    generateAlardLuptonBasisList(one, 3.0, 4.0, metadata=metadata)
    assert metadata.getArray("ALBasisSigGauss") == pytest.approx([np.sqrt(4.0**2 - 3.0**2) / 2.35482])  # sigma_K itself
    metadata = TaskMetadata()
    generateAlardLuptonBasisList(one, 3.0, 3.2, metadata=metadata)
    assert metadata.getArray("ALBasisSigGauss") == pytest.approx([0.7])  # sigma_K = 0.47 raised to alardMinSig


def test_generate_alard_lupton_errors() -> None:
    with pytest.raises(RuntimeError, match="needs kernelBasisSet 'alard-lupton', got 'delta-function'"):
        generateAlardLuptonBasisList(PsfMatchConfigDF())
    config = PsfMatchConfigAL()
    with pytest.raises(ValueError, match="2 Gaussian degrees"):
        generateAlardLuptonBasisList(config, basisDegGauss=[4, 2])
    with pytest.raises(ValueError, match="1 Gaussian sigmas"):
        generateAlardLuptonBasisList(config, basisSigmaGauss=[1.0])
    with pytest.raises(ValueError, match="odd kernelSize, got 20; use 21"):
        generateAlardLuptonBasisList(_stand_in(config, kernelSize=20))
    with pytest.raises(ValueError, match="referenceFwhmPix must be a finite FWHM > 0"):
        generateAlardLuptonBasisList(config, 3.0, -1.0)
    with pytest.raises(ValueError, match="kernelSizeMax \\(30\\) is even"):
        generateAlardLuptonBasisList(_stand_in(config, kernelSizeMax=30), 2.0, 20.0)


# ---------------------------------------------------------------------- registry dispatch


def test_make_kernel_basis_list_dispatch() -> None:
    df = makeKernelBasisList(PsfMatchConfigDF(), targetFwhmPix=3.0, referenceFwhmPix=8.0)  # widths ignored
    assert len(df) == 441 and df[0].getDimensions() == (21, 21)
    config = PsfMatchConfigAL(kernelSize=5)
    config.kernelBasisSet = "delta-function"
    assert len(makeKernelBasisList(config)) == 25
    metadata = TaskMetadata()
    al = makeKernelBasisList(PsfMatchConfigAL(), 3.0, 4.0, metadata=metadata)
    assert len(al) == 27 and metadata.getScalar("ALBasisMode") == "convolution"
    with pytest.raises(ValueError, match="no kernel basis called 'nope'; registered: 'alard-lupton', 'delta-function'"):
        makeKernelBasisList(types.SimpleNamespace(kernelBasisSet="nope"))


def _fake_generator(config: Any, **kwargs: Any) -> list[FixedKernel]:
    """Two-kernel test basis."""
    _fake_generator.calls.append(kwargs)  # type: ignore[attr-defined]
    return [FixedKernel(np.ones((3, 3))), FixedKernel(np.eye(3))]


class _FakeBases:
    @hookimpl
    def diffim_register_kernel_bases(self, registry: Registry) -> None:
        registry.register("fake-basis", _fake_generator)
        registry.register("broken-basis", lambda config, **kwargs: "not a list")
        registry.register("odd-basis", lambda config, **kwargs: [np.ones((3, 3))])


@contextlib.contextmanager
def _fake_plugin() -> Iterator[None]:
    kernel_bases.refresh()
    try:
        with isolated_plugin_manager(_FakeBases()):
            kernel_bases.refresh()  # the registry fills itself from the active manager on next read
            yield
    finally:
        kernel_bases.refresh()


@pytest.fixture
def fake_plugin() -> Iterator[None]:
    _fake_generator.calls = []  # type: ignore[attr-defined]
    with _fake_plugin():
        yield


def test_plugin_basis_is_selectable(fake_plugin: None) -> None:
    assert {"alard-lupton", "delta-function", "fake-basis"} <= set(kernel_bases)
    config = PsfMatchConfigAL()
    config.kernelBasisSet = "fake-basis"  # the config field accepts plugin names
    metadata = TaskMetadata()
    basis = makeKernelBasisList(config, 3.0, 4.0, basisSigmaGauss=[1.0, 2.0, 3.0], metadata=metadata)
    assert len(basis) == 2 and basis[1].computeImage()[0, 0] == 1.0
    assert _fake_generator.calls == [  # type: ignore[attr-defined]
        {
            "targetFwhmPix": 3.0,
            "referenceFwhmPix": 4.0,
            "basisDegGauss": None,
            "basisSigmaGauss": [1.0, 2.0, 3.0],
            "metadata": metadata,
        }
    ]
    assert len(makeKernelBasisList(PsfMatchConfigAL())) == 27  # built-ins still there


def test_plugin_basis_bad_results(fake_plugin: None) -> None:
    with pytest.raises(TypeError, match="'broken-basis' returned str; it must return a non-empty list of kernels"):
        makeKernelBasisList(types.SimpleNamespace(kernelBasisSet="broken-basis"))
    with pytest.raises(TypeError, match="'odd-basis' returned non-kernels \\(ndarray\\)"):
        makeKernelBasisList(types.SimpleNamespace(kernelBasisSet="odd-basis"))


def test_plugin_basis_gone_after_isolation() -> None:
    with _fake_plugin():
        assert "fake-basis" in kernel_bases
    assert "fake-basis" not in kernel_bases
    assert "alard-lupton" in kernel_bases
    with pytest.raises(FieldValidationError, match="'fake-basis' is not allowed"):
        PsfMatchConfigAL(kernelBasisSet="fake-basis")
