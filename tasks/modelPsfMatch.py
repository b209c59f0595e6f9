"""Match an exposure's PSF model to a reference PSF model (LSST's ``lsst.ip.diffim.modelPsfMatch``).

:class:`ModelPsfMatchTask` fits the kernel that turns the exposure's PSF into the reference PSF,
using the two *models* (no stars): one kernel candidate per spatial cell, whose "template" is the
exposure's PSF image and whose "science" stamp is the reference PSF image at the cell centre. The
exposure is then convolved with the normalised kernel, so its stars take the reference PSF.

Debug name: ``diffim.tasks.modelPsfMatch`` (also answers to ``lsst.ip.diffim.modelPsfMatch`` in a
debug.py); flags ``display`` (gate), ``displaySpatialCells``, ``maskTransparency``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from diffim.framework.config import ConfigChoice, ConfigChoiceField, Field
from diffim.framework.connections import Input, Output
from diffim.framework.debug import debug_info
from diffim.framework.log import getTraceLogger
from diffim.framework.struct import Struct
from diffim.framework.task import AlgorithmError
from diffim.framework.timing import timeMethod
from pydantic import field_validator

from .hooks import debug_display
from .image import Box2I, Exposure, MaskedImage
from .kernel.bases import makeKernelBasisList
from .kernel.convolve import convolve
from .matching.candidate import KernelCandidate
from .matching.cells import SpatialCellSet
from .psf import Psf, crop_or_pad
from .psfMatch import PsfMatchConfigAL, PsfMatchTask, PsfMatchTaskConfig

__all__ = [
    "ModelPsfMatchConfig",
    "ModelPsfMatchTask",
    "PsfComputeShapeError",
    "nextOddInteger",
]

#: FWHM of a Gaussian in units of its sigma, ``2 sqrt(2 ln 2)``.
_SIGMA_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Jittered retries of a failed PSF shape evaluation: how many, how far (pixels), which seed.
_SHAPE_RETRIES = 4
_SHAPE_JITTER = 2.0
_SHAPE_SEED = 40


def nextOddInteger(x: float) -> int:  # noqa: N802 - LSST name
    """The smallest odd integer ``>= x`` (``ceil(x)``, plus 1 if that is even).

    Parameters
    ----------
    x : float
        Any finite number.

    Returns
    -------
    int
        E.g. ``nextOddInteger(12.6) == 13``, ``nextOddInteger(13) == 13``, ``nextOddInteger(14) == 15``.
    """
    n = math.ceil(x)
    return n + 1 if n % 2 == 0 else n


class PsfComputeShapeError(AlgorithmError):
    """A PSF model could not be evaluated (image or shape) at the positions tried.

    Parameters
    ----------
    message : str
        What failed and what to do.
    **metadata
        ``x``, ``y`` of the failing position (kept in :attr:`metadata`).
    """


class ModelPsfMatchConfig(PsfMatchTaskConfig):
    """Configuration of :class:`ModelPsfMatchTask` (LSST's ``ModelPsfMatchConfig``).

    Only the Alard–Lupton basis is offered. The defaults switch off all candidate clipping (the
    candidates are noiseless PSF models), weight every pixel equally (the variance is meaningless)
    and keep the configured kernel size (``scaleByFwhm`` False).
    """

    kernel: ConfigChoice = ConfigChoiceField(
        {"AL": PsfMatchConfigAL},
        default="AL",
        description="Kernel fit configuration: 'AL' (Alard-Lupton) only.",
    )
    doAutoPadPsf: bool = Field(
        True,
        description=(
            "Zero-pad the PSF images to at least kernelSize * autoPadPsfTo pixels (next odd integer) "
            "so that the kernel fit has enough pixels; padPsfBy is ignored when True."
        ),
    )
    autoPadPsfTo: float = Field(
        1.4,
        ge=1.0,
        le=2.0,
        description="With doAutoPadPsf, the smallest PSF image side as a multiple of kernelSize (1..2).",
    )
    padPsfBy: int = Field(
        0,
        ge=0,
        description="Without doAutoPadPsf, pixels (even) added to the PSF image side by zero-padding.",
    )

    @field_validator("padPsfBy")
    @classmethod
    def _even_pad(cls, value: int) -> int:
        if value % 2 != 0:
            msg = f"padPsfBy must be even so the padded PSF keeps a central pixel, got {value!r}; use {value + 1}"
            raise ValueError(msg)
        return value

    def setDefaults(self) -> None:
        super().setDefaults()
        kernel = self.kernel.active
        # the candidates are exact PSF models: nothing to clip
        kernel.singleKernelClipping = False
        kernel.kernelSumClipping = False
        kernel.spatialKernelClipping = False
        kernel.checkConditionNumber = False
        # a model has no noise: weight all pixels alike
        kernel.constantVarianceWeighting = True
        # keep the configured kernel size
        kernel.scaleByFwhm = False


class ModelPsfMatchTask(PsfMatchTask):
    """Match an exposure's PSF model to a reference PSF model (LSST's ``ModelPsfMatchTask``).

    The matching kernel ``K`` is fitted on the PSF models only: the spatial cells of the exposure
    box (grown by one cell on every side, so the spatial model reaches the edges) each hold one
    candidate at their centre, pairing the exposure's PSF image (convolved) with the reference PSF
    image (matched to), both zero-padded to a common odd size ``psfSize``. The constant coefficient
    of ``K`` is then set to ``kernelSum``, and the exposure is convolved with ``K`` normalised to
    unit sum at each pixel, so the result has the reference PSF and the input's flux scale.

    Notes
    -----
    Use it to bring an image (or several, e.g. before coadding) to a common, wider PSF. The kernel
    can only widen the PSF: a reference narrower than the exposure's PSF needs a deconvolution that
    the fit approximates badly.

    Each candidate constrains the kernel only through the ``(psfSize - kernelSize + 1)²`` pixels
    where the kernel fits inside its stamp: 5x5 for LSST's ``kernelSize`` 9 and ``autoPadPsfTo``
    1.4. One kernel for the whole image (``spatialKernelOrder`` 0) copes, but a spatially varying
    fit can then drift in the kernel directions those pixels do not see (25-pixel PSFs, kernelSize
    17, order 1: matched stars up to 22 % off the reference FWHM, 2 % with ``autoPadPsfTo`` 2).
    Give a spatially varying fit ``autoPadPsfTo`` 2, or PSF models about twice the kernel size.

    Unlike LSST (whose ``_diagnostic`` is a no-op here), the diagnostics of
    :meth:`PsfMatchTask._diagnostic` are kept: ``spatialConditionNum``, ``nGoodCandidates``,
    ``nBadCandidates``, the residual metrics, and ``spatialKernelSum``, which is the *fitted* kernel
    sum (the reference-to-exposure PSF flux ratio, ~1 for normalised models) before the constant
    term is set to ``kernelSum``.

    **Metadata**: as :class:`~diffim.tasks.psfMatch.PsfMatchTask`, plus ``ALBasis*`` /
    ``ALKernelSize`` from the basis, and ``run`` timing; every key is declared in
    :mod:`diffim.tasks.metadata_keys`.

    **Debug flags** (module ``diffim.tasks.modelPsfMatch``, LSST ``lsst.ip.diffim.modelPsfMatch``):
    ``display`` (gate) then stage ``"modelPsfMatch.cells"`` with ``maskedImage`` (the exposure's)
    and ``cellSet``, drawn by display plugins that honour ``displaySpatialCells`` and
    ``maskTransparency``.
    """

    ConfigClass = ModelPsfMatchConfig
    _DefaultName = "modelPsfMatch"

    # what `diffim run -t ModelPsfMatchTask` reads and writes
    inputs: ClassVar[dict[str, Input]] = {
        "exposure": Input("diffim.tasks.image.Exposure", "Exposure with a PSF model, to be convolved."),
        "referencePsfModel": Input("diffim.tasks.psf.Psf", "PSF model to match (e.g. a PSF stamp FITS file)."),
    }
    outputs: ClassVar[dict[str, Output]] = {
        "psfMatchedExposure": Output("diffim.tasks.image.Exposure", "The exposure convolved to the reference PSF."),
        "psfMatchingKernel": Output(
            "diffim.tasks.kernel.LinearCombinationKernel", "Basis images and spatial coefficients of the kernel."
        ),
    }

    @timeMethod
    def run(self, exposure: Exposure, referencePsfModel: Psf, kernelSum: float = 1.0) -> Struct:  # noqa: N803
        """PSF-match an exposure to a reference PSF model.

        Parameters
        ----------
        exposure : Exposure
            Exposure to convolve; must have a PSF (``exposure.psf``).
        referencePsfModel : Psf
            PSF to match to (any :class:`~diffim.tasks.psf.Psf`; it is resized to the padded size).
        kernelSum : float, optional
            Sum given to the matching kernel (its constant coefficient). The exposure is convolved
            with the kernel normalised to unit sum, so this does not change the matched pixels.

        Returns
        -------
        Struct
            ``psfMatchedExposure`` (the convolved exposure: same box, WCS, band, PhotoCalib and
            metadata, the possibly resized reference PSF as its PSF; edge pixels NaN and
            ``NO_DATA``), ``psfMatchingKernel`` (LinearCombinationKernel), ``kernelCellSet``
            (SpatialCellSet of the candidates) and ``metadata`` (the task's).

        Raises
        ------
        RuntimeError
            If the exposure has no PSF.
        ValueError
            If ``padPsfBy`` is odd or the kernel is too large for the (padded) PSF images.
        PsfComputeShapeError
            If a PSF model cannot be evaluated.
        NoKernelCandidatesError
            If the kernel fit fails.
        """
        if exposure.getPsf() is None:
            msg = (
                "exposure has no PSF model (exposure.psf is None); attach one (exposure.setPsf(psf)) "
                "or estimate it with diffim.tasks.psf.estimate_psf(exposure)"
            )
            raise RuntimeError(msg)
        self.log.info("compute Psf-matching kernel")
        built = self._buildCellSet(exposure, referencePsfModel)
        kernel_cell_set = built.kernelCellSet
        reference = built.referencePsfModel
        science_psf = exposure.getPsf()
        fwhm_science = self._psf_fwhm(science_psf, "exposure")
        fwhm_model = self._psf_fwhm(reference, "reference")
        basis = makeKernelBasisList(self.kConfig, fwhm_science, fwhm_model, metadata=self.metadata)
        _, kernel, _ = self._solve(kernel_cell_set, basis)
        # The basis is renormalised (spec §3.4): only the first basis has a non-zero sum, so its
        # constant coefficient alone sets the kernel sum everywhere.
        if kernel.isSpatiallyVarying():
            params = kernel.getSpatialParameters()
            params[0][0] = kernelSum
            kernel.setSpatialParameters(params)
        else:
            coefficients = kernel.getKernelParameters()
            coefficients[0] = kernelSum
            kernel.setKernelParameters(coefficients)

        self.log.info("Psf-match science exposure to reference")
        # the kernel's magnitude is meaningless between two unit-sum models: normalise it away
        matched = convolve(exposure.getMaskedImage(), kernel, doNormalize=True)
        matched_exposure = Exposure(
            matched,
            wcs=exposure.getWcs(),
            psf=reference,
            photoCalib=exposure.getPhotoCalib(),
            band=exposure.getFilter(),
            metadata=exposure.metadata.copy(),
        )
        self.log.info("done")
        return Struct(
            psfMatchedExposure=matched_exposure,
            psfMatchingKernel=kernel,
            kernelCellSet=kernel_cell_set,
            metadata=self.metadata,
        )

    # -- candidates -------------------------------------------------------------------------
    def _buildCellSet(self, exposure: Exposure, referencePsfModel: Psf) -> Struct:  # noqa: N802, N803 - LSST names
        """One PSF-model candidate at the centre of each spatial cell (spec §9.3 step 2).

        Returns
        -------
        Struct
            ``kernelCellSet`` and ``referencePsfModel`` (resized to the padded PSF size if needed).
        """
        config = self.kConfig
        size_x, size_y = config.sizeCellX, config.sizeCellY
        # grown by a cell on every side so the spatial model is constrained up to the edges
        box = exposure.getBBox()
        region = Box2I((box.minX - size_x, box.minY - size_y), (box.width + 2 * size_x, box.height + 2 * size_y))
        n_cell_x = region.width // size_x
        n_cell_y = region.height // size_y
        if n_cell_x == 0 or n_cell_y == 0:
            msg = (
                f"exposure box {exposure.getBBox()} is too small for cells of {size_x}x{size_y} pixels; "
                "lower sizeCellX/sizeCellY"
            )
            raise ValueError(msg)
        centres = [
            (size_x * col + size_x // 2 + region.minX, size_y * row + size_y // 2 + region.minY)
            for row in range(n_cell_y)
            for col in range(n_cell_x)
        ]
        science_psf = exposure.getPsf()
        # the largest PSF image over the cells: every stamp gets this (padded) size
        science_images = {}
        for x, y in centres:
            science_images[(x, y)] = self._psf_image(science_psf, x, y, "exposure")
        psf_size = max(max(image.shape) for image in science_images.values())

        if self.config.doAutoPadPsf:
            min_psf_size = nextOddInteger(config.kernelSize * self.config.autoPadPsfTo)
            padding = max(0, min_psf_size - psf_size)
        else:
            padding = self.config.padPsfBy
            if padding % 2 != 0:
                msg = f"padPsfBy ({padding} pixels) must be even so the padded PSF keeps a central pixel"
                raise ValueError(msg)
        if padding > 0:
            self.log.debug("Padding Science PSF from (%d, %d) to (%d, %d) pixels",
                           psf_size, psf_size, psf_size + padding, psf_size + padding)
            psf_size += padding

        # the kernel must leave at least one pixel of the stamp to fit (odd sizes)
        max_kernel_size = psf_size - 1
        if max_kernel_size % 2 == 0:
            max_kernel_size -= 1
        if config.kernelSize > max_kernel_size:
            needed = padding + config.kernelSize - max_kernel_size  # even: both sizes are odd
            msg = (
                f"kernelSize ({config.kernelSize}) is too big to match PSF images of {psf_size} pixels; "
                f"set kernelSize <= {max_kernel_size}, or doAutoPadPsf=True, or padPsfBy >= {needed}"
            )
            raise ValueError(msg)

        reference = referencePsfModel
        ref_width, ref_height = reference.getDimensions()
        if (ref_width, ref_height) != (psf_size, psf_size):
            try:
                reference = referencePsfModel.resized(psf_size, psf_size)
                self.log.info("Adjusted dimensions of reference PSF model from %s to %s",
                              (ref_width, ref_height), (psf_size, psf_size))
            except Exception as err:  # noqa: BLE001 - any model may refuse; LSST pads/clips then
                self.log.warning(
                    "Zero padding or clipping the reference PSF model of type %s and dimensions %s to "
                    "the science PSF dimensions %s because: %s",
                    type(referencePsfModel).__name__, (ref_width, ref_height), (psf_size, psf_size), err,
                )

        cell_set = SpatialCellSet(region, size_x, size_y)
        trace4 = getTraceLogger(self.log, 4)
        for x, y in centres:
            trace4.debug("Creating Psf candidate at %.1f %.1f", x, y)
            stamp_box = Box2I((x - psf_size // 2, y - psf_size // 2), (psf_size, psf_size))
            reference_mi = self._stamp(self._psf_image(reference, x, y, "reference"), psf_size, stamp_box)
            science_mi = self._stamp(science_images[(x, y)], psf_size, stamp_box)
            # the exposure's PSF is convolved ("template") to the reference PSF ("science")
            cell_set.insertCandidate(KernelCandidate(x, y, science_mi, reference_mi, config))

        debug = debug_info(__name__)
        if debug.display:
            debug_display("modelPsfMatch.cells", __name__, debug, self,
                          maskedImage=exposure.getMaskedImage(), cellSet=cell_set)
        return Struct(kernelCellSet=cell_set, referencePsfModel=reference)

    @staticmethod
    def _stamp(image: np.ndarray, size: int, bbox: Box2I) -> MaskedImage:
        """A ``size``² MaskedImage holding ``image`` centred (zero-padded or clipped), mask 0, variance 1."""
        pixels = crop_or_pad(np.asarray(image, dtype=np.float64), size, size)
        return MaskedImage(
            pixels,
            mask=np.zeros(pixels.shape, dtype=np.int32),
            variance=np.ones(pixels.shape, dtype=np.float64),
            xy0=(bbox.minX, bbox.minY),
        )

    @staticmethod
    def _psf_image(psf: Psf, x: float, y: float, what: str) -> np.ndarray:
        """The PSF's kernel image at ``(x, y)``, or :class:`PsfComputeShapeError`."""
        try:
            image = np.asarray(psf.computeImage(x, y), dtype=np.float64)
        except (ValueError, ArithmeticError) as err:
            msg = (
                f"cannot evaluate the {what} PSF ({type(psf).__name__}) at ({x}, {y}): {err}; "
                "give a PSF model valid over the whole exposure (grown by one cell)"
            )
            raise PsfComputeShapeError(msg, x=float(x), y=float(y)) from err
        return image

    def _psf_fwhm(self, psf: Psf, what: str) -> float:
        """FWHM (pixels) = 2.3548 x determinant radius of the PSF shape at its average position.

        If the shape cannot be measured there, up to four deterministic positions jittered by up to
        2 pixels are tried (spec §9.3 step 3).
        """
        x0, y0 = (float(v) for v in psf.getAveragePosition())
        jitter = np.random.default_rng(_SHAPE_SEED).uniform(-_SHAPE_JITTER, _SHAPE_JITTER, (_SHAPE_RETRIES, 2))
        positions = [(x0, y0)] + [(x0 + dx, y0 + dy) for dx, dy in jitter]
        failure = "no finite positive size"
        for x, y in positions:
            try:
                radius = float(psf.computeShape(x, y).determinantRadius)
            except (ValueError, ArithmeticError) as err:
                failure = str(err)
                continue
            if math.isfinite(radius) and radius > 0:
                return _SIGMA_TO_FWHM * radius
        msg = (
            f"cannot measure the shape of the {what} PSF ({type(psf).__name__}) near ({x0}, {y0}) "
            f"({failure}); give a PSF model with a measurable, centred image"
        )
        raise PsfComputeShapeError(msg, x=x0, y=y0)
