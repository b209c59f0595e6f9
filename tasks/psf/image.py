"""A fixed PSF given as a stamp (WebbPSF models, estimated PSFs): :class:`ImagePsf`."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np

from .base import Psf
from .errors import PsfError, PsfWarning, array_key, check_odd_size
from .measure import measure_centroid

__all__ = ["ImagePsf", "crop_or_pad", "validate_stamp"]


def validate_stamp(array: Any, what: str = "PSF stamp") -> np.ndarray:
    """Check a PSF stamp and return it as a new float64 array normalised to unit sum.

    Parameters
    ----------
    array : array_like or Image
        Candidate stamp (an object with an ``.array``, such as an ``Image``, gives its array).
    what : str, optional
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        float64 copy with sum 1.

    Raises
    ------
    PsfError
        If it is not 2-D, has an even size, holds NaN/inf, or its sum is not positive.
    """
    if hasattr(array, "array") and not isinstance(array, np.ndarray):
        array = array.array  # a diffim/LSST Image
    try:
        a = np.array(array, dtype=np.float64)
    except (TypeError, ValueError):
        msg = f"{what} must be a 2-D array of numbers, got {type(array).__name__}"
        raise PsfError(msg) from None
    if a.ndim != 2:
        msg = f"{what} must be a 2-D array, got shape {a.shape!r}"
        raise PsfError(msg)
    h, w = a.shape
    if h % 2 == 0 or w % 2 == 0:
        msg = f"{what} must have odd width and height (a central pixel), got shape {a.shape!r}; pad or crop to odd"
        raise PsfError(msg)
    if not np.isfinite(a).all():
        n_bad = int((~np.isfinite(a)).sum())
        msg = f"{what} holds {n_bad} non-finite (NaN/inf) pixels; replace them (e.g. with 0) first"
        raise PsfError(msg)
    total = float(a.sum())
    if not total > 0:
        msg = f"{what} must have a positive sum to be normalised, got {total!r}"
        raise PsfError(msg)
    a /= total
    return a


def crop_or_pad(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Crop or zero-pad a centred odd-sized array symmetrically to ``(height, width)``.

    Parameters
    ----------
    array : numpy.ndarray
        Array with odd sizes in its last two axes (leading axes are kept, e.g. a grid of stamps).
    width, height : int
        New odd size.

    Returns
    -------
    numpy.ndarray
        New array, same central pixel; not renormalised.
    """
    width, height = check_odd_size(width, height, "resized PSF")
    a = np.asarray(array)
    h, w = a.shape[-2:]
    out = np.zeros(a.shape[:-2] + (height, width), dtype=a.dtype)
    # Half-size of the overlap; both arrays are odd so their centres line up exactly.
    hy, hx = min(h, height) // 2, min(w, width) // 2
    out[..., height // 2 - hy : height // 2 + hy + 1, width // 2 - hx : width // 2 + hx + 1] = a[
        ..., h // 2 - hy : h // 2 + hy + 1, w // 2 - hx : w // 2 + hx + 1
    ]
    return out


class ImagePsf(Psf):
    """A position-independent PSF given as an image (LSST's ``KernelPsf`` of a ``FixedKernel``).

    Parameters
    ----------
    array : array_like or Image
        2-D stamp, odd width and height, finite, positive sum (an ``Image`` gives its ``.array``). It is
        copied and normalised to unit sum.
    recenter : bool, optional
        If True, shift the stamp (cubic spline, zero outside) so its centroid lands on the central
        pixel, then renormalise. If False (default) the stamp is kept as given and a
        :class:`PsfWarning` is issued when its centroid is more than 0.5 pixel off centre. The
        centroid is the adaptive (Gaussian-weighted) one, robust to noise in the wings.

    Raises
    ------
    PsfError
        For a stamp that is not 2-D, has an even size, holds NaN/inf, or sums to <= 0.

    Notes
    -----
    The stamp is stored read-only; :meth:`computeImage` returns copies. ``computeFwhm`` measures the
    profile on the stamp (:func:`~diffim.tasks.psf.measure.measure_fwhm`) and ``computeShape`` returns its
    adaptive moments.
    """

    def __init__(self, array: Any, *, recenter: bool = False) -> None:
        a = validate_stamp(array)
        super().__init__(a.shape[1], a.shape[0])
        dx, dy = measure_centroid(a, adaptive=True)
        if recenter:
            a = _recenter(a)
        elif math.hypot(dx, dy) > 0.5:
            msg = (
                f"PSF stamp centroid is off its central pixel by ({dx:.3f}, {dy:.3f}) px; "
                "pass recenter=True to shift it"
            )
            warnings.warn(msg, PsfWarning, stacklevel=2)
        a.flags.writeable = False
        self._array = a

    @property
    def array(self) -> np.ndarray:
        """The normalised stamp (read-only view)."""
        return self._array

    def _doComputeImage(self, x: float, y: float) -> np.ndarray:  # noqa: N802 - LSST name
        return self._array

    def _key(self) -> tuple:
        return (array_key(self._array),)

    def resized(self, width: int, height: int) -> ImagePsf:
        """Crop or zero-pad symmetrically to ``width`` x ``height`` (odd), then renormalise.

        Cropping drops the flux outside the new box; the result is renormalised to unit sum.
        """
        return ImagePsf(crop_or_pad(self._array, width, height))

    @classmethod
    def readFits(  # noqa: N802 - LSST name
        cls, path: str | os.PathLike[str], hdu: int | str = 0, *, recenter: bool = False
    ) -> ImagePsf:
        """Read a PSF stamp from a FITS HDU (e.g. a WebbPSF model: ``hdu="DET_SAMP"`` or 0).

        Parameters
        ----------
        path : str or os.PathLike
            FITS file.
        hdu : int or str, optional
            HDU index or EXTNAME holding the stamp.
        recenter : bool, optional
            Passed to the constructor.

        Returns
        -------
        ImagePsf
            The normalised PSF.
        """
        from astropy.io import fits  # lazy: only needed when reading files

        with fits.open(os.fspath(path)) as hdul:
            data = hdul[hdu].data
            if data is None:
                msg = f"FITS HDU {hdu!r} of {os.fspath(path)!r} has no data; pass the HDU holding the PSF"
                raise PsfError(msg)
            data = np.array(data, dtype=np.float64)
        return cls(data, recenter=recenter)

    def writeFits(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:  # noqa: N802
        """Write the normalised stamp as the primary HDU of a FITS file."""
        from astropy.io import fits  # lazy: only needed when writing files

        fits.PrimaryHDU(np.array(self._array)).writeto(os.fspath(path), overwrite=overwrite)

    def __repr__(self) -> str:
        dx, dy = measure_centroid(self._array, adaptive=True)
        return f"ImagePsf(<{self._width}x{self._height} stamp, centroid offset ({dx:.3g}, {dy:.3g})>)"


def _recenter(a: np.ndarray) -> np.ndarray:
    """Shift a stamp so its (adaptive) centroid is on the central pixel (two passes), unit sum."""
    from scipy import ndimage

    for _ in range(2):
        dx, dy = measure_centroid(a, adaptive=True)
        if math.hypot(dx, dy) < 1e-4:
            break
        a = ndimage.shift(a, (-dy, -dx), order=3, mode="constant", cval=0.0)
    total = float(a.sum())
    if not total > 0:
        msg = f"re-centred PSF stamp has non-positive sum {total!r}; the stamp is too far off centre"
        raise PsfError(msg)
    return a / total
