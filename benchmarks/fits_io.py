"""FITS I/O benchmark: ``write_exposure``/``read_exposure`` against plain ``astropy.io.fits``.

Run from the repository root after installing the package::

    python benchmarks/fits_io.py                 # 4096 x 4096 float32, median of 5, Markdown table
    python benchmarks/fits_io.py --size 2048 --repeat 7 --dir /scratch --json out.json

Both sides move the same bytes (an empty primary HDU and three 4096² planes: float32 image, int32
mask, float32 variance = 192 MiB) in the same process, interleaved run by run, so that the page
cache and machine noise affect both alike; dirty pages are flushed (``os.sync``, untimed) between
cases so that one case's write-back does not land in the next one's timing. Baselines:

- write: ``fits.HDUList([PrimaryHDU(), ImageHDU x 3]).writeto(path)``, to a new file and over an
  existing one (astropy truncates it in place; diffim renames a new file over it, on which ext4
  starts writing the new file's blocks at once: the price of never leaving a half-written file),
  and the same followed by ``os.sync()`` (the cost until the bytes are on disk, for both);
- read (in memory): ``fits.open(path, memmap=False)`` and ``.data`` of the three planes (what
  most scripts do; the arrays stay big-endian);
- read (memmap + copy): ``fits.open(path)`` (memory-mapped) and a native-endian copy of each
  plane, the fastest way to get independent in-memory arrays with astropy, which is what
  ``read_exposure`` does before checking the pixels and building the Exposure.

``write_exposure`` additionally writes to a temporary file and renames it (atomicity), and builds
the headers (metadata, WCS, ``MP_*`` and ``A`` cards); ``read_exposure`` additionally detects the
layout, remaps mask planes, checks for NaN and for unusable variances, and parses the WCS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS


def make_exposure(size: int) -> Any:
    from diffim.tasks.image import Exposure, mask_planes

    rng = np.random.default_rng(42)
    image = rng.normal(1000.0, 30.0, (size, size)).astype(np.float32)
    variance = np.full((size, size), 900.0, dtype=np.float32) + rng.random((size, size), dtype=np.float32)
    mask = np.zeros((size, size), dtype=np.int32)
    mask[:, :8] = mask_planes.bitmask("EDGE")
    mask[100:110, 200:210] |= mask_planes.bitmask("SAT")
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [size / 2, size / 2]
    wcs.wcs.cd = [[-5.5e-5, 0.0], [0.0, 5.5e-5]]
    exp = Exposure(image=image, mask=mask, variance=variance, xy0=(1000, 2000), wcs=wcs, band="r")
    exp.metadata["EXPTIME"] = 30.0
    exp.metadata["BUNIT"] = "adu"
    return exp


def _settle() -> None:
    """Flush dirty pages to disk, untimed, so that one case's write-back does not slow the next."""
    if hasattr(os, "sync"):
        os.sync()


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(size: int, repeat: int, directory: str | None) -> dict[str, Any]:
    from diffim.tasks.io import read_exposure, write_exposure

    exp = make_exposure(size)
    arrays = (exp.image.array, exp.mask.array, exp.variance.array)
    nbytes = sum(a.nbytes for a in arrays)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        plain_path = os.path.join(tmp, "plain.fits")
        ours_path = os.path.join(tmp, "ours.fits")

        def plain_write() -> None:
            hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(a, name=n) for a, n in zip(arrays, ("IMAGE", "MASK", "VARIANCE"))]
            fits.HDUList(hdus).writeto(plain_path, overwrite=True)

        def ours_write() -> None:
            write_exposure(exp, ours_path, overwrite=True)

        def plain_read_memory() -> None:
            with fits.open(plain_path, memmap=False) as hdul:
                planes = [hdul[i].data for i in (1, 2, 3)]
            assert planes[0].shape == (size, size)

        def plain_read_copy() -> None:
            with fits.open(plain_path) as hdul:
                planes = [hdul[i].data.astype(hdul[i].data.dtype.newbyteorder("=")) for i in (1, 2, 3)]
            assert planes[0].shape == (size, size)

        def ours_read() -> None:
            back = read_exposure(ours_path)
            assert back.getDimensions() == (size, size)

        writes = {"astropy HDUList.writeto": (plain_write, plain_path), "diffim write_exposure": (ours_write, ours_path)}
        reads = {
            "read: astropy memmap=False, .data": plain_read_memory,
            "read: astropy memmap + native copy": plain_read_copy,
            "read: diffim read_exposure": ours_read,
        }
        for fn, _ in writes.values():  # warm-up: imports, first-touch allocations
            fn()
        times: dict[str, list[float]] = {}
        for _ in range(repeat):
            for label, (fn, target) in writes.items():
                # a new file (the usual case), then over an existing one (diffim: rename over it)
                os.remove(target)
                _settle()
                times.setdefault(f"write new file: {label}", []).append(_timed(fn))
                _settle()
                times.setdefault(f"overwrite: {label}", []).append(_timed(fn))
                _settle()
                times.setdefault(f"overwrite + os.sync: {label}", []).append(_timed(lambda fn=fn: (fn(), _settle())))
        _settle()
        for fn in reads.values():  # warm-up: page cache
            fn()
        for _ in range(repeat):
            for name, fn in reads.items():
                times.setdefault(name, []).append(_timed(fn))
        size_on_disk = os.path.getsize(ours_path)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "size": size,
        "repeat": repeat,
        "bytes": nbytes,
        "file_bytes": size_on_disk,
        "median_s": medians,
        "ratios": {
            "write new file (diffim / astropy)": medians["write new file: diffim write_exposure"] / medians["write new file: astropy HDUList.writeto"],
            "overwrite (diffim / astropy)": medians["overwrite: diffim write_exposure"] / medians["overwrite: astropy HDUList.writeto"],
            "overwrite + os.sync (diffim / astropy)": (
                medians["overwrite + os.sync: diffim write_exposure"] / medians["overwrite + os.sync: astropy HDUList.writeto"]
            ),
            "read (diffim / astropy memmap=False)": medians["read: diffim read_exposure"] / medians["read: astropy memmap=False, .data"],
            "read (diffim / astropy memmap + copy)": medians["read: diffim read_exposure"] / medians["read: astropy memmap + native copy"],
        },
    }


def print_table(result: dict[str, Any]) -> None:
    mib = result["bytes"] / 2**20
    print(f"FITS I/O, {result['size']}x{result['size']} exposure (image f4 + mask i4 + variance f4 = {mib:.0f} MiB), median of {result['repeat']}")
    print()
    print("| operation | median (ms) | MiB/s |")
    print("|---|---:|---:|")
    for name, seconds in result["median_s"].items():
        print(f"| {name} | {seconds * 1e3:.1f} | {mib / seconds:.0f} |")
    print()
    print("| ratio | value |")
    print("|---|---:|")
    for name, value in result["ratios"].items():
        print(f"| {name} | {value:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="image side in pixels (default 4096)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--dir", default=None, help="directory for the temporary files (default: system temp)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    result = run(args.size, args.repeat, args.dir)
    print_table(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(result, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
