"""Variance planes: estimating them for plain images, converting noise/weight maps, checking them.

Estimating the variance of a plain image
----------------------------------------
With a gain ``g`` (e-/ADU, card ``GAIN`` or ``gain=``) and a read noise ``r`` (electrons, card
``RDNOISE``/``READNOIS``/``READNOISE`` or ``read_noise=``) the variance of a pixel holding ``I`` ADU
is the Poisson noise of its electrons plus the read noise, in ADU²::

    var = (sky + max(I - sky, 0)) / g + (r / g)²

where ``sky`` is the sigma-clipped median of the image. The sky term is taken from the sky level
rather than from each pixel's own value, so that sky pixels all get the same variance (a pixel's
noise fluctuation should not set its own weight); sources add their Poisson noise on top.

Many images have had their sky subtracted (e.g. the DECam cut-outs of the sfft example, whose
headers keep ``GAIN``, ``RDNOISE`` and the original ``SATURATE`` but whose sky is ~0). Their
background noise is then far above what ``sky / g + (r / g)²`` predicts. When that prediction is
below a quarter of the measured sky variance, diffim concludes the pedestal was removed (or the gain
is wrong) and uses the *measured* sky variance for the background term instead::

    var = max(I - sky, 0) / g + sigma_sky²

Without a gain, the variance is the constant measured sky variance ``sigma_sky²`` (a
sigma-clipped MAD estimate: 3-sigma clipping, at most ~10⁶ pixels sampled on a regular grid). The
read noise alone is not used then: it is part of the measured sky noise anyway.

Checking variance planes
------------------------
Pixels flagged NO_DATA or BAD are exempt. Elsewhere a variance must be finite and > 0; zero is also
accepted in LSST-layout files, because LSST writes 0 for noiseless inputs (its compareToHotpants
template does). Other pixels are an error, or with ``invalid_variance="flag"`` get NO_DATA and an
infinite variance.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from astropy.io import fits

from diffim.tasks.image import mask_planes

from .cards import card_number
from .errors import Source

__all__ = [
    "GAIN_KEYS",
    "READ_NOISE_KEYS",
    "SATURATION_KEYS",
    "INVALID_VARIANCE_POLICIES",
    "sky_stats",
    "estimate_variance",
    "variance_from_noise",
    "variance_from_weight",
    "check_variance",
]

_log = logging.getLogger(__name__)

#: Gain card (e-/ADU).
GAIN_KEYS = ("GAIN",)
#: Read-noise cards (electrons), in order of preference.
READ_NOISE_KEYS = ("RDNOISE", "READNOIS", "READNOISE")
#: Saturation cards (ADU), in order of preference: ``ESATUR`` (saturation *after* sky subtraction,
#: as written by sfft/MeLOn for sky-subtracted images) wins over the raw ``SATURATE``.
SATURATION_KEYS = ("ESATUR", "SATURATE", "SATLEVEL")
#: What ``invalid_variance=`` accepts.
INVALID_VARIANCE_POLICIES = ("raise", "flag")

_MAX_SKY_SAMPLE = 1_000_000
# The gain model explains less than this fraction of the measured sky variance -> sky was subtracted.
_SUBTRACTED_SKY_FRACTION = 0.25


def sky_stats(image: np.ndarray, source: Source) -> tuple[float, float]:
    """Sky level and sky noise of an image: sigma-clipped median, and the smaller of the clipped
    MAD standard deviation and the median of per-box MAD deviations about a plane (so large-scale
    sky structure is not counted as noise).

    At most ~10⁶ pixels are used, sampled on a regular grid, so that a 4k x 4k image costs little.

    Returns
    -------
    tuple of float
        ``(sky, sigma)`` in image units.
    """
    from astropy.stats import sigma_clipped_stats  # only plain images need it

    step = max(1, math.ceil(math.sqrt(image.size / _MAX_SKY_SAMPLE)))
    grid = np.asarray(image[::step, ::step], dtype=np.float64)
    sample = grid[np.isfinite(grid)]
    if sample.size < 16:
        raise source.error(f"only {sample.size} finite pixels, too few to estimate the sky noise", "pass noise=, weight= or variance=")
    _, median, sigma = sigma_clipped_stats(sample, sigma=3.0, maxiters=10, stdfunc="mad_std")
    local = _local_sigma(grid)
    return float(median), float(sigma if local is None else min(sigma, local))


#: Side (pixels of the sampled grid) of the boxes the sky noise is measured in: small enough for
#: a plane to describe the sky in it, large enough (576 pixels) for a ~3 % MAD per box.
_NOISE_BOX = 24


def _local_sigma(sample: np.ndarray) -> float | None:
    """Median over boxes of each box's MAD standard deviation about a fitted plane, or None.

    The whole-image MAD also counts the sky's large-scale structure (gradients, a bright galaxy,
    scattered light) as noise: on the ESO 085-030 frames it is 87 ADU for a pixel noise of ~76.
    Within a small box, after removing a plane, the sky is flat; the median over boxes ignores
    those holding a bright star or the core of a galaxy. Boxes with a non-finite pixel are left
    out; None when fewer than 4 boxes are usable.
    """
    box = _NOISE_BOX
    ny, nx = (sample.shape[0] // box) * box, (sample.shape[1] // box) * box
    if ny == 0 or nx == 0:
        return None
    blocks = sample[:ny, :nx].reshape(ny // box, box, nx // box, box).transpose(0, 2, 1, 3).reshape(-1, box * box)
    blocks = blocks[np.isfinite(blocks).all(axis=1)]
    if blocks.shape[0] < 4:
        return None
    yy, xx = np.mgrid[:box, :box]
    design = np.column_stack([np.ones(box * box), xx.ravel() - (box - 1) / 2, yy.ravel() - (box - 1) / 2])
    from astropy.stats import mad_std  # only plain images need it

    residual = blocks - (blocks @ np.linalg.pinv(design).T) @ design.T
    sigma = mad_std(residual, axis=1)
    # a plane fitted to box*box pixels takes 3 degrees of freedom
    sigma *= math.sqrt(box * box / (box * box - 3))
    sigma = sigma[sigma > 0]
    return float(np.median(sigma)) if sigma.size >= 4 else None


def _float_dtype(image: np.ndarray) -> np.dtype:
    return image.dtype if image.dtype.kind == "f" else np.dtype(np.float32)


def estimate_variance(
    image: np.ndarray,
    header: fits.Header,
    source: Source,
    *,
    gain: float | None = None,
    read_noise: float | None = None,
) -> np.ndarray:
    """Variance plane of a plain image (see the module docstring for the model).

    Parameters
    ----------
    image : numpy.ndarray
        Pixels (NaN allowed: their variance is NaN, replaced later by +inf).
    header : astropy.io.fits.Header
        Header searched for the gain and read-noise cards.
    source : Source
        The image HDU, for error messages.
    gain : float, optional
        e-/ADU; overrides the ``GAIN`` card.
    read_noise : float, optional
        Electrons; overrides the read-noise cards.

    Returns
    -------
    numpy.ndarray
        Variance in image units squared, float32 for integer or float32 images, else float64.
    """
    if gain is None:
        found = card_number(header, GAIN_KEYS, source)
        gain = found[1] if found else None
    if read_noise is None:
        found = card_number(header, READ_NOISE_KEYS, source)
        read_noise = found[1] if found else 0.0
    if gain is not None and not (math.isfinite(gain) and gain > 0):
        raise source.error(f"gain must be > 0 e-/ADU, got {gain!r}", "fix the GAIN card or pass gain=")
    if not (math.isfinite(read_noise) and read_noise >= 0):
        raise source.error(f"read noise must be >= 0 electrons, got {read_noise!r}", "fix the RDNOISE card or pass read_noise=")
    sky, sigma = sky_stats(image, source)
    dtype = _float_dtype(image)
    if gain is None:
        if not sigma > 0:
            raise source.error(f"the measured sky noise is {sigma!r} (a constant image?)", "pass noise=, weight= or variance=")
        _log.debug("%s: constant sky variance %.6g (no GAIN card)", source, sigma**2)
        return np.full(image.shape, sigma**2, dtype=dtype)
    model_sky = max(sky, 0.0) / gain + (read_noise / gain) ** 2
    if sigma > 0 and model_sky < _SUBTRACTED_SKY_FRACTION * sigma**2:
        background = sigma**2  # the sky pedestal was subtracted: its Poisson noise is still there
        _log.debug("%s: sky looks subtracted (model %.4g << measured %.4g); using the measured sky variance", source, model_sky, background)
    else:
        background = model_sky
    if not background > 0:
        raise source.error(f"the sky variance comes out as {background!r}", "pass read_noise=, noise=, weight= or variance=")
    var = np.asarray(image, dtype=dtype) - dtype.type(sky)
    np.maximum(var, 0, out=var)
    var *= dtype.type(1.0 / gain)
    var += dtype.type(background)
    return var


def variance_from_noise(noise: np.ndarray) -> np.ndarray:
    """Variance from a 1-sigma noise map: ``noise**2``, made negative where the noise is negative.

    Keeping the sign lets :func:`check_variance` catch negative noise values, which squaring
    would hide (the JWST example has one: a resampling artefact).
    """
    noise = np.asarray(noise, dtype=_float_dtype(np.asarray(noise)))
    return noise * np.abs(noise)


def variance_from_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance from an inverse-variance (weight) map, and where the weight is 0 (no data)."""
    weight = np.asarray(weight, dtype=_float_dtype(np.asarray(weight)))
    no_data = weight == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.reciprocal(weight)
    return var, no_data


