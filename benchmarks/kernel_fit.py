"""Kernel fit benchmark: ``PsfMatchTask._solve`` on 100 candidates with the default AL config.

A 1280×1280 synthetic pair: 100 stars on a 10×10 grid (one per 128-pixel spatial cell), template
PSF Gaussian FWHM 3 px, science PSF FWHM 4.5 px plus a 1.3 flux scale, Gaussian noise. The
default ``PsfMatchConfigAL`` (FWHM-scaled 3-Gaussian basis, spatial order 2, Chebyshev) fits the
kernel; the figure is the wall time of ``_solve`` per candidate, and of building the candidates.

    python benchmarks/kernel_fit.py
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from diffim.framework.metadata import TaskMetadata
from diffim.tasks.image import Box2I, MaskedImage
from diffim.tasks.kernel.bases import FWHM_PER_SIGMA, generateAlardLuptonBasisList
from diffim.tasks.matching.candidate import KernelCandidate
from diffim.tasks.matching.cells import SpatialCellSet
from diffim.tasks.psfMatch import PsfMatchTask, PsfMatchTaskConfig


class GridTask(PsfMatchTask):
    _DefaultName = "gridTask"

    def _buildCellSet(self, template: MaskedImage, science: MaskedImage, positions: list[tuple[int, int]]) -> SpatialCellSet:  # noqa: N802
        config = self.kConfig
        cells = SpatialCellSet(template.getBBox(), config.sizeCellX, config.sizeCellY)
        half = config.kernelSize
        for x, y in positions:
            bbox = Box2I((x - half, y - half), (2 * half + 1, 2 * half + 1))
            cells.insertCandidate(KernelCandidate(x, y, template[bbox], science[bbox], config))
        return cells


def make_pair(n_side: int = 10, cell: int = 128, seed: int = 1) -> tuple[MaskedImage, MaskedImage, list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    size = n_side * cell
    positions = [(cell // 2 + i * cell + int(rng.integers(-8, 9)), cell // 2 + j * cell + int(rng.integers(-8, 9)))
                 for j in range(n_side) for i in range(n_side)]
    stars = np.zeros((size, size))
    for x, y in positions:
        stars[y, x] = rng.uniform(2e4, 1e5)
    sig_t, sig_s = 3.0 / FWHM_PER_SIGMA, 4.5 / FWHM_PER_SIGMA
    sky_sigma = 5.0
    template = gaussian_filter(stars, sig_t) + rng.normal(0, sky_sigma, stars.shape)
    science = 1.3 * gaussian_filter(stars, sig_s) + rng.normal(0, sky_sigma, stars.shape)
    variance = sky_sigma**2
    return MaskedImage(template, variance=variance), MaskedImage(science, variance=variance), positions


def run() -> dict[str, Any]:
    template, science, positions = make_pair()
    config = PsfMatchTaskConfig()
    task = GridTask(config=config)
    md = TaskMetadata()
    basis = generateAlardLuptonBasisList(task.kConfig, targetFwhmPix=3.0, referenceFwhmPix=4.5, metadata=md)
    task.kConfig.kernelSize = md["ALKernelSize"]
    t0 = time.perf_counter()
    cells = task._buildCellSet(template, science, positions)
    t1 = time.perf_counter()
    _, kernel, _ = task._solve(cells, basis)
    t2 = time.perf_counter()
    n = len(positions)
    return {
        "candidates": n,
        "bases": len(basis),
        "kernel size": md["ALKernelSize"],
        "build candidates (s)": t1 - t0,
        "_solve (s)": t2 - t1,
        "_solve per candidate (ms)": 1e3 * (t2 - t1) / n,
        "kernel sum at centre (truth 1.3)": task.metadata["spatialKernelSum"],
        "good / bad candidates": f"{task.metadata['nGoodCandidates']} / {task.metadata['nBadCandidates']}",
    }


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    results = run()
    print("| measurement | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
