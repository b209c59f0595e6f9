"""``diffim demo``: PSF-match and subtract a small real image pair shipped with diffim.

The pair is two DECam i-band cutouts (MIT-licensed, see ``demo_data/README.md``); the command
runs ``ImagePsfMatchTask`` through the launcher exactly as ``diffim run`` would and prints where
the outputs are.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffim.framework.plugins import hookimpl

DATA = Path(__file__).resolve().parent / "demo_data"
TEMPLATE = DATA / "template_DEC-OBS18a.mini.fits"
SCIENCE = DATA / "science_DEC-OBS04a.mini.fits"
#: The example debug file (also the repository's debug.py): used by ``--debug`` when the working
#: directory has no debug.py of its own.
DEBUG_FILE = DATA / "debug.py"


def demo_arguments(args: argparse.Namespace) -> list[str]:
    """The ``diffim run`` arguments the demo uses."""
    argv = [
        "run", "-t", "ImagePsfMatchTask",
        "-i", f"template={TEMPLATE}",
        "-i", f"science={SCIENCE}",
        "-o", str(args.output),
        # a 256² cutout holds only a handful of usable stars: a constant kernel and background
        "-c", "kernel.active.spatialKernelOrder=0",
        "-c", "kernel.active.spatialBgOrder=0",
    ]
    if args.clobber:
        argv.append("--clobber")
    if args.debug_file:
        argv += ["--debug-file", str(args.debug_file)]
    elif args.debug:
        # the user's own debug.py when there is one here, else the example shipped with the demo
        argv += ["--debug"] if Path("debug.py").is_file() else ["--debug-file", str(DEBUG_FILE)]
    return argv


def run_demo(args: argparse.Namespace) -> int:
    from diffim.framework.cli import main

    print(f"diffim demo: template {TEMPLATE.name}, science {SCIENCE.name} (DECam i band, MIT licence)")
    code = main(demo_arguments(args))
    if code == 0:
        print(f"diffim demo: outputs in {Path(args.output).resolve()} "
              "(subtractedExposure.fits, matchedExposure.fits, psfMatchingKernel.fits, run.json, ...)")
    return code


@hookimpl
def diffim_add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="PSF-match and subtract a small real image pair shipped with diffim",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("-o", "--output", default="diffim-demo", type=Path, help="output folder (default: %(default)s)")
    parser.add_argument("--clobber", action="store_true", help="overwrite an existing output folder")
    parser.add_argument("--debug", action="store_true", help="load debug.py (displays) as `diffim run --debug` does")
    parser.add_argument("--debug-file", type=Path, help="a debug file to load")
    parser.set_defaults(func=run_demo)
