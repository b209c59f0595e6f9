"""PSF-matching configs and the abstract ``PsfMatchTask`` (LSST's ``lsst.ip.diffim.psfMatch``).

Debug name: ``diffim.tasks.psfMatch`` (also answers to ``lsst.ip.diffim.psfMatch`` in a debug.py).
"""

from __future__ import annotations

import abc
import math
from typing import Annotated, Any

from pydantic import field_validator

from diffim.framework.debug import debug_info
from diffim.framework.log import getTraceLogger
from diffim.framework.task import AlgorithmError, Task
from diffim.framework.config import (
    Allowed,
    Config,
    ConfigChoice,
    ConfigChoiceField,
    Field,
    FieldValidationError,
    RegistryName,
)

from .registries import candidate_visitors, kernel_bases

__all__ = [
    "NoKernelCandidatesError",
    "PsfMatchTask",
    "VISIT_POINTS",
    "PsfMatchConfig",
    "PsfMatchConfigAL",
    "PsfMatchConfigDF",
    "PsfMatchTaskConfig",
]

_DEAD = "Ignored: unused in LSST too; kept so that LSST config files load."


class PsfMatchConfig(Config):
    """Base configuration for PSF matching (the fields every kernel basis shares)."""

    fitForBackground: bool = Field(
        False, description="Fit a constant background in each stamp and a spatial model of it."
    )
    kernelBasisSet: Annotated[str, RegistryName(kernel_bases)] = Field(
        "alard-lupton",
        description="Kernel basis generator, by registered name ('alard-lupton', 'delta-function', or a plugin's).",
    )
    kernelSize: int = Field(
        21, ge=1, description="Kernel side in pixels (odd). For AL overridden by FWHM scaling when scaleByFwhm."
    )
    scaleByFwhm: bool = Field(True, description="Scale the AL Gaussian sigmas and the kernel size by the PSF FWHMs.")
    kernelSizeFwhmScaling: float = Field(
        6.0, ge=1.0, description="Kernel size = this times the largest AL Gaussian sigma (when scaleByFwhm)."
    )
    kernelSizeMin: int = Field(21, ge=1, description="Smallest kernel size derived from the FWHMs (pixels).")
    kernelSizeMax: int = Field(35, ge=1, description="Largest kernel size derived from the FWHMs (pixels).")
    spatialModelType: Annotated[
        str,
        Allowed(chebyshev1="Chebyshev polynomials of the first kind over the image box",
                polynomial="Plain polynomials in parent pixel coordinates (badly conditioned)"),
    ] = Field("chebyshev1", description="Family of the spatial functions of the kernel and background.")
    spatialKernelOrder: int = Field(2, ge=0, description="Order of the spatial variation of the kernel coefficients.")
    spatialBgOrder: int = Field(1, ge=0, description="Order of the spatial background (only when fitForBackground).")
    sizeCellX: int = Field(128, ge=32, description="Spatial cell width in pixels.")
    sizeCellY: int = Field(128, ge=32, description="Spatial cell height in pixels.")
    nStarPerCell: int = Field(5, description="Kernel candidates used per cell (best rated first); -1 means all.")
    maxSpatialIterations: int = Field(3, ge=1, le=5, description="Iterations of the spatial fit and its rejection (1..5).")
    usePcaForSpatialKernel: bool = Field(
        False, description="Compress the candidates' kernels with PCA before the spatial fit."
    )
    subtractMeanForPca: bool = Field(True, description="Subtract the mean kernel before PCA; the mean is kept as basis 0.")
    numPrincipalComponents: int = Field(5, ge=3, description="Number of PCA bases kept, including the mean.")
    singleKernelClipping: bool = Field(True, description="Reject candidates on the residuals of their own kernel fit.")
    kernelSumClipping: bool = Field(True, description="Reject candidates whose kernel sum is an outlier (e.g. variables).")
    spatialKernelClipping: bool = Field(True, description="Reject candidates on the residuals of the spatial model.")
    checkConditionNumber: bool = Field(
        False, description="Reject a candidate whose normal matrix condition number exceeds maxConditionNumber."
    )
    badMaskPlanes: list[str] = Field(
        default_factory=lambda: ["NO_DATA", "EDGE", "SAT"],
        description="Mask planes whose pixels are left out of the residual statistics.",
    )
    candidateResidualMeanMax: float = Field(
        0.25, ge=0.0, description="Largest |mean| of the residuals (D/sigma) of a good candidate."
    )
    candidateResidualStdMax: float = Field(
        1.50, ge=0.0, description="Largest standard deviation of the residuals (D/sigma) of a good candidate."
    )
    useCoreStats: bool = Field(False, description="Compute residual statistics on the stamp core only.")
    candidateCoreRadius: int = Field(
        3, ge=1, description="Core half-size r: the core is (2r+1)x(2r+1) pixels (rating and core statistics)."
    )
    maxKsumSigma: float = Field(3.0, ge=0.0, description="Kernel-sum rejection threshold, in clipped sigmas.")
    maxKsumErrorSigma: float = Field(
        4.0, ge=0.0,
        description=(
            "diffim: with kernelSumClipping, also reject a candidate whose kernel sum is more than this many of "
            "its own errors (fit error and ksumErrorFloor in quadrature) from the error-weighted median of the "
            "other candidates' kernel sums. LSST's cut compares with the spread of all sums, which faint "
            "candidates widen: a bright star with a blended transient or a variable then passes and, being the "
            "most precise, biases the kernel sum. 0 disables."
        ),
    )
    ksumErrorMinCandidates: int = Field(
        20, ge=2,
        description=(
            "maxKsumErrorSigma applies only when at least this many candidates have a kernel-sum error: with "
            "fewer, the others' median is too uncertain to judge a precise candidate by."
        ),
    )
    ksumErrorFloor: float = Field(
        0.005, ge=0.0,
        description="Systematic error of a candidate's kernel sum, relative to the kernel sum (maxKsumErrorSigma).",
    )
    maxConditionNumber: float = Field(5.0e7, ge=0.0, description="Largest condition number of a candidate's normal matrix.")
    conditionNumberType: Annotated[
        str, Allowed(SVD="ratio of extreme singular values", EIGENVALUE="ratio of extreme eigenvalues")
    ] = Field("EIGENVALUE", description="How condition numbers are computed.")
    maxSpatialConditionNumber: float = Field(
        1.0e10, ge=0.0, description="Condition number of the spatial fit above which a warning is logged."
    )
    iterateSingleKernel: bool = Field(
        False, description="Refit each candidate once with the difference-image variance (not with constant weighting)."
    )
    constantVarianceWeighting: bool = Field(
        True, description="Weight all stamp pixels by the stamp's median variance instead of per pixel."
    )
    qaVisitors: list[str] = Field(
        default_factory=list,
        description=(
            "Registered QA candidate visitors to run; each runs at the visit point its class names "
            "(see VISIT_POINTS)."
        ),
    )
    calculateKernelUncertainty: bool = Field(False, description=_DEAD)
    useAfwBackground: bool = Field(False, description=_DEAD)
    useBicForKernelBasis: bool = Field(
        False, description="Choose AL degrees by BIC (LSST legacy). Not supported by diffim: must stay False."
    )

    @field_validator("kernelSize")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            msg = f"kernelSize must be odd so the kernel has a centre pixel; use {value + 1}"
            raise ValueError(msg)
        return value

    @field_validator("nStarPerCell")
    @classmethod
    def _stars_per_cell(cls, value: int) -> int:
        if value != -1 and value < 1:
            msg = "nStarPerCell must be >= 1, or -1 for all candidates"
            raise ValueError(msg)
        return value

    @field_validator("qaVisitors")
    @classmethod
    def _registered_visitors(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in candidate_visitors]
        if unknown:
            msg = candidate_visitors.unknown_message(unknown[0])
            raise ValueError(msg)
        return value

    @field_validator("badMaskPlanes")
    @classmethod
    def _known_planes(cls, value: list[str]) -> list[str]:
        from .image.mask_planes import mask_planes

        unknown = [name for name in value if name not in mask_planes]
        if unknown:
            msg = f"unknown mask plane(s) {unknown}; known: {', '.join(mask_planes.names())}"
            raise ValueError(msg)
        return value

    def validate(self) -> None:
        super().validate()
        if self.kernelSizeMin > self.kernelSizeMax:
            msg = (
                f"kernelSizeMin ({self.kernelSizeMin}) is larger than kernelSizeMax ({self.kernelSizeMax}); "
                "make kernelSizeMin <= kernelSizeMax"
            )
            raise FieldValidationError(msg)
        if self.useBicForKernelBasis:
            msg = "useBicForKernelBasis (LSST's legacy BIC degree search) is not supported; set it to False"
            raise FieldValidationError(msg)


