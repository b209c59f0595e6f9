"""FITS reading and writing of :class:`~diffim.tasks.image.Exposure`.

Reading (:func:`read_exposure`) understands three layouts, detected from the header cards:

- **LSST** (``lsst``): empty primary, then IMAGE, MASK, VARIANCE (by EXTNAME or EXTTYPE); ``MP_*``
  cards name the mask bits (remapped to diffim's plane registry by name); LSST's ``A`` WCS cards
  give the origin ``xy0``;
- **astropy CCDData** (``ccddata``): image, ``UNCERT`` (standard deviation, variance or inverse
  variance, per ``UTYPE``), ``MASK`` (boolean -> BAD, or bit planes with ``MP_*`` cards);
- **plain images** (``plain``): one 2-D HDU; the variance comes from a ``noise=``/``weight=``/
  ``variance=`` map, else from ``GAIN`` and ``RDNOISE`` (Poisson + read noise), else from the
  measured sky noise; NaN pixels are flagged NO_DATA; pixels at or above ``SATURATE`` (or
  ``saturation=``, or an integer type's maximum) are flagged SAT.

Conventions: see :mod:`.assemble` for no-data pixels (NO_DATA, image kept, variance +inf when
diffim builds it), :mod:`.variance` for the variance model and checks, :mod:`.wcs` for WCS
coordinates (parent pixels in memory, array pixels on disk), :mod:`.cards` for the metadata kept.

Writing (:func:`write_exposure`) produces the LSST layout, atomically; see :mod:`.write`.
:func:`read_psf_image` reads a PSF stamp; :func:`exposure_to_ccddata` and
:func:`exposure_from_ccddata` convert to and from astropy's CCDData.

Every reading problem raises :class:`FitsReadError` (a ``ValueError``) with one line:
``"{path}[HDU {n} {name}]: {problem}; {fix}"``.
"""

from __future__ import annotations

from .ccddata import DEFAULT_BAD_PLANES, exposure_from_ccddata, exposure_to_ccddata
from .errors import FitsReadError, FitsReadWarning
from .kernel_file import read_kernel, read_spatial_function, write_kernel, write_spatial_function
from .psf_file import read_psf_image
from .read import read_exposure
from .write import write_exposure

__all__ = [
    "DEFAULT_BAD_PLANES",
    "FitsReadError",
    "FitsReadWarning",
    "exposure_from_ccddata",
    "exposure_to_ccddata",
    "read_exposure",
    "read_kernel",
    "read_psf_image",
    "read_spatial_function",
    "write_exposure",
    "write_kernel",
    "write_spatial_function",
]
