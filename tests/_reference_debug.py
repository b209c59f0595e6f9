"""The debug.py of LSST's PsfMatchTask documentation page, verbatim (its lines restored).

Shared by the tests that load it unchanged (../shared/seeds/ holds the page).
"""

REFERENCE_DEBUG_PY = """\
import sys
import lsstDebug
def DebugInfo(name):
    di = lsstDebug.getInfo(name)
    if name == "lsst.ip.diffim.psfMatch":
        # enable debug output
        di.display = True
        # display mask transparency
        di.maskTransparency = 80
        # show all the candidates and residuals
        di.displayCandidates = True
        # show kernel basis functions
        di.displayKernelBasis = False
        # show kernel realized across the image
        di.displayKernelMosaic = True
        # show coefficients of spatial model
        di.plotKernelSpatialModel = False
        # show fixed and spatial coefficients and coefficient histograms
        di.plotKernelCoefficients = True
        # show the bad candidates (red) along with good (green)
        di.showBadCandidates = True
    return di
lsstDebug.Info = DebugInfo
lsstDebug.frame = 1
"""