def check_variance(
    variance: np.ndarray,
    mask: np.ndarray,
    *,
    zero_ok: bool,
    policy: str,
    source: Source,
    xy0: tuple[int, int],
    what: str = "variance",
) -> None:
    """Check a variance plane (see the module docstring); with ``policy="flag"`` fix it in place.

    ``what`` names the values in the error message.

    Raises
    ------
    FitsReadError
        With ``policy="raise"``, naming how many pixels are bad and where the first one is.
    """
    with np.errstate(invalid="ignore"):
        vmin, vmax = variance.min(), variance.max()  # NaN propagates: one fast pass each
    if math.isfinite(vmax) and (vmin >= 0 if zero_ok else vmin > 0):
        return
    with np.errstate(invalid="ignore"):
        bad = ~(variance >= 0) if zero_ok else ~(variance > 0)
        bad |= np.isinf(variance)
    bad &= (mask & np.int32(mask_planes.bitmask(("NO_DATA", "BAD")))) == 0
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return
    if policy == "flag":
        mask[bad] |= np.int32(mask_planes.bitmask("NO_DATA"))
        variance[bad] = np.inf
        return
    row, col = divmod(int(np.flatnonzero(bad)[0]), variance.shape[1])
    value = float(variance[row, col])
    kind = "NaN" if math.isnan(value) else "infinite" if math.isinf(value) else "negative" if value < 0 else "zero"
    problem = (
        f"{n_bad} pixel(s) not flagged NO_DATA or BAD have unusable {what} "
        f"(first: {kind} {value!r} at x={xy0[0] + col}, y={xy0[1] + row})"
    )
    raise source.error(problem, "fix the variance, or pass invalid_variance='flag' to mark such pixels NO_DATA")
