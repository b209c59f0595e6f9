"""``Exposure``: a masked image with its WCS, PSF, photometric calibration and band."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .geom import Box2I, Extent2I, Point2I
from .images import Image, MaskedImage, Mask

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io.fits import Header
    from astropy.wcs import WCS

__all__ = ["Exposure", "PhotoCalib", "AB_NJY_ZERO_POINT"]

#: AB magnitude of 1 nJy: mag = -2.5 log10(flux / nJy) + 31.4.
AB_NJY_ZERO_POINT = 31.4


class PhotoCalib:
    """Photometric calibration: nanojansky per image count (LSST's ``PhotoCalib``).

    Parameters
    ----------
    calibrationMean : float
        Flux in nJy of one count (ADU, electron, ... whatever the image is in); > 0.
    calibrationErr : float, optional
        Its 1-sigma uncertainty.

    Notes
    -----
    A magnitude zero point ``zp`` (``mag = -2.5 log10(counts) + zp``) corresponds to
    ``calibrationMean = 10**(-0.4 (zp - 31.4))``; see :meth:`from_zero_point`.
    """

    __slots__ = ("calibrationMean", "calibrationErr")

    def __init__(self, calibrationMean: float, calibrationErr: float = 0.0) -> None:  # noqa: N803
        mean = float(calibrationMean)
        if not (math.isfinite(mean) and mean > 0):
            msg = f"calibrationMean must be a positive finite flux per count, got {calibrationMean!r}"
            raise ValueError(msg)
        self.calibrationMean = mean
        self.calibrationErr = float(calibrationErr)

    @classmethod
    def from_zero_point(cls, zero_point: float, zero_point_err: float = 0.0) -> PhotoCalib:
        """From an AB magnitude zero point for one count."""
        mean = 10.0 ** (-0.4 * (float(zero_point) - AB_NJY_ZERO_POINT))
        return cls(mean, mean * 0.4 * math.log(10.0) * float(zero_point_err))

    @property
    def zeroPoint(self) -> float:  # noqa: N802 - LSST-style name
        """AB magnitude of one count."""
        return AB_NJY_ZERO_POINT - 2.5 * math.log10(self.calibrationMean)

    def getCalibrationMean(self) -> float:  # noqa: N802 - LSST name
        return self.calibrationMean

    def instFluxToNanojansky(self, instFlux: Any) -> Any:  # noqa: N802, N803 - LSST name
        """Counts -> nJy."""
        return np.asarray(instFlux) * self.calibrationMean

    def instFluxToMagnitude(self, instFlux: Any) -> Any:  # noqa: N802, N803 - LSST name
        """Counts -> AB magnitude."""
        return -2.5 * np.log10(np.asarray(instFlux, dtype=float)) + self.zeroPoint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PhotoCalib):
            return NotImplemented
        return (self.calibrationMean, self.calibrationErr) == (other.calibrationMean, other.calibrationErr)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PhotoCalib(calibrationMean={self.calibrationMean!r} nJy/count, zeroPoint={self.zeroPoint:.4f})"

    def __reduce__(self) -> tuple:
        return (PhotoCalib, (self.calibrationMean, self.calibrationErr))


class Exposure:
    """A masked image and what describes it (LSST's ``Exposure``).

    Parameters
    ----------
    maskedImage : MaskedImage, optional
        The pixels; or give ``image`` (and optionally ``mask``, ``variance``, ``xy0``).
    image, mask, variance : array_like, optional
        Planes as arrays, as for :class:`MaskedImage`.
    xy0 : tuple of int, optional
        Origin of the arrays in parent coordinates.
    wcs : astropy.wcs.WCS, optional
        World coordinates of *parent* pixel positions (0-based, origin included), as in LSST;
        FITS files store it shifted to the array so that other tools agree.
    psf : Psf, optional
        PSF model (see :mod:`diffim.tasks.psf`).
    photoCalib : PhotoCalib, optional
        Flux calibration.
    band : str, optional
        Band or filter name (e.g. ``"i"``).
    metadata : astropy.io.fits.Header, optional
        Header cards kept from the file (structural and WCS cards excluded).

    Examples
    --------
    >>> import numpy as np
    >>> exp = Exposure(image=np.zeros((10, 12)), variance=np.ones((10, 12)), xy0=(100, 200))
    >>> exp.getXY0(), exp.getBBox().getMax()
    (Point2I(x=100, y=200), Point2I(x=111, y=209))
    """

    __slots__ = ("_mi", "wcs", "psf", "photoCalib", "band", "_metadata")

    def __init__(
        self,
        maskedImage: MaskedImage | None = None,  # noqa: N803 - LSST name
        *,
        image: Any = None,
        mask: Any = None,
        variance: Any = None,
        xy0: tuple[int, int] | None = None,
        wcs: WCS | None = None,
        psf: Any = None,
        photoCalib: PhotoCalib | None = None,  # noqa: N803 - LSST name
        band: str | None = None,
        metadata: Header | None = None,
    ) -> None:
        if maskedImage is not None:
            if image is not None or mask is not None or variance is not None:
                msg = "give either a MaskedImage or image/mask/variance arrays, not both"
                raise ValueError(msg)
            if not isinstance(maskedImage, MaskedImage):
                msg = f"maskedImage must be a MaskedImage, got {type(maskedImage).__name__}; use image=... for arrays"
                raise TypeError(msg)
            if xy0 is not None:
                maskedImage.setXY0(xy0)
            self._mi = maskedImage
        else:
            if image is None:
                msg = "an Exposure needs pixels: give image=... (and variance=..., mask=...) or a MaskedImage"
                raise ValueError(msg)
            self._mi = MaskedImage(image, mask, variance, xy0=xy0)
        self.wcs = wcs
        self.psf = psf
        self.photoCalib = photoCalib
        self.band = band
        self._metadata = metadata

    # -- planes -----------------------------------------------------------------------------
    @property
    def maskedImage(self) -> MaskedImage:  # noqa: N802 - LSST name
        return self._mi

    @maskedImage.setter
    def maskedImage(self, value: MaskedImage) -> None:  # noqa: N802
        self._mi = value

    @property
    def image(self) -> Image:
        return self._mi.image

    @property
    def mask(self) -> Mask:
        return self._mi.mask

    @property
    def variance(self) -> Image:
        return self._mi.variance

    @property
    def metadata(self) -> Header:
        """Header cards kept from the input file (created empty on first use)."""
        if self._metadata is None:
            from astropy.io.fits import Header

            self._metadata = Header()
        return self._metadata

    @metadata.setter
    def metadata(self, value: Header) -> None:
        self._metadata = value

    # -- LSST getters/setters ---------------------------------------------------------------
    def getMaskedImage(self) -> MaskedImage:  # noqa: N802
        return self._mi

    def getImage(self) -> Image:  # noqa: N802
        return self._mi.image

    def getMask(self) -> Mask:  # noqa: N802
        return self._mi.mask

    def getVariance(self) -> Image:  # noqa: N802
        return self._mi.variance

    def getPsf(self) -> Any:  # noqa: N802
        return self.psf

    def setPsf(self, psf: Any) -> None:  # noqa: N802
        self.psf = psf

    def hasPsf(self) -> bool:  # noqa: N802
        return self.psf is not None

    def getWcs(self) -> WCS | None:  # noqa: N802
        return self.wcs

    def setWcs(self, wcs: WCS | None) -> None:  # noqa: N802
        self.wcs = wcs

    def hasWcs(self) -> bool:  # noqa: N802
        return self.wcs is not None

    def getPhotoCalib(self) -> PhotoCalib | None:  # noqa: N802
        return self.photoCalib

    def setPhotoCalib(self, photoCalib: PhotoCalib | None) -> None:  # noqa: N802, N803
        self.photoCalib = photoCalib

    def getFilter(self) -> str | None:  # noqa: N802
        """The band name (LSST returns a FilterLabel; the band is what matching needs)."""
        return self.band

    def getMetadata(self) -> Header:  # noqa: N802
        return self.metadata

    def getXY0(self) -> Point2I:  # noqa: N802
        return self._mi.getXY0()

    def setXY0(self, xy0: tuple[int, int]) -> None:  # noqa: N802
        self._mi.setXY0(xy0)

    def getBBox(self) -> Box2I:  # noqa: N802
        return self._mi.getBBox()

    def getDimensions(self) -> Extent2I:  # noqa: N802
        return self._mi.getDimensions()

    def getWidth(self) -> int:  # noqa: N802
        return self._mi.getWidth()

    def getHeight(self) -> int:  # noqa: N802
        return self._mi.getHeight()

    @property
    def shape(self) -> tuple[int, int]:
        return self._mi.shape

    @property
    def dtype(self) -> np.dtype:
        return self._mi.dtype

    # -- sub-images and copies --------------------------------------------------------------
    def __getitem__(self, bbox: Box2I) -> Exposure:
        """Sub-exposure (pixels shared with this one; WCS, PSF, calibration shared)."""
        return self._with(self._mi[bbox])

    def subset(self, bbox: Box2I) -> Exposure:
        """Same as ``exposure[bbox]``."""
        return self[bbox]

    def clone(self) -> Exposure:
        """Deep copy of the pixels; WCS, PSF and calibration objects are shared."""
        return self._with(self._mi.clone(), metadata=self._metadata.copy() if self._metadata is not None else None)

    def _with(self, mi: MaskedImage, **overrides: Any) -> Exposure:
        values = {
            "wcs": self.wcs,
            "psf": self.psf,
            "photoCalib": self.photoCalib,
            "band": self.band,
            "metadata": self._metadata,
        }
        values.update(overrides)
        return Exposure(mi, **values)

    # -- files ------------------------------------------------------------------------------
    @classmethod
    def readFits(cls, path: str | Path, **options: Any) -> Exposure:  # noqa: N802 - LSST name
        """Read an exposure from FITS: LSST layout, CCDData, or a plain image.

        See :func:`diffim.tasks.io.read_exposure` for the options (``noise=``, ``weight=``,
        ``psf=``, ``saturation=``, ``gain=``, ``read_noise=``, ``hdu=``).
        """
        from ..io import read_exposure

        return read_exposure(path, **options)

    def writeFits(self, path: str | Path, *, overwrite: bool = False) -> None:  # noqa: N802 - LSST name
        """Write the LSST layout (IMAGE/MASK/VARIANCE), atomically; refuses to overwrite unless asked."""
        from ..io import write_exposure

        write_exposure(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        return (
            f"Exposure({self.getBBox()}, dtype={self.dtype}, band={self.band!r}, "
            f"psf={type(self.psf).__name__ if self.psf is not None else None}, wcs={'yes' if self.wcs is not None else 'no'})"
        )

    def __reduce__(self) -> tuple:
        return (_rebuild_exposure, (self._mi, self.wcs, self.psf, self.photoCalib, self.band, self._metadata))


def _rebuild_exposure(mi: MaskedImage, wcs: Any, psf: Any, photo: Any, band: Any, metadata: Any) -> Exposure:
    return Exposure(mi, wcs=wcs, psf=psf, photoCalib=photo, band=band, metadata=metadata)
