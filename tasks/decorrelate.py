"""Decorrelation of a difference image: the Alard–Lupton "afterburner" (Reiss & Lupton, DMTN-021).

Why
---
A difference ``D = U − κ⋆C`` (``U`` the unconvolved image, ``C`` the convolved one) has correlated
noise: with white input noise of variances ``v_u`` and ``v_c`` its power spectrum is
``v_u + v_c·|κ̂(k)|²``, high at low spatial frequency where ``κ̂ ≈ κ_sum`` and low at high frequency
where ``κ̂ → 0``. Detection thresholds computed from the per-pixel variance are then wrong. The
filter

    ``φ(k) = sqrt((v_u + v_c·κ_sum²) / (v_u + v_c·|κ̂(k)|²))``

makes the spectrum flat at its ``k = 0`` value ``v_u + v_c·κ_sum²``; since ``|κ̂(0)| = κ_sum``,
``φ(0) = 1`` and fluxes are unchanged. ``κ`` is the matching kernel realised at one position (the
image centre by default) and ``v_u``, ``v_c`` are global clipped-mean variances (spec §11 item 11:
one realisation and global variances, as LSST does).

Modes and normalisation: what units come out
--------------------------------------------
``mode`` says which input was convolved (``"convolveTemplate"``: ``U`` = science, ``C`` = template;
``"convolveScience"``: ``U`` = template, ``C`` = science). ``normalization`` says whether the
difference was divided by ``n`` (``kernel_sum``, default the realised ``κ_sum`` = ``s``):

=================  ========================  ===============================  ========================
normalization      difference ``D``          corrected white variance         default for mode
=================  ========================  ===============================  ========================
``"none"``         ``U − κ⋆C``               ``v_u + s²·v_c``                 ``convolveTemplate``
``"difference"``   ``(U − κ⋆C) / n``         ``(v_u + s²·v_c) / n²``          ``convolveScience``
``"matched"``      ``U − (κ⋆C) / n``         ``v_u + (s/n)²·v_c``             --
=================  ========================  ===============================  ========================

(the sign of ``D`` is irrelevant). So ``convolveTemplate`` gives science units (``S − κ⋆T``,
variance ``σ²_s + s²σ²_t``); ``convolveScience`` with the legacy ``ImagePsfMatchTask`` difference
``(κ⋆S − T)/n`` gives template units divided by ``n`` -- science units when the kernel carries the
photometric scale -- with variance ``(σ²_t + s²σ²_s)/n²``; LSST's HEAD ``AlardLuptonSubtractTask``
normalises only the matched science (``κ⋆S/n − T``): ``normalization="matched"``, variance
``σ²_t + (s/n)²σ²_s``. In every case φ is built from the *effective* kernel ``g·κ`` with
``g = α/β`` the gain of the convolved term relative to the unconvolved one, so it whitens the
difference actually given and ``φ(0) = 1`` exactly. (LSST uses the raw ``κ`` with every
normalisation and divides the variance by ``κ_sum²`` afterwards, which is right only for the legacy
``"difference"`` form.)

Variance plane
--------------
* ``"scale"`` (no input planes given): the difference's own plane, ``β²(var_U + g²·κ²⋆var_C)`` as
  propagated by ``convolveAndSubtract``, times ``(v_u + g²s²v_c) / (v_u + g²Σκ²·v_c)``. Exact
  wherever the science and template variance planes share one spatial shape (e.g. both constant);
  otherwise an approximation.
* ``"estimate"`` (LSST's default): ``β²(var_U + g²s²·var_C)`` per pixel from the input planes.
* ``"weighted"`` (the default here): ``β²(Σψ²·var_U + g²Σh²·var_C)`` per pixel, each input's plane
  weighted by the noise gain of the filter applied to it (``ψ = F⁻¹φ`` on the unconvolved image,
  ``h = ψ ⊛ κ`` on the convolved one; ``Σψ²·v_u + g²Σh²·v_c = v_u + g²s²v_c`` by Parseval, so
  only ``Σψ²`` is computed). Where a plane varies slowly over the reach of ψ, e.g. a source's own
  Poisson variance, this is the exact propagation below, and "estimate" is not: whitening boosts
  the high frequencies the convolved image lost, which are the unconvolved image's noise, so
  ``Σψ² > 1`` and ``g²Σh² < g²s²``. Mildly so for ``convolveTemplate`` with a deeper template
  (``Σψ² ≈ 1.15`` on the benchmark pair), strongly for ``convolveScience`` (``Σψ² ≈ 6``: the
  template's noise is amplified, and "estimate" puts the variance near bright stars ~30 % low).
* ``"complete"`` (LSST's ``completeVarPlanePropagation``): ``β²(ψ²⊛var_U + g²·h²⊛var_C)``: the
  exact per-pixel variance of the corrected image for independent input pixels, whatever the
  spatial variation of the planes (two more whole-image convolutions). For constant planes all
  four agree with the white variance above.

FFT grid, edges and holes
-------------------------
``ψ`` is not compact, but it decays fast: its *reach* is found once per call as the smallest
offset beyond which ``Σ|ψ|`` holds less than :data:`TAIL_TOLERANCE` of the total (typically a
little less than the kernel width; more when ``v_c ≫ v_u``). The circular FFT must not bring a
pixel within the reach from across the image border: the image is padded by the reach less the
excluded rows (columns) already lining its borders, such as the NaN frame of a convolved image
(often no padding at all), to sizes chosen by :func:`scipy.fft.next_fast_len`; the "complete"
propagation also pads by the kernel size, for ``ψ⊛κ``. The FFTs run in the image's precision
(single for float32, φ included). Pixels that are not finite or carry ``NO_DATA`` (the NaN
border ``convolveAndSubtract`` leaves, chip gaps) are filled with the median of the good pixels
(so a constant level, kept exactly since ``Σψ = 1``, causes no edge step; 0 for a clean
difference), and afterwards get their input image and variance values back: NaN stays NaN, the
mask is never changed, and no excluded pixel spreads. Good pixels within the reach of an excluded
pixel (or of the image border) see the fill value instead of the missing data: their noise is only
partly whitened and the "scale", "estimate" and "weighted" variances are approximate there;
beyond the reach the result equals that of an image without the hole to :data:`TAIL_TOLERANCE`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from diffim.framework.config import Config, Field
from diffim.framework.struct import Struct
from diffim.framework.task import Task
from diffim.framework.timing import timeMethod

from ._lazy import LazyModule
from .clipped_stats import _median, clipped_mean
from .image import Exposure, Image, Mask, MaskedImage
from .kernel import FixedKernel, Kernel


_fft = LazyModule("scipy.fft")  # the launcher imports this module (for its config) and runs no FFT


__all__ = [
    "DEFAULT_IGNORE_PLANES",
    "TAIL_TOLERANCE",
    "DecorrelateALKernelConfig",
    "DecorrelateALKernelTask",
    "DecorrelationError",
    "clipped_variance",
    "decorrelate_difference",
    "decorrelate_psf_image",
    "decorrelation_kernel",
]

#: Mask planes whose pixels are left out of the clipped-mean variances (LSST's ignoreMaskPlanes).
DEFAULT_IGNORE_PLANES: tuple[str, ...] = (
    "INTRP", "EDGE", "DETECTED", "SAT", "CR", "BAD", "NO_DATA", "DETECTED_NEGATIVE",
)
#: Fraction of ``Σ|ψ|`` allowed beyond the reach (sets the padding and the hole influence radius).
TAIL_TOLERANCE = 1.0e-6

Mode = Literal["convolveTemplate", "convolveScience"]
Normalization = Literal["none", "difference", "matched"]
VariancePropagation = Literal["scale", "estimate", "weighted", "complete"]

_MODES = ("convolveTemplate", "convolveScience")
_NORMALIZATIONS = ("none", "difference", "matched")
_PROPAGATIONS = ("scale", "estimate", "weighted", "complete")
#: Smallest and largest side of the grid on which the reach of ψ is measured.
_REACH_GRID_MIN = 64
_REACH_GRID_MAX = 4096


class DecorrelationError(ValueError):
    """The difference image cannot be decorrelated with the given inputs."""


# ------------------------------------------------------------------------------------------------
# The whitening filter
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Whitening:
    """φ for one realised kernel, variances and gains; evaluated on any FFT grid.

    ``kernel`` is the realised κ ``[y, x]`` with centre ``ctr = (cx, cy)``; ``gain`` is ``g = α/β``
    and ``beta`` the factor on the unconvolved image (see the module notes).
    """

    kernel: np.ndarray
    ctr: tuple[int, int]
    v_u: float
    v_c: float
    gain: float
    beta: float

    @property
    def kernel_sum(self) -> float:
        return float(self.kernel.sum())

    @property
    def white_variance(self) -> float:
        """Per-pixel variance of the whitened difference: ``β²(v_u + g²s²v_c)``."""
        return self.beta**2 * (self.v_u + (self.gain * self.kernel_sum) ** 2 * self.v_c)

    @property
    def raw_variance(self) -> float:
        """Per-pixel variance of the difference before whitening: ``β²(v_u + g²Σκ²·v_c)``."""
        return self.beta**2 * (self.v_u + self.gain**2 * float(np.sum(self.kernel**2)) * self.v_c)

    def phi(self, shape: tuple[int, int], dtype: Any = np.float64, workers: int | None = None) -> np.ndarray:
        """φ on the half-plane (``rfft2``) grid of a ``shape`` image.

        ``dtype`` is the real type of the result and of the arithmetic (float32 for the single
        precision FFTs of a float32 image: half the work, and no less precise than those FFTs);
        ``workers`` as :mod:`scipy.fft`.
        """
        # in place on one real array (the same operations as the plain expression, without its
        # five grid-sized temporaries)
        # rfft2(kernel, s=shape) as its two 1-D passes (the same numbers): the small kernel is not
        # padded to a grid-sized array first
        kernel = self.kernel.astype(dtype, copy=False)
        spectrum = _fft.fft(
            _fft.rfft(kernel, n=shape[1], axis=1, workers=workers), n=shape[0], axis=0, workers=workers
        )
        if spectrum.dtype == np.complex64:
            # single precision: re² + im² (|z|² to rounding; np.abs's overflow-safe hypot is slower)
            power = np.square(spectrum.real)
            power += np.square(spectrum.imag)
        else:
            power = np.abs(spectrum)
            np.square(power, out=power)
        del spectrum
        g2 = self.gain**2
        power *= g2 * self.v_c
        power += self.v_u
        np.divide(self.v_u + g2 * self.kernel_sum**2 * self.v_c, power, out=power)
        return np.sqrt(power, out=power)

    def psi(self, shape: tuple[int, int]) -> np.ndarray:
        """ψ = F⁻¹φ on a ``shape`` grid, origin at index ``[0, 0]`` (periodic, point-symmetric)."""
        return _fft.irfft2(self.phi(shape), s=shape)

    def convolved_transfer(self, shape: tuple[int, int]) -> np.ndarray:
        """Transfer function (rfft2 grid) from the convolved image ``C`` to the output, over ``β·g``.

        ``κ⋆C`` (afw correlation about the kernel centre) is the circular convolution of ``C`` with
        the kernel flipped and centred on index 0.
        """
        flipped = np.zeros(shape)
        kh, kw = self.kernel.shape
        cx, cy = self.ctr
        rows = (cy - np.arange(kh)) % shape[0]
        cols = (cx - np.arange(kw)) % shape[1]
        flipped[np.ix_(rows, cols)] = self.kernel
        return self.phi(shape) * _fft.rfft2(flipped)

    @property
    def reach(self) -> tuple[int, int]:
        """Offsets ``(ry, rx)`` beyond which ``ψ`` holds less than :data:`TAIL_TOLERANCE` of ``Σ|ψ|``."""
        return self._psi_summary[0]

    @property
    def unconvolved_gain(self) -> float:
        """``Σψ²``: the variance of the whitened unconvolved image per unit input variance (over β²)."""
        return self._psi_summary[1]

    @property
    def convolved_gain(self) -> float:
        """``g²Σ(ψ⊛κ)²``: the same for the convolved image (over β²).

        By Parseval, the whitened spectrum ``φ²(v_u + g²v_c|κ̂|²)`` being flat at
        ``v_u + g²s²v_c`` gives ``Σψ²·v_u + g²Σ(ψ⊛κ)²·v_c = v_u + g²s²v_c``.
        """
        total = self.v_u + (self.gain * self.kernel_sum) ** 2 * self.v_c
        return max(total - self.unconvolved_gain * self.v_u, 0.0) / self.v_c

    @cached_property
    def _psi_summary(self) -> tuple[tuple[int, int], float]:
        """The reach of ψ and ``Σψ²``, on a grid large enough for both."""
        side = _fft.next_fast_len(max(_REACH_GRID_MIN, 8 * max(self.kernel.shape)))
        while True:
            psi = self.psi((side, side))
            profile = np.abs(_fft.fftshift(psi))
            reach = (_tail_radius(profile.sum(axis=1)), _tail_radius(profile.sum(axis=0)))
            # trust the grid only if ψ is negligible well inside it (no aliasing of the tail)
            if max(reach) < side // 4 or side >= _REACH_GRID_MAX:
                return reach, float(np.sum(psi * psi))
            side = _fft.next_fast_len(2 * side)


def _tail_radius(profile: np.ndarray) -> int:
    """Smallest ``r`` with ``Σ_{|d| > r} profile[d] <= TAIL_TOLERANCE · Σ profile`` (centre at n//2)."""
    n = profile.size
    centre = n // 2
    total = profile.sum()
    offsets = np.abs(np.arange(n) - centre)
    beyond = np.bincount(offsets, weights=profile)[::-1].cumsum()[::-1]  # beyond[r] = Σ_{|d| >= r}
    ok = np.nonzero(np.append(beyond[1:], 0.0) <= TAIL_TOLERANCE * total)[0]
    return int(ok[0])


# ------------------------------------------------------------------------------------------------
# Input handling
# ------------------------------------------------------------------------------------------------
def _as_masked_image(data: Any, what: str) -> MaskedImage:
    mi = getattr(data, "maskedImage", data)
    if not isinstance(mi, MaskedImage):
        msg = f"{what} must be a MaskedImage or an Exposure, got {type(data).__name__}"
        raise TypeError(msg)
    return mi


def _realise_kernel(kernel: Any, position: tuple[float, float]) -> tuple[np.ndarray, tuple[int, int]]:
    if not isinstance(kernel, Kernel):
        array = np.asarray(kernel, dtype=float)
        if array.ndim != 2 or array.shape[0] % 2 == 0 or array.shape[1] % 2 == 0:
            msg = (
                f"kernel must be a diffim Kernel or an odd-sized 2-D array, "
                f"got {type(kernel).__name__} of shape {array.shape}"
            )
            raise DecorrelationError(msg)
        kernel = FixedKernel(array)
    image = kernel.computeImage(float(position[0]), float(position[1]))
    if not np.all(np.isfinite(image)):
        msg = f"the kernel realised at {position!r} has non-finite pixels; check its spatial parameters"
        raise DecorrelationError(msg)
    return image, kernel.getCtr()


def _check_variance(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        msg = f"{name} must be a finite positive variance, got {value!r}; measure it with clipped_variance()"
        raise DecorrelationError(msg)
    return value


def _gains(normalization: str, norm: float) -> tuple[float, float]:
    """``(g, β)``: gain of the convolved term relative to the unconvolved one, and the overall factor."""
    if normalization == "none":
        return 1.0, 1.0
    if normalization == "difference":
        return 1.0, 1.0 / norm
    return 1.0 / norm, 1.0  # "matched"


#: Rows per band of the "estimate" and "weighted" variances (bounds their temporaries).
_VARIANCE_BAND_ROWS = 256


def _plane(values: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """The plane as an array of the difference's shape (floating types kept: users convert)."""
    array = values.array if isinstance(values, Image) else np.asarray(values, dtype=float)
    if array.shape != shape:
        msg = f"{name} has shape {array.shape} but the difference has shape {shape}; cut it to the difference's box"
        raise DecorrelationError(msg)
    return array if array.dtype.kind == "f" else np.asarray(array, dtype=float)


#: Rows per band of the mask tests (bounds their integer temporaries).
_MASK_BAND_ROWS = 256


def _and_unmasked(flags: np.ndarray, mask: np.ndarray, bits: int) -> None:
    """``flags &= (mask & bits) == 0`` in place, in bands of rows (no plane-sized integer temporary)."""
    flat_flags, flat_mask = flags.reshape(-1, flags.shape[-1]), mask.reshape(-1, mask.shape[-1])
    for r0 in range(0, flat_mask.shape[0], _MASK_BAND_ROWS):
        band = slice(r0, r0 + _MASK_BAND_ROWS)
        flat_flags[band] &= (flat_mask[band] & bits) == 0


def _excluded_frame(excluded: np.ndarray, reach: tuple[int, int]) -> tuple[int, int]:
    """Excluded rows at the top plus bottom, and columns at the left plus right, each side counted
    up to the reach (enough to size the padding)."""
    ry, rx = reach

    def run(lines: np.ndarray) -> int:
        """Leading ``True`` entries."""
        return int(lines.size if lines.all() else np.argmin(lines))

    rows = (run(excluded[:ry].all(axis=1)) if ry else 0) + (run(excluded[::-1][:ry].all(axis=1)) if ry else 0)
    cols = (run(excluded[:, :rx].all(axis=0)) if rx else 0) + (run(excluded[:, ::-1][:, :rx].all(axis=0)) if rx else 0)
    return rows, cols


def _weighted_sum(a: np.ndarray, wa: float, b: np.ndarray, wb: float, dtype: Any) -> np.ndarray:
    """``wa·a + wb·b`` as a new array of ``dtype``, in bands of rows (no plane-sized temporaries).

    Computed in float32 when all three types are float32 (a unit or two in the last place of the
    float32 result), otherwise in float64.
    """
    work = np.float32 if a.dtype == b.dtype == np.dtype(dtype) == np.float32 else np.float64
    out = np.empty(a.shape, dtype=dtype)
    if work == out.dtype:
        np.multiply(a, wa, out=out, dtype=work)
        scratch = np.empty((min(_VARIANCE_BAND_ROWS, a.shape[0]), a.shape[1]), dtype=work)
        for r0 in range(0, a.shape[0], _VARIANCE_BAND_ROWS):
            band = slice(r0, r0 + _VARIANCE_BAND_ROWS)
            out[band] += np.multiply(b[band], wb, out=scratch[: out[band].shape[0]], dtype=work)
        return out
    first, second = (np.empty((min(_VARIANCE_BAND_ROWS, a.shape[0]), a.shape[1]), dtype=work) for _ in range(2))
    for r0 in range(0, a.shape[0], _VARIANCE_BAND_ROWS):
        band = slice(r0, r0 + _VARIANCE_BAND_ROWS)
        rows = out[band].shape[0]
        total = np.multiply(a[band], wa, out=first[:rows], dtype=work)
        total += np.multiply(b[band], wb, out=second[:rows], dtype=work)
        out[band] = total
    return out


def _circular_apply(data: np.ndarray, transfer: np.ndarray, shape: tuple[int, int], workers: int | None) -> np.ndarray:
    """``F⁻¹[transfer · F(data zero-padded to shape)]`` cropped back to ``data``'s shape.

    ``rfft2``/``irfft2`` as their 1-D passes (the same numbers): the column transforms work in
    place, and the last pass transforms only the rows kept; scipy's ``irfft2`` of a single
    precision spectrum takes about twice as long.
    """
    rows, cols = data.shape
    spectrum = _fft.rfft(data, n=shape[1], axis=1, workers=workers)
    spectrum = _fft.fft(spectrum, n=shape[0], axis=0, overwrite_x=True, workers=workers)
    spectrum *= transfer
    spectrum = _fft.ifft(spectrum, axis=0, overwrite_x=True, workers=workers)
    out = _fft.irfft(spectrum[:rows], n=shape[1], axis=1, workers=workers)
    return out if out.shape == data.shape else out[:, :cols]


# ------------------------------------------------------------------------------------------------
# Public functions
# ------------------------------------------------------------------------------------------------
def _whitening(
    kernel: Any,
    *,
    science_variance: float,
    template_variance: float,
    mode: str,
    position: tuple[float, float],
    kernel_sum: float | None,
    normalization: str | None,
) -> _Whitening:
    if mode not in _MODES:
        msg = f"mode must be one of {_MODES}, got {mode!r}"
        raise DecorrelationError(msg)
    if normalization is None:
        normalization = "none" if mode == "convolveTemplate" else "difference"
    if normalization not in _NORMALIZATIONS:
        msg = f"normalization must be one of {_NORMALIZATIONS} (or None for the mode's default), got {normalization!r}"
        raise DecorrelationError(msg)
    v_s = _check_variance(science_variance, "science_variance")
    v_t = _check_variance(template_variance, "template_variance")
    v_u, v_c = (v_s, v_t) if mode == "convolveTemplate" else (v_t, v_s)
    image, ctr = _realise_kernel(kernel, position)
    s = float(image.sum())
    norm = s if kernel_sum is None else float(kernel_sum)
    if normalization != "none" and not (math.isfinite(norm) and norm != 0):
        msg = f"cannot undo a normalisation by kernel_sum={norm!r}; pass the non-zero value D was divided by"
        raise DecorrelationError(msg)
    gain, beta = _gains(normalization, norm)
    if gain * s == 0:
        msg = "the matching kernel sums to 0 at the decorrelation position; φ would not preserve fluxes"
        raise DecorrelationError(msg)
    return _Whitening(image, ctr, v_u, v_c, gain, beta)


def decorrelation_kernel(
    kernel: Any,
    *,
    science_variance: float,
    template_variance: float,
    mode: Mode = "convolveTemplate",
    kernel_position: tuple[float, float] = (0.0, 0.0),
    kernel_sum: float | None = None,
    normalization: Normalization | None = None,
) -> np.ndarray:
    """The decorrelation kernel ``ψ = F⁻¹φ`` in real space, centred, cut at its reach.

    Parameters are those of :func:`decorrelate_difference` (``kernel_position`` defaults to
    ``(0, 0)`` here: give the image centre for a spatially varying kernel).

    Returns
    -------
    numpy.ndarray
        Odd-sized float64 array ``[y, x]`` of side ``2·reach + 1``, centre at the middle, summing
        to 1 within :data:`TAIL_TOLERANCE`; applying it (a convolution, ψ being point-symmetric)
        is what :func:`decorrelate_difference` does in Fourier space.
    """
    filt = _whitening(
        kernel, science_variance=science_variance, template_variance=template_variance, mode=mode,
        position=kernel_position, kernel_sum=kernel_sum, normalization=normalization,
    )
    return _psi_stamp(filt)


def _psi_stamp(filt: _Whitening) -> np.ndarray:
    """ψ cut at its reach, centred in an odd-sized stamp."""
    ry, rx = filt.reach
    kh, kw = filt.kernel.shape
    # at least twice the reach (ψ's tail beyond it is negligible) and never smaller than κ
    shape = (_fft.next_fast_len(max(4 * ry + 1, 2 * kh)), _fft.next_fast_len(max(4 * rx + 1, 2 * kw)))
    psi = filt.psi(shape)
    return psi[np.ix_(np.arange(-ry, ry + 1) % shape[0], np.arange(-rx, rx + 1) % shape[1])]


def decorrelate_difference(
    difference: MaskedImage | Exposure,
    kernel: Any,
    *,
    science_variance: float,
    template_variance: float,
    mode: Mode = "convolveTemplate",
    kernel_position: tuple[float, float] | None = None,
    kernel_sum: float | None = None,
    normalization: Normalization | None = None,
    science_variance_plane: Any = None,
    template_variance_plane: Any = None,
    variance_propagation: VariancePropagation | None = None,
    workers: int | None = None,
) -> MaskedImage:
    """Whiten the noise of a difference image (DMTN-021), keeping fluxes.

    Parameters
    ----------
    difference : MaskedImage or Exposure
        The difference image (an Exposure gives its masked image); not modified.
    kernel : Kernel or array_like
        The matching kernel (e.g. a spatially varying :class:`LinearCombinationKernel`), realised
        at ``kernel_position`` as κ; a bare odd-sized array is taken as a fixed kernel.
    science_variance, template_variance : float
        Global clipped-mean variances ``σ²_s``, ``σ²_t`` of the *input* science and template images
        in their own units (see :func:`clipped_variance`).
    mode : {"convolveTemplate", "convolveScience"}
        Which input was convolved: it gets ``v_c``, the other ``v_u``.
    kernel_position : tuple of float, optional
        Parent ``(x, y)`` at which κ is realised; default the difference's centre.
    kernel_sum : float, optional
        The value ``n`` the difference was divided by (see ``normalization``); default the sum
        ``s`` of the realised κ. Unused with ``normalization="none"``. φ always uses ``s`` so that
        ``φ(0) = 1``.
    normalization : {"none", "difference", "matched"}, optional
        How the difference was formed: ``U − κ⋆C``, ``(U − κ⋆C)/n`` or ``U − κ⋆C/n``. Default
        ``"none"`` for convolveTemplate, ``"difference"`` (legacy ``ImagePsfMatchTask``) for
        convolveScience. The module notes list the output units and variance of each.
    science_variance_plane, template_variance_plane : array_like or Image, optional
        Per-pixel variance planes of the unconvolved inputs on the difference's grid, in their own
        units; needed for the "estimate", "weighted" and "complete" variance propagations.
    variance_propagation : {"scale", "estimate", "weighted", "complete"}, optional
        How the output variance plane is made (module notes). Default "weighted" when both
        planes are given, otherwise "scale".
    workers : int, optional
        Threads for the FFTs (:mod:`scipy.fft` semantics).

    Returns
    -------
    MaskedImage
        New masked image with the difference's box, dtype and mask: the whitened image and its
        variance; excluded pixels (non-finite or ``NO_DATA``) keep their input image and variance.

    Raises
    ------
    DecorrelationError
        Bad mode, normalisation or variance option, non-positive variances, a kernel summing to 0,
        missing or mis-shaped variance planes, or no good pixel.
    TypeError
        ``difference`` is neither a MaskedImage nor an Exposure.
    """
    mi = _as_masked_image(difference, "difference")
    bbox = mi.getBBox()
    position = bbox.getCenter() if kernel_position is None else kernel_position
    filt = _whitening(
        kernel, science_variance=science_variance, template_variance=template_variance, mode=mode,
        position=position, kernel_sum=kernel_sum, normalization=normalization,
    )
    corrected, _ = _decorrelate(
        mi, filt, mode=mode, science_variance_plane=science_variance_plane,
        template_variance_plane=template_variance_plane, variance_propagation=variance_propagation,
        workers=workers,
    )
    return corrected


def _decorrelate(
    mi: MaskedImage,
    filt: _Whitening,
    *,
    mode: str,
    science_variance_plane: Any,
    template_variance_plane: Any,
    variance_propagation: str | None,
    workers: int | None,
) -> tuple[MaskedImage, tuple[int, int]]:
    """Apply ``filt`` to ``mi``; also return the reach of ψ."""
    have_planes = science_variance_plane is not None and template_variance_plane is not None
    if variance_propagation is None:
        variance_propagation = "weighted" if have_planes else "scale"
    if variance_propagation not in _PROPAGATIONS:
        msg = f"variance_propagation must be one of {_PROPAGATIONS}, got {variance_propagation!r}"
        raise DecorrelationError(msg)
    if variance_propagation != "scale" and not have_planes:
        msg = f"variance_propagation={variance_propagation!r} needs science_variance_plane and template_variance_plane"
        raise DecorrelationError(msg)

    image = mi.image.array
    variance = mi.variance.array
    included = np.isfinite(image)
    _and_unmasked(included, mi.mask.array, Mask.getPlaneBitMask("NO_DATA"))
    any_excluded = not included.all()
    if any_excluded and not included.any():
        msg = "the difference image has no finite pixel without NO_DATA; nothing to decorrelate"
        raise DecorrelationError(msg)
    level = _median(image[included] if any_excluded else image.ravel())
    excluded = np.logical_not(included, out=included)
    data = image - level
    if any_excluded:
        np.copyto(data, 0.0, where=excluded)

    ry, rx = filt.reach
    kh, kw = filt.kernel.shape
    # the FFT grid: the circular convolution must not bring a pixel within the reach of ψ from
    # across the image border; excluded rows and columns along the border (the NaN frame of a
    # convolved image) hold zeros and already keep that far apart (often all the padding needed)
    frame = _excluded_frame(excluded, (ry, rx)) if any_excluded else (0, 0)
    shape = (
        _fft.next_fast_len(image.shape[0] + max(ry - frame[0], 0)),
        _fft.next_fast_len(image.shape[1] + max(rx - frame[1], 0)),
    )
    # φ in the precision of the FFTs (scipy transforms a float32 image in single precision)
    real = np.float32 if data.dtype == np.float32 else np.float64
    out_image = _circular_apply(data, filt.phi(shape, dtype=real, workers=workers), shape, workers)
    del data
    if out_image.base is None and out_image.dtype == image.dtype:  # the transform's own array (no padding)
        out_image += level
    else:
        out_image = np.add(out_image, level, out=np.empty(image.shape, dtype=image.dtype), casting="same_kind")

    if variance_propagation == "scale":
        out_var = variance * (filt.white_variance / filt.raw_variance)
    else:
        sci = _plane(science_variance_plane, image.shape, "science_variance_plane")
        tmp = _plane(template_variance_plane, image.shape, "template_variance_plane")
        var_u, var_c = (sci, tmp) if mode == "convolveTemplate" else (tmp, sci)
        g2 = filt.gain**2
        if variance_propagation in ("estimate", "weighted"):
            if variance_propagation == "estimate":
                scale_u, scale_c = filt.beta**2, filt.beta**2 * g2 * filt.kernel_sum**2
            else:
                scale_u, scale_c = filt.beta**2 * filt.unconvolved_gain, filt.beta**2 * filt.convolved_gain
            out_var = _weighted_sum(var_u, scale_u, var_c, scale_c, image.dtype)
        else:
            # exact for independent input pixels: each input's plane through the square of its
            # filter (ψ⊛κ reaches a kernel farther than ψ: a grid padded for both)
            shape = (_fft.next_fast_len(image.shape[0] + ry + kh), _fft.next_fast_len(image.shape[1] + rx + kw))
            psi = filt.psi(shape)
            h_c = _fft.irfft2(filt.convolved_transfer(shape), s=shape)
            var_u, var_c = np.asarray(var_u, dtype=float), np.asarray(var_c, dtype=float)
            zero = excluded | ~np.isfinite(var_u) | ~np.isfinite(var_c)
            part_u = _circular_apply(np.where(zero, 0.0, var_u), _fft.rfft2(psi**2), shape, workers)
            part_c = _circular_apply(np.where(zero, 0.0, var_c), _fft.rfft2(h_c**2), shape, workers)
            out_var = filt.beta**2 * (part_u + g2 * part_c)

    out_var = np.asarray(out_var).astype(image.dtype, copy=False)  # every branch made a new array
    if any_excluded:
        np.copyto(out_image, image, where=excluded)
        np.copyto(out_var, variance, where=excluded)
    origin = mi.getXY0()
    result = MaskedImage(
        Image(out_image, xy0=origin), Mask(mi.mask.array.copy(), xy0=origin), Image(out_var, xy0=origin)
    )
    return result, (ry, rx)


def decorrelate_psf_image(psf_image: Any, psi: Any) -> np.ndarray:
    """The PSF of a decorrelated difference: ``ψ ⊛ P`` on the PSF stamp, renormalised to unit sum.

    Parameters
    ----------
    psf_image : array_like
        Odd-sized PSF stamp of the difference (centred).
    psi : array_like
        ψ from :func:`decorrelation_kernel` (odd-sized, centred).

    Returns
    -------
    numpy.ndarray
        Float64 stamp of the input's shape (flux of ψ⊛P falling outside it is dropped before the
        renormalisation).
    """
    psf = np.asarray(psf_image, dtype=float)
    psi = np.asarray(psi, dtype=float)
    shape = tuple(_fft.next_fast_len(a + b) for a, b in zip(psf.shape, psi.shape, strict=True))
    full = _fft.irfft2(_fft.rfft2(psf, s=shape) * _fft.rfft2(psi, s=shape), s=shape)
    # the full convolution is offset by ψ's centre
    cy, cx = psi.shape[0] // 2, psi.shape[1] // 2
    out = full[cy : cy + psf.shape[0], cx : cx + psf.shape[1]]
    total = out.sum()
    if not (math.isfinite(total) and total > 0):
        msg = f"the decorrelated PSF stamp sums to {total!r}; the PSF or the decorrelation kernel is unusable"
        raise DecorrelationError(msg)
    return out / total


def clipped_variance(
    masked_image: MaskedImage | Exposure, *, bad_planes: Iterable[str] = DEFAULT_IGNORE_PLANES
) -> float:
    """Sigma-clipped mean of the variance plane (afw MEANCLIP: 3σ, 3 iterations), masked pixels ignored.

    Parameters
    ----------
    masked_image : MaskedImage or Exposure
        Image whose variance plane is averaged.
    bad_planes : iterable of str
        Mask planes whose pixels are left out (default :data:`DEFAULT_IGNORE_PLANES`).

    Returns
    -------
    float
        The clipped mean variance (non-finite values ignored).

    Raises
    ------
    DecorrelationError
        No pixel is left, or the mean is not a finite positive number.
    KeyError
        An unknown mask plane name.
    """
    mi = _as_masked_image(masked_image, "masked_image")
    names = [bad_planes] if isinstance(bad_planes, str) else list(bad_planes)
    bits = Mask.getPlaneBitMask(names) if names else 0
    variance = mi.variance.array
    usable = np.isfinite(variance)
    if bits:
        _and_unmasked(usable, mi.mask.array, bits)
    values = variance[usable]
    mean = clipped_mean(values, finite=True)
    if not (math.isfinite(mean) and mean > 0):
        msg = (
            f"no usable variance: clipped mean {mean!r} over {values.size} finite unmasked pixels "
            f"(ignoring {names!r}); check the variance plane or the ignored mask planes"
        )
        raise DecorrelationError(msg)
    return mean


class DecorrelateALKernelConfig(Config):
    """Configuration of :class:`DecorrelateALKernelTask`."""

    ignoreMaskPlanes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IGNORE_PLANES),
        description="Mask planes whose pixels are left out of the clipped-mean science and template variances.",
    )
    completeVarPlanePropagation: bool = Field(
        False,
        description=(
            "Propagate the variance planes through the decorrelation filters exactly (slower) instead of "
            "a per-pixel estimate (see weightVarPlanes)."
        ),
    )
    weightVarPlanes: bool = Field(
        True,
        description=(
            "Per-pixel variance estimate (when not completeVarPlanePropagation): weight each input's variance "
            "plane by the noise gain of the filter applied to it, Σψ² for the unconvolved image and "
            "Σ(ψ⊛κ)² for the convolved one (True), or by LSST's 1 and kernelSum² (False). Both give the "
            "white variance for constant planes; only the weighted estimate follows the sources' own Poisson "
            "variance when the science image is convolved, where ψ amplifies the template's noise several-fold."
        ),
    )


class DecorrelateALKernelTask(Task):
    """Decorrelate an Alard–Lupton difference image (LSST's ``DecorrelateALKernelTask``, DMTN-021).

    The matching kernel is realised at the centre of the difference image; the science and
    template variances are clipped means over the difference's box, ignoring ``ignoreMaskPlanes``.
    The output variance plane is the per-pixel estimate (``"weighted"``, or LSST's ``"estimate"``
    without ``weightVarPlanes``; with ``completeVarPlanePropagation``, the exact propagation)
    described in :mod:`diffim.tasks.decorrelate`, and the difference's PSF, if any, is replaced by
    its decorrelated image (``ψ ⊛ P``).

    Notes
    -----
    **Metadata** (every key is declared in :mod:`diffim.tasks.metadata_keys`):

    ``scienceVarianceMean``, ``templateVarianceMean``
        The clipped-mean variances used.
    ``decorrelationKernelSum``
        Sum of the matching kernel at the centre.
    ``decorrelationVariance``
        Expected per-pixel variance of the whitened difference (white-noise value).
    ``decorrelationReach``
        Largest offset (pixels) at which ψ still matters (see the module notes).
    """

    ConfigClass = DecorrelateALKernelConfig
    _DefaultName = "ip_diffim_decorrelateALKernel"
    config: DecorrelateALKernelConfig

    @timeMethod
    def run(
        self,
        scienceExposure: Exposure,  # noqa: N803 - LSST name
        templateExposure: Exposure,  # noqa: N803 - LSST name
        subtractedExposure: Exposure,  # noqa: N803 - LSST name
        psfMatchingKernel: Kernel,  # noqa: N803 - LSST name
        *,
        mode: Mode = "convolveTemplate",
        kernelSum: float | None = None,  # noqa: N803
        normalization: Normalization | None = None,
        workers: int | None = None,
    ) -> Struct:
        """Decorrelate ``subtractedExposure``.

        Parameters
        ----------
        scienceExposure, templateExposure : Exposure
            The *unconvolved* science and template (boxes containing the difference's).
        subtractedExposure : Exposure
            The difference image (a MaskedImage is accepted and wrapped).
        psfMatchingKernel : Kernel
            The matching kernel used to make the difference.
        mode : {"convolveTemplate", "convolveScience"}
            Which image was convolved.
        kernelSum : float, optional
            What the difference was divided by (see :func:`decorrelate_difference`).
        normalization : {"none", "difference", "matched"}, optional
            How the difference was normalised (default per mode).
        workers : int, optional
            FFT threads.

        Returns
        -------
        Struct
            ``correctedExposure``: a new Exposure (WCS, calibration and band of the difference).
        """
        diff_mi = _as_masked_image(subtractedExposure, "subtractedExposure")
        bbox = diff_mi.getBBox()
        science = _cut(scienceExposure, bbox, "scienceExposure")
        template = _cut(templateExposure, bbox, "templateExposure")
        planes = list(self.config.ignoreMaskPlanes)
        science_var = clipped_variance(science, bad_planes=planes)
        template_var = clipped_variance(template, bad_planes=planes)
        centre = bbox.getCenter()
        filt = _whitening(
            psfMatchingKernel, science_variance=science_var, template_variance=template_var, mode=mode,
            position=centre, kernel_sum=kernelSum, normalization=normalization,
        )
        if self.config.completeVarPlanePropagation:
            propagation = "complete"
        else:
            propagation = "weighted" if self.config.weightVarPlanes else "estimate"
        self.log.info(
            "Decorrelating the difference image (%s): science variance %.4g, template variance %.4g, kernel sum %.5g",
            mode, science_var, template_var, filt.kernel_sum,
        )
        corrected_mi, reach = _decorrelate(
            diff_mi, filt, mode=mode, science_variance_plane=science.variance,
            template_variance_plane=template.variance, variance_propagation=propagation, workers=workers,
        )
        psf = getattr(subtractedExposure, "psf", None)
        if psf is not None:
            psf = _decorrelated_psf(psf, filt, centre)
        if isinstance(subtractedExposure, Exposure):
            corrected = Exposure(
                corrected_mi, wcs=subtractedExposure.wcs, psf=psf, photoCalib=subtractedExposure.photoCalib,
                band=subtractedExposure.band, metadata=subtractedExposure.metadata.copy(),
            )
        else:
            corrected = Exposure(corrected_mi)
        self.metadata["scienceVarianceMean"] = science_var
        self.metadata["templateVarianceMean"] = template_var
        self.metadata["decorrelationKernelSum"] = filt.kernel_sum
        self.metadata["decorrelationVariance"] = filt.white_variance
        self.metadata["decorrelationReach"] = int(max(reach))
        return Struct(correctedExposure=corrected)


def _cut(data: Any, bbox: Any, what: str) -> MaskedImage:
    mi = _as_masked_image(data, what)
    if mi.getBBox() == bbox:
        return mi
    if not mi.getBBox().contains(bbox):
        msg = (
            f"{what} box {mi.getBBox()} does not contain the difference box {bbox}; "
            "pass the exposure the difference was made from"
        )
        raise DecorrelationError(msg)
    return mi[bbox]


def _decorrelated_psf(psf: Any, filt: _Whitening, centre: Sequence[float]) -> Any:
    from .psf import ImagePsf  # the PSF package pulls in its models; only needed here

    stamp = psf.computeImage(float(centre[0]), float(centre[1]))
    return ImagePsf(decorrelate_psf_image(stamp, _psi_stamp(filt)))
