"""Position-independent analytic PSFs: Gaussian, double Gaussian and Moffat, plus :func:`psf_from_fwhm`.

All are *sampled at pixel centres* and then normalised to unit sum, as LSST's ``GaussianPsf`` and
``DoubleGaussianPsf`` do (no integration over the pixel area). Their FWHM comes from the parameters.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .base import Psf
from .errors import PsfError, check_odd_size, check_positive
from .measure import FWHM_PER_SIGMA, Quadrupole, pixel_offsets

__all__ = ["DEFAULT_MOFFAT_BETA", "DoubleGaussianPsf", "GaussianPsf", "MoffatPsf", "psf_from_fwhm"]

#: Default Moffat index: the atmospheric-turbulence value of Trujillo et al. (2001).
DEFAULT_MOFFAT_BETA = 4.765


class GaussianPsf(Psf):
    """Circular Gaussian PSF (LSST's ``GaussianPsf(width, height, sigma)``).

    Parameters
    ----------
    width, height : int
        Odd kernel size in pixels.
    sigma : float, optional
        Gaussian sigma in pixels.
    fwhm : float, optional
        Keyword-only alternative to ``sigma``: ``sigma = fwhm / 2.3548``. Give exactly one.

    Raises
    ------
    PsfError
        If the size is not odd/positive, the width is not finite and > 0, or both/neither of
        ``sigma`` and ``fwhm`` are given.
    """

    def __init__(self, width: int, height: int, sigma: float | None = None, *, fwhm: float | None = None) -> None:
        super().__init__(width, height)
        if (sigma is None) == (fwhm is None):
            msg = f"give exactly one of sigma and fwhm, got sigma={sigma!r}, fwhm={fwhm!r}"
            raise PsfError(msg)
        if sigma is not None:
            self._sigma = check_positive("sigma", sigma)
        else:
            self._sigma = check_positive("fwhm", fwhm) / FWHM_PER_SIGMA

    @property
    def sigma(self) -> float:
        """Gaussian sigma in pixels."""
        return self._sigma

    def getSigma(self) -> float:  # noqa: N802 - LSST name
        """Gaussian sigma in pixels."""
        return self._sigma

    def _doComputeImage(self, x: float, y: float) -> np.ndarray:  # noqa: N802 - LSST name
        dx, dy = pixel_offsets((self._height, self._width))
        return np.exp(-0.5 * (dx * dx + dy * dy) / self._sigma**2)

    def computeShape(self, x: float | None = None, y: float | None = None) -> Quadrupole:  # noqa: N802
        """Analytic moments ``(sigma^2, sigma^2, 0)`` (as LSST)."""
        self._position(x, y)
        s2 = self._sigma**2
        return Quadrupole(s2, s2, 0.0)

    def computeFwhm(self, x: float | None = None, y: float | None = None) -> float:  # noqa: N802
        """Analytic FWHM ``2.3548 sigma`` in pixels."""
        self._position(x, y)
        return FWHM_PER_SIGMA * self._sigma

    def resized(self, width: int, height: int) -> GaussianPsf:
        """Same sigma, new odd kernel size."""
        return GaussianPsf(width, height, self._sigma)

    def _key(self) -> tuple:
        return (self._width, self._height, self._sigma)

    def __repr__(self) -> str:
        return f"GaussianPsf({self._width}, {self._height}, sigma={self._sigma!r})"


class DoubleGaussianPsf(Psf):
    """Sum of two concentric circular Gaussians (LSST's ``DoubleGaussianPsf``).

    Parameters
    ----------
    width, height : int
        Odd kernel size in pixels.
    sigma1 : float
        Core sigma in pixels.
    sigma2 : float, optional
        Wing sigma in pixels; default ``2 * sigma1``.
    b : float, optional
        Ratio of the wing's to the core's *central amplitude* (LSST's convention), ``>= 0``:
        ``f(r) ∝ exp(-r^2 / 2 sigma1^2) + b exp(-r^2 / 2 sigma2^2)``. The wing therefore holds a
        fraction ``b sigma2^2 / (sigma1^2 + b sigma2^2)`` of the flux. ``b = 0`` (default) is a single
        Gaussian.

    Raises
    ------
    PsfError
        For a bad size, a non-positive sigma, or a negative/non-finite ``b``.
    """

    def __init__(
        self, width: int, height: int, sigma1: float, sigma2: float | None = None, b: float = 0.0
    ) -> None:
        super().__init__(width, height)
        self._sigma1 = check_positive("sigma1", sigma1)
        self._sigma2 = 2.0 * self._sigma1 if sigma2 is None else check_positive("sigma2", sigma2)
        try:
            bf = float(b)
        except (TypeError, ValueError):
            bf = math.nan
        if not (math.isfinite(bf) and bf >= 0):
            msg = f"b (wing/core central amplitude ratio) must be a finite number >= 0, got {b!r}"
            raise PsfError(msg)
        self._b = bf

    @property
    def sigma1(self) -> float:
        """Core sigma in pixels."""
        return self._sigma1

    @property
    def sigma2(self) -> float:
        """Wing sigma in pixels."""
        return self._sigma2

    @property
    def b(self) -> float:
        """Wing/core central amplitude ratio."""
        return self._b

    def getSigma1(self) -> float:  # noqa: N802 - LSST name
        """Core sigma in pixels."""
        return self._sigma1

    def getSigma2(self) -> float:  # noqa: N802 - LSST name
        """Wing sigma in pixels."""
        return self._sigma2

    def getB(self) -> float:  # noqa: N802 - LSST name
        """Wing/core central amplitude ratio."""
        return self._b

    def _profile(self, r2: np.ndarray | float) -> np.ndarray | float:
        return np.exp(-0.5 * r2 / self._sigma1**2) + self._b * np.exp(-0.5 * r2 / self._sigma2**2)

    def _doComputeImage(self, x: float, y: float) -> np.ndarray:  # noqa: N802 - LSST name
        dx, dy = pixel_offsets((self._height, self._width))
        return self._profile(dx * dx + dy * dy)

    def computeFwhm(self, x: float | None = None, y: float | None = None) -> float:  # noqa: N802
        """FWHM in pixels, solved numerically on the analytic radial profile (no pixels involved)."""
        from scipy.optimize import brentq  # lazy: scipy.optimize is slow to import

        self._position(x, y)
        half = 0.5 * (1.0 + self._b)
        rmax = FWHM_PER_SIGMA * max(self._sigma1, self._sigma2)  # the profile is below half here
        r = brentq(lambda r: float(self._profile(r * r)) - half, 0.0, rmax, xtol=1e-12, rtol=1e-12)
        return 2.0 * float(r)

    def resized(self, width: int, height: int) -> DoubleGaussianPsf:
        """Same parameters, new odd kernel size."""
        return DoubleGaussianPsf(width, height, self._sigma1, self._sigma2, self._b)

    def _key(self) -> tuple:
        return (self._width, self._height, self._sigma1, self._sigma2, self._b)

    def __repr__(self) -> str:
        return (
            f"DoubleGaussianPsf({self._width}, {self._height}, sigma1={self._sigma1!r}, "
            f"sigma2={self._sigma2!r}, b={self._b!r})"
        )


class MoffatPsf(Psf):
    """Moffat PSF ``(1 + r^2 / alpha^2)^-beta``, optionally elliptical.

    Parameters
    ----------
    width, height : int
        Odd kernel size in pixels.
    fwhm : float
        Full width at half maximum in pixels; ``alpha = fwhm / (2 sqrt(2^(1/beta) - 1))``.
    beta : float, optional
        Moffat index, ``> 1`` (finite flux); default 4.765 (Trujillo et al. 2001).
    axis_ratio : float, optional
        Minor/major axis ratio ``q`` in ``(0, 1]``; default 1 (circular). The half-maximum ellipse has
        axes ``fwhm / sqrt(q)`` and ``fwhm * sqrt(q)``, so ``fwhm`` is their geometric mean (same area).
    theta : float, optional
        Position angle of the major axis in degrees, counter-clockwise from +x.

    Raises
    ------
    PsfError
        For a bad size, a non-positive FWHM, ``beta <= 1`` or ``axis_ratio`` outside ``(0, 1]``.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fwhm: float,
        beta: float = DEFAULT_MOFFAT_BETA,
        *,
        axis_ratio: float = 1.0,
        theta: float = 0.0,
    ) -> None:
        super().__init__(width, height)
        self._fwhm = check_positive("fwhm", fwhm)
        beta_f = check_positive("beta", beta)
        if beta_f <= 1.0:
            msg = f"Moffat beta must be > 1 for a finite total flux, got {beta!r}"
            raise PsfError(msg)
        self._beta = beta_f
        q = check_positive("axis_ratio", axis_ratio)
        if q > 1.0:
            msg = f"axis_ratio is minor/major and must be in (0, 1], got {axis_ratio!r}"
            raise PsfError(msg)
        self._q = q
        try:
            th = float(theta)
        except (TypeError, ValueError):
            th = math.nan
        if not math.isfinite(th):
            msg = f"theta must be a finite angle in degrees, got {theta!r}"
            raise PsfError(msg)
        self._theta = th

    @property
    def alpha(self) -> float:
        """Moffat core radius ``alpha`` in pixels."""
        return self._fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / self._beta) - 1.0))

    @property
    def beta(self) -> float:
        """Moffat index."""
        return self._beta

    @property
    def fwhm(self) -> float:
        """FWHM parameter in pixels (geometric mean of the major/minor FWHM if elliptical)."""
        return self._fwhm

    @property
    def axis_ratio(self) -> float:
        """Minor/major axis ratio."""
        return self._q

    @property
    def theta(self) -> float:
        """Major-axis position angle in degrees."""
        return self._theta

    def _doComputeImage(self, x: float, y: float) -> np.ndarray:  # noqa: N802 - LSST name
        dx, dy = pixel_offsets((self._height, self._width))
        c, s = math.cos(math.radians(self._theta)), math.sin(math.radians(self._theta))
        u = c * dx + s * dy  # along the major axis
        v = -s * dx + c * dy
        r2 = u * u * self._q + v * v / self._q
        return (1.0 + r2 / self.alpha**2) ** (-self._beta)

    def computeFwhm(self, x: float | None = None, y: float | None = None) -> float:  # noqa: N802
        """Analytic FWHM in pixels (the ``fwhm`` parameter)."""
        self._position(x, y)
        return self._fwhm

    def resized(self, width: int, height: int) -> MoffatPsf:
        """Same parameters, new odd kernel size."""
        return MoffatPsf(width, height, self._fwhm, self._beta, axis_ratio=self._q, theta=self._theta)

    def _key(self) -> tuple:
        return (self._width, self._height, self._fwhm, self._beta, self._q, self._theta)

    def __repr__(self) -> str:
        extra = "" if self._q == 1.0 else f", axis_ratio={self._q!r}, theta={self._theta!r}"
        return f"MoffatPsf({self._width}, {self._height}, fwhm={self._fwhm!r}, beta={self._beta!r}{extra})"


