"""Every task metadata key diffim's tasks write, declared per task (by ``_DefaultName``).

The declarations are the contract behind the docs' metadata reference (generated from this
module) and ``tests/test_docs.py``, which runs the tasks on a small generated pair and fails
when a key is written but not declared here, or declared as always written but missing.

Keys use LSST's spelling (``spatialKernelSum``, ``ALBasisMode``, ``NFalsePositivesTotal``...).
In ``task.getFullMetadata()`` a subtask's keys sit under ``"<parent>:<subtask field>"``, e.g.
``"imagePsfMatch:selectKernelCandidates"``; ``task.metadata`` holds the task's own keys.

A key whose `MetadataKey.condition` is `None` is written by every successful run of the task's
entry point (`TaskMetadataKeys.entry_point`); otherwise the condition says when it is. Timed
methods and blocks (`TimerKeys`) write the resource-usage keys of
:mod:`diffim.framework.timing`: ``<name>Start<suffix>``, ``<name>End<suffix>`` for every suffix
of `TIMING_SUFFIXES`, and ``<name>Duration``. They are arrays holding the last calls (see
``diffim.framework.timing.MAX_RECORDS``).

This module imports nothing heavy: reading it does not load the tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

__all__ = [
    "AGGREGATE_STATISTICS",
    "HEADER_KEYS",
    "KERNEL_FIT_KEYS",
    "SUBSTAMP_METRICS",
    "TASK_METADATA_KEYS",
    "TIMING_SUFFIXES",
    "MetadataKey",
    "TaskMetadataKeys",
    "TimerKeys",
    "declared_keys",
]


@dataclasses.dataclass(frozen=True)
class MetadataKey:
    """One metadata key a task writes.

    Attributes
    ----------
    name : str
        The key, in LSST spelling.
    type : str
        ``int``, ``float``, ``str``, ``bool``, or ``list[<scalar>]`` for arrays.
    description : str
        One line: what the value means, with units.
    condition : str or None
        When the key is written; `None` means on every successful run of the entry point.
    """

    name: str
    type: str
    description: str
    condition: str | None = None


@dataclasses.dataclass(frozen=True)
class TimerKeys:
    """A timed method (``@timeMethod``) or block (``task.timer(name)``) and its keys.

    Attributes
    ----------
    name : str
        Method or block name; the keys are ``<name>Start*``, ``<name>End*``, ``<name>Duration``.
    description : str
        What is timed.
    condition : str or None
        When the timer runs; `None` means on every successful run of the entry point.
    """

    name: str
    description: str
    condition: str | None = None

    def keys(self) -> Iterator[MetadataKey]:
        """Yield the keys this timer writes, with their types and conditions.

        Yields
        ------
        key : MetadataKey
            ``<name>Start<suffix>`` and ``<name>End<suffix>`` for each of `TIMING_SUFFIXES`,
            then ``<name>Duration``.
        """
        for side in ("Start", "End"):
            for suffix, (type_, doc, suffix_condition) in TIMING_SUFFIXES.items():
                conditions = [c for c in (self.condition, suffix_condition) if c]
                yield MetadataKey(
                    f"{self.name}{side}{suffix}", f"list[{type_}]", f"{side} of {self.name}: {doc}",
                    "; ".join(conditions) or None,
                )
        yield MetadataKey(
            f"{self.name}Duration", "list[float]", f"Wall-clock seconds of {self.name} (diffim's, not LSST's).",
            self.condition,
        )


@dataclasses.dataclass(frozen=True)
class TaskMetadataKeys:
    """The metadata keys of one task.

    Attributes
    ----------
    task : str
        The task's ``_DefaultName``.
    task_class : str
        Dotted path of the task class.
    entry_point : str
        The method whose run the unconditional keys describe.
    keys : tuple of MetadataKey
        Plain keys, in the order the task writes them.
    timers : tuple of TimerKeys
        Timed methods and blocks.
    """

    task: str
    task_class: str
    entry_point: str
    keys: tuple[MetadataKey, ...]
    timers: tuple[TimerKeys, ...] = ()

    def all_keys(self) -> dict[str, MetadataKey]:
        """Every declared key, timing keys expanded: name -> declaration.

        Returns
        -------
        keys : dict of str to MetadataKey
            Header keys, plain keys, then each timer's keys.
        """
        out: dict[str, MetadataKey] = {}
        for key in (*HEADER_KEYS, *self.keys):
            out[key.name] = key
        for timer in self.timers:
            for key in timer.keys():
                out[key.name] = key
        return out


#: Resource-usage suffixes of the timing keys: suffix -> (value type, meaning, condition).
TIMING_SUFFIXES: dict[str, tuple[str, str, str | None]] = {
    "Utc": ("str", "ISO-8601 UTC wall-clock time.", None),
    "CpuTime": ("float", "process CPU time (s, time.process_time).", None),
    "UserTime": ("float", "user CPU time (s, ru_utime).", "where the resource module exists (not Windows)"),
    "SystemTime": ("float", "system CPU time (s, ru_stime).", "where the resource module exists (not Windows)"),
    "MaxResidentSetSize": (
        "int", "peak resident memory (bytes, ru_maxrss).", "where the resource module exists (not Windows)"),
    "MinorPageFaults": ("int", "minor page faults (ru_minflt).", "where the resource module exists (not Windows)"),
    "MajorPageFaults": ("int", "major page faults (ru_majflt).", "where the resource module exists (not Windows)"),
    "BlockInputs": ("int", "block input operations (ru_inblock).", "where the resource module exists (not Windows)"),
    "BlockOutputs": (
        "int", "block output operations (ru_oublock).", "where the resource module exists (not Windows)"),
    "VoluntaryContextSwitches": (
        "int", "voluntary context switches (ru_nvcsw).", "where the resource module exists (not Windows)"),
    "InvoluntaryContextSwitches": (
        "int", "involuntary context switches (ru_nivcsw).", "where the resource module exists (not Windows)"),
}

#: Written once per metadata by the first timed call.
HEADER_KEYS: tuple[MetadataKey, ...] = (
    MetadataKey("__version__", "int", "Version of the timing-key layout (1, as LSST's)."),
    MetadataKey("nodeName", "str", "Host name of the machine that ran the task."),
)

#: Substamp residual metrics aggregated over the GOOD candidates: name -> meaning of the metric.
SUBSTAMP_METRICS: dict[str, str] = {
    "Mean": "mean of the normalised residuals z = D/sigma",
    "Median": "median of z",
    "IQR": "interquartile range of z (1.349 for unit Gaussian noise)",
    "StDev": "maximum-likelihood standard deviation of z",
    "KSProb": "Kolmogorov-Smirnov p-value of z against N(0, 1)",
    "ADSig": "Anderson-Darling p-value of z against N(0, 1)",
    "ChiSq": "reduced chi-square of z (degrees of freedom: pixels minus fitted parameters)",
    "MseResids": "mean of z^2 (bias^2 plus variance)",
}

#: Statistics over the candidates: suffix -> meaning.
AGGREGATE_STATISTICS: dict[str, str] = {
    "MEAN": "mean",
    "MEDIAN": "median",
    "STDEV": "standard deviation (ddof 1; 0 for one candidate)",
}

_METRIC_CONDITION = "when at least one GOOD candidate has a finite value of the metric"
_AL_CONDITION = "when kernelBasisSet is 'alard-lupton' (a plugin basis may write its own keys)"
_KINDS = {
    "LOCAL": "with each candidate's own kernel",
    "SPATIAL": "with the spatial kernel and background realised at the candidate",
}


def _metric_keys() -> tuple[MetadataKey, ...]:
    keys = []
    for kind, kind_doc in _KINDS.items():
        for name, doc in SUBSTAMP_METRICS.items():
            for stat, stat_doc in AGGREGATE_STATISTICS.items():
                keys.append(MetadataKey(
                    f"KCDiffim{name}_{kind}_{stat}", "float",
                    f"{stat_doc.capitalize()} over the GOOD candidates of the {doc}, {kind_doc}.", _METRIC_CONDITION,
                ))
    for stat, stat_doc in AGGREGATE_STATISTICS.items():
        keys.append(MetadataKey(
            f"KCDiffimMseKernel_SPATIAL_{stat}", "float",
            f"{stat_doc.capitalize()} over the GOOD candidates of the mean squared difference between the spatial "
            "kernel realised at the candidate and its own kernel.",
            _METRIC_CONDITION,
        ))
    return tuple(keys)


#: Keys of the PSF-matching core (``PsfMatchTask``): basis, spatial-fit diagnostics, substamp metrics.
KERNEL_FIT_KEYS: tuple[MetadataKey, ...] = (
    MetadataKey("ALBasisNGauss", "list[int]", "Number of Gaussians of the Alard-Lupton basis.", _AL_CONDITION),
    MetadataKey("ALBasisDegGauss", "list[int]", "Polynomial degree of each Gaussian.", _AL_CONDITION),
    MetadataKey("ALBasisSigGauss", "list[float]", "Sigma of each Gaussian (pixels).", _AL_CONDITION),
    MetadataKey("ALKernelSize", "list[int]", "Kernel side (pixels).", _AL_CONDITION),
    MetadataKey(
        "ALBasisMode", "list[str]",
        "How the sigmas were chosen: 'config', 'convolution' or 'deconvolution'.", _AL_CONDITION,
    ),
    MetadataKey("spatialConditionNum", "float", "Condition number of the spatial kernel fit (conditionNumberType)."),
    MetadataKey(
        "spatialKernelSum", "float",
        "Sum of the spatial kernel at the centre of the cell set: the photometric scale 10^(-0.4 dzp).",
    ),
    MetadataKey("nGoodCandidates", "int", "Kernel candidates GOOD at the end of the fit."),
    MetadataKey("nBadCandidates", "int", "Kernel candidates rejected (BAD) by the fit."),
    *_metric_keys(),
)

_LAUNCHER = "when called through run() (the launcher's entry point)"
_MASKED = "when called through subtractMaskedImages() or matchMaskedImages()"
_QA = "when doQa is True"
_MASK_CONTAMINANTS = "when the kernel sources are detected, maskContaminants is True and a contaminant was found"

_IMAGE_PSF_MATCH = TaskMetadataKeys(
    task="imagePsfMatch",
    task_class="diffim.tasks.imagePsfMatch.ImagePsfMatchTask",
    entry_point="subtractExposures",
    keys=(
        MetadataKey("detectionDuration", "float", "Seconds spent detecting sources (backgrounds, catalogs) on both images."),
        MetadataKey("psfEstimationDuration", "float", "Seconds spent measuring or reading the two PSFs."),
        MetadataKey(
            "templatePsfFwhm", "float", "FWHM of the template PSF (pixels).",
            "when the template PSF width is known (given, modelled or measured)",
        ),
        MetadataKey(
            "templatePsfFwhmSource", "str",
            "Where templatePsfFwhm comes from: 'given', 'psf', 'estimated', 'detection' or 'unknown'.",
        ),
        MetadataKey(
            "sciencePsfFwhm", "float", "FWHM of the science PSF (pixels).",
            "when the science PSF width is known (given, modelled or measured)",
        ),
        MetadataKey("sciencePsfFwhmSource", "str", "Where sciencePsfFwhm comes from (as templatePsfFwhmSource)."),
        MetadataKey("mode", "str", "Direction used: 'convolveTemplate' or 'convolveScience' ('auto' resolved)."),
        MetadataKey("convolvedExposure", "str", "The image convolved, LSST's key: 'Template' or 'Science'."),
        MetadataKey(
            "kernelStampSize", "int",
            "Side (pixels) of the kernel candidates' stamps: the kernel plus the fitted region.",
        ),
        MetadataKey(
            "kernelFitRegionSize", "int",
            "Side (pixels) of the region of each stamp the kernel fit uses (see fitRegionFwhmScaling).",
        ),
        MetadataKey(
            "ALWingGauss", "bool",
            "Whether the basis kept its trailing degree-0 'wing' Gaussian (False: fewer kernel sources than "
            "wingGaussMinSources, or the science image convolved).",
            "when the Alard-Lupton basis configured ends with a degree-0 Gaussian (the default)",
        ),
        MetadataKey("nKernelSources", "int", "Kernel sources given to the kernel fit."),
        MetadataKey(
            "nContaminatedStamps", "int",
            "Kernel candidates whose stamp has pixels given zero weight near a contaminant (maskContaminants).",
            _MASK_CONTAMINANTS,
        ),
        MetadataKey(
            "nContaminatedRejected", "int",
            "Kernel sources left out: maskContaminants would zero-weight more than maxContaminatedFraction of "
            "their fitted region.",
            _MASK_CONTAMINANTS,
        ),
        *KERNEL_FIT_KEYS,
        MetadataKey(
            "photometricRatio", "float",
            "Science / template flux ratio implied by the kernel sum at the centre of the science box.",
        ),
        MetadataKey("differenceUnits", "str", "Photometric units of the difference image: always 'science'."),
        MetadataKey("decorrelated", "bool", "Whether the difference image was decorrelated (doDecorrelation)."),
        MetadataKey(
            "NFalsePositivesTotal", "int",
            "Sources detected on the difference at qaDetectionThreshold (flagged ones left out with qaIgnoreFlagged).",
            _QA,
        ),
        MetadataKey(
            "NFalsePositivesRefAssociated", "int",
            "Of those, sources within qaMatchRadiusPix of a template source.", _QA,
        ),
        MetadataKey(
            "NFalsePositivesSrcAssociated", "int",
            "Of those, sources within qaMatchRadiusPix of a science source.", _QA,
        ),
        MetadataKey(
            "NFalsePositivesUnassociated", "int",
            "Of those, sources near neither a template nor a science source.", _QA,
        ),
    ),
    timers=(
        TimerKeys("run", "The launcher's entry point (subtractExposures).", _LAUNCHER),
        TimerKeys("subtractExposures", "The whole match and subtraction."),
        TimerKeys("subtractMaskedImages", "The whole match and subtraction of masked images.",
                  "when called through subtractMaskedImages()"),
        TimerKeys("matchMaskedImages", "Matching of masked images.", "when called through matchMaskedImages()"),
        TimerKeys("registration", "The pixel-grid (WCS) check and the cut of the template to the science box."),
        TimerKeys("selection", "The kernel-candidate selection (selectKernelCandidates subtask)."),
        TimerKeys("fit", "Building the kernel candidates and the spatial kernel fit."),
        TimerKeys("convolve", "Convolving the image with the matching kernel."),
        TimerKeys("difference", "Forming the difference image and its background.", None),
        TimerKeys("decorrelate", "Decorrelation (the block runs, and records, even when doDecorrelation is False)."),
        TimerKeys("qa", "Detection and association on the difference image.", _QA),
    ),
)

_MODEL_PSF_MATCH = TaskMetadataKeys(
    task="modelPsfMatch",
    task_class="diffim.tasks.modelPsfMatch.ModelPsfMatchTask",
    entry_point="run",
    keys=KERNEL_FIT_KEYS,
    timers=(TimerKeys("run", "The whole PSF-model matching."),),
)

_COUNTERPART = "when the kernel sources are detected (no candidateList) and requireCounterpart is True"
_FLUX_RATIO = "when the kernel sources are detected (no candidateList) and maxFluxRatioSigma > 0"
_DETECTED = "when the kernel sources are detected (no candidateList)"
_CONTAMINATION = "when the kernel sources are detected (no candidateList) and rejectContaminatedStamps"

_SELECT_KERNEL_CANDIDATES = TaskMetadataKeys(
    task="selectKernelCandidates",
    task_class="diffim.tasks.selectKernelCandidates.SelectKernelCandidatesTask",
    entry_point="run",
    keys=(
        MetadataKey(
            "nDetected", "int",
            "Positive detections on the reference image (or rows of candidateList when one is given).",
        ),
        MetadataKey("nSnr", "int", "Of those, sources with S/N in [snrMin, snrMax].", _DETECTED),
        MetadataKey("nIsolated", "int", "Of those, isolated and unblended sources.", _DETECTED),
        MetadataKey("nUnflagged", "int", "Of those, sources neither saturated, masked nor at the edge.", _DETECTED),
        MetadataKey("nCounterpart", "int", "Of those, sources also detected in the image to convolve.", _COUNTERPART),
        MetadataKey(
            "nFluxRatio", "int", "Of those, sources whose flux ratio between the images is consistent.", _FLUX_RATIO
        ),
        MetadataKey(
            "nUncontaminated", "int",
            "Of those, sources whose stamp holds no transient-like or variable source.", _CONTAMINATION,
        ),
        MetadataKey("nCleanStamp", "int", "Of those, sources whose stamp is clean (no excluded mask plane) in both images."),
        MetadataKey("nSelected", "int", "Kernel sources kept (at most maxSources, best rated first)."),
    ),
    timers=(TimerKeys("run", "The whole selection."),),
)

_DECORRELATE = TaskMetadataKeys(
    task="ip_diffim_decorrelateALKernel",
    task_class="diffim.tasks.decorrelate.DecorrelateALKernelTask",
    entry_point="run",
    keys=(
        MetadataKey("scienceVarianceMean", "float", "Clipped mean of the science variance plane (ignoreMaskPlanes left out)."),
        MetadataKey("templateVarianceMean", "float", "Clipped mean of the template variance plane."),
        MetadataKey("decorrelationKernelSum", "float", "Sum of the matching kernel realised at the image centre."),
        MetadataKey("decorrelationVariance", "float", "Per-pixel variance expected of the whitened difference."),
        MetadataKey("decorrelationReach", "int", "Largest offset (pixels) at which the decorrelation filter matters."),
    ),
    timers=(TimerKeys("run", "The whole decorrelation."),),
)

#: Declared keys of every task, by ``_DefaultName``.
TASK_METADATA_KEYS: dict[str, TaskMetadataKeys] = {
    entry.task: entry for entry in (_IMAGE_PSF_MATCH, _MODEL_PSF_MATCH, _SELECT_KERNEL_CANDIDATES, _DECORRELATE)
}


def declared_keys(task: str) -> dict[str, MetadataKey]:
    """Every key declared for a task, timing keys expanded.

    Parameters
    ----------
    task : str
        The task's ``_DefaultName``, e.g. ``"imagePsfMatch"``.

    Returns
    -------
    keys : dict of str to MetadataKey
        Key name -> declaration.

    Raises
    ------
    KeyError
        If no keys are declared for ``task``; the message lists the tasks that have some.
    """
    entry = TASK_METADATA_KEYS.get(task)
    if entry is None:
        msg = f"no metadata keys declared for task {task!r}; declared: {', '.join(TASK_METADATA_KEYS)}"
        raise KeyError(msg)
    return entry.all_keys()
