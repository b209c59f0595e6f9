"""``PsfMatchTask._diagnostic``: how well constrained the spatial fit is, and substamp metrics.

The substamp metrics need, per good candidate, two difference stamps ``S - (K ⋆ T + bg)``: with the
candidate's own kernel (LOCAL) and with the spatial model realised at the candidate (SPATIAL). Both
kernels are fixed images, so :func:`difference_residuals` computes them together: the stamps of
one shape are stacked in cache-sized blocks, each template is Fourier transformed once for its two
kernels, and only what the metrics read (normalised residuals of the valid region) is formed. The
spatial model is realised at all candidates with one evaluation of its spatial terms, and the
metrics of all stamps are computed together (:func:`~.metrics.residual_metrics_of`). It follows
:func:`~diffim.tasks.kernel.convolve.convolveAndSubtract` operation by operation (its one-tile FFT
of a stamp, float64 arithmetic, the cast to the stamps' dtype, the mask smeared over the kernel's
non-zero pixels), so the residuals are the same to the last bit; stamps it cannot treat that way
(non-finite template pixels, kernels of at most 9 pixels, stamps over 320 pixels) go through
``convolveAndSubtract`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernel.convolve import _DIRECT_MAX_AREA, _tile_plan
from .metrics import (
    METRIC_PLANES,
    aggregate_metrics,
    kernel_shape_metrics,
    masked_image_residuals,
    residual_metrics_of,
)

__all__ = ["candidate_metrics", "diagnose", "difference_residuals"]

#: Bytes of spectra per block of stamps (8 stamps of 43² with 2 kernels). Larger blocks make the FFTs
#: memory-bound and their megabyte arrays come back from the allocator as fresh pages (page faults).
_BLOCK_BYTES = 1 << 19


# ------------------------------------------------------------------------------------------------
# Difference stamps of fixed kernels, batched
# ------------------------------------------------------------------------------------------------
def difference_residuals(
    stamps: Sequence[tuple[Any, Any]],
    kernels: Sequence[Sequence[np.ndarray]],
    backgrounds: Sequence[Sequence[float]],
) -> list[list[np.ndarray]]:
    """Normalised residuals of ``S - (K ⋆ T + bg)`` for stamp pairs and fixed kernels.

    Parameters
    ----------
    stamps : sequence of (MaskedImage, MaskedImage)
        ``(template, science)`` stamp pairs; the two stamps of a pair share their box.
    kernels : sequence of sequences of numpy.ndarray
        For each pair, the kernel images to match the template with.
    backgrounds : sequence of sequences of float
        For each pair, the background of each kernel.

    Returns
    -------
    list of lists of numpy.ndarray
        ``z[i][j]`` equals ``normalized_residuals`` of
        ``convolveAndSubtract(template_i, science_i, FixedKernel(kernels[i][j]), backgrounds[i][j])``
        (pixels free of the :data:`~diffim.tasks.matching.metrics.METRIC_PLANES`, finite, with a
        positive variance), value for value.
    """
    from ..image import Mask

    if not (len(stamps) == len(kernels) == len(backgrounds)):
        msg = (
            f"difference_residuals needs kernels and backgrounds for every stamp pair, got {len(stamps)!r} pairs, "
            f"{len(kernels)!r} kernel lists and {len(backgrounds)!r} background lists"
        )
        raise ValueError(msg)
    bits = Mask.getPlaneBitMask(METRIC_PLANES)
    out: list[list[np.ndarray]] = [[] for _ in stamps]
    slow: list[int] = []
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, ((template, science), kernel_list) in enumerate(zip(stamps, kernels)):
        if len(backgrounds[i]) != len(kernel_list):
            msg = (
                f"stamp pair {i} has {len(kernel_list)} kernels but {len(backgrounds[i])!r} backgrounds; "
                "give one background per kernel"
            )
            raise ValueError(msg)
        key = _batch_key(template, science, kernel_list)
        if key is None:
            slow.append(i)
        else:
            groups.setdefault(key, []).append(i)
    for key, members in groups.items():
        # blocks of stamps whose arrays stay in the cache (and in memory the allocator reuses)
        (h, w), (kh, kw), n_kernels = key[:3]
        block = max(1, _BLOCK_BYTES // (16 * n_kernels * _one_tile_length(h, kh) * _one_tile_length(w, kw)))
        for b0 in range(0, len(members), block):
            chunk = members[b0 : b0 + block]
            planes = _Planes.stack([stamps[i] for i in chunk])
            finite = planes.template_finite()
            batched = [i for i, ok in zip(chunk, finite) if ok]
            slow.extend(i for i, ok in zip(chunk, finite) if not ok)
            if batched:
                planes = planes.take(finite) if not finite.all() else planes
                residuals = _batched_residuals(
                    planes, [kernels[i] for i in batched], [backgrounds[i] for i in batched], bits
                )
                for i, z in zip(batched, residuals):
                    out[i] = z
    for i in slow:
        template, science = stamps[i]
        out[i] = [
            _slow_residuals(template, science, k, bg) for k, bg in zip(kernels[i], backgrounds[i])
        ]
    return out


def _batch_key(template: Any, science: Any, kernel_list: Sequence[np.ndarray]) -> tuple[Any, ...] | None:
    """What stamps must share to be stacked; None if the stamp must go through convolveAndSubtract."""
    from ..image import MaskedImage

    if not (isinstance(template, MaskedImage) and isinstance(science, MaskedImage)) or not kernel_list:
        return None
    shapes = {np.shape(k) for k in kernel_list}
    if len(shapes) != 1:
        return None
    (kh, kw), = shapes
    h, w = science.image.array.shape
    if (
        template.getBBox() != science.getBBox()
        or kh * kw <= _DIRECT_MAX_AREA
        or not (kh <= h and kw <= w)
        or _one_tile_length(h, kh) is None
        or _one_tile_length(w, kw) is None
    ):
        return None
    return (
        (h, w), (kh, kw), len(kernel_list),
        template.image.array.dtype, template.variance.array.dtype,
        science.image.array.dtype, science.variance.array.dtype,
    )


def _slow_residuals(template: Any, science: Any, kernel_image: np.ndarray, background: float) -> np.ndarray:
    from ..kernel.convolve import convolveAndSubtract
    from ..kernel.kernels import FixedKernel

    return masked_image_residuals(convolveAndSubtract(template, science, FixedKernel(kernel_image), background))


@dataclass
class _Planes:
    """The planes of stamp pairs of one shape, stacked ``(n_stamps, h, w)``."""

    template: np.ndarray
    template_variance: np.ndarray
    template_mask: np.ndarray
    science: np.ndarray
    science_variance: np.ndarray
    science_mask: np.ndarray

    @classmethod
    def stack(cls, stamps: Sequence[tuple[Any, Any]]) -> _Planes:
        templates = [t for t, _ in stamps]
        sciences = [s for _, s in stamps]
        return cls(
            np.stack([t.image.array for t in templates]),
            np.stack([t.variance.array for t in templates]),
            np.stack([t.mask.array for t in templates]),
            np.stack([s.image.array for s in sciences]),
            np.stack([s.variance.array for s in sciences]),
            np.stack([s.mask.array for s in sciences]),
        )

    def template_finite(self) -> np.ndarray:
        """Stamps whose template image and variance are finite (convolve treats the others apart)."""
        return np.isfinite(self.template).all(axis=(1, 2)) & np.isfinite(self.template_variance).all(axis=(1, 2))

    def take(self, keep: np.ndarray) -> _Planes:
        return _Planes(*(plane[keep] for plane in (
            self.template, self.template_variance, self.template_mask,
            self.science, self.science_variance, self.science_mask,
        )))


def _one_tile_length(n: int, k: int) -> int | None:
    """convolve's FFT length along an axis of ``n`` pixels and a ``k``-pixel kernel, or None when
    convolve would cut that axis into several tiles (the batched path reproduces one tile only)."""
    length, per_tile = _tile_plan(n - k + 1, k)
    return length if per_tile == n - k + 1 else None


def _valid_correlation(stamps: np.ndarray, kernels: np.ndarray, fft_shape: tuple[int, int]) -> np.ndarray:
    """``(n, m, h_out, w_out)``: each stamp correlated with its ``m`` kernels, valid region only.

    convolve's FFT path for one tile: stamp and flipped kernel zero-padded to ``fft_shape``, product
    of the spectra, inverse transform, and the valid pixels read off at offset ``k - 1``.
    """
    from scipy import fft

    n, h, w = stamps.shape
    kh, kw = kernels.shape[-2:]
    ny, nx = fft_shape
    buf = np.zeros((n, ny, nx))
    buf[:, :h, :w] = stamps
    spectrum = fft.rfft2(buf, axes=(-2, -1))
    padded = np.zeros((kernels.shape[0], ny, nx))
    padded[:, :kh, :kw] = kernels[:, ::-1, ::-1]  # correlation = convolution with K flipped
    kernel_spectra = fft.rfft2(padded, axes=(-2, -1)).reshape(n, -1, ny, spectrum.shape[-1])
    full = fft.irfft2(spectrum[:, None] * kernel_spectra, s=(ny, nx), axes=(-2, -1), overwrite_x=True)
    return full[:, :, kh - 1 : h, kw - 1 : w]


def _batched_residuals(
    planes: _Planes,
    kernels: Sequence[Sequence[np.ndarray]],
    backgrounds: Sequence[Sequence[float]],
    bits: int,
) -> list[list[np.ndarray]]:
    """Residuals of stamps sharing shape, dtypes and kernel shape (see :func:`_batch_key`)."""
    n_stamps, h, w = planes.science.shape
    n_kernels = len(kernels[0])
    kh, kw = np.shape(kernels[0][0])
    h_out, w_out = h - kh + 1, w - kw + 1
    # afw's valid region: the kernel centre ((k - 1) // 2) in from the low edges
    rows = slice((kh - 1) // 2, (kh - 1) // 2 + h_out)
    cols = slice((kw - 1) // 2, (kw - 1) // 2 + w_out)
    dtype = np.result_type(planes.template.dtype, planes.science.dtype)
    # convolve's one-tile plan: an FFT of the whole stamp, zero-padded to a fast length
    fft_shape = (_one_tile_length(h, kh), _one_tile_length(w, kw))
    kernel_stack = np.stack([np.asarray(k, dtype=float) for ks in kernels for k in ks])  # (N * m, kh, kw)

    # as convolveAndSubtract: float64 correlation, + background, S - it, and var_S + K² ⋆ var_T,
    # then the difference's dtype (float32 stamps give float32 pixels)
    image = _valid_correlation(planes.template, kernel_stack, fft_shape)  # (N, m, h_out, w_out)
    image += np.asarray(backgrounds, dtype=float)[:, :, None, None]
    image = np.subtract(planes.science[:, None, rows, cols], image, out=image).astype(dtype)
    variance = _valid_correlation(planes.template_variance, kernel_stack**2, fft_shape)
    variance += planes.science_variance[:, None, rows, cols]
    variance = variance.astype(dtype)

    # only the metric planes matter: science bits in the valid region, template bits smeared over
    # the kernel's non-zero pixels (convolve's footprint)
    bad = np.repeat(((planes.science_mask[:, rows, cols] & bits) != 0)[:, None], n_kernels, axis=1)
    template_bad = (planes.template_mask & bits) != 0
    for i in np.flatnonzero(template_bad.any(axis=(1, 2))):
        windows = np.lib.stride_tricks.sliding_window_view(template_bad[i], (kh, kw))
        for j, kernel in enumerate(kernels[i]):
            bad[i, j] |= windows[:, :, np.asarray(kernel) != 0].any(axis=-1)

    good = ~bad & np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    z = image[good] / np.sqrt(variance[good])
    pieces = np.split(z, np.cumsum(good.sum(axis=(2, 3)).ravel())[:-1])
    return [pieces[i * n_kernels : (i + 1) * n_kernels] for i in range(n_stamps)]


# ------------------------------------------------------------------------------------------------
# Candidate metrics
# ------------------------------------------------------------------------------------------------
@dataclass
class _CandidateInputs:
    """What the metrics of one candidate need, gathered before the batched difference stamps."""

    candidate: Any
    local_kernel: np.ndarray
    n_local: int
    local_background: float | None  # None: the candidate's kernel varies, use its own difference image
    spatial_image: np.ndarray
    spatial_background: float


def _gather_local(candidate: Any) -> tuple[np.ndarray, int, float | None]:
    """The candidate's kernel image, its number of fitted parameters and background."""
    from .candidate import CandidateSolution

    recent = CandidateSolution.RECENT
    local_kernel = candidate.getKernelImage(recent)
    kernel = candidate.getKernel(recent)
    background = candidate.getBackground(recent)
    n_local = kernel.getNBasisKernels() + (1 if background != 0 else 0)
    # a fixed (not spatially varying) kernel is convolved as its image, so the image stands for it
    return local_kernel, n_local, None if kernel.isSpatiallyVarying() else float(background)


