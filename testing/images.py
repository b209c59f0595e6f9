"""A small synthetic template/science pair with a known matching kernel, for plugin tests.

Stars are circular Gaussians integrated over each pixel (with ``erf``), so convolving the
template's noiseless image with a Gaussian of sigma ``sqrt(scienceSigma² - templateSigma²)`` and
scaling by ``fluxRatio`` gives the science image's static stars: the matching kernel is known.
The science image also holds one transient, absent from the template.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from astropy.table import Table
    from diffim.tasks.image import Exposure
    from diffim.tasks.kernel import FixedKernel

__all__ = ["SyntheticPair", "make_image_pair"]


@dataclasses.dataclass
class SyntheticPair:
    """A template/science pair and the truth it was made from (see `make_image_pair`).

    Attributes
    ----------
    template, science : `~diffim.tasks.image.Exposure`
        The two exposures: one pixel grid, one WCS, Gaussian PSFs
        (`~diffim.tasks.psf.GaussianPsf`), constant variance planes, empty masks.
    stars : `astropy.table.Table`
        Static stars: ``x``, ``y`` (parent pixels) and ``flux`` (template counts; science
        ``fluxRatio`` times more). Usable as the ``candidateList`` of ``ImagePsfMatchTask``.
    transient : `dict` [`str`, `float`]
        ``x``, ``y`` and ``flux`` (science counts) of the source only the science image has.
    kernel : `~diffim.tasks.kernel.FixedKernel`
        The true kernel matching the template to the science image (sum ``fluxRatio``).
    kernelSigma : `float`
        Its Gaussian sigma in pixels.
    templateSigma, scienceSigma : `float`
        PSF Gaussian sigmas in pixels.
    fluxRatio : `float`
        Science / template flux of a static star (the true kernel sum).
    templateNoise, scienceNoise : `float`
        Standard deviation of the Gaussian pixel noise of each image.
    seed : `int`
        Seed of the noise and the star layout.
    """

    template: Exposure
    science: Exposure
    stars: Table
    transient: dict[str, float]
    kernel: FixedKernel
    kernelSigma: float
    templateSigma: float
    scienceSigma: float
    fluxRatio: float
    templateNoise: float
    scienceNoise: float
    seed: int

    @property
    def fwhms(self) -> tuple[float, float]:
        """Template and science PSF FWHMs in pixels (`tuple` [`float`, `float`])."""
        from diffim.tasks.kernel import FWHM_PER_SIGMA

        return self.templateSigma * FWHM_PER_SIGMA, self.scienceSigma * FWHM_PER_SIGMA


def _pixel_gaussian(centres: np.ndarray, sigma: float, n: int, origin: int) -> np.ndarray:
    """Fraction of a unit 1-D Gaussian falling in each of ``n`` pixels, one row per centre."""
    import numpy as np
    from scipy.special import erf

    edges = origin + np.arange(n + 1, dtype=float) - 0.5
    cdf = 0.5 * (1.0 + erf((edges[None, :] - centres[:, None]) / (math.sqrt(2.0) * sigma)))
    return np.diff(cdf, axis=1)


def _render(xs: np.ndarray, ys: np.ndarray, fluxes: np.ndarray, sigma: float, size: int,
            xy0: tuple[int, int]) -> np.ndarray:
    """Noiseless image of pixel-integrated Gaussian stars (separable: one outer product each)."""
    import numpy as np

    px = _pixel_gaussian(xs, sigma, size, xy0[0])  # (nstars, size) over columns
    py = _pixel_gaussian(ys, sigma, size, xy0[1])  # (nstars, size) over rows
    return np.einsum("k,ki,kj->ij", fluxes, py, px)


def _wcs(size: int, xy0: tuple[int, int]) -> Any:
    """A 0.2"/pixel TAN WCS shared by both images (parent pixel coordinates)."""
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    wcs.wcs.cdelt = [-0.2 / 3600.0, 0.2 / 3600.0]
    return wcs


