"""Built-in debug displays (diffim.plugins.displays): every debug flag draws what it promises, headless.

A module fixture runs ImagePsfMatchTask once on the shipped demo pair (a small basis and a
spatially varying kernel) with a plugin capturing what each display stage offers; the tests then
draw each display from that data and count the figures' panels. End to end, the reference page's
debug.py (verbatim) and the repo's debug.py are run through ``diffim run`` / ``diffim demo``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # headless, whatever the machine has

from diffim.framework import debug as fdebug  # noqa: E402
from diffim.framework.cli import main  # noqa: E402
from diffim.framework.plugins import get_plugin_manager, hookimpl, isolated_plugin_manager  # noqa: E402
from diffim.plugins import displays  # noqa: E402
from diffim.plugins.displays import imagepsfmatch, psfmatch, render, report  # noqa: E402
from diffim.tasks.image import Exposure  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "plugins" / "demo_data"
TEMPLATE = DEMO / "template_DEC-OBS18a.mini.fits"
SCIENCE = DEMO / "science_DEC-OBS04a.mini.fits"
PSF_MODULE = "diffim.tasks.psfMatch"
IMAGE_MODULE = "diffim.tasks.imagePsfMatch"
MODEL_MODULE = "diffim.tasks.modelPsfMatch"

sys.path.insert(0, str(Path(__file__).parent))
from _reference_debug import REFERENCE_DEBUG_PY  # noqa: E402

# What the reference debug.py asks for, in drawing order; everything else must stay undrawn.
REFERENCE_FIGURES = [
    "001_candidates.png", "002_kernels.png", "003_chi_diffim.png", "004_kernel_mosaic.png",
    "005_kernel_coefficients_candidates.png", "006_kernel_coefficients_histograms.png",
    "007_kernel_coefficients_spatial.png",
]
# The repo's debug.py adds the imagePsfMatch displays (template and science before the fit, the
# cells with the fit's GOOD/BAD candidates and the difference after it).
REPO_FIGURES = [
    "001_template.png", "002_science.png", "003_candidates.png", "004_kernels.png",
    "005_chi_diffim.png", "006_kernel_mosaic.png", "007_kernel_coefficients_candidates.png",
    "008_kernel_coefficients_histograms.png", "009_kernel_coefficients_spatial.png", "010_spatial_cells.png",
    "011_difference.png",
]

RUN_DEMO = [
    "run", "-t", "ImagePsfMatchTask", "-i", f"template={TEMPLATE}", "-i", f"science={SCIENCE}",
    "-c", "kernel.active.spatialKernelOrder=0", "-c", "kernel.active.spatialBgOrder=0",
]


def _fast() -> None:
    """Small PNGs: the tests count panels, nobody looks at these."""
    fdebug.getInfo(render.OPTIONS_NAME).dpi = 30


@pytest.fixture(autouse=True)
def clean(tmp_path: Path) -> Iterator[Path]:
    """Fresh debug state, figures into tmp_path/debug, reports forgotten."""
    fdebug.reset_debug()
    report.reset_reports()
    displays._reported.clear()
    render._gui_state.update(checked=False, available=False)
    _fast()
    fdebug.set_display_dir(tmp_path / "debug")
    yield tmp_path / "debug"
    fdebug.reset_debug()
    report.reset_reports()
    displays._reported.clear()


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure saved, in order (to count its panels)."""
    figures: list[Figure] = []
    original = Figure.savefig

    def spy(self: Figure, *args: Any, **kwargs: Any) -> Any:
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figures