class PsfMatchConfigAL(PsfMatchConfig):
    """Alard–Lupton basis: Gaussians of increasing width times polynomials."""

    alardNGauss: int = Field(3, ge=1, description="Number of Gaussians in the basis.")
    alardDegGauss: list[int] = Field(
        default_factory=lambda: [4, 2, 2], description="Polynomial degree multiplying each Gaussian (one per Gaussian)."
    )
    alardSigGauss: list[float] = Field(
        default_factory=lambda: [0.7, 1.5, 3.0],
        description="Gaussian sigmas in pixels, used without FWHMs, with scaleByFwhm False, or for equal FWHMs.",
    )
    alardGaussBeta: float = Field(2.0, ge=0.0, description="Ratio of successive Gaussian sigmas when scaling by FWHM.")
    alardMinSig: float = Field(0.7, ge=0.25, description="Smallest Gaussian sigma (pixels) when convolving.")
    alardDegGaussDeconv: int = Field(3, ge=1, description=f"Deprecated legacy deconvolution degree. {_DEAD}")
    alardMinSigDeconv: float = Field(
        0.4, ge=0.25, description="Smallest Gaussian sigma (pixels) when deconvolving (template PSF wider)."
    )
    alardNGaussDeconv: int = Field(3, ge=1, description=f"Deprecated legacy deconvolution Gaussian count. {_DEAD}")

    def setDefaults(self) -> None:
        super().setDefaults()
        self.kernelBasisSet = "alard-lupton"
        self.maxConditionNumber = 5.0e7

    def validate(self) -> None:
        super().validate()
        for name in ("alardDegGauss", "alardSigGauss"):
            values = getattr(self, name)
            if len(values) != self.alardNGauss:
                msg = (
                    f"{name} has {len(values)} entries but alardNGauss is {self.alardNGauss}; "
                    f"give one entry per Gaussian"
                )
                raise FieldValidationError(msg)
        if any(d < 0 for d in self.alardDegGauss):
            msg = f"alardDegGauss must be >= 0, got {list(self.alardDegGauss)}"
            raise FieldValidationError(msg)
        if any(s <= 0 for s in self.alardSigGauss):
            msg = f"alardSigGauss must be > 0, got {list(self.alardSigGauss)}"
            raise FieldValidationError(msg)


