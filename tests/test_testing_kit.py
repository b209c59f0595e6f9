"""The plugin authors' test kit, diffim.testing: its fixtures, directly and as an installed pytest plugin."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from typing import Any

import numpy as np
import pytest
from diffim.framework.plugins import (
    PluginError,
    get_plugin_manager,
    hookimpl,
    isolated_plugin_manager,
)
from diffim.testing import (
    HookRecorder,
    SyntheticPair,
    make_image_pair,
    plugin_manager,
    refresh_registries,
)

pytest_plugins = ["pytester"]


def _basis(config: Any, **kwargs: Any) -> list[Any]:
    from diffim.tasks.kernel import makeDeltaFunctionBasisList

    return makeDeltaFunctionBasisList(3, 3)


class BasisPlugin:
    @hookimpl
    def diffim_register_kernel_bases(self, registry: Any) -> None:
        registry.register("tiny", _basis, doc="3x3 delta functions.")


class ExecutorPlugin:
    @hookimpl
    def diffim_register_executors(self, registry: Any) -> str:
        return "seen"


# ------------------------------------------------------------------------------ packaging


def test_pytest11_entry_point_and_auto_loading(request: pytest.FixtureRequest) -> None:
    [ep] = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "diffim"]
    assert ep.value == "diffim.testing.pytest_plugin"
    plugin = request.config.pluginmanager.get_plugin("diffim")
    assert plugin is sys.modules["diffim.testing.pytest_plugin"]


def test_kit_imports_stay_light() -> None:
    code = (
        "import sys, time\n"
        "import diffim.testing, diffim.testing.pytest_plugin\n"
        "heavy = [m for m in ('numpy', 'scipy', 'astropy', 'matplotlib', 'diffim.framework', 'diffim.tasks')\n"
        "         if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------- diffim_plugin_manager


def test_plugin_manager_fixture_holds_only_the_chosen_plugins(diffim_plugin_manager: Any) -> None:
    from diffim.tasks.registries import kernel_bases

    before = get_plugin_manager()
    module = types.ModuleType("kit_executor_module")
    module.diffim_register_executors = hookimpl(lambda registry: "module")  # type: ignore[attr-defined]
    pm = diffim_plugin_manager(BasisPlugin(), module, builtins=False)
    assert get_plugin_manager() is pm is not before
    assert [info.name for info in pm.list_plugins()] == ["kit_executor_module", f"{__name__}.BasisPlugin"]
    assert list(kernel_bases) == ["tiny"]  # the registry asked this manager's plugins
    assert pm.call("diffim_register_executors", registry=None) == ["module"]


def test_plugin_manager_restores_the_previous_manager_and_registries() -> None:
    from diffim.tasks.registries import kernel_bases

    with isolated_plugin_manager() as outer:
        refresh_registries()
        assert "tiny" not in kernel_bases and "alard-lupton" in kernel_bases
        with plugin_manager(BasisPlugin()) as inner:
            assert get_plugin_manager() is inner
            assert {"tiny", "alard-lupton"} <= set(kernel_bases)
        assert get_plugin_manager() is outer
        assert "tiny" not in kernel_bases  # refreshed on the way out
    refresh_registries()


def test_plugin_manager_takes_dotted_module_names_and_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("kit_fake_plugin_module")
    module.diffim_register_executors = hookimpl(lambda registry: "by name")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kit_fake_plugin_module", module)
    with plugin_manager("kit_fake_plugin_module", builtins=False) as pm:
        assert pm.call("diffim_register_executors", registry=None) == ["by name"]
    entry = importlib.metadata.EntryPoint(name="fake", value="kit_fake_plugin_module", group="diffim")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [entry] if group == "diffim" else [])
    with plugin_manager(builtins=False, entry_points=["fake"]) as pm:
        assert [info.name for info in pm.list_plugins()] == ["fake"]
    nope = r"no installed diffim plugin has the entry-point name 'nope'; installed: 'fake'"
    with pytest.raises(ValueError, match=nope), plugin_manager(entry_points=["nope"]):
        pass
    missing = r"cannot import plugin module 'kit_no_such_module_xyz'"
    with pytest.raises(ValueError, match=missing), plugin_manager("kit_no_such_module_xyz"):
        pass


def test_plugin_manager_reports_a_bad_plugin() -> None:
    class Typo:
        @hookimpl
        def diffim_register_kernel_base(self, registry: Any) -> None:
            pass

    before = get_plugin_manager()
    with pytest.raises(PluginError, match="did you mean 'diffim_register_kernel_bases'"), plugin_manager(Typo()):
        pass
    assert get_plugin_manager() is before


# ---------------------------------------------------------------------- diffim_hook_recorder


def test_hook_recorder_records_name_kwargs_plugins_and_results(
    diffim_plugin_manager: Any, diffim_hook_recorder: Any
) -> None:
    pm = diffim_plugin_manager(ExecutorPlugin(), builtins=False)
    recorder = diffim_hook_recorder()  # default: the current process-wide manager, i.e. pm
    registry = object()
    assert pm.call("diffim_register_executors", registry=registry) == ["seen"]
    call = recorder.getcall("diffim_register_executors")
    assert call.kwargs == {"registry": registry} and call.kwargs["registry"] is registry
    assert call.plugins == [f"{__name__}.ExecutorPlugin"]
    assert call.result == ["seen"] and call.exception is None and call.finished
    assert recorder.names() == ["diffim_register_executors"] and len(recorder) == 1


def test_hook_recorder_sees_failures_nested_calls_and_stops_on_close() -> None:
    class Nested:
        @hookimpl
        def diffim_register_tasks(self, registry: Any) -> None:
            get_plugin_manager().call("diffim_register_executors", registry=registry)

        @hookimpl
        def diffim_register_executors(self, registry: Any) -> None:
            raise KeyError("boom")

    with plugin_manager(Nested(), builtins=False) as pm, HookRecorder(pm) as recorder:
        with pytest.raises(PluginError, match="KeyError"):
            pm.call("diffim_register_tasks", registry=None)
        assert recorder.names() == ["diffim_register_tasks", "diffim_register_executors"]
        inner = recorder.getcall("diffim_register_executors")
        assert isinstance(inner.exception, KeyError) and inner.result is None and inner.finished
        with pytest.raises(AssertionError, match=r"exactly one call of hook 'diffim_add_commands', got 0"):
            recorder.getcall("diffim_add_commands")
        recorder.clear()
        assert recorder.calls == []
    assert recorder.closed
    with pytest.raises(KeyError):
        pm.hook.diffim_register_executors(registry=None)
    assert recorder.calls == []  # closed: nothing more recorded


# ----------------------------------------------------------------------- diffim_image_pair


def test_image_pair_fixture_has_a_known_kernel(diffim_image_pair: SyntheticPair) -> None:
    from diffim.tasks.kernel import convolve

    pair = diffim_image_pair
    assert pair.template.getDimensions() == pair.science.getDimensions() == (256, 256)
    assert pair.template.psf.sigma == pair.templateSigma and pair.science.psf.sigma == pair.scienceSigma
    assert pair.kernel.array.sum() == pytest.approx(pair.fluxRatio)
    assert pair.kernelSigma == pytest.approx(np.sqrt(pair.scienceSigma**2 - pair.templateSigma**2))
    assert len(pair.stars) == 25 and set(pair.stars.colnames) == {"x", "y", "flux"}
    # the science image is the template convolved with the known kernel, plus noise and the transient
    matched = convolve(pair.template.maskedImage, pair.kernel, doNormalize=False)
    residual = pair.science.image.array - matched.image.array
    variance = pair.scienceNoise**2 + pair.templateNoise**2 * float(np.sum(pair.kernel.array**2))
    yy, xx = np.mgrid[0:256, 0:256]
    near_transient = np.hypot(xx - pair.transient["x"], yy - pair.transient["y"]) < 10
    interior = np.isfinite(residual) & ~near_transient
    interior[:20] = interior[-20:] = False
    interior[:, :20] = interior[:, -20:] = False
    assert np.std(residual[interior] / np.sqrt(variance)) == pytest.approx(1.0, abs=0.05)
    flux = residual[near_transient & np.isfinite(residual)].sum()
    assert flux == pytest.approx(pair.transient["flux"], rel=0.05)


def test_image_pair_factory_parameters_and_errors(diffim_image_pair_factory: Any) -> None:
    pair = diffim_image_pair_factory(96, nstars=9, xy0=(1000, 2000), fluxRatio=0.8, transientFlux=0.0, seed=5)
    assert pair.science.getBBox().getMin() == (1000, 2000) and len(pair.stars) == 9
    assert pair.stars["x"].min() > 1000 and pair.stars["y"].max() < 2096
    assert pair.kernel.array.sum() == pytest.approx(0.8)
    again = make_image_pair(96, nstars=9, xy0=(1000, 2000), fluxRatio=0.8, transientFlux=0.0, seed=5)
    assert np.array_equal(again.science.image.array, pair.science.image.array)  # reproducible
    with pytest.raises(ValueError, match=r"size must be 64..256 pixels.*got 512"):
        make_image_pair(512)
    with pytest.raises(ValueError, match=r"need 0 < templateSigma < scienceSigma"):
        make_image_pair(templateSigma=3.0, scienceSigma=2.0)
    with pytest.raises(ValueError, match=r"nstars must be at least 4"):
        make_image_pair(nstars=3)


def test_image_pair_subtracts_cleanly_with_the_default_task(diffim_image_pair: SyntheticPair) -> None:
    from diffim.tasks import ImagePsfMatchConfig, ImagePsfMatchTask

    pair = diffim_image_pair
    config = ImagePsfMatchConfig()
    config.doQa = False
    result = ImagePsfMatchTask(config=config).subtractExposures(pair.template, pair.science,
                                                                candidateList=pair.stars)
    assert result.kernelSum == pytest.approx(pair.fluxRatio, rel=0.02)
    # the fitted kernel matches the template PSF as the known kernel does (the kernels themselves
    # differ on the pixel scale, which the smooth PSF does not see)
    from scipy.signal import fftconvolve

    x, y = pair.science.getBBox().getCenter()
    psf = pair.template.psf.computeImage(x, y)
    truth = fftconvolve(psf, pair.kernel.array)
    fitted = fftconvolve(psf, result.psfMatchingKernel.computeImage(x, y))
    cut = (fitted.shape[0] - truth.shape[0]) // 2
    fitted = fitted[cut : cut + truth.shape[0], cut : cut + truth.shape[1]]
    assert np.abs(fitted - truth).max() < 0.01 * truth.max()


# --------------------------------------------------------------------- as a pytest plugin


def test_fixtures_reach_an_outside_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_outside="""
        from diffim.framework.plugins import get_plugin_manager, hookimpl

        class Plugin:
            @hookimpl
            def diffim_register_executors(self, registry):
                return 42

        def test_it(diffim_plugin_manager, diffim_hook_recorder, diffim_image_pair):
            pm = diffim_plugin_manager(Plugin(), builtins=False)
            recorder = diffim_hook_recorder()
            assert get_plugin_manager().call("diffim_register_executors", registry=None) == [42]
            assert recorder.getcall("diffim_register_executors").result == [42]
            assert diffim_image_pair.science.getDimensions() == (256, 256)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    disabled = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:diffim")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'diffim_plugin_manager' not found*"])