def _gather(candidate: Any, spatial_kernel: Any, spatial_background: Any) -> _CandidateInputs:
    x, y = candidate.getXCenter(), candidate.getYCenter()
    local_kernel, n_local, local_background = _gather_local(candidate)
    spatial_image = spatial_kernel.computeImage(x, y)
    return _CandidateInputs(
        candidate, local_kernel, n_local, local_background, spatial_image, float(spatial_background(x, y))
    )


def _gather_all(
    candidates: Sequence[Any], spatial_kernel: Any, spatial_background: Any, log: Any
) -> list[_CandidateInputs]:
    """:func:`_gather` of many candidates, the spatial models realised at all centres at once.

    A candidate whose inputs cannot be had is left out (logged at debug level).
    """
    local = []
    for candidate in candidates:
        try:
            local.append((candidate, *_gather_local(candidate)))
        except Exception as err:  # noqa: BLE001 - metrics are QA: never fail the fit for them
            log.debug("No substamp metrics for candidate %s: %s", candidate.getId(), err)
    try:
        xs = [c[0].getXCenter() for c in local]
        ys = [c[0].getYCenter() for c in local]
        images = _kernel_images_at(spatial_kernel, xs, ys)
        values = _function_values_at(spatial_background, xs, ys)
    except Exception:  # noqa: BLE001 - one candidate's failure must not cost the others; redo one by one
        inputs = []
        for candidate, *_ in local:
            try:
                inputs.append(_gather(candidate, spatial_kernel, spatial_background))
            except Exception as err:  # noqa: BLE001
                log.debug("No substamp metrics for candidate %s: %s", candidate.getId(), err)
        return inputs
    return [_CandidateInputs(*c, image, value) for c, image, value in zip(local, images, values)]