class _Capture:
    """Records the data of every display stage (instead of drawing it)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, Any] = {}

    @hookimpl
    def diffim_debug_display(self, stage: str, module: str, debug: Any, task: Any, data: Any) -> None:
        self.data[stage] = dict(data)
        self.tasks[stage] = task


class _Broken:
    """A third-party display plugin that always fails."""

    @hookimpl
    def diffim_debug_display(self, stage: str, module: str, debug: Any, task: Any, data: Any) -> None:
        raise RuntimeError("ds9 is not running")


@pytest.fixture(scope="module")
def stages() -> dict[str, Any]:
    """ImagePsfMatchTask on the demo pair (9 bases, linear spatial kernel) + a ModelPsfMatch cell set."""
    from diffim.tasks.imagePsfMatch import ImagePsfMatchTask
    from diffim.tasks.modelPsfMatch import ModelPsfMatchConfig, ModelPsfMatchTask
    from diffim.tasks.psf import DoubleGaussianPsf

    fdebug.reset_debug()
    for module in (PSF_MODULE, IMAGE_MODULE, MODEL_MODULE):
        fdebug.getInfo(module).display = True  # the gate only: the built-in displays draw nothing
    capture = _Capture()
    config = ImagePsfMatchTask.ConfigClass()
    kernel = config.kernel.active
    kernel.alardNGauss, kernel.alardDegGauss, kernel.alardSigGauss = 2, [2, 1], [1.0, 2.0]
    kernel.spatialKernelOrder, kernel.spatialBgOrder = 1, 0
    kernel.sizeCellX = kernel.sizeCellY = 64
    model_config = ModelPsfMatchConfig()
    model_config.kernel.active.kernelSize = model_config.kernel.active.kernelSizeMin = 9
    model_config.kernel.active.scaleByFwhm = False
    rng = np.random.default_rng(3)
    exposure = Exposure(image=rng.normal(0.0, 1.0, (128, 128)).astype(np.float32),
                        variance=np.ones((128, 128), np.float32), psf=DoubleGaussianPsf(11, 11, 2.0))
    try:
        with isolated_plugin_manager(capture):
            task = ImagePsfMatchTask(config=config)
            task.subtractExposures(Exposure.readFits(TEMPLATE), Exposure.readFits(SCIENCE))
            ModelPsfMatchTask(config=model_config)._buildCellSet(exposure, DoubleGaussianPsf(11, 11, 3.7))
    finally:
        fdebug.reset_debug()
    assert set(capture.data) == {"imagePsfMatch.template", "imagePsfMatch.science", "imagePsfMatch.cells",
                                 "psfMatch.solve", "imagePsfMatch.difference", "modelPsfMatch.cells"}
    return {"data": capture.data, "tasks": capture.tasks}


def _draw(stages: dict[str, Any], stage: str, module: str, **flags: Any) -> list[str]:
    info = fdebug.getInfo(module)
    for name, value in flags.items():
        setattr(info, name, value)
    return displays.draw(stage, module, info, stages["tasks"][stage], stages["data"][stage])


def _pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png")) if folder.exists() else []


def _box_color(text: Any) -> str:
    return to_hex(text.get_bbox_patch().get_facecolor(), keep_alpha=False)


def _n_images(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def _labels(fig: Figure) -> list[Any]:
    """The candidate labels ('<id>  χ² <value>') of a candidate mosaic."""
    return [t for t in fig.axes[0].texts if "χ²" in t.get_text()]


# ---------------------------------------------------------------- psfMatch: one flag at a time


def test_display_candidates_three_mosaics(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    assert _draw(stages, "psfMatch.solve", PSF_MODULE, displayCandidates=True) == ["displayCandidates"]
    assert _pngs(clean) == ["001_candidates.png", "002_kernels.png", "003_chi_diffim.png"]
    n = len(psfmatch.usable_candidates(stages["data"]["psfMatch.solve"]["cellSet"], False))
    candidates, kernels, chi = saved
    assert [len(f.axes) for f in saved] == [1, 2, 2]  # mosaic (+ colour bar for kernels and chi)
    assert [_n_images(f) for f in saved] == [1, 1, 1]
    for fig in saved:
        labels = _labels(fig)
        assert len(labels) == n > 0
        assert {_box_color(label) for label in labels} == {to_hex("limegreen")}  # all GOOD: green
    assert "Candidates & residuals" in candidates._suptitle.get_text()
    assert "Kernels" in kernels._suptitle.get_text() and "chi Diffim" in chi._suptitle.get_text()
    assert fdebug.frame == 4  # used 1, 2, 3 and advanced


def test_show_bad_candidates_adds_the_bad_ones_in_red(stages: dict[str, Any], saved: list[Figure]) -> None:
    cell_set = stages["data"]["psfMatch.solve"]["cellSet"]
    victim = next(iter(psfmatch.usable_candidates(cell_set, False)))
    status = victim.getStatus()
    victim.setStatus("BAD")
    try:
        _draw(stages, "psfMatch.solve", PSF_MODULE, displayCandidates=True)
        without = [len(_labels(f)) for f in saved]
        saved.clear()
        _draw(stages, "psfMatch.solve", PSF_MODULE, showBadCandidates=True, plotKernelCoefficients=True)
    finally:
        victim.setStatus(status)
    assert [w + 1 for w in without] == [len(_labels(f)) for f in saved[:3]]
    red = [t for t in _labels(saved[0]) if _box_color(t) == to_hex("red")]
    assert len(red) == 1 and red[0].get_text().startswith(f"{victim.getId()} ")
    grid = saved[3].axes[0]
    assert "BAD (red)" in grid.get_title()
    assert sum(to_hex(line.get_color()) == to_hex("red") for line in grid.lines) == 1  # its coefficient vector


def test_display_kernel_basis(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    _draw(stages, "psfMatch.solve", PSF_MODULE, displayKernelBasis=True)
    assert _pngs(clean) == ["001_kernel_basis.png"]
    (fig,) = saved
    nbasis = stages["data"]["psfMatch.solve"]["spatialKernel"].getNBasisKernels()
    assert (len(fig.axes), _n_images(fig), len(fig.axes[0].texts)) == (2, 1, nbasis)
    assert "Kernel Basis Images" in fig._suptitle.get_text()


def test_display_kernel_mosaic(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    _draw(stages, "psfMatch.solve", PSF_MODULE, displayKernelMosaic=True)
    assert _pngs(clean) == ["001_kernel_mosaic.png"]
    (fig,) = saved
    ax = fig.axes[0]
    assert (len(fig.axes), _n_images(fig)) == (2, 1)
    assert sum(t.get_text().startswith("Σ") for t in ax.texts) == 49  # a 7 × 7 grid over a square image
    assert len(ax.get_xticks()) == 7 and len(ax.get_yticks()) == 7
    assert len(ax.patches) >= 1 and len(ax.lines) >= 1  # shape ellipses and centroid crosses where measured
    assert "Model Kernel" in fig._suptitle.get_text()


def test_plot_kernel_spatial_model(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    fdebug.getInfo(render.OPTIONS_NAME).maxCoeff = 2
    _draw(stages, "psfMatch.solve", PSF_MODULE, plotKernelSpatialModel=True)
    assert _pngs(clean) == ["001_spatial_model_coeff000.png", "002_spatial_model_coeff001.png"]
    for fig in saved:
        assert (len(fig.axes), _n_images(fig)) == (5, 1)  # 4 panels + the model's colour bar
        assert any(ax.get_title() == "spatial model" for ax in fig.axes)


def test_plot_kernel_coefficients_three_figures(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    _draw(stages, "psfMatch.solve", PSF_MODULE, plotKernelCoefficients=True)
    assert _pngs(clean) == ["001_kernel_coefficients_candidates.png", "002_kernel_coefficients_histograms.png",
                            "003_kernel_coefficients_spatial.png"]
    grid, histograms, spatial = saved
    nbasis = stages["data"]["psfMatch.solve"]["spatialKernel"].getNBasisKernels()
    n = len(psfmatch.usable_candidates(stages["data"]["psfMatch.solve"]["cellSet"], False))
    steps = [line for line in grid.axes[0].lines if len(line.get_xdata()) == nbasis]
    assert len(steps) == n  # one coefficient vector per candidate
    panels = [t for t in histograms.axes[0].texts if t.get_text().startswith("coefficient ")]
    assert len(panels) == nbasis
    vectors = [line for line in spatial.axes[0].lines if len(line.get_xdata()) == nbasis]
    assert len(vectors) == 64  # the 8 × 8 grid
    assert "Hist. of parameters" in histograms._suptitle.get_text()


def test_psfmatch_flags_off_draw_nothing(stages: dict[str, Any], clean: Path) -> None:
    assert _draw(stages, "psfMatch.solve", PSF_MODULE, display=True, maskTransparency=80,
                 showBadCandidates=True, displayKernelBasis=False) == []
    assert _pngs(clean) == [] and not (clean / "index.html").exists()
    assert fdebug.frame == 1


# ---------------------------------------------------------------- imagePsfMatch, modelPsfMatch


@pytest.mark.parametrize(("stage", "flag", "png", "title"), [
    ("imagePsfMatch.template", "displayTemplate", "001_template.png", "Image to convolve"),
    ("imagePsfMatch.science", "displaySciIm", "001_science.png", "Image to not convolve"),
])
def test_image_displays(stages: dict[str, Any], saved: list[Figure], clean: Path, stage: str, flag: str, png: str,
                        title: str) -> None:
    assert _draw(stages, stage, IMAGE_MODULE, **{flag: True}) == [flag]
    assert _pngs(clean) == [png]
    (fig,) = saved
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel().startswith("counts")  # image + colour bar
    assert ax.get_xlabel() == "x (pixels)" and ax.images[0].origin == "lower"
    assert title in fig._suptitle.get_text()


def test_display_spatial_cells(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    _draw(stages, "imagePsfMatch.cells", IMAGE_MODULE, displaySpatialCells=True)
    assert _pngs(clean) == ["001_spatial_cells.png"]
    (fig,) = saved
    cell_set = stages["data"]["imagePsfMatch.cells"]["cellSet"]
    ax = fig.axes[0]
    assert len(fig.axes) == 2
    assert len(ax.patches) == len(cell_set.getCellList())  # one rectangle per cell
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(markers) == len(list(cell_set.candidates(include_bad=True)))
    assert [t.get_text() for t in ax.get_legend().get_texts()][0].startswith("GOOD")


def test_display_diffim_four_panels_or_one(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    _draw(stages, "imagePsfMatch.difference", IMAGE_MODULE, displayDiffIm=True)
    titles = [ax.get_title() for ax in saved[0].axes if ax.get_title()]
    assert titles == ["Template", "Matched template", "Science Image", "Difference Image"]
    assert len(saved[0].axes) == 8  # 4 images + 4 colour bars
    # subtractMaskedImages offers the difference alone, with its title
    difference = stages["data"]["imagePsfMatch.difference"]["difference"].maskedImage
    info = fdebug.getInfo(IMAGE_MODULE)
    displays.draw("imagePsfMatch.difference", IMAGE_MODULE, info, None,
                  {"difference": difference, "title": "Subtracted masked image"})
    assert len(saved[1].axes) == 2 and "Subtracted masked image" in saved[1]._suptitle.get_text()
    assert _pngs(clean) == ["001_difference.png", "002_difference.png"]


def test_model_psf_match_spatial_cells(stages: dict[str, Any], saved: list[Figure], clean: Path) -> None:
    assert _draw(stages, "modelPsfMatch.cells", MODEL_MODULE, displaySpatialCells=True) == ["displaySpatialCells"]
    assert _pngs(clean) == ["001_model_spatial_cells.png"]
    cell_set = stages["data"]["modelPsfMatch.cells"]["cellSet"]
    markers = [line for line in saved[0].axes[0].lines if line.get_marker() == "o"]
    assert len(markers) == len(list(cell_set.candidates(include_bad=True))) > 0


@pytest.mark.parametrize(("stage", "module"), [
    ("imagePsfMatch.template", IMAGE_MODULE), ("imagePsfMatch.science", IMAGE_MODULE),
    ("imagePsfMatch.cells", IMAGE_MODULE), ("imagePsfMatch.difference", IMAGE_MODULE),
    ("modelPsfMatch.cells", MODEL_MODULE),
])
def test_image_flags_off_draw_nothing(stages: dict[str, Any], clean: Path, stage: str, module: str) -> None:
    assert _draw(stages, stage, module, display=True, maskTransparency=80) == []
    assert _pngs(clean) == []


@pytest.mark.parametrize(("transparency", "alpha"), [(80, 0.2), (None, 0.4), (0, 1.0), (100, None)])
def test_mask_transparency(saved: list[Figure], transparency: float | None, alpha: float | None) -> None:
    from diffim.tasks.image import MaskedImage

    image = MaskedImage(np.random.default_rng(1).normal(size=(40, 50)))
    image.mask.set_plane("SAT", np.eye(40, 50, dtype=bool))
    ctx = render.DisplayContext(debug=fdebug.getInfo(IMAGE_MODULE))
    if transparency is not None:
        fdebug.getInfo(IMAGE_MODULE).maskTransparency = transparency
    imagepsfmatch.displayTemplate(image, ctx=ctx)
    overlays = saved[0].axes[0].images[1:]
    if alpha is None:
        assert overlays == []  # fully transparent: nothing overlaid
    else:
        (overlay,) = overlays
        rgba = np.asarray(overlay.get_array(), dtype=float) / 255.0
        assert rgba[0, 0, 3] == pytest.approx(alpha, abs=0.003) and rgba[0, 1, 3] == 0.0  # only the SAT pixels
        assert tuple(rgba[0, 0, :3]) == pytest.approx((0.0, 0.50196, 0.0), abs=1e-4)  # SAT is green


# ---------------------------------------------------------------- report, frames, failures


def test_report_gathers_figures_with_metadata(stages: dict[str, Any], clean: Path) -> None:
    fdebug.frame = 10
    _draw(stages, "imagePsfMatch.template", IMAGE_MODULE, displayTemplate=True)
    first = (clean / "index.html").read_text()
    _draw(stages, "psfMatch.solve", PSF_MODULE, displayKernelMosaic=True)
    text = (clean / "index.html").read_text()
    assert 'src="010_template.png"' in first and "kernel_mosaic" not in first  # rewritten per figure
    assert 'src="010_template.png"' in text and 'src="011_kernel_mosaic.png"' in text
    assert "Image to convolve" in text and "Model Kernel" in text
    assert "spatialKernelSum" in text and "ALBasisNGauss" in text  # the task metadata
    assert "displayKernelMosaic" in text and "imagePsfMatch" in text
    assert not list(clean.glob(".*"))  # no temporary files left behind
    assert [f.frame for f in report.figures(clean)] == [10, 11] and fdebug.frame == 12


def test_failing_display_plugin_is_reported_once_and_ours_still_draw(
    stages: dict[str, Any], clean: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from diffim.tasks import hooks

    hooks._reported_display_failures.clear()
    info = fdebug.getInfo(IMAGE_MODULE)
    info.display = info.displayTemplate = True
    data = stages["data"]["imagePsfMatch.template"]
    with isolated_plugin_manager(_Broken()), caplog.at_level(logging.WARNING):
        for _ in range(2):
            hooks.debug_display("imagePsfMatch.template", IMAGE_MODULE, info, None, **data)  # does not raise
    warnings = [r.getMessage() for r in caplog.records if "ds9 is not running" in r.getMessage()]
    assert len(warnings) == 1 and "_Broken" in warnings[0]
    assert _pngs(clean) == ["001_template.png", "002_template.png"]  # ours ran before the broken one


def test_a_display_that_raises_is_skipped_and_reported_once(
    stages: dict[str, Any], clean: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = fdebug.getInfo(PSF_MODULE)
    info.displayKernelBasis = info.displayKernelMosaic = True
    broken = {**stages["data"]["psfMatch.solve"], "spatialKernel": None}  # every display needs a kernel
    with caplog.at_level(logging.WARNING, logger="diffim.plugins.displays"):
        assert displays.draw("psfMatch.solve", PSF_MODULE, info, None, broken) == []
        assert displays.draw("psfMatch.solve", PSF_MODULE, info, None, broken) == []
    assert sorted(r.getMessage().split()[2] for r in caplog.records) == ["displayKernelBasis", "displayKernelMosaic"]
    info.displayKernelBasis = False
    assert displays.draw("psfMatch.solve", PSF_MODULE, info, None, stages["data"]["psfMatch.solve"]) == [
        "displayKernelMosaic"]


def test_interactive_without_gui_backend_writes_pngs(stages: dict[str, Any], clean: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fdebug.getInfo(render.OPTIONS_NAME).interactive = True
    _draw(stages, "imagePsfMatch.science", IMAGE_MODULE, displaySciIm=True)
    assert _pngs(clean) == ["001_science.png"]
    assert render._gui_state["checked"] and not render._gui_state["available"]


def test_interactive_with_a_gui_shows_windows_kept_open_at_exit(stages: dict[str, Any], clean: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    shown: list[Any] = []
    at_exit: list[Any] = []
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: shown.append(kwargs))
    monkeypatch.setattr(plt, "pause", lambda interval: None)
    monkeypatch.setattr(render.atexit, "register", at_exit.append)
    render._gui_state.update(checked=True, available=True, keep_registered=False)  # as if a GUI were there
    fdebug.getInfo(render.OPTIONS_NAME).interactive = True
    try:
        _draw(stages, "imagePsfMatch.template", IMAGE_MODULE, displayTemplate=True)
        _draw(stages, "imagePsfMatch.science", IMAGE_MODULE, displaySciIm=True)
        assert len(plt.get_fignums()) == 2  # pyplot windows, left open
    finally:
        plt.close("all")
        render._gui_state.update(checked=False, available=False, keep_registered=False)
    assert shown == [{"block": False}, {"block": False}]
    assert at_exit == [render._keep_windows_open]  # registered once (LSST's keepPlots)
    assert _pngs(clean) == ["001_template.png", "002_science.png"]  # the report stays complete


def test_big_images_are_binned_for_display(saved: list[Figure]) -> None:
    from diffim.tasks.image import MaskedImage

    width = 2 * render.MAX_DISPLAY_PIXELS + 10  # binned 3 × 3, the last column dropped
    image = MaskedImage(np.ones((30, width)), xy0=(5, 7))
    image.mask.set_plane("CR", np.broadcast_to(np.arange(width) == 4, (30, width)))
    imagepsfmatch.displayTemplate(image, ctx=render.DisplayContext())
    shown, overlay = saved[0].axes[0].images
    assert shown.get_array().shape == (10, width // 3)
    alpha = np.asarray(overlay.get_array())[:, :, 3]
    assert alpha[:, 1].all() and not alpha[:, 0].any() and not alpha[:, 2].any()  # the CR column, OR-ed
    assert shown.get_extent() == [4.5, 4.5 + 3 * (width // 3), 6.5, 36.5]  # still parent pixels
    assert "binned 3×3" in saved[0].axes[0].get_title()


def test_package_is_import_light_and_registered() -> None:
    code = ("import sys, diffim.plugins.displays as d; "
            "print(sorted(m for m in ('matplotlib', 'numpy', 'astropy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert get_plugin_manager().manager.is_registered(displays)  # through its entry point, as a built-in


# ---------------------------------------------------------------- end to end through the launcher


def test_reference_debug_py_verbatim_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reference_debug.py").write_text(REFERENCE_DEBUG_PY)
    fdebug.set_display_dir(None)  # the launcher decides: OUTDIR/debug
    assert main([*RUN_DEMO, "-o", "out", "--debug-file", "reference_debug.py"]) == 0
    folder = tmp_path / "out" / "debug"
    assert _pngs(folder) == REFERENCE_FIGURES  # all it asks for, and nothing it sets False
    text = (folder / "index.html").read_text()
    assert all(f'src="{name}"' in text for name in REFERENCE_FIGURES)
    assert fdebug.display_dir() == Path(fdebug.DEFAULT_DISPLAY_DIR)  # restored after the job
    assert not (tmp_path / fdebug.DEFAULT_DISPLAY_DIR).exists()


def test_repo_debug_py_through_diffim_demo_despite_a_broken_display_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from diffim.tasks import hooks

    monkeypatch.chdir(tmp_path)
    (tmp_path / "debug.py").write_text((REPO / "debug.py").read_text())  # found by --debug in the cwd
    fdebug.set_display_dir(None)
    hooks._reported_display_failures.clear()
    with isolated_plugin_manager(_Broken()), caplog.at_level(logging.WARNING, logger="diffim.display"):
        assert main(["demo", "-o", "demo-out", "--debug"]) == 0  # the run goes on
    folder = tmp_path / "demo-out" / "debug"
    assert _pngs(folder) == REPO_FIGURES  # and the built-in displays all drew
    assert (folder / "index.html").exists()
    failures = [r.getMessage() for r in caplog.records if "ds9 is not running" in r.getMessage()]
    # reported once per stage, naming the plugin (template, science, cells, solve, difference)
    assert len(failures) == 5 and all("_Broken" in message for message in failures)


def test_display_dir_api(tmp_path: Path) -> None:
    assert fdebug.set_display_dir(None) == tmp_path / "debug"  # returns what was chosen before
    assert fdebug.display_dir() == Path("diffim-debug") == Path(fdebug.DEFAULT_DISPLAY_DIR)
    assert fdebug.set_display_dir(str(tmp_path / "a")) is None
    assert fdebug.display_dir() == tmp_path / "a"
    fdebug.reset_debug()
    assert fdebug.display_dir() == Path(fdebug.DEFAULT_DISPLAY_DIR)


class _Recorder:
    """Notes the display folder while a launcher job reads its inputs."""

    def __init__(self) -> None:
        self.seen: list[Path] = []

    @hookimpl(tryfirst=True)
    def diffim_read_input(self, type_name: str, path: Path, options: Any) -> None:
        self.seen.append(fdebug.display_dir())


def test_launcher_points_displays_at_the_job_folder_unless_chosen(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import _launcher_toys as toys

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.json").write_text("[1, 2]")
    (tmp_path / "choose.py").write_text("from diffim.framework import debug\ndebug.set_display_dir('figs')\n")
    fdebug.set_display_dir(None)
    recorder = _Recorder()
    with toys.toy_plugins() as manager:
        manager.register(recorder)
        assert main(["run", "-t", "ScaleTask", "-i", "data=data.json", "-o", "out", "--debug-file", "choose.py"]) == 0
        assert fdebug.display_dir() == Path("figs")  # the debug file's choice is kept ...
        fdebug.set_display_dir(None)
        assert main(["run", "-t", "ScaleTask", "-i", "data=data.json", "-o", "out2"]) == 0
    assert recorder.seen == [Path("figs"), Path("out2") / "debug"]  # ... else the job folder
    assert fdebug.display_dir() == Path(fdebug.DEFAULT_DISPLAY_DIR)
