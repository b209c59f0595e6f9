"""Example debug file for diffim: switch on the PSF-matching debug displays.

Load it with ``diffim run ... --debug`` (which imports module ``debug`` from the working
directory, then ``sys.path``) or ``--debug-file path/to/debug.py``. In Python::

    from diffim.framework.debug import load_debug
    load_debug("debug.py")

Flags are read by the tasks when they are constructed; a flag you do not set reads as False.
The same flags as LSST's ``PsfMatchTask`` documentation example, written for diffim. An
unchanged LSST debug.py (``lsstDebug.Info = DebugInfo`` ...) works too.

For more log output rather than displays, add the graded trace loggers (TRACE0..4 at DEBUG)::

    from diffim.framework.log import trace_set_at
    trace_set_at("diffim", 4)   # LSST habit trace_set_at("lsst.ip.diffim", 4) works as well

or, on the command line, ``--log-level diffim=TRACE`` for the TRACE *level* (a different thing:
see ``diffim.framework.log``).
"""

from diffim.framework import debug

# --- diffim.tasks.psfMatch: the PSF-matching core (LSST: lsst.ip.diffim.psfMatch) -----------
psf_match = debug.getInfo("diffim.tasks.psfMatch")
# enable debug output: master switch for every display below
psf_match.display = True
# display mask transparency (0 opaque .. 100 invisible mask overlay)
psf_match.maskTransparency = 80
# show all the candidates and residuals (stamps + residuals, kernels, chi residuals)
psf_match.displayCandidates = True
# show kernel basis functions
psf_match.displayKernelBasis = False
# show kernel realized across the image (a mosaic of the spatial kernel on a grid)
psf_match.displayKernelMosaic = True
# show coefficients of spatial model
psf_match.plotKernelSpatialModel = False
# show fixed and spatial coefficients and coefficient histograms
psf_match.plotKernelCoefficients = True
# show the bad candidates (red) along with good (green)
psf_match.showBadCandidates = True

# --- diffim.tasks.imagePsfMatch: matching and subtracting two images ------------------------
image_psf_match = debug.getInfo("diffim.tasks.imagePsfMatch")
# enable debug output for this module
image_psf_match.display = True
# display mask transparency for the image frames
image_psf_match.maskTransparency = 80
# show the image to convolve (usually the template)
image_psf_match.displayTemplate = True
# show the image not convolved (usually the science image)
image_psf_match.displaySciIm = True
# show the kernel spatial cells and the candidates in them on the image
image_psf_match.displaySpatialCells = True
# show the difference image (template, matched template, science, difference)
image_psf_match.displayDiffIm = True

# first display frame; display code increments it after each frame it uses
debug.frame = 1

# Uncomment for the graded trace loggers (TRACE0..4.diffim.* at DEBUG):
# from diffim.framework.log import trace_set_at
# trace_set_at("diffim", 4)