def psf_from_fwhm(
    fwhm: float,
    *,
    kind: Literal["gaussian", "moffat"] = "gaussian",
    beta: float = DEFAULT_MOFFAT_BETA,
    size: int | tuple[int, int] | None = None,
) -> GaussianPsf | MoffatPsf:
    """A circular analytic PSF of the given FWHM with a sensible kernel size.

    Parameters
    ----------
    fwhm : float
        FWHM in pixels.
    kind : {"gaussian", "moffat"}, optional
        Profile.
    beta : float, optional
        Moffat index (``kind="moffat"`` only).
    size : int or (int, int), optional
        Odd kernel size (or ``(width, height)``). Default: ``2 * R + 1`` with half-width
        ``R = max(2, ceil(3 fwhm))`` for a Gaussian (7 sigma: the flux outside is < 1e-10), and for a
        Moffat the larger of ``ceil(3 fwhm)`` and the radius enclosing 99.5 % of the flux
        (``alpha sqrt(0.005^(1/(1-beta)) - 1)``), capped at ``ceil(15 fwhm)`` for heavy wings.

    Returns
    -------
    GaussianPsf or MoffatPsf
        The model.

    Raises
    ------
    PsfError
        For an unknown ``kind``, a non-positive FWHM or an even/invalid size.
    """
    f = check_positive("fwhm", fwhm)
    if kind not in ("gaussian", "moffat"):
        msg = f"kind must be 'gaussian' or 'moffat', got {kind!r}"
        raise PsfError(msg)
    if size is None:
        radius = math.ceil(3.0 * f)
        if kind == "moffat":
            b = check_positive("beta", beta)
            if b > 1.0:
                alpha = f / (2.0 * math.sqrt(2.0 ** (1.0 / b) - 1.0))
                log_u = math.log(0.005) / (1.0 - b)  # 1 + r^2/alpha^2 at 99.5 % enclosed flux
                r995 = alpha * math.sqrt(math.expm1(log_u)) if log_u < 700 else math.inf
                radius = max(radius, math.ceil(min(r995, 15.0 * f)))
        radius = max(radius, 2)
        width = height = 2 * radius + 1
    elif isinstance(size, tuple | list):
        width, height = check_odd_size(*size)
    else:
        width, height = check_odd_size(size, size)
    if kind == "gaussian":
        return GaussianPsf(width, height, fwhm=f)
    return MoffatPsf(width, height, f, beta)
