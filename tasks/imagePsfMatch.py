"""Match the PSF of one image to another and subtract them (LSST's ``lsst.ip.diffim.imagePsfMatch``).

:class:`ImagePsfMatchTask` is the user-facing image-differencing task: LSST's legacy
``ImagePsfMatchTask`` API (``matchExposures``, ``matchMaskedImages``, ``subtractExposures``,
``subtractMaskedImages``) with the behaviour of LSST's current ``AlardLuptonSubtractTask``:
convolution direction by PSF widths (``mode``), kernel-source selection as a subtask, a fitted
differential background, DMTN-021 decorrelation and difference-image QA.

This module holds the task and the order of its steps; the steps' code lives in small modules
(names defined here before are re-exported): the inputs' PSFs
(``matching.psf_info``), the convolution direction (``matching.mode``), the basis's wing Gaussian
(``matching.wing_gauss``), the kernel stamps (``matching.stamps``), the difference image
(``difference_image``, ``difference_background``) and its QA (``difference_qa``).

Debug name: ``diffim.tasks.imagePsfMatch`` (also ``lsst.ip.diffim.imagePsfMatch`` in a debug.py).
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, ClassVar

from diffim.framework.config import Allowed, ConfigurableField, Field
from diffim.framework.connections import Input, Output
from diffim.framework.debug import debug_info
from diffim.framework.struct import Struct
from diffim.framework.timing import timeMethod

from .difference_background import REFIT_BAD_PLANES as _REFIT_BAD_PLANES  # noqa: F401 - re-exported for tests
from .difference_background import evaluate as _evaluate  # noqa: F401 - re-exported for tests
from .difference_background import refit_background as _refit_background  # noqa: F401 - re-exported for tests
from .difference_background import subtract_function as _subtract_function  # noqa: F401 - re-exported for tests
from .difference_image import science_units_difference
from .difference_qa import count_false_positives, detect_and_associate
from .decorrelate import DecorrelateALKernelTask
from .image import Exposure, MaskedImage
from .matching.mode import DeconvolutionError, convolve_template
from .matching.psf_info import PsfInfo, known_fwhm, measure_psf, psf_info
from .matching.stamps import build_cell_set, contamination, stamp_half_size
from .matching.wing_gauss import basis_and_sources, profile_beta
from .psfMatch import NoKernelCandidatesError, PsfMatchTask, PsfMatchTaskConfig
from .selectKernelCandidates import SelectKernelCandidatesTask
from .threads import parallel_threads, with_blas_threads

__all__ = [
    "DeconvolutionError",
    "ImagePsfMatchConfig",
    "ImagePsfMatchTask",
    "NoKernelCandidatesError",
    "PsfInfo",
]

#: Allowed values of ``mode``, with their meaning.
MODES = {
    "convolveTemplate": "always convolve the template to the science PSF (difference has the science PSF)",
    "convolveScience": "always convolve the science image to the template PSF (difference has the template PSF)",
    "auto": (
        "convolve the template unless its PSF is wider than the science PSF along both x and y "
        "(per-axis widths sqrt(Ixx), sqrt(Iyy) of the PSF second moments), as LSST's _shapeTest"
    ),
}

#: Allowed values of ``convolutionVariance``, with their meaning.
CONVOLUTION_VARIANCES = {
    "exact": "sum of K(x, y)^2 var per pixel with the spatially varying kernel (15 correlations for order 2)",
    "center": (
        "K^2 realised at the image centre (one correlation; off by the relative change of sum(K^2) over "
        "the image, typically a few per cent)"
    ),
    "auto": (
        "'center' when doDecorrelation replaces the difference's variance plane by its own per-pixel "
        "estimate (the matched image's variance then only reaches matchedExposure), else 'exact'"
    ),
}


class ImagePsfMatchConfig(PsfMatchTaskConfig):
    """Configuration of :class:`ImagePsfMatchTask`.

    ``setDefaults`` (on both the AL and DF kernel choices) fits a differential background
    (``fitForBackground`` True, ``spatialBgOrder`` 2, as LSST's AlardLuptonSubtract) and a
    second-order spatial kernel (``spatialKernelOrder`` 2, as HOTPANTS and LSST's PsfMatchConfig;
    AlardLuptonSubtract uses 1). Skies are rarely flat and PSFs vary across a detector: on the
    2048² benchmark pair (science FWHM varying by 20 %, polynomial sky) order 2 leaves bright-star
    residuals of 0.96 sigma against 1.04 with order 1, and without a background fit the
    difference keeps the sky difference.
    """

    selectKernelCandidates: Any = ConfigurableField(
        target=SelectKernelCandidatesTask,
        description="Subtask choosing the kernel sources (detection, quality cuts, clean stamps).",
    )
    mode: Annotated[str, Allowed(MODES)] = Field(
        "auto", description="Which image is convolved: 'convolveTemplate', 'convolveScience' or 'auto'."
    )
    maxDeconvolutionFwhmRatio: float = Field(
        1.3, ge=1.0,
        description=(
            "Largest ratio FWHM(image to convolve) / FWHM(other image) accepted. Above 1 the kernel must "
            "sharpen (deconvolve), which the AL deconvolution basis does well for a deep template up to "
            "~1.3 and badly beyond (bright-star residuals ~3 sigma at 1.5, ~8 sigma at 2); above this "
            "ratio the task raises DeconvolutionError ('auto' convolves the other image instead)."
        ),
    )
    fitRegionFwhmScaling: float = Field(
        0.0, ge=0.0,
        description=(
            "0 (default): LSST's kernel stamps of side 2·kernelSize+1, fitted on their central kernelSize+2 "
            "pixels. Otherwise the fitted region is 2·ceil(scaling·FWHM)+1 pixels (FWHM of the reference PSF), "
            "at least kernelSizeMin+2 and at most kernelSize+2, and stamps have side kernelSize + region - 1: "
            "smaller stamps, so more clean ones on small or crowded images, at some cost in kernel-sum accuracy "
            "(a small region constrains the kernel wings and the background less; e.g. 3 gives -0.3 % instead "
            "of -0.1 % on the benchmark pairs)."
        ),
    )
    wingGaussMinSources: int = Field(
        50, ge=0,
        description=(
            "The default Alard-Lupton basis is LSST's three Gaussians plus a degree-0 'wing' Gaussian (the next "
            "rung of the width ladder, with a kernel ~1.5x larger) that carries the PSF wings three Gaussians "
            "truncate (2048² benchmark pairs: kernel sum -0.85 % / -1.46 % without it, -0.11 % / -0.34 % with "
            "it, Moffat beta 3 / 2.5). Its amplitude trades against each stamp's background and absorbs "
            "contaminants, so it needs many stamps: with fewer kernel sources than this, a trailing degree-0 "
            "Gaussian is left out of the basis (metadata ALWingGauss; on 512² pairs of 20-30 sources it made "
            "kernel sums 1-2 % worse and bright-star residuals 2x larger). It is left out too when the science "
            "image is convolved (mode convolveScience, or auto choosing it): there it made bright-star residuals "
            "worse (1.03 -> 1.10 sigma on the benchmark's broad-template pair). 0 keeps it whenever the "
            "template is convolved."
        ),
    )
    wingGaussMaxBeta: float = Field(
        8.0, gt=0.0,
        description=(
            "The wing Gaussian (see wingGaussMinSources) is used only when the PSF of the image matched to has "
            "wings: a Moffat index below this, fitted to its estimated star stack or its PSF model (a Gaussian "
            "profile fits beta >> 10). On the Gaussian-PSF benchmark pair the wing term only added noise (kernel "
            "sum -0.21 % with it, -0.02 % without). PSFs known by their FWHM alone keep it."
        ),
    )
    maxKernelSources: int = Field(1000, ge=1, description="Most kernel sources kept (the best by S/N).")
    minKernelSources: int = Field(3, ge=1, description="Fewer usable kernel sources than this is an error.")
    doSubtractBackground: bool = Field(
        True,
        description=(
            "Subtract the fitted differential background from the difference image (only when the "
            "kernel fit has fitForBackground); if False the difference keeps the sky difference."
        ),
    )
    doRefitBackground: bool = Field(
        True,
        description=(
            "With a subtracted background: after the kernel fit, refit the differential background (same "
            "spatial model and order) to robust medians of the whole difference image in bins of "
            "backgroundBinSize pixels. The kernel fit sees the sky only in the candidates' stamps; the "
            "whole image constrains it far better."
        ),
    )
    backgroundBinSize: int = Field(64, ge=8, description="Bin side (pixels) of the background refit.")
    doDecorrelation: bool = Field(
        True,
        description="Whiten the difference image's noise and fix its variance plane (DMTN-021 afterburner).",
    )
    decorrelate: Any = ConfigurableField(
        target=DecorrelateALKernelTask,
        description="Subtask decorrelating the difference image (used when doDecorrelation).",
    )
    psfMeasurementBoxSize: int = Field(
        1024, ge=0,
        description=(
            "Images without a PSF have it measured on the stars of their central box of this side (pixels) "
            "when they exceed 1.5 times it on both sides (the whole image if the box has too few stars); "
            "0 always uses the whole image."
        ),
    )
    blasThreads: int = Field(
        1, ge=0,
        description=(
            "BLAS threads while the task runs (0: leave the library's setting). The kernel fit's many small "
            "matrix products run faster on one thread; the FFTs use convolutionWorkers threads."
        ),
    )
    convolutionWorkers: int = Field(
        2, ge=1,
        description=(
            "Threads for the whole-image FFT convolutions (matching and decorrelation), capped by the "
            "process's share of the cores (in a worker of 'diffim run -j N': the cores divided by N)."
        ),
    )
    convolutionVariance: Annotated[str, Allowed(CONVOLUTION_VARIANCES)] = Field(
        "auto", description="How the matched image's variance plane is propagated: 'exact', 'center' or 'auto'."
    )
    registrationTolerancePix: float = Field(
        0.05, gt=0.0, description="Largest WCS disagreement (pixels) between template and science accepted."
    )
    doQa: bool = Field(
        True, description="Detect sources on the difference and count the false-positive metadata keys."
    )
    qaDetectionThreshold: float = Field(5.0, gt=0.0, description="QA detection threshold on the difference (sigma).")
    qaMatchRadiusPix: float = Field(
        2.0, gt=0.0, description="Radius (pixels) to associate a difference source with a template or science source."
    )
    qaIgnoreFlagged: bool = Field(
        True,
        description=(
            "Leave out of the NFalsePositives* counts the difference sources flagged saturated, masked or "
            "at the edge (residuals of saturated stars, bleed trails, NaN columns: expected, not false "
            "positives). The diaSources table keeps them. False counts every detection, as LSST did."
        ),
    )

    def setDefaults(self) -> None:
        super().setDefaults()
        for name in ("AL", "DF"):
            kernel = self.kernel[name]
            kernel.fitForBackground = True
            kernel.spatialKernelOrder = 2
            kernel.spatialBgOrder = 2
        # LSST's three Gaussians plus a degree-0 wing Gaussian (see wingGaussMinSources)
        self.kernel["AL"].alardNGauss = 4
        self.kernel["AL"].alardDegGauss = [4, 2, 2, 0]
        self.kernel["AL"].alardSigGauss = [0.7, 1.5, 3.0, 6.0]


#: Modules a first subtraction imports lazily (see ImagePsfMatchTask.warm_up).
_WARM_MODULES = (
    "scipy.interpolate", "scipy.optimize", "scipy.sparse.csgraph", "scipy.spatial",
    "astropy.table", "diffim.tasks.detection", "diffim.tasks.psf.estimate", "diffim.tasks.registration",
    "diffim.tasks.matching.diagnostics", "diffim.tasks.kernel.convolve",
)


class ImagePsfMatchTask(PsfMatchTask):
    """PSF-match a template to a science image (or the reverse) and subtract them.

    The kernel ``K`` and a differential background ``bg`` are fitted on stamps around kernel
    sources so that ``reference ≈ K ⋆ convolved + bg``, where ``convolved`` is the template
    (``mode`` "convolveTemplate") or the science image ("convolveScience"); "auto" chooses per
    LSST's rule: convolve the template unless its PSF is wider than the science PSF along both
    x and y.

    Notes
    -----
    **Difference image**: always in the science image's photometric units (same zero point and
    PhotoCalib):

    * convolveTemplate: ``D = S − (K ⋆ T) − bg``; PSF = science PSF.
    * convolveScience: ``D = ((K ⋆ S) + bg − T) / k``, ``k`` the kernel sum at the centre of the
      science box (``K`` maps science to template fluxes, so ``1/k`` is the science/template flux
      ratio); PSF = template PSF. This is LSST's legacy ``subtractExposures`` convention.

    ``bg`` is subtracted only when the kernel fit has ``fitForBackground`` and
    ``doSubtractBackground`` is set; with ``doRefitBackground`` it is the kernel fit's model
    corrected by a fit to the whole difference image. Pixels the kernel cannot reach (within
    half a kernel of the edge, and around NaN pixels) are NaN with ``NO_DATA`` set and infinite
    variance. With ``doDecorrelation`` the difference is then whitened (DMTN-021): white noise of
    variance ``σ²_S + r²σ²_T`` (``r`` the flux ratio) and a matching variance plane.

    Convolving the noisier image biases the kernel (its noise enters the fit's design matrix), so
    prefer the direction that convolves the deeper image when the PSFs allow it; "auto" follows
    LSST and looks at the PSF widths only.

    **Metadata** (every key is declared in :mod:`diffim.tasks.metadata_keys`):

    ``mode``, ``convolvedExposure``
        The direction used: "convolveTemplate"/"convolveScience", and LSST's
        "Template"/"Science".
    ``templatePsfFwhm``, ``sciencePsfFwhm``
        PSF FWHMs (pixels) used to scale the basis; ``*PsfFwhmSource`` says where they came from.
    ``nKernelSources``
        Kernel sources given to the fit.
    ``photometricRatio``
        Science/template flux ratio implied by the kernel sum at the image centre.
    ``differenceUnits``
        "science": the difference is in science-image units.
    ``NFalsePositives<Total|RefAssociated|SrcAssociated|Unassociated>``
        QA (``doQa``): sources at ``qaDetectionThreshold`` sigma in the difference (both signs; with
        ``qaIgnoreFlagged`` those touching saturated, masked or edge pixels are not counted); of
        those within ``qaMatchRadiusPix`` of a template source (``refMatchId`` > 0), of a science
        source (``srcMatchId`` > 0), and of neither. The ``diaSources`` table has both id columns.
    ``<stage>Duration``
        Wall seconds of each stage of the last call: ``registration``, ``detection`` (background
        and sources of both images), ``psfEstimation``, ``selection``, ``fit`` (kernel candidates
        and the spatial solution), ``convolve``, ``difference``, ``decorrelate``, ``qa``
        (``benchmarks/subtraction_speed.py`` prints them).

    Plus the :class:`~diffim.tasks.psfMatch.PsfMatchTask` keys (``spatialKernelSum``,
    ``spatialConditionNum``, ``ALBasis*``, ``KCDiffim*``...).

    **Debug flags** (module ``diffim.tasks.imagePsfMatch``, LSST ``lsst.ip.diffim.imagePsfMatch``):
    with ``display`` set, the ``diffim_debug_display`` hook is called at stages
    ``"imagePsfMatch.template"`` (``image``, title "Image to convolve"; LSST flag
    ``displayTemplate``), ``"imagePsfMatch.science"`` ("Image to not convolve"; ``displaySciIm``),
    ``"imagePsfMatch.cells"`` (``maskedImage``, ``cellSet``; ``displaySpatialCells``) and
    ``"imagePsfMatch.difference"`` (``displayDiffIm``: ``template``, ``matchedTemplate`` or
    ``matchedScience``, ``science``, ``difference`` from subtractExposures; ``difference`` and
    ``title`` "Subtracted masked image" from subtractMaskedImages).
    """

    ConfigClass = ImagePsfMatchConfig
    _DefaultName = "imagePsfMatch"

    # what `diffim run -t ImagePsfMatchTask` reads and writes
    inputs: ClassVar[dict[str, Input]] = {
        "template": Input("diffim.tasks.image.Exposure", "Template (reference) exposure on the science pixel grid."),
        "science": Input("diffim.tasks.image.Exposure", "Science exposure."),
    }
    outputs: ClassVar[dict[str, Output]] = {
        "subtractedExposure": Output("diffim.tasks.image.Exposure", "Difference image, in science units."),
        "matchedExposure": Output("diffim.tasks.image.Exposure", "The convolved (PSF-matched) image."),
        "psfMatchingKernel": Output(
            "diffim.tasks.kernel.LinearCombinationKernel", "Basis images and spatial coefficients of the kernel."
        ),
        "backgroundModel": Output(
            "diffim.tasks.kernel.SpatialFunction", "Differential background model.", optional=True
        ),
        "diaSources": Output("astropy.table.Table", "Sources detected on the difference (QA).", optional=True),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.makeSubtask("selectKernelCandidates")
        self.makeSubtask("decorrelate")

    @classmethod
    def warm_up(cls) -> None:
        """Import the modules a first subtraction loads lazily and load the kernel-basis and
        visitor plugins (0.8 s of a cold 2048² run), for the launcher's worker processes."""
        import importlib

        from .registries import candidate_visitors, kernel_bases

        for module in _WARM_MODULES:
            importlib.import_module(module)
        list(kernel_bases)
        list(candidate_visitors)

    # ------------------------------------------------------------------ public API (LSST names)
    @timeMethod
    def run(self, template: Exposure, science: Exposure) -> Struct:
        """Match and subtract: ``subtractExposures(template, science)`` (the launcher's entry point)."""
        return self.subtractExposures(template, science)

    @with_blas_threads
    def matchExposures(  # noqa: N802 - LSST name
        self,
        templateExposure: Exposure,  # noqa: N803 - LSST names
        scienceExposure: Exposure,  # noqa: N803
        templateFwhmPix: float | None = None,  # noqa: N803
        scienceFwhmPix: float | None = None,  # noqa: N803
        candidateList: Any = None,  # noqa: N803
        convolveTemplate: bool | None = None,  # noqa: N803
    ) -> Struct:
        """PSF-match two registered exposures.

        Parameters
        ----------
        templateExposure, scienceExposure : Exposure
            The template and the science exposure, on the same pixel grid (checked: same box
            and WCSs agreeing to ``registrationTolerancePix``). A template *larger* than the
            science exposure is cut to the science box.
        templateFwhmPix, scienceFwhmPix : float, optional
            PSF FWHMs in pixels; default from each exposure's PSF, else measured on the image.
        candidateList : astropy.table.Table, optional
            Kernel sources (``x``, ``y`` parent pixels); default: selected by ``selectKernelCandidates``.
        convolveTemplate : bool, optional
            Force the direction; default from ``config.mode``.

        Returns
        -------
        Struct
            ``matchedImage`` (MaskedImage: the convolved image ``K ⋆ I``, not normalized, NaN
            and ``NO_DATA`` where the kernel is off the image), ``matchedExposure`` (it as an
            Exposure: science WCS, the PSF and PhotoCalib of the image matched to),
            ``psfMatchingKernel``, ``backgroundModel`` (the fit's model: ``reference ≈ K ⋆ convolved
            + backgroundModel``), ``kernelCellSet``, ``warpedExposure`` (the template as used: cut
            to the science box, never warped), ``convolveTemplate`` (bool), ``kernelSum`` (of ``K``
            at the centre of the science box), ``kernelSources`` (Table of the sources given to the
            fit), ``referenceSources`` and ``convolvedSources`` (detection catalogs of the two
            images, None when not made) and ``psfInfo`` (``template`` and ``science``
            :class:`PsfInfo`).

        Raises
        ------
        RegistrationError
            Images not on one pixel grid, or a template that does not cover the science image.
        NoKernelCandidatesError
            No usable kernel candidates (the message says what to relax).
        DeconvolutionError
            The convolved image's PSF is too much wider than the other's.
        """
        with self.timer("registration"):
            template = self._registered_template(templateExposure, scienceExposure)
        prepared = self._prepare(template, scienceExposure, templateFwhmPix, scienceFwhmPix, convolveTemplate,
                                 candidateList)
        conv, ref = (template, scienceExposure) if prepared.convolveTemplate else (scienceExposure, template)
        result = self._match(conv, ref, prepared, candidateList)
        ref_info = prepared.scienceInfo if prepared.convolveTemplate else prepared.templateInfo
        result.matchedExposure = Exposure(
            result.matchedImage, wcs=scienceExposure.wcs, psf=ref_info.psf, photoCalib=ref.photoCalib,
            band=templateExposure.band,
        )
        result.warpedExposure = template
        return result

    @timeMethod
    @with_blas_threads
    def matchMaskedImages(  # noqa: N802 - LSST name
        self,
        templateMaskedImage: MaskedImage,  # noqa: N803 - LSST names
        scienceMaskedImage: MaskedImage,  # noqa: N803
        candidateList: Any = None,  # noqa: N803
        templateFwhmPix: float | None = None,  # noqa: N803
        scienceFwhmPix: float | None = None,  # noqa: N803
    ) -> Struct:
        """Convolve ``templateMaskedImage`` to match ``scienceMaskedImage`` (LSST's legacy method).

        This low-level method always convolves its first argument (``config.mode`` is used by
        the other methods); FWHMs, if not given, are measured on the images.

        Parameters
        ----------
        templateMaskedImage : MaskedImage
            Image to convolve (cut to the science box if larger).
        scienceMaskedImage : MaskedImage
            Image to match to.
        candidateList : astropy.table.Table, optional
            Kernel sources; default: selected by ``selectKernelCandidates``.
        templateFwhmPix, scienceFwhmPix : float, optional
            PSF FWHMs (pixels) of the two images.

        Returns
        -------
        Struct
            ``matchedImage``, ``psfMatchingKernel``, ``backgroundModel``, ``kernelCellSet``,
            ``kernelSources``.
        """
        with self.timer("registration"):
            templateMaskedImage = self._check_same_box(templateMaskedImage, scienceMaskedImage)
        prepared = self._prepare(templateMaskedImage, scienceMaskedImage, templateFwhmPix, scienceFwhmPix, True,
                                 candidateList)
        return self._match(templateMaskedImage, scienceMaskedImage, prepared, candidateList)

    @timeMethod
    @with_blas_threads
    def subtractExposures(  # noqa: N802 - LSST name
        self,
        templateExposure: Exposure,  # noqa: N803 - LSST names
        scienceExposure: Exposure,  # noqa: N803
        templateFwhmPix: float | None = None,  # noqa: N803
        scienceFwhmPix: float | None = None,  # noqa: N803
        candidateList: Any = None,  # noqa: N803
        convolveTemplate: bool | None = None,  # noqa: N803
    ) -> Struct:
        """PSF-match and subtract: the difference image ``science − template`` in science units.

        Parameters are those of :meth:`matchExposures`.

        Returns
        -------
        Struct
            The fields of :meth:`matchExposures` plus ``subtractedExposure`` (the difference as
            an Exposure: science WCS and PhotoCalib, PSF of the image matched to (decorrelated
            with ``doDecorrelation``), science units; see the class notes),
            ``differenceBackground`` (the spatial function subtracted from it, in its units, or
            None) and ``diaSources`` (QA detections with ``refMatchId``/``srcMatchId``, or None
            without ``doQa``).
        """
        result = self.matchExposures(
            templateExposure, scienceExposure, templateFwhmPix, scienceFwhmPix, candidateList, convolveTemplate
        )
        template = result.warpedExposure
        conv_is_template = result.convolveTemplate
        info = result.psfInfo
        with self.timer("difference"):
            difference = self._difference(template.maskedImage, scienceExposure.maskedImage, result)
        out_psf = info.science.psf if conv_is_template else info.template.psf
        with self.timer("decorrelate"):
            corrected = self._decorrelate(difference, template, scienceExposure, result, out_psf)
        del difference  # the decorrelated copy replaces it (the QA below is the memory peak)
        subtracted = Exposure(
            corrected.image, wcs=scienceExposure.wcs, psf=corrected.psf, photoCalib=scienceExposure.photoCalib,
            band=scienceExposure.band,
        )
        result.subtractedExposure = subtracted
        matched = {"matchedTemplate" if conv_is_template else "matchedScience": result.matchedExposure}
        self._display_difference(template=template, science=scienceExposure, difference=subtracted, **matched)
        result.diaSources = self._qa(subtracted, template, scienceExposure, result) if self.config.doQa else None
        return result

    @timeMethod
    @with_blas_threads
    def subtractMaskedImages(  # noqa: N802 - LSST name
        self,
        templateMaskedImage: MaskedImage,  # noqa: N803 - LSST names
        scienceMaskedImage: MaskedImage,  # noqa: N803
        candidateList: Any = None,  # noqa: N803
        templateFwhmPix: float | None = None,  # noqa: N803
        scienceFwhmPix: float | None = None,  # noqa: N803
    ) -> Struct:
        """PSF-match and subtract two masked images on one pixel grid (``config.mode`` applies).

        Parameters
        ----------
        templateMaskedImage, scienceMaskedImage : MaskedImage
            Template and science on one pixel grid (a larger template is cut to the science box).
        candidateList : astropy.table.Table, optional
            Kernel sources; default: selected by ``selectKernelCandidates``.
        templateFwhmPix, scienceFwhmPix : float, optional
            PSF FWHMs (pixels); default measured on the images.

        Returns
        -------
        Struct
            The fields of :meth:`matchExposures` except the Exposures, plus
            ``subtractedMaskedImage`` (science units, see the class notes),
            ``differenceBackground`` and ``diaSources``.
        """
        with self.timer("registration"):
            templateMaskedImage = self._check_same_box(templateMaskedImage, scienceMaskedImage)
        prepared = self._prepare(templateMaskedImage, scienceMaskedImage, templateFwhmPix, scienceFwhmPix, None,
                                 candidateList)
        conv, ref = ((templateMaskedImage, scienceMaskedImage) if prepared.convolveTemplate
                     else (scienceMaskedImage, templateMaskedImage))
        result = self._match(conv, ref, prepared, candidateList)
        with self.timer("difference"):
            difference = self._difference(templateMaskedImage, scienceMaskedImage, result)
        with self.timer("decorrelate"):
            difference = self._decorrelate(difference, templateMaskedImage, scienceMaskedImage, result).image
        result.subtractedMaskedImage = difference
        self._display_difference(difference=difference, title="Subtracted masked image")
        result.diaSources = (
            self._qa(difference, templateMaskedImage, scienceMaskedImage, result) if self.config.doQa else None
        )
        return result

    # ------------------------------------------------------------------ inputs
    def _check_same_box(self, template: MaskedImage, science: MaskedImage) -> MaskedImage:
        """The template on the science box (a larger template is cut), or RegistrationError."""
        return self._template_on_science_grid(template, science, MaskedImage, "subtractExposures for Exposures")

    def _registered_template(self, template: Exposure, science: Exposure) -> Exposure:
        """The template on the science box, after checking both share one pixel grid (WCS included)."""
        return self._template_on_science_grid(template, science, Exposure, "subtractMaskedImages for MaskedImages")

    def _template_on_science_grid(self, template: Any, science: Any, kind: type, other: str) -> Any:
        from .registration import check_registration

        for label, image in (("template", template), ("science", science)):
            if not isinstance(image, kind):
                msg = f"{label} must be a {kind.__name__}, got {type(image).__name__}; use {other}"
                raise TypeError(msg)
        t_box, s_box = template.getBBox(), science.getBBox()
        if t_box != s_box and t_box.contains(s_box):
            self.log.info("Cutting the template %s to the science box %s", t_box, s_box)
            template = template[s_box]
        # masked images carry no WCS: their grids agree once the boxes do
        if kind is Exposure or template.getBBox() != s_box:
            check_registration(template, science, tolerance_pix=self.config.registrationTolerancePix)
        return template

    def _detect(self, image: Any, fwhm: float | None, *, background: Any = None) -> Struct:
        """Background and source catalog of an input image (``background`` reused when given).

        :func:`~diffim.tasks.detection.detect_sources` at the candidate selection's
        ``detectionThreshold`` with a matched filter of ``fwhm`` (of a rough FWHM measured on the
        image when None), without touching the image's mask. One catalog per image serves the
        kernel-candidate selection and the QA association.
        """
        from .detection import detect_sources, estimate_background

        if background is None:
            background = estimate_background(image)
        sources = detect_sources(
            image, threshold=self.selectKernelCandidates.config.detectionThreshold, smooth_fwhm=fwhm,
            exclude_mask_planes=("NO_DATA",), background=background, set_mask=False,
        )
        return Struct(sources=sources, background=background)

    def _prepare(self, template: Any, science: Any, templateFwhmPix: float | None,  # noqa: N803
                 scienceFwhmPix: float | None, convolveTemplate: bool | None,  # noqa: N803
                 candidateList: Any = None) -> Struct:  # noqa: N803
        """PSF information of both images, their detection catalogs and the convolution direction.

        Each image is detected at most once (background, sources), and only when something needs
        it: a PSF to measure (:func:`~diffim.tasks.matching.psf_info.measure_psf`), the
        kernel-candidate selection (no ``candidateList``) or the QA association (``doQa`` at the
        selection's threshold). Times go to the metadata keys ``detectionDuration`` and
        ``psfEstimationDuration`` (both images); the direction is chosen by
        :func:`~diffim.tasks.matching.mode.convolve_template`.
        """
        import time

        from .detection import estimate_background

        sel_threshold = self.selectKernelCandidates.config.detectionThreshold
        qa_reuses = self.config.doQa and self.config.qaDetectionThreshold == sel_threshold
        detections: dict[str, Struct] = {}
        infos: dict[str, PsfInfo] = {}
        spent = {"detection": 0.0, "psfEstimation": 0.0}
        for label, image, given in (("template", template, templateFwhmPix), ("science", science, scienceFwhmPix)):
            fwhm = known_fwhm(image, given)
            detection = None
            if fwhm is None:
                # the PSF is measured on stars from a first detection (matched filter of a rough FWHM)
                start = time.perf_counter()
                detection = Struct(background=estimate_background(image))
                spent["detection"] += time.perf_counter() - start
            start = time.perf_counter()
            measure = functools.partial(measure_psf, image, label, detection, threshold=sel_threshold,
                                        box_size=self.config.psfMeasurementBoxSize, log=self.log)
            infos[label] = psf_info(image, label, given, measure)
            spent["psfEstimation"] += time.perf_counter() - start
            if candidateList is None or qa_reuses:
                # the catalog used downstream has the matched filter, apertures and isolation radius of
                # the PSF's FWHM: with the rough one (~15 % high for Moffat PSFs) far fewer sources pass the
                # selection's cuts and the kernel is worse; the background is reused
                start = time.perf_counter()
                detections[label] = self._detect(image, infos[label].fwhm,
                                                 background=None if detection is None else detection.background)
                detections[label].background = None
                spent["detection"] += time.perf_counter() - start
        for stage, seconds in spent.items():
            self.metadata[f"{stage}Duration"] = seconds
        t_info, s_info = infos["template"], infos["science"]
        for key, info in (("templatePsfFwhm", t_info), ("sciencePsfFwhm", s_info)):
            if info.fwhm is not None:
                self.metadata[key] = info.fwhm
            self.metadata[key + "Source"] = info.origin
        mode = self.config.mode if convolveTemplate is None else (
            "convolveTemplate" if convolveTemplate else "convolveScience")
        conv_template = convolve_template(mode, t_info, s_info, self.config.maxDeconvolutionFwhmRatio, self.log)
        chosen = "convolveTemplate" if conv_template else "convolveScience"
        self.metadata["mode"] = chosen
        self.metadata["convolvedExposure"] = "Template" if conv_template else "Science"
        self.log.info("Mode %s: convolving the %s image", chosen, "template" if conv_template else "science")
        return Struct(convolveTemplate=conv_template, templateInfo=t_info, scienceInfo=s_info,
                      templateSources=detections["template"].sources if "template" in detections else None,
                      scienceSources=detections["science"].sources if "science" in detections else None)

    # ------------------------------------------------------------------ the fit
    def _match(self, convolved: Any, reference: Any, prepared: Struct, candidateList: Any) -> Struct:  # noqa: N803
        """Select candidates, fit the kernel, convolve: the matchMaskedImages core."""
        from .kernel.convolve import convolve

        conv_info, ref_info = ((prepared.templateInfo, prepared.scienceInfo) if prepared.convolveTemplate
                               else (prepared.scienceInfo, prepared.templateInfo))
        conv_mi = convolved.maskedImage if isinstance(convolved, Exposure) else convolved
        ref_mi = reference.maskedImage if isinstance(reference, Exposure) else reference
        self._debug_display("imagePsfMatch.template", image=conv_mi, title="Image to convolve")
        self._debug_display("imagePsfMatch.science", image=ref_mi, title="Image to not convolve")
        ref_sources, conv_sources = ((prepared.scienceSources, prepared.templateSources) if prepared.convolveTemplate
                                     else (prepared.templateSources, prepared.scienceSources))

        def select(kernel_width: int) -> Struct:
            stamp_half = self._stamp_half_size(kernel_width, ref_info.fwhm)
            with self.timer("selection"):
                selection = self.selectKernelCandidates.run(
                    convolved, reference, stamp_half, candidateList=candidateList,
                    referenceFwhmPix=ref_info.fwhm, convolvedFwhmPix=conv_info.fwhm,
                    referenceSources=ref_sources, convolvedSources=conv_sources,
                    maxSources=self.config.maxKernelSources, minSources=self.config.minKernelSources,
                )
            selection.stampHalf = stamp_half
            return selection

        basis, selection = self._basis_and_sources(conv_info, ref_info, prepared.convolveTemplate, select)
        stamp_half = selection.stampHalf
        sources = selection.kernelSources
        self.metadata["nKernelSources"] = len(sources)
        with self.timer("fit"):
            contaminants = contamination(selection, ref_info.fwhm, basis, self.selectKernelCandidates.config)
            cell_set = self._buildCellSet(conv_mi, ref_mi, sources, kernelSize=stamp_half, contaminants=contaminants)
            _, kernel, background = self._solve(cell_set, basis)
            # drawn after the fit so the cells show which candidates were kept (GOOD) or rejected
            self._debug_display("imagePsfMatch.cells", maskedImage=ref_mi, cellSet=cell_set)
        with self.timer("convolve"):
            matched = convolve(conv_mi, kernel, doNormalize=False,
                               workers=parallel_threads(self.config.convolutionWorkers),
                               variance=self._convolution_variance())
        cx, cy = ref_mi.getBBox().getCenter()
        ksum = float(kernel.computeSum(cx, cy))
        ratio = ksum if prepared.convolveTemplate else (1.0 / ksum if ksum != 0 else math.nan)
        self.metadata["photometricRatio"] = ratio
        return Struct(
            matchedImage=matched, psfMatchingKernel=kernel, backgroundModel=background, kernelCellSet=cell_set,
            kernelSources=sources,
            referenceSources=selection.sources if candidateList is None else ref_sources,
            convolvedSources=selection.convolvedSources if selection.convolvedSources is not None else conv_sources,
            convolveTemplate=prepared.convolveTemplate, kernelSum=ksum,
            psfInfo=Struct(template=prepared.templateInfo, science=prepared.scienceInfo),
        )

    def _basis_and_sources(self, conv_info: PsfInfo, ref_info: PsfInfo, convolve_template: bool,
                           select: Any) -> tuple[list[Any], Struct]:
        """The kernel basis and the kernel-source selection made for its stamps.

        See :func:`~diffim.tasks.matching.wing_gauss.basis_and_sources` (the wing Gaussian kept
        per ``wingGaussMinSources`` and ``wingGaussMaxBeta``; metadata ``ALWingGauss``,
        ``ALBasis*`` and ``ALKernelSize``). ``select(kernel_width)`` runs the selection for
        stamps fitting a kernel of that width.
        """
        return basis_and_sources(
            self.kConfig, conv_info, ref_info, convolve_template, select,
            min_sources=self.config.wingGaussMinSources, max_beta=self.config.wingGaussMaxBeta,
            metadata=self.metadata, log=self.log,
        )

    def _profile_beta(self, info: PsfInfo) -> float | None:
        """Moffat index of a PSF: the estimate's, else a profile fit to the model's image; None if unknown."""
        return profile_beta(info, self.log)

    def _stamp_half_size(self, kernel_size: int, reference_fwhm: float | None) -> int:
        """Half-size of the candidates' stamps: half the kernel plus half the fitted region.

        See :func:`~diffim.tasks.matching.stamps.stamp_half_size` (``fitRegionFwhmScaling``).
        Metadata ``kernelStampSize`` and ``kernelFitRegionSize`` record the sides used.
        """
        half = stamp_half_size(kernel_size, reference_fwhm, self.config.fitRegionFwhmScaling,
                               self.kConfig.kernelSizeMin)
        self.metadata["kernelStampSize"] = 2 * half + 1
        self.metadata["kernelFitRegionSize"] = 2 * half + 2 - kernel_size
        return half

    def _convolution_variance(self) -> str:
        """The ``variance`` mode of the matching convolution (``convolutionVariance``, "auto" resolved)."""
        mode = self.config.convolutionVariance
        if mode == "auto":
            return "center" if self.config.doDecorrelation else "exact"
        return mode

    def _buildCellSet(self, templateMaskedImage: MaskedImage, scienceMaskedImage: MaskedImage,  # noqa: N802, N803
                      candidateList: Any, kernelSize: int | None = None, *,  # noqa: N803
                      contaminants: Struct | None = None) -> Any:
        """SpatialCellSet of kernel candidates with stamps of side ``2·kernelSize+1``.

        Parameters
        ----------
        templateMaskedImage, scienceMaskedImage : MaskedImage
            The image to convolve and the image matched to.
        candidateList : astropy.table.Table
            Sources with ``x``, ``y`` and optionally ``rating`` (else ``snr``, else 1).
        kernelSize : int, optional
            Stamp half-size; default ``candidateList.meta["kernelSize"]``, else ``kernelSize`` of
            the kernel config.
        contaminants : Struct, optional
            ``points`` (``(n, 2)`` x, y), ``radius``, ``skipRadius``, ``kernelWidth`` and
            ``maxFraction``: the pixels of the image matched to within ``radius`` of a point get
            zero weight (`~diffim.tasks.matching.contamination`); a candidate losing more than
            ``maxFraction`` of its fitted region is left out. Metadata ``nContaminatedStamps`` and
            ``nContaminatedRejected`` count both.
        """
        config = self.kConfig
        if kernelSize is None:
            kernelSize = int(getattr(candidateList, "meta", {}).get("kernelSize", config.kernelSize))
        cell_set, n_masked, n_rejected = build_cell_set(templateMaskedImage, scienceMaskedImage, candidateList,
                                                        int(kernelSize), config, contaminants)
        if contaminants is not None:
            self.metadata["nContaminatedStamps"] = n_masked
            self.metadata["nContaminatedRejected"] = n_rejected
        return cell_set

    # ------------------------------------------------------------------ the difference
    def _difference(self, template: MaskedImage, science: MaskedImage, result: Struct) -> MaskedImage:
        """Difference in science units from the matched image (see the class notes).

        Sets ``result.differenceBackground``: the background subtracted from the difference, in
        its units (a spatial function, or None when no background is subtracted).
        """
        subtract = self.kConfig.fitForBackground and self.config.doSubtractBackground
        difference, result.differenceBackground = science_units_difference(
            template, science, result, subtract_background=subtract, refit=self.config.doRefitBackground,
            bin_size=self.config.backgroundBinSize,
        )
        self.metadata["differenceUnits"] = "science"
        return difference

    def _decorrelate(self, difference: MaskedImage, template: Any, science: Any, result: Struct,
                     psf: Any = None) -> Struct:
        """DMTN-021 whitening of the difference (``doDecorrelation``): ``image`` and its ``psf``."""
        self.metadata["decorrelated"] = bool(self.config.doDecorrelation)
        if not self.config.doDecorrelation:
            return Struct(image=difference, psf=psf)
        corrected = self.decorrelate.run(
            science, template, Exposure(difference, psf=psf), result.psfMatchingKernel,
            mode="convolveTemplate" if result.convolveTemplate else "convolveScience",
            kernelSum=result.kernelSum, normalization="none" if result.convolveTemplate else "difference",
            workers=parallel_threads(self.config.convolutionWorkers),
        ).correctedExposure
        return Struct(image=corrected.maskedImage, psf=corrected.psf)

    # ------------------------------------------------------------------ QA
    def _qa(self, difference: Any, template: Any, science: Any, result: Struct) -> Any:
        """Detect on the difference, associate with template and science sources, count."""
        threshold = self.config.qaDetectionThreshold
        with self.timer("qa"):
            dia = detect_and_associate(
                difference, template, science, result, threshold=threshold,
                reuse=self.selectKernelCandidates.config.detectionThreshold == threshold,
                radius=self.config.qaMatchRadiusPix,
            )
        counts = count_false_positives(dia, self.config.qaIgnoreFlagged)
        for key, value in counts.items():
            self.metadata[key] = value
        self.log.info(
            "QA: %d sources at %.3g sigma in the difference (%d counted); %d near template sources, %d near science "
            "sources, %d unassociated", len(dia), threshold, counts["NFalsePositivesTotal"],
            counts["NFalsePositivesRefAssociated"], counts["NFalsePositivesSrcAssociated"],
            counts["NFalsePositivesUnassociated"],
        )
        return dia

    # ------------------------------------------------------------------ debug displays
    def _debug_display(self, stage: str, **data: Any) -> None:
        debug = debug_info(__name__)
        if not debug.display:
            return
        from .hooks import debug_display

        debug_display(stage, __name__, debug, self, **data)

    def _display_difference(self, **data: Any) -> None:
        self._debug_display("imagePsfMatch.difference", **data)