def _kernel_images_at(kernel: Any, xs: Sequence[float], ys: Sequence[float]) -> list[np.ndarray]:
    """``[kernel.computeImage(x, y) for x, y in zip(xs, ys)]``, value for value.

    For a spatially varying :class:`LinearCombinationKernel` of one of the two afw function families
    the spatial terms are evaluated for all positions in one call (elementwise, so the same values)
    and each image is then formed exactly as ``computeImage`` forms it.
    """
    from ..kernel.kernels import LinearCombinationKernel

    func = kernel.getSpatialFunction() if type(kernel) is LinearCombinationKernel else None
    if func is None or type(func) not in _term_families():
        return [kernel.computeImage(x, y) for x, y in zip(xs, ys)]
    terms = func.term_values(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))  # (n, n_terms)
    coefficients = kernel.getSpatialParameters().T  # K = Σ_k a_k B_k with a = terms @ params.T
    basis = kernel.basis_images
    return [np.tensordot(row @ coefficients, basis, axes=1) for row in terms]


def _function_values_at(function: Any, xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """``[float(function(x, y)) for x, y in zip(xs, ys)]``, value for value (batched for afw families)."""
    if type(function) not in _term_families():
        return [float(function(x, y)) for x, y in zip(xs, ys)]
    terms = function.term_values(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    params = function.getParameters()
    return [float(row @ params) for row in terms]


def _term_families() -> tuple[type, ...]:
    from ..kernel.functions import Chebyshev1Function2, PolynomialFunction2

    return (Chebyshev1Function2, PolynomialFunction2)


def _metrics_rows(inputs: Sequence[_CandidateInputs]) -> list[dict[str, float]]:
    """Candidate metrics of many candidates: stamps batched, KS p-values in one call."""
    from .candidate import CandidateSolution

    stamps = [(c.candidate.getTemplateMaskedImage(), c.candidate.getScienceMaskedImage()) for c in inputs]
    kernels = [
        [c.spatial_image] if c.local_background is None else [c.local_kernel, c.spatial_image] for c in inputs
    ]
    backgrounds = [
        [c.spatial_background] if c.local_background is None else [c.local_background, c.spatial_background]
        for c in inputs
    ]
    residuals = difference_residuals(stamps, kernels, backgrounds)
    z_all: list[np.ndarray] = []
    for c, z in zip(inputs, residuals):
        if c.local_background is None:
            z = [masked_image_residuals(c.candidate.getDifferenceImage(CandidateSolution.RECENT)), *z]
        z_all.extend(z)
    n_parameters = [p for c in inputs for p in (c.n_local, 0)]
    suffixes = ["LOCAL", "SPATIAL"] * len(inputs)
    residual_rows = residual_metrics_of(z_all, n_parameters, suffixes)
    rows = []
    for k, c in enumerate(inputs):
        out = residual_rows[2 * k]
        out.update(kernel_shape_metrics(c.local_kernel, suffix="LOCAL"))
        out.update(residual_rows[2 * k + 1])
        out.update(kernel_shape_metrics(c.spatial_image, suffix="SPATIAL"))
        if c.spatial_image.shape == c.local_kernel.shape:
            out["KCDiffimMseKernel_SPATIAL"] = float(np.mean((c.spatial_image - c.local_kernel) ** 2))
        rows.append(out)
    return rows


def candidate_metrics(candidate: Any, spatial_kernel: Any, spatial_background: Any) -> dict[str, float]:
    """LOCAL and SPATIAL residual metrics of one candidate, kernel shapes and kernel MSE.

    Parameters
    ----------
    candidate : KernelCandidate
        A candidate with a solved kernel (its most recent solution is used).
    spatial_kernel : Kernel
        The spatial kernel model, realised at the candidate's centre.
    spatial_background : callable
        The spatial background model ``f(x, y)``.

    Returns
    -------
    dict
        ``KCDiffim<Name>_<LOCAL|SPATIAL>`` (see :func:`~diffim.tasks.matching.metrics.residual_metrics`),
        ``KCKernel<CentX|CentY|StdX|StdY>_<LOCAL|SPATIAL>`` and ``KCDiffimMseKernel_SPATIAL``.
    """
    return _metrics_rows([_gather(candidate, spatial_kernel, spatial_background)])[0]


def _all_candidate_metrics(candidates: Sequence[Any], kernel: Any, background: Any, log: Any) -> list[dict[str, float]]:
    """:func:`candidate_metrics` of many candidates (in order), skipping those that fail."""
    inputs = _gather_all(candidates, kernel, background, log)
    try:
        rows = _metrics_rows(inputs)
    except Exception:  # noqa: BLE001 - one bad stamp must not cost the others their metrics
        rows = []
        kept = []
        for item in inputs:
            try:
                rows.append(_metrics_rows([item])[0])
                kept.append(item)
            except Exception as err:  # noqa: BLE001 - metrics are QA: never fail the fit for them
                log.debug("No substamp metrics for candidate %s: %s", item.candidate.getId(), err)
        inputs = kept
    for item, row in zip(inputs, rows):
        item.candidate.metrics = row
    return rows


# ------------------------------------------------------------------------------------------------
# The diagnostic
# ------------------------------------------------------------------------------------------------
def diagnose(task: Any, cell_set: Any, solution: Any, kernel: Any, background: Any) -> None:
    """Log the spatial fit's quality with advice and write the metadata keys (spec §7.4)."""
    from .candidate import CandidateStatus

    config = task.kConfig
    log = task.log
    cx, cy = cell_set.getBBox().getCenter()
    ksum = kernel.computeSum(cx, cy)
    log.info("Final spatial kernel sum %.3f", ksum)
    cond = float(solution.getConditionNumber(config.conditionNumberType))
    if cond < 0:
        log.warning("Condition number is negative (%.3e): the spatial fit is numerically unstable", cond)
    if cond > config.maxSpatialConditionNumber:
        log.warning(
            "Spatial solution exceeds max condition number (%.3e > %.3e); consider lowering spatialKernelOrder",
            cond, config.maxSpatialConditionNumber,
        )
    task.metadata["spatialConditionNum"] = cond
    task.metadata["spatialKernelSum"] = ksum

    n_kernel_terms = max(kernel.getNSpatialParameters(), 1) if kernel.isSpatiallyVarying() else 1
    bg_params = np.asarray(background.getParameters())
    n_bg_terms = 0 if (bg_params.size == 1 and bg_params[0] == 0.0) else bg_params.size
    candidates = list(cell_set.candidates(include_bad=True))
    n_good = sum(1 for c in candidates if c.getStatus() == CandidateStatus.GOOD)
    n_bad = sum(1 for c in candidates if c.getStatus() == CandidateStatus.BAD)
    n_total = len(candidates)
    task.metadata["nGoodCandidates"] = n_good
    task.metadata["nBadCandidates"] = n_bad
    log.info("Doing stats of kernel candidates used in the spatial fit.")
    if n_bad > 2 * n_good:
        log.warning("Many more candidates rejected than accepted; %d total, %d rejected, %d used", n_total, n_bad, n_good)
    else:
        log.info("%d candidates total, %d rejected, %d used", n_total, n_bad, n_good)
    _constraint_advice(log, "kernel", n_good, n_kernel_terms)
    if n_bg_terms > 0:
        _constraint_advice(log, "background", n_good, n_bg_terms)

    good = [c for c in candidates if c.getStatus() == CandidateStatus.GOOD]
    aggregate_metrics(_all_candidate_metrics(good, kernel, background, log), task.metadata)


def _constraint_advice(log: Any, what: str, n_good: int, n_terms: int) -> None:
    if n_good < n_terms:
        log.warning(
            "Spatial %s model underconstrained; %d candidates, %d terms; consider lowering the spatial order",
            what, n_good, n_terms,
        )
    elif n_good <= 2 * n_terms:
        log.warning(
            "Spatial %s model poorly constrained; %d candidates, %d terms; consider lowering the spatial order",
            what, n_good, n_terms,
        )
    else:
        log.info("Spatial %s model well constrained; %d candidates, %d terms", what, n_good, n_terms)
