"""`diffim demo`: the README's first command, on the DECam pair shipped inside the package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from diffim.framework.cli import main
from diffim.tasks.io import read_exposure, read_kernel


def test_demo_runs_end_to_end_and_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    for name in ("subtractedExposure.fits", "matchedExposure.fits", "psfMatchingKernel.fits",
                 "backgroundModel.fits", "imagePsfMatch_config.yaml", "imagePsfMatch_metadata.json", "run.json"):
        assert (out / name).is_file(), name
    metadata = json.loads((out / "imagePsfMatch_metadata.json").read_text())["imagePsfMatch"]
    assert 0.9 < metadata["spatialKernelSum"] < 1.15  # same camera, similar epochs
    assert metadata["nGoodCandidates"] >= 3
    difference = read_exposure(out / "subtractedExposure.fits")
    good = np.isfinite(difference.image.array)
    assert good.mean() > 0.7  # only the kernel's edge band is lost
    kernel = read_kernel(out / "psfMatchingKernel.fits")
    assert abs(kernel.computeSum(128, 128) - metadata["spatialKernelSum"]) < 1e-6
    assert json.loads((out / "run.json").read_text())["status"] == "ok"
    assert main(["demo", "-o", str(out)]) != 0  # an existing output folder is refused without --clobber
    assert main(["demo", "-o", str(out), "--clobber"]) == 0


def test_demo_debug_uses_the_shipped_debug_file_when_none_is_here(tmp_path: Path, monkeypatch) -> None:
    from diffim.framework import debug as fdebug

    monkeypatch.chdir(tmp_path)  # no debug.py in the working directory
    out = tmp_path / "demo"
    try:
        assert main(["demo", "-o", str(out), "--debug"]) == 0
    finally:
        fdebug.reset_debug()
    assert (out / "debug" / "index.html").is_file()
    assert len(list((out / "debug").glob("*.png"))) >= 3
