"""Detection speed: ``detect_sources`` and ``estimate_background`` on the 2048² benchmark science image.

Run from the repository root after installing the package::

    python benchmarks/detection.py                      # fast paths vs the whole-image ("old-style") ones
    python benchmarks/detection.py --old /tmp/old_det   # also a saved copy of an older tasks/detection
    python benchmarks/detection.py --json out.json

What is measured (issue 5, "Speed and memory")
----------------------------------------------
* ``detect_sources`` as ``ImagePsfMatchTask._detect`` calls it: the science exposure with its
  variance plane, the background model given (already interpolated), ``smooth_fwhm`` the PSF
  FWHM, threshold 5, ``set_mask=False``. "whole-image" runs the same code with the fast paths
  replaced by their plain definitions, as the detection worked before: the S/N map of the whole
  image with ``correlate1d`` (:func:`~diffim.tasks.detection._smoothing.reference_snr`), the
  peak-finding image smoothed everywhere and ``ndimage.label`` on a whole-image map. The catalogs
  must agree (same rows and flags; positions, fluxes and S/N to round-off).
* ``estimate_background`` (64-pixel boxes) on one thread and on two (the boxes split over two
  threads, the default for images of 1M pixels or more), and with the model interpolated to every
  pixel (``.array``) by the tiled basis-matrix product against scipy's own grid evaluation.
* ``--old DIR``: a copy of an older ``tasks/detection`` folder, imported as a package of its own,
  runs the same calls (same-process ratios, cases interleaved).

Times are the best of ``--repeat`` rounds, cases run round-robin. The pair comes from the
subtraction benchmark's cache (``/tmp/diffim_speed_bench/pair2048``), made with
``/work/shared/bench/make_pair.py`` if missing. The machine has 2 cores: the two-thread figure
needs the second one idle.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from scipy.interpolate import RectBivariateSpline

import diffim.tasks.detection.background as bgmod
import diffim.tasks.detection.detect as detmod
from diffim.tasks import detection
from diffim.tasks.detection import _smoothing
from diffim.tasks.io import read_exposure

BENCH = Path(os.environ.get("DIFFIM_BENCH_DIR", "/work/shared/bench"))
#: PSF FWHM of the science image as ImagePsfMatchTask measures it (pixels).
SCIENCE_FWHM = 3.745852572629771


def load_science(cache: Path) -> Any:
    """The 2048² science exposure with its variance plane, generating the pair if needed."""
    if not (cache / "science.fits").is_file():
        spec = importlib.util.spec_from_file_location("diffim_bench_make_pair", BENCH / "make_pair.py")
        assert spec is not None and spec.loader is not None
        make_pair = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make_pair)
        cache.mkdir(parents=True, exist_ok=True)
        make_pair.main(["--outdir", str(cache), "--size", "2048"])
    return read_exposure(cache / "science.fits", variance=cache / "science_var.fits")


def load_old(path: Path) -> ModuleType:
    """An older copy of the detection package, imported under its own name."""
    spec = importlib.util.spec_from_file_location("diffim_old_detection", path / "__init__.py",
                                                  submodule_search_locations=[str(path)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class WholeImage:
    """Context: the detection's fast paths replaced by their whole-image definitions."""

    def __enter__(self) -> None:
        self.saved = (detmod.smooth_boxes, detmod.matched_filter_candidates, detmod._label_pixels)
        detmod.smooth_boxes = _smoothing.reference_smooth_boxes
        detmod.matched_filter_candidates = _smoothing.reference_candidates
        detmod._label_pixels = _smoothing.reference_labels

    def __exit__(self, *exc: object) -> None:
        detmod.smooth_boxes, detmod.matched_filter_candidates, detmod._label_pixels = self.saved



def compare(a: Any, b: Any) -> dict[str, Any]:
    """Agreement of two catalogs (rows matched by peak pixel and sign)."""
    def key(table: Any) -> list[tuple[int, int, bool]]:
        columns = (np.asarray(table[name]).tolist() for name in ("peak_x", "peak_y", "negative"))
        return list(zip(*columns))

    ka, kb = key(a), key(b)
    common = sorted(set(ka) & set(kb))
    ia = np.array([ka.index(k) for k in common], dtype=int)
    ib = np.array([kb.index(k) for k in common], dtype=int)

    def rel(name: str) -> float:
        x, y = np.asarray(a[name], float)[ia], np.asarray(b[name], float)[ib]
        return float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-300))) if x.size else 0.0

    flags = ("footprint", "npix", "n_peaks", "flag_edge", "flag_saturated", "flag_masked", "flag_blended", "flag_not_isolated")
    return {
        "rows": (len(a), len(b)),
        "unmatched": len(ka) + len(kb) - 2 * len(common),
        "max_dxy": float(max(np.abs(np.asarray(a["x"])[ia] - np.asarray(b["x"])[ib]).max(),
                             np.abs(np.asarray(a["y"])[ia] - np.asarray(b["y"])[ib]).max())) if ia.size else 0.0,
        "flux_rel": rel("flux"),
        "significance_rel": rel("significance"),
        "flags_equal": all(np.array_equal(np.asarray(a[f])[ia], np.asarray(b[f])[ib]) for f in flags),
    }