class PsfMatchConfigDF(PsfMatchConfig):
    """Delta-function basis: one basis per kernel pixel, usually regularized."""

    useRegularization: bool = Field(True, description="Regularize the fit: solve (M + lambda H) a = b.")
    regularizationType: Annotated[
        str,
        Allowed(centralDifference="penalise the Laplacian (5- or 9-point stencil)",
                forwardDifference="penalise forward derivatives of the orders listed"),
    ] = Field("centralDifference", description="Kind of regularization matrix H.")
    centralRegularizationStencil: Annotated[
        int, Allowed({5: "5-point Laplacian", 9: "9-point Laplacian"})
    ] = Field(9, description="Stencil of the central-difference Laplacian.")
    forwardRegularizationOrders: list[int] = Field(
        default_factory=lambda: [1, 2], min_length=1, description="Derivative orders (1..3) penalised by forwardDifference."
    )
    regularizationBorderPenalty: float = Field(3.0, ge=0.0, description="Penalty on the kernel's border pixels.")
    lambdaType: Annotated[
        str,
        Allowed(absolute="lambda = lambdaValue",
                relative="lambda = lambdaScaling * tr(M) / tr(H)",
                minimizeBiasedRisk="scan lambda, minimise the risk with a truncated pseudo-inverse",
                minimizeUnbiasedRisk="scan lambda, minimise the risk with the full pseudo-inverse"),
    ] = Field("absolute", description="How the regularization strength lambda is chosen.")
    lambdaValue: float = Field(0.2, description="lambda for lambdaType 'absolute'.")
    lambdaScaling: float = Field(1.0e-4, description="Fraction of tr(M)/tr(H) for lambdaType 'relative'.")
    lambdaStepType: Annotated[
        str, Allowed(log="lambda = 10**l on the grid", linear="lambda = l on the grid")
    ] = Field("log", description="Grid of the risk scans.")
    lambdaMin: float = Field(
        -1.0,
        description=(
            "Start of the lambda grid (log10 units when lambdaStepType is 'log'). lambda is in the units of "
            "the normal matrix M, which grow as flux²/variance: bright stamps may need a higher grid."
        ),
    )
    lambdaMax: float = Field(2.0, description="End of the lambda grid, inclusive.")
    lambdaStep: float = Field(0.1, gt=0.0, description="Step of the lambda grid.")

    @field_validator("forwardRegularizationOrders")
    @classmethod
    def _orders(cls, value: list[int]) -> list[int]:
        bad = [o for o in value if o not in (1, 2, 3)]
        if bad:
            msg = f"forward regularization orders must be 1, 2 or 3, got {bad}"
            raise ValueError(msg)
        return value

    def setDefaults(self) -> None:
        super().setDefaults()
        self.kernelBasisSet = "delta-function"
        self.maxConditionNumber = 5.0e6
        self.usePcaForSpatialKernel = True
        self.subtractMeanForPca = True
        self.useBicForKernelBasis = False

    def validate(self) -> None:
        super().validate()
        if self.lambdaMax < self.lambdaMin:
            msg = f"lambdaMax ({self.lambdaMax}) is below lambdaMin ({self.lambdaMin}); swap them"
            raise FieldValidationError(msg)


