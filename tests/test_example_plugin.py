"""End to end: the example plugin (examples/diffim-example-plugin) installed, found by its entry point,
and used by ImagePsfMatchTask for its kernel basis, QA visitor and debug display.

The plugin is pip-installed into a --target folder, unless it is already installed in the
environment (CI runs ``pip install ./examples/diffim-example-plugin``): then that copy is used.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from diffim.framework import debug as fdebug
from diffim.framework.plugins import PluginInfo
from diffim.tasks import ImagePsfMatchConfig, ImagePsfMatchTask
from diffim.testing import HookRecorder, make_image_pair, plugin_manager

SOURCE = Path(__file__).resolve().parents[1] / "examples" / "diffim-example-plugin"
DIST = "diffim-example-plugin"
HOOKS = ["diffim_debug_display", "diffim_register_candidate_visitors", "diffim_register_kernel_bases"]


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Folder holding the pip-installed plugin, or None when the environment already has it."""
    if _installed_version() is not None:
        return None
    work = tmp_path_factory.mktemp("example_plugin")
    source = work / "src"
    # build from a copy: setuptools writes build/ and *.egg-info next to pyproject.toml
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(source),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return target


@pytest.fixture
def example_plugin(plugin_site: Path | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path | None]:
    """The installed plugin on sys.path; its modules are forgotten afterwards."""
    if plugin_site is not None:
        monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    for name in [name for name in sys.modules if name.split(".")[0] == "diffim_example_plugin"]:
        del sys.modules[name]


def test_installed_example_plugin_runs_end_to_end(example_plugin: Path | None, tmp_path: Path) -> None:
    pair = make_image_pair(seed=2)
    fdebug.reset_debug()
    fdebug.set_display_dir(tmp_path)
    for module in ("diffim.tasks.psfMatch", "diffim.tasks.imagePsfMatch"):
        info = fdebug.Info(module)
        info.display = info.exampleKernelPng = True
    # autoload: the real manager's entry-point loading, as in `diffim run` outside the test suite
    try:
        with plugin_manager(autoload=True) as pm, HookRecorder(pm) as recorder:
            [info] = [info for info in pm.list_plugins() if info.name == "example"]
            assert info == PluginInfo("example", DIST, "0.1.0", HOOKS)
            module = sys.modules["diffim_example_plugin.plugin"]
            if example_plugin is not None:  # the pip-installed copy, not the source tree
                assert Path(module.__file__).is_relative_to(example_plugin)
            # config values naming plugin entries are checked against the registries: set them now
            config = ImagePsfMatchConfig()
            config.kernel.active.kernelBasisSet = "gauss-hermite"
            config.kernel.active.qaVisitors = ["residualChi2"]
            task = ImagePsfMatchTask(config=config)
            result = task.subtractExposures(pair.template, pair.science)
            # the kernel basis: registered through the hook by the plugin (the registry is live:
            # it is emptied when the manager goes)
            call = recorder.getcall("diffim_register_kernel_bases")
            assert "example" in call.plugins and "gauss-hermite" in call.kwargs["registry"]
    finally:
        fdebug.reset_debug()

    # ... and used for the fit
    md = task.metadata
    assert md["GHBasisMode"] == "convolution" and "ALBasisMode" not in md
    assert md["GHKernelSize"] == result.psfMatchingKernel.getWidth()
    assert result.kernelSum == pytest.approx(pair.fluxRatio, rel=0.01)
    # the QA visitor: one reduced chi2 per kept candidate, about 1 for this noise-only residual
    assert md["exampleQaNCandidates"] == md["nGoodCandidates"] == len(md.getArray("exampleQaChi2"))
    assert 0.7 < md["exampleQaChi2Median"] < 1.5
    # the display: one PNG per stage it draws, numbered with the debug frames
    assert sorted(path.name for path in tmp_path.glob("*_example_kernel_*.png")) == [
        "001_example_kernel_psfMatch_solve.png",
        "002_example_kernel_imagePsfMatch_cells.png",
    ]
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in tmp_path.glob("*.png"))
    # the difference shows the transient
    dia = result.diaSources
    distance = np.hypot(np.asarray(dia["x"]) - pair.transient["x"], np.asarray(dia["y"]) - pair.transient["y"])
    assert distance.min() < 1.0


def test_the_example_plugin_is_dropped_by_a_block(
    example_plugin: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIFFIM_BLOCK_PLUGINS", "example")
    with plugin_manager(autoload=True) as pm:
        assert "example" not in [info.name for info in pm.list_plugins()]
        from diffim.tasks.registries import kernel_bases

        assert "gauss-hermite" not in kernel_bases
        assert "no kernel basis called 'gauss-hermite'" in kernel_bases.unknown_message("gauss-hermite")
