"""Tests of the example plugin, written with the fixtures of diffim's test kit (diffim.testing).

diffim_plugin_manager, diffim_hook_recorder and diffim_image_pair come from the pytest plugin
that diffim installs (entry point ``pytest11``); no conftest.py is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diffim.framework import debug as fdebug
from diffim.tasks import ImagePsfMatchConfig, ImagePsfMatchTask
from diffim.tasks.kernel import makeAlardLuptonBasisList
from diffim_example_plugin import basis, qa

PLUGIN = "diffim_example_plugin.plugin"


def _matrix(kernels: list[Any]) -> np.ndarray:
    return np.column_stack([k.computeImage(doNormalize=False).ravel() for k in kernels])


def test_basis_is_orthonormal_and_spans_alard_lupton() -> None:
    sigmas, degrees = [0.9, 1.8, 3.6], [4, 2, 2]
    gh = _matrix(basis.make_gauss_hermite_basis(10, sigmas, degrees))
    al = _matrix(makeAlardLuptonBasisList(10, 3, sigmas, degrees))
    assert gh.shape == al.shape == (21 * 21, 27)
    assert gh[:, 0].sum() == pytest.approx(1.0)  # the first kernel carries the kernel sum
    assert np.abs(gh[:, 1:].sum(axis=0)).max() < 1e-10  # the others sum to 0
    assert gh[:, 1:].T @ gh[:, 1:] == pytest.approx(np.eye(26), abs=1e-10)
    # same span: every AL kernel is a combination of the Gauss-Hermite ones
    coefficients = np.linalg.lstsq(gh, al, rcond=None)[0]
    assert np.abs(gh @ coefficients - al).max() < 1e-8
    assert np.linalg.cond(gh.T @ gh) < np.linalg.cond(al.T @ al) / 10


def test_delta_function_config_is_refused_with_the_fix() -> None:
    config = ImagePsfMatchConfig()
    config.kernel.name = "DF"
    with pytest.raises(ValueError, match=r"lacks; set config.kernel.name = 'AL'"):
        basis.gauss_hermite_basis(config.kernel.active)


def test_hooks_register_the_basis_and_the_visitor(
    diffim_plugin_manager: Any, diffim_hook_recorder: Any
) -> None:
    pm = diffim_plugin_manager(PLUGIN, builtins=False)
    recorder = diffim_hook_recorder(pm)
    from diffim.tasks.registries import candidate_visitors, kernel_bases

    assert list(kernel_bases) == ["gauss-hermite"]
    assert list(candidate_visitors) == ["residualChi2"]
    assert recorder.getcall("diffim_register_kernel_bases").plugins == [PLUGIN]


def test_subtraction_with_the_basis_visitor_and_display(
    diffim_plugin_manager: Any, diffim_image_pair: Any, tmp_path: Path
) -> None:
    diffim_plugin_manager(PLUGIN)
    pair = diffim_image_pair
    config = ImagePsfMatchConfig()
    config.kernel.active.kernelBasisSet = "gauss-hermite"
    config.kernel.active.qaVisitors = ["residualChi2"]
    config.doQa = False
    fdebug.reset_debug()
    fdebug.set_display_dir(tmp_path)
    info = fdebug.Info("diffim.tasks.psfMatch")
    info.display = info.exampleKernelPng = True
    try:
        task = ImagePsfMatchTask(config=config)
        result = task.subtractExposures(pair.template, pair.science, candidateList=pair.stars)
    finally:
        fdebug.reset_debug()
    md = task.metadata
    assert md["GHKernelSize"] == result.psfMatchingKernel.getWidth()
    assert result.kernelSum == pytest.approx(pair.fluxRatio, rel=0.03)
    chi2 = md.getArray("exampleQaChi2")
    assert len(chi2) == md["exampleQaNCandidates"] == md["nGoodCandidates"]
    assert 0.7 < md["exampleQaChi2Median"] < 1.5
    assert [p.name for p in tmp_path.glob("*.png")] == ["001_example_kernel_psfMatch_solve.png"]


def test_reduced_chi2_of_pure_noise_is_one() -> None:
    from diffim.tasks.image import MaskedImage

    rng = np.random.default_rng(3)
    stamp = MaskedImage(rng.normal(0.0, 2.0, (64, 64)), variance=np.full((64, 64), 4.0))
    stamp.mask.set_plane("SAT", np.eye(64, dtype=bool))
    chi2, npix = qa.reduced_chi2(stamp, ["SAT"])
    assert npix == 64 * 64 - 64
    assert chi2 == pytest.approx(1.0, abs=0.05)