class PsfMatchTaskConfig(Config):
    """Configuration of a PSF-matching task: the kernel fit, with an AL or DF basis."""

    kernel: ConfigChoice = ConfigChoiceField(
        {"AL": PsfMatchConfigAL, "DF": PsfMatchConfigDF},
        default="AL",
        description="Kernel fit configuration: 'AL' (Alard-Lupton) or 'DF' (delta function).",
    )




#: Named points of ``_solve`` where QA visitors run (a QA visitor class sets ``visitPoint``).
VISIT_POINTS: dict[str, str] = {
    "afterSingleKernels": "every top candidate has its own kernel (after the single-kernel clipping)",
    "afterKernelSum": "after the kernel-sum clipping of an iteration",
    "afterSpatialKernel": "after each spatial fit, before it is assessed (spatialKernel available)",
    "final": "after the final spatial kernel is chosen",
}


class NoKernelCandidatesError(AlgorithmError):
    """No usable kernel candidate remained; the message says what to change."""


class PsfMatchTask(Task, abc.ABC):
    """Base class of PSF matching: fits a spatially varying matching kernel to kernel candidates.

    Subclasses build a :class:`~diffim.tasks.matching.cells.SpatialCellSet` of
    :class:`~diffim.tasks.matching.candidate.KernelCandidate` (``_buildCellSet``) and call
    :meth:`_solve`, which runs the candidate visitors (looked up by name in
    :data:`diffim.tasks.registries.candidate_visitors`, so plugins can replace them):

    1. ``buildSingleKernel`` on the best ``nStarPerCell`` candidates of each cell, repeated until
       no candidate is rejected by its own residuals;
    2. ``kernelSum`` (aggregate, then reject kernel-sum outliers: variables, blends);
    3. optionally ``kernelPca`` to compress the kernels into a PCA basis;
    4. ``buildSpatialKernel``: the spatial model of the kernel (and background);
    5. ``assessSpatialKernel``: reject candidates badly fit by the spatial model, and iterate.

    :meth:`_diagnostic` logs the quality of the spatial fit and writes metadata.

    Notes
    -----
    **Metadata** (every key is declared in :mod:`diffim.tasks.metadata_keys`):

    ``spatialConditionNum``
        Condition number of the spatial kernel fit.
    ``spatialKernelSum``
        Kernel sum (10^(-0.4 delta zeropoint)) of the spatial kernel at the cell-set centre.
    ``ALBasisNGauss``, ``ALBasisDegGauss``, ``ALBasisSigGauss``, ``ALKernelSize``, ``ALBasisMode``
        The Alard–Lupton basis used (written when the basis is built).
    ``nGoodCandidates``, ``nBadCandidates``
        Candidates kept and rejected by the fit.
    ``KCDiffim<Metric>_<LOCAL|SPATIAL>_<MEAN|MEDIAN|STDEV>``
        Substamp quality metrics (Mean, Median, IQR, StDev, KSProb, ADSig, ChiSq, MseResids) of
        the candidates' residuals, from their own (LOCAL) and the spatial (SPATIAL) kernel.

    **Debug flags** (module ``diffim.tasks.psfMatch``, LSST ``lsst.ip.diffim.psfMatch``):
    ``display`` (gate), ``maskTransparency``, ``displayCandidates``, ``displayKernelBasis``,
    ``displayKernelMosaic``, ``plotKernelSpatialModel``, ``plotKernelCoefficients``,
    ``showBadCandidates``: drawn by display plugins through the ``diffim_debug_display`` hook.
    """

    ConfigClass = PsfMatchTaskConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kConfig = self.config.kernel.active
        self.useRegularization = bool(getattr(self.kConfig, "useRegularization", False))
        if self.useRegularization:
            from .kernel.regularization import makeRegularizationMatrix

            self.hMat = makeRegularizationMatrix(self.kConfig)
        else:
            self.hMat = None

    @abc.abstractmethod
    def _buildCellSet(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - LSST name
        """Build the SpatialCellSet of kernel candidates (subclass specific)."""

    # -- the kernel fit ---------------------------------------------------------------------
    def _visitor(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return candidate_visitors[name].target(*args, **kwargs)

    def _run_qa(self, point: str, cellSet: Any, context: dict[str, Any]) -> None:  # noqa: N803
        nmax = self.kConfig.nStarPerCell
        for name in self.kConfig.qaVisitors:
            cls = candidate_visitors[name].target
            if getattr(cls, "visitPoint", None) == point:
                cellSet.visitCandidates(cls(task=self, config=self.kConfig, **context), nmax, ignoreExceptions=True)

    def _solve(self, kernelCellSet: Any, basisList: list[Any]) -> tuple[Any, Any, Any]:  # noqa: N802, N803
        """Fit the spatial kernel and background to the candidates (spec §7.2).

        Returns
        -------
        spatialSolution, spatialKernel, spatialBackground
        """
        config = self.kConfig
        log = self.log.getChild("_solve")
        trace1 = getTraceLogger(log, 1)
        trace2 = getTraceLogger(log, 2)
        nmax = config.nStarPerCell
        max_it = config.maxSpatialIterations
        single = self._visitor("buildSingleKernel", basisList, config, self.hMat)
        ksum = self._visitor("kernelSum", config)
        spatial_basis = basisList
        spatialkv = None
        spatial_kernel = spatial_bg = None
        n_rejected_spatial = 0
        it = 0
        while it < max_it:
            trace1.debug("Spatial iteration %d", it)
            # A. build the single kernels until the per-candidate clipping is stable
            while True:
                kernelCellSet.visitCandidates(single, nmax, ignoreExceptions=True)
                trace2.debug("Built %d single kernels, rejected %d", single.nProcessed, single.nRejected)
                if single.nRejected == 0:
                    break
            self._run_qa("afterSingleKernels", kernelCellSet, {"basisList": basisList})
            # B. kernel-sum clipping; a rejection restarts without spending an iteration
            ksum.resetKernelSum()
            ksum.setMode("AGGREGATE")
            kernelCellSet.visitCandidates(ksum, nmax, ignoreExceptions=True)
            if kernelCellSet.allEmpty():
                msg = (
                    "All spatial cells are empty of candidates: every kernel candidate was rejected; "
                    "check the candidate selection (S/N, masks) or relax candidateResidualMeanMax/StdMax"
                )
                raise NoKernelCandidatesError(msg)
            try:
                ksum.processKsumDistribution()
            except RuntimeError as err:
                msg = f"Unable to calculate the kernel sum ({err}); give more kernel candidates"
                raise NoKernelCandidatesError(msg) from err
            ksum.setMode("REJECT")
            kernelCellSet.visitCandidates(ksum, nmax, ignoreExceptions=True)
            self._run_qa("afterKernelSum", kernelCellSet, {"basisList": basisList})
            if ksum.nRejected > 0:
                trace1.debug("Rejected %d candidates on their kernel sum; restarting", ksum.nRejected)
                continue
            # C. optional PCA basis
            if config.usePcaForSpatialKernel:
                n_rejected_pca, spatial_basis = self._createPcaBasis(kernelCellSet, nmax)
                if n_rejected_pca > 0:
                    continue
            else:
                spatial_basis = basisList
            # D. spatial fit
            spatialkv = self._visitor("buildSpatialKernel", spatial_basis, kernelCellSet.getBBox(), config)
            kernelCellSet.visitCandidates(spatialkv, nmax)
            spatialkv.solveLinearEquation()
            spatial_kernel, spatial_bg = spatialkv.getSolutionPair()
            self._run_qa("afterSpatialKernel", kernelCellSet,
                         {"basisList": spatial_basis, "spatialKernel": spatial_kernel, "spatialBackground": spatial_bg})
            # E. assess the spatial fit on every candidate
            assess = self._visitor("assessSpatialKernel", spatial_kernel, spatial_bg, config)
            kernelCellSet.visitCandidates(assess, nmax)
            n_rejected_spatial = assess.nRejected
            trace1.debug("Spatial fit: %d good, %d rejected", assess.nGood, assess.nRejected)
            if assess.nGood == 0 and assess.nRejected == 0:
                msg = "No kernel candidates for spatial fit; lower nStarPerCell's demands or give more candidates"
                raise NoKernelCandidatesError(msg)
            if n_rejected_spatial == 0:
                break
            it += 1
        if n_rejected_spatial > 0 and it == max_it:
            # not converged: one final fit on what is left, without assessment
            if config.usePcaForSpatialKernel:
                _, spatial_basis = self._createPcaBasis(kernelCellSet, nmax)
            spatialkv = self._visitor("buildSpatialKernel", spatial_basis, kernelCellSet.getBBox(), config)
            kernelCellSet.visitCandidates(spatialkv, nmax)
            spatialkv.solveLinearEquation()
            spatial_kernel, spatial_bg = spatialkv.getSolutionPair()
        if spatialkv is None or spatialkv.nCandidates < 1:
            msg = (
                "No kernel candidates remain after max iterations; raise maxSpatialIterations, lower "
                "spatialKernelOrder, or relax the clipping thresholds"
            )
            raise NoKernelCandidatesError(msg)
        spatial_solution = spatialkv.getKernelSolution()
        self._run_qa("final", kernelCellSet,
                     {"basisList": spatial_basis, "spatialKernel": spatial_kernel, "spatialBackground": spatial_bg})
        self._displayDebug(kernelCellSet, spatial_basis, spatial_kernel, spatial_bg, spatial_solution)
        self._diagnostic(kernelCellSet, spatial_solution, spatial_kernel, spatial_bg)
        return spatial_solution, spatial_kernel, spatial_bg

    def _createPcaBasis(self, kernelCellSet: Any, nStarPerCell: int) -> tuple[int, list[Any]]:  # noqa: N802, N803
        """PCA of the candidates' kernels, then refit every top candidate on it (spec §7.3)."""
        from .kernel.bases import renormalizeKernelList
        from .kernel.kernels import FixedKernel
        from .matching.pca import KernelPca

        config = self.kConfig
        pca = KernelPca()
        kernelCellSet.visitCandidates(self._visitor("kernelPca", pca), nStarPerCell, ignoreExceptions=True)
        if config.subtractMeanForPca:
            pca.subtractMean()
        pca.analyze()
        eigen_values = pca.getEigenValues()
        total = float(sum(eigen_values))
        if total == 0.0:
            msg = "kernel PCA failed: the eigenvalues sum to 0 (all candidate kernels identical?)"
            raise RuntimeError(msg)
        trace5 = getTraceLogger(self.log.getChild("_solve"), 5)
        for j, value in enumerate(eigen_values):
            trace5.debug("Eigenvalue %d: %f (%.2f %%)", j, value, 100.0 * value / total)
        kernels = [k for k in pca.getEigenKernels()[: config.numPrincipalComponents]
                   if all(math.isfinite(v) for v in k.ravel())]
        basis = renormalizeKernelList([FixedKernel(k) for k in kernels])
        refit = self._visitor("buildSingleKernel", basis, config, None)
        refit.setSkipBuilt(False)
        kernelCellSet.visitCandidates(refit, nStarPerCell, ignoreExceptions=True)
        return refit.nRejected, basis

    def _displayDebug(self, kernelCellSet: Any, basisList: Any, spatialKernel: Any,  # noqa: N802, N803
                      spatialBackground: Any, spatialSolution: Any) -> None:  # noqa: N803
        debug = debug_info(__name__)
        if not debug.display:
            return
        from .hooks import debug_display

        debug_display("psfMatch.solve", __name__, debug, self, cellSet=kernelCellSet, basisList=basisList,
                      spatialKernel=spatialKernel, spatialBackground=spatialBackground,
                      spatialSolution=spatialSolution)

    def _diagnostic(self, kernelCellSet: Any, spatialSolution: Any, spatialKernel: Any, spatialBg: Any) -> None:  # noqa: N802, N803
        """Log the quality of the spatial fit and write the metadata (spec §7.4)."""
        from .matching.diagnostics import diagnose

        diagnose(self, kernelCellSet, spatialSolution, spatialKernel, spatialBg)
