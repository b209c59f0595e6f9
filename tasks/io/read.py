"""``read_exposure``: any supported FITS layout -> :class:`~diffim.tasks.image.Exposure`."""

from __future__ import annotations

import math
import os
from typing import Any

from diffim.tasks.image import Exposure

from .assemble import ReadOptions, assemble
from .fitsfile import open_fits
from .layouts import LAYOUTS, detect_layout
from .read_ccddata import read_ccddata
from .read_lsst import read_lsst
from .read_plain import read_plain
from .variance import INVALID_VARIANCE_POLICIES

__all__ = ["read_exposure"]

_READERS = {"lsst": read_lsst, "ccddata": read_ccddata, "plain": read_plain}


def _check_options(
    layout: str, invalid_variance: str, maps: dict[str, Any], numbers: dict[str, float | None]
) -> None:
    if layout not in LAYOUTS:
        msg = f"layout must be one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}"
        raise ValueError(msg)
    if invalid_variance not in INVALID_VARIANCE_POLICIES:
        msg = f"invalid_variance must be one of {', '.join(map(repr, INVALID_VARIANCE_POLICIES))}, got {invalid_variance!r}"
        raise ValueError(msg)
    given = [name for name, value in maps.items() if value is not None]
    if len(given) > 1:
        msg = f"give at most one of noise=, weight=, variance=, got {' and '.join(given)}"
        raise ValueError(msg)
    for name, value in numbers.items():
        if value is None:
            continue
        try:
            ok = math.isfinite(float(value)) and not isinstance(value, bool)
        except (TypeError, ValueError):
            ok = False
        if not ok or (name != "saturation" and float(value) < 0) or (name == "gain" and float(value) == 0):
            msg = f"{name} must be a finite number{' > 0' if name == 'gain' else ' >= 0' if name == 'read_noise' else ''}, got {value!r}"
            raise ValueError(msg)


def read_exposure(
    path: str | os.PathLike[str],
    *,
    hdu: int | str | None = None,
    noise: Any = None,
    weight: Any = None,
    variance: Any = None,
    psf: Any = None,
    saturation: float | None = None,
    gain: float | None = None,
    read_noise: float | None = None,
    layout: str = "auto",
    invalid_variance: str = "raise",
) -> Exposure:
    """Read an exposure from a FITS file: LSST layout, astropy CCDData, or a plain image.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file.
    hdu : int or str, optional
        Image HDU (index or EXTNAME). With ``layout="auto"`` it makes the file read as a plain
        image from that HDU; with ``layout="ccddata"`` it picks the image HDU. Not allowed with
        ``layout="lsst"``.
    noise : str, os.PathLike or array_like, optional
        1-sigma noise map (file or array) on the image's grid: variance = noise².
    weight : str, os.PathLike or array_like, optional
        Inverse-variance map; weight 0 means no data (NO_DATA, infinite variance).
    variance : str, os.PathLike or array_like, optional
        Variance map. At most one of ``noise``, ``weight``, ``variance``; it replaces any variance
        plane of the file.
    psf : str, os.PathLike, Psf or array_like, optional
        PSF model: a PSF stamp file (read with :func:`read_psf_image`), a ``Psf`` object or a stamp
        array. Default: the file's ``PSF``/``PSFIMAGE`` extension if it has one.
    saturation : float, optional
        Pixels ``>=`` this level (image units) get the SAT plane, in any layout. For plain images
        the default is the ``ESATUR``, ``SATURATE`` or ``SATLEVEL`` card, else the largest value of an
        integer image's type (65535 for uint16); float images without a card get no SAT pixels.
    gain : float, optional
        e-/ADU, overrides the ``GAIN`` card (used only when the variance is estimated).
    read_noise : float, optional
        Electrons, overrides the ``RDNOISE``/``READNOIS``/``READNOISE`` card (idem).
    layout : {"auto", "lsst", "ccddata", "plain"}, optional
        File layout; ``"auto"`` decides from the header cards (see :mod:`diffim.tasks.io.layouts`).
    invalid_variance : {"raise", "flag"}, optional
        What to do with pixels whose variance is unusable (negative, NaN, infinite; zero except in
        LSST files) and that are not already NO_DATA or BAD: raise :class:`FitsReadError`
        (default) or give them NO_DATA and an infinite variance.

    Returns
    -------
    Exposure
        Image, mask and variance with ``xy0``, WCS (parent coordinates), PSF, band (``BAND`` or the
        first word of ``FILTER``), photometric calibration (``MAGZERO``, ``MAGZPT``, ``ZP``,
        ``PHOTZP`` or ``FLUXMAG0``) and the remaining header cards as ``metadata``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    FitsReadError
        One line naming the file, the HDU and the problem: not FITS, truncated, missing planes,
        planes of different shapes, non-numeric or all-NaN data, unusable variance, bad PSF stamp.
    ValueError
        For inconsistent options.

    Notes
    -----
    Pixels without data (NaN or inf in the image, weight 0, inverse variance 0) get the NO_DATA
    plane; their image value is kept and, when diffim builds the variance, it is +inf. For plain
    images the variance is estimated from the gain and read noise (Poisson + read noise, with the
    sky level measured on the image), or as the constant measured sky variance without a gain; see
    :mod:`diffim.tasks.io.variance`.

    Examples
    --------
    >>> exp = read_exposure("science.fits")                            # doctest: +SKIP
    >>> exp = read_exposure("jwst_i2d_stamp.fits", noise="jwst_i2d_stamp.noise.fits",
    ...                     psf="jwst_i2d_stamp.WebbPSF.fits")          # doctest: +SKIP
    """
    _check_options(
        layout,
        invalid_variance,
        {"noise": noise, "weight": weight, "variance": variance},
        {"saturation": saturation, "gain": gain, "read_noise": read_noise},
    )
    p = os.fspath(path)
    options = ReadOptions(
        noise=noise,
        weight=weight,
        variance=variance,
        psf=psf,
        saturation=None if saturation is None else float(saturation),
        gain=None if gain is None else float(gain),
        read_noise=None if read_noise is None else float(read_noise),
        invalid_variance=invalid_variance,
    )
    with open_fits(p) as hdul:
        chosen = layout
        if chosen == "auto":
            chosen = "plain" if hdu is not None else detect_layout(hdul)
        raw = _READERS[chosen](hdul, p, hdu)
    return assemble(raw, options)