def best_of(cases: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Best wall time of each case, cases interleaved."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/diffim_speed_bench/pair2048"))
    parser.add_argument("--old", type=Path, default=None, help="folder holding an older tasks/detection")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    science = load_science(args.cache)
    old = load_old(args.old) if args.old is not None else None
    background = detection.estimate_background(science)
    background.array  # noqa: B018 - interpolate once, outside the timing
    options = {"threshold": 5.0, "smooth_fwhm": SCIENCE_FWHM, "exclude_mask_planes": ("NO_DATA",), "set_mask": False}

    def detect() -> Any:
        return detection.detect_sources(science, background=background, **options)

    def detect_whole() -> Any:
        with WholeImage():
            return detection.detect_sources(science, background=background, **options)

    def background_threads(parallel_pixels: int, interpolate: bool = False) -> Callable[[], Any]:
        def run() -> Any:
            saved = bgmod._PARALLEL_PIXELS
            bgmod._PARALLEL_PIXELS = parallel_pixels
            try:
                bg = detection.estimate_background(science)
                return bg.array if interpolate else bg
            finally:
                bgmod._PARALLEL_PIXELS = saved
        return run

    yc, xc, ny, nx = background._grid
    spline = RectBivariateSpline(yc, xc, background.mesh, kx=3, ky=3)
    yy, xx = np.clip(np.arange(ny, dtype=float), yc[0], yc[-1]), np.clip(np.arange(nx, dtype=float), xc[0], xc[-1])
    cases: dict[str, Callable[[], Any]] = {
        "detect_sources": detect,
        "detect_sources, whole-image paths": detect_whole,
        "estimate_background, 1 thread": background_threads(1 << 62),
        "estimate_background, 2 threads": background_threads(0),
        "estimate_background + array, 2 threads": background_threads(0, interpolate=True),
        "spline on the grid (basis products)": lambda: bgmod._GridSpline(spline)(yy, xx),
        "spline on the grid (scipy)": lambda: spline(yy, xx),
    }
    if old is not None:
        old_background = old.estimate_background(science)
        old_background.array  # noqa: B018
        cases["detect_sources, --old"] = lambda: old.detect_sources(science, background=old_background, **options)
        cases["estimate_background, --old"] = lambda: old.estimate_background(science)
        cases["estimate_background + array, --old"] = lambda: old.estimate_background(science).array
    times = best_of(cases, args.repeat)
    checks = {"whole-image": compare(detect_whole(), detect())}
    if old is not None:
        checks["--old"] = compare(old.detect_sources(science, background=old_background, **options), detect())
    print(f"{'case':42s} {'best (ms)':>10s}")
    for name, seconds in times.items():
        print(f"{name:42s} {seconds * 1e3:10.1f}")
    ratios = {
        "detect_sources: whole-image / fast": times["detect_sources, whole-image paths"] / times["detect_sources"],
        "estimate_background: 1 / 2 threads": times["estimate_background, 1 thread"] / times["estimate_background, 2 threads"],
        "spline: scipy / basis products": times["spline on the grid (scipy)"] / times["spline on the grid (basis products)"],
    }
    if old is not None:
        ratios["detect_sources: --old / new"] = times["detect_sources, --old"] / times["detect_sources"]
        ratios["estimate_background: --old / new (2 threads)"] = (
            times["estimate_background, --old"] / times["estimate_background, 2 threads"])
        ratios["estimate_background: --old / new (1 thread)"] = (
            times["estimate_background, --old"] / times["estimate_background, 1 thread"])
        ratios["estimate_background + array: --old / new"] = (
            times["estimate_background + array, --old"] / times["estimate_background + array, 2 threads"])
    for name, value in ratios.items():
        print(f"{name:42s} {value:10.2f}x")
    for name, check in checks.items():
        print(f"catalog vs {name}: {check}")
    result = {"times_s": times, "ratios": ratios, "checks": checks}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