def make_image_pair(
    size: int = 256,
    *,
    nstars: int = 25,
    templateSigma: float = 1.6,  # noqa: N803 - LSST-style names, as in the task APIs
    scienceSigma: float = 2.4,  # noqa: N803
    fluxRatio: float = 1.2,  # noqa: N803
    templateNoise: float = 2.0,  # noqa: N803
    scienceNoise: float = 4.0,  # noqa: N803
    starFlux: tuple[float, float] = (3000.0, 30000.0),  # noqa: N803
    transientFlux: float = 4000.0,  # noqa: N803
    xy0: tuple[int, int] = (0, 0),
    seed: int = 1,
) -> SyntheticPair:
    """Make a small template/science pair with Gaussian PSFs, a known kernel and a transient.

    Stars sit on a jittered square grid kept ``margin`` pixels from the edges (so kernel stamps
    fit), with fluxes log-uniform in ``starFlux``; the transient sits between grid points near
    the centre. Both images share one WCS; the science image's stars are ``fluxRatio`` brighter
    and blurred by the kernel. Takes a few milliseconds at the default size.

    Parameters
    ----------
    size : `int`, optional
        Side of both images in pixels, 64 to 256.
    nstars : `int`, optional
        Number of static stars (rounded down to a square number, at least 4).
    templateSigma, scienceSigma : `float`, optional
        Gaussian PSF sigmas in pixels; ``scienceSigma`` must be larger (the template is
        convolved, as with real deep templates).
    fluxRatio : `float`, optional
        Science / template flux of static stars: the true kernel sum.
    templateNoise, scienceNoise : `float`, optional
        Standard deviation of the Gaussian noise (counts) of each image, > 0.
    starFlux : `tuple` [`float`, `float`], optional
        Range of template star fluxes (counts).
    transientFlux : `float`, optional
        Science flux of the transient (counts); 0 for none.
    xy0 : `tuple` [`int`, `int`], optional
        Parent pixel coordinates of the lower-left pixel.
    seed : `int`, optional
        Random seed (layout jitter, fluxes, noise).

    Returns
    -------
    pair : `SyntheticPair`
        The exposures and their truth.

    Raises
    ------
    ValueError
        If ``size`` is outside 64..256, the sigmas do not satisfy
        ``0 < templateSigma < scienceSigma``, a noise is not positive or ``nstars < 4``.

    Examples
    --------
    >>> from diffim.testing import make_image_pair
    >>> pair = make_image_pair(128, nstars=16)
    >>> pair.science.getDimensions(), len(pair.stars), round(float(pair.kernel.array.sum()), 3)
    (Extent2I(x=128, y=128), 16, 1.2)
    """
    import numpy as np
    from astropy.table import Table
    from diffim.tasks.image import Exposure
    from diffim.tasks.kernel import FixedKernel
    from diffim.tasks.psf import GaussianPsf

    if not 64 <= size <= 256:
        msg = f"size must be 64..256 pixels (a small, fast pair), got {size!r}"
        raise ValueError(msg)
    if not 0 < templateSigma < scienceSigma:
        msg = (
            f"need 0 < templateSigma < scienceSigma so that a kernel blurs the template, got "
            f"templateSigma={templateSigma!r}, scienceSigma={scienceSigma!r}"
        )
        raise ValueError(msg)
    if not (templateNoise > 0 and scienceNoise > 0):
        msg = f"noise levels must be > 0, got templateNoise={templateNoise!r}, scienceNoise={scienceNoise!r}"
        raise ValueError(msg)
    side = math.isqrt(nstars)
    if side < 2:
        msg = f"nstars must be at least 4 (a 2x2 grid), got {nstars!r}"
        raise ValueError(msg)

    rng = np.random.default_rng(seed)
    kernel_sigma = math.sqrt(scienceSigma**2 - templateSigma**2)
    margin = max(24.0, 0.16 * size)
    step = (size - 2 * margin) / (side - 1)
    grid = margin + step * np.arange(side)
    gx, gy = np.meshgrid(grid, grid)
    jitter = min(3.0, 0.15 * step)
    xs = gx.ravel() + rng.uniform(-jitter, jitter, side * side) + xy0[0]
    ys = gy.ravel() + rng.uniform(-jitter, jitter, side * side) + xy0[1]
    lo, hi = starFlux
    fluxes = np.exp(rng.uniform(math.log(lo), math.log(hi), side * side))
    centre = margin + step * ((side - 1) // 2 + 0.5)  # between grid points: no blend
    transient = {"x": float(centre + xy0[0]), "y": float(centre + xy0[1]), "flux": float(transientFlux)}

    template_model = _render(xs, ys, fluxes, templateSigma, size, xy0)
    science_model = _render(xs, ys, fluxRatio * fluxes, scienceSigma, size, xy0)
    if transientFlux:
        science_model += _render(np.array([transient["x"]]), np.array([transient["y"]]),
                                 np.array([transientFlux]), scienceSigma, size, xy0)
    template_pixels = template_model + rng.normal(0.0, templateNoise, template_model.shape)
    science_pixels = science_model + rng.normal(0.0, scienceNoise, science_model.shape)

    wcs = _wcs(size, xy0)

    def exposure(pixels: np.ndarray, noise: float, sigma: float) -> Exposure:
        width = 2 * math.ceil(4 * sigma) + 1
        return Exposure(image=pixels.astype(np.float32), variance=np.full(pixels.shape, noise**2, np.float32),
                        xy0=xy0, wcs=wcs, psf=GaussianPsf(width, width, sigma))

    half = math.ceil(4 * kernel_sigma)
    offsets = np.arange(-half, half + 1, dtype=float)
    profile = np.exp(-0.5 * (offsets / kernel_sigma) ** 2)
    kernel_image = np.outer(profile, profile)
    kernel = FixedKernel(fluxRatio * kernel_image / kernel_image.sum())

    stars = Table({"x": xs, "y": ys, "flux": fluxes})
    return SyntheticPair(
        template=exposure(template_pixels, templateNoise, templateSigma),
        science=exposure(science_pixels, scienceNoise, scienceSigma),
        stars=stars, transient=transient, kernel=kernel, kernelSigma=kernel_sigma,
        templateSigma=float(templateSigma), scienceSigma=float(scienceSigma), fluxRatio=float(fluxRatio),
        templateNoise=float(templateNoise), scienceNoise=float(scienceNoise), seed=int(seed),
    )
