"""Kernel candidates: a template/science stamp pair around one star and its kernel fits (spec §4).

A :class:`KernelCandidate` keeps two solution slots: ``ORIG`` (its first fit, with the full basis)
and ``PCA`` (any later fit, e.g. on a PCA basis); ``RECENT`` means ``PCA`` if present, else
``ORIG``. Its status (``UNKNOWN`` → ``GOOD``/``BAD``), rating and χ² drive the spatial-cell visits.
"""

from __future__ import annotations

import copy
import enum
import itertools
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..image import Image, MaskedImage
from ..kernel import Kernel, LinearCombinationKernel
from .solutions import RegularizedKernelSolution, StaticKernelSolution
from .statistics import ImageStatistics

__all__ = [
    "CandidateSolution",
    "CandidateStatus",
    "CandidateSwitch",
    "KernelCandidate",
    "KernelCandidateError",
    "SpatialCellCandidate",
]

_log = logging.getLogger("diffim.tasks.matching.candidate")

#: Process-wide candidate ids (afw's ``SpatialCellCandidate`` counter).
_candidate_ids = itertools.count(1)


class KernelCandidateError(RuntimeError):
    """A kernel candidate is used before it has the asked-for solution, or is built wrongly."""


class CandidateStatus(enum.Enum):
    """Status of a spatial-cell candidate (afw's ``SpatialCellCandidate::Status``)."""

    BAD = 0
    GOOD = 1
    UNKNOWN = 2


class CandidateSolution(enum.Enum):
    """Which of a candidate's kernel solutions to use (LSST's ``KernelCandidate::CandidateSwitch``)."""

    #: The first fit.
    ORIG = 0
    #: The latest refit (e.g. on the PCA basis).
    PCA = 1
    #: ``PCA`` if it exists, else ``ORIG``.
    RECENT = 2

    @classmethod
    def coerce(cls, which: CandidateSolution | str) -> CandidateSolution:
        """Accept a member or its name."""
        if isinstance(which, cls):
            return which
        try:
            return cls[str(which)]
        except KeyError:
            msg = f"unknown candidate solution {which!r}; use 'ORIG', 'PCA' or 'RECENT'"
            raise ValueError(msg) from None


#: LSST's name of :class:`CandidateSolution`.
CandidateSwitch = CandidateSolution


class SpatialCellCandidate:
    """A candidate object in a spatial cell: position, unique id, status, rating and χ².

    Parameters
    ----------
    x, y : float
        Centre in parent pixel coordinates.
    rating : float, optional
        Sort key (cells visit candidates by descending rating).
    """

    BAD = CandidateStatus.BAD
    GOOD = CandidateStatus.GOOD
    UNKNOWN = CandidateStatus.UNKNOWN

    def __init__(self, x: float, y: float, rating: float = float("nan")) -> None:
        self._x = float(x)
        self._y = float(y)
        self._id = next(_candidate_ids)
        self._status = CandidateStatus.UNKNOWN
        self._rating = float(rating)
        self._chi2 = sys.float_info.max

    def getXCenter(self) -> float:  # noqa: N802 - LSST name
        """Centre column (parent pixels)."""
        return self._x

    def getYCenter(self) -> float:  # noqa: N802 - LSST name
        """Centre row (parent pixels)."""
        return self._y

    def getId(self) -> int:  # noqa: N802 - LSST name
        """Unique candidate id."""
        return self._id

    def getStatus(self) -> CandidateStatus:  # noqa: N802 - LSST name
        """``UNKNOWN``, ``GOOD`` or ``BAD``."""
        return self._status

    def setStatus(self, status: CandidateStatus | str) -> None:  # noqa: N802 - LSST name
        """Set the status (a member or its name)."""
        if not isinstance(status, CandidateStatus):
            try:
                status = CandidateStatus[str(status)]
            except KeyError:
                msg = f"unknown candidate status {status!r}; use 'UNKNOWN', 'GOOD' or 'BAD'"
                raise ValueError(msg) from None
        self._status = status

    def isBad(self) -> bool:  # noqa: N802 - LSST name
        """Whether the status is ``BAD``."""
        return self._status is CandidateStatus.BAD

    def getCandidateRating(self) -> float:  # noqa: N802 - LSST name
        """The sort key."""
        return self._rating

    def setCandidateRating(self, rating: float) -> None:  # noqa: N802 - LSST name
        """Replace the sort key."""
        self._rating = float(rating)

    def getChi2(self) -> float:  # noqa: N802 - LSST name
        """Goodness of fit (largest float until a fit sets it)."""
        return self._chi2

    def setChi2(self, chi2: float) -> None:  # noqa: N802 - LSST name
        """Set the goodness of fit."""
        self._chi2 = float(chi2)


def _source_flux(source: Any) -> float:
    """PSF instrumental flux of a source record (duck-typed: afw record, mapping or attribute)."""
    getter = getattr(source, "getPsfInstFlux", None)
    if callable(getter):
        return float(getter())
    for key in ("base_PsfFlux_instFlux", "psfInstFlux", "psf_flux"):
        try:
            return float(source[key])
        except (KeyError, TypeError, IndexError, ValueError):
            pass
        if hasattr(source, key):
            return float(getattr(source, key))
    msg = f"cannot read a PSF flux from source {source!r}; give rating= explicitly"
    raise KernelCandidateError(msg)


class KernelCandidate(SpatialCellCandidate):
    """A star's template and science stamps and their PSF-matching kernel fits.

    Parameters
    ----------
    x, y : float
        Candidate centre (parent pixels).
    template_mi : MaskedImage
        Template stamp (the image to be convolved).
    science_mi : MaskedImage
        Science stamp on the same pixel grid.
    config : PsfMatchConfig
        Active kernel config (deep-copied, as LSST copies its PropertySet).
    source : object, optional
        Source record; without ``rating`` the rating is its PSF instrumental flux.
    rating : float, optional
        Explicit rating.

    Notes
    -----
    Without a source or rating, the rating is the mean core S/N of the science stamp:
    :class:`ImageStatistics` of ``S/sqrt(var)`` over the central ``(2r+1)²`` pixels,
    ``r = candidateCoreRadius``; if that fails the candidate starts ``BAD`` (rating NaN).
    """

    ORIG = CandidateSolution.ORIG
    PCA = CandidateSolution.PCA
    RECENT = CandidateSolution.RECENT

    def __init__(
        self,
        x: float,
        y: float,
        template_mi: MaskedImage,
        science_mi: MaskedImage,
        config: Any,
        *,
        source: Any = None,
        rating: float | None = None,
    ) -> None:
        super().__init__(x, y)
        for label, stamp in (("template", template_mi), ("science", science_mi)):
            if not isinstance(stamp, MaskedImage):
                msg = f"the {label} stamp must be a MaskedImage, got {type(stamp).__name__}"
                raise TypeError(msg)
        if template_mi.getBBox() != science_mi.getBBox():
            msg = (
                f"template stamp {template_mi.getBBox()} and science stamp {science_mi.getBBox()} "
                "must cover the same pixels"
            )
            raise KernelCandidateError(msg)
        self._template = template_mi
        self._science = science_mi
        # a private copy, as LSST copies its PropertySet; a frozen config cannot change, so the
        # candidates of one cell set share it (a deep copy per candidate cost 0.3 ms each)
        self._config = config if getattr(config, "frozen", False) is True else copy.deepcopy(config)
        self._source = source
        self._initialized = False
        self._solutions: dict[CandidateSolution, StaticKernelSolution] = {}
        self._variance: Image | None = None
        if rating is not None:
            self._rating = float(rating)
        elif source is not None:
            self._rating = _source_flux(source)
        else:
            stats = ImageStatistics(self._config)
            try:
                stats.apply(science_mi, int(self._config.candidateCoreRadius))
            except Exception as exc:  # noqa: BLE001 - LSST marks the candidate BAD on any failure
                _log.debug("candidate %d: cannot rate its science stamp (%s); marked BAD", self._id, exc)
                self.setStatus(CandidateStatus.BAD)
            else:
                self._rating = stats.getMean()

    @classmethod
    def from_source(
        cls, source: Any, template_mi: MaskedImage, science_mi: MaskedImage, config: Any
    ) -> KernelCandidate:
        """Candidate at a source's centroid (``getX()/getY()`` or ``x``/``y``) rated by its PSF flux."""
        if callable(getattr(source, "getX", None)):
            x, y = source.getX(), source.getY()
        elif hasattr(source, "x"):
            x, y = source.x, source.y
        else:
            x, y = source["x"], source["y"]
        return cls(x, y, template_mi, science_mi, config, source=source)

    # -- simple accessors --------------------------------------------------------------------
    def getSource(self) -> Any:  # noqa: N802 - LSST name
        """The source record (None if built from a position)."""
        return self._source

    def getTemplateMaskedImage(self) -> MaskedImage:  # noqa: N802 - LSST name
        """The template stamp."""
        return self._template

    def getScienceMaskedImage(self) -> MaskedImage:  # noqa: N802 - LSST name
        """The science stamp."""
        return self._science

    def getWidth(self) -> int:  # noqa: N802 - LSST name
        """Stamp width."""
        return self._template.getWidth()

    def getHeight(self) -> int:  # noqa: N802 - LSST name
        """Stamp height."""
        return self._template.getHeight()

    def getConfig(self) -> Any:  # noqa: N802 - LSST-style name
        """The candidate's (copied) kernel config."""
        return self._config

    def isInitialized(self) -> bool:  # noqa: N802 - LSST name
        """Whether a build has completed (ORIG exists and is solved)."""
        return self._initialized

    def getVarianceEstimate(self) -> Image | None:  # noqa: N802 - LSST-style name
        """Variance image used as the weights of the last build (None before)."""
        return self._variance

    # -- building ----------------------------------------------------------------------------
    def _weights(self) -> np.ndarray:
        var = self._science.variance.array.astype(float) + self._template.variance.array.astype(float)
        if self._config.constantVarianceWeighting:
            finite = np.isfinite(var)
            median = float(np.median(var[finite])) if finite.any() else float("nan")
            # LSST: weight by the stamp's median variance, or 1 if it is not positive; zero-weight
            # pixels (+inf, e.g. near a contaminant) keep their zero weight
            var = np.where(np.isposinf(var), np.inf, median if median > 0 else 1.0)
        return var

    def _new_solution(self, basis_list: Sequence[Kernel], H: Any) -> StaticKernelSolution:  # noqa: N803
        fit_bg = bool(self._config.fitForBackground)
        if H is not None:
            return RegularizedKernelSolution(basis_list, fit_bg, H, self._config)
        return StaticKernelSolution(basis_list, fit_bg)

    def build(self, basis_list: Sequence[Kernel], H: Any = None) -> None:  # noqa: N803 - LSST name
        """Fit the kernel on ``basis_list`` (regularized with ``H`` if given).

        The result goes to ``ORIG`` on the first build and to ``PCA`` afterwards. With
        ``checkConditionNumber`` a badly conditioned ``M`` marks the candidate ``BAD`` and returns
        before solving (that slot then raises in the getters). With ``iterateSingleKernel`` (and
        per-pixel weighting) the fit is redone once with the difference image's variance.

        Raises
        ------
        KernelSolutionError
            If the fit fails (bad variances, NaN coefficients); callers mark the candidate BAD.
        """
        cfg = self._config
        slot = CandidateSolution.PCA if self._initialized else CandidateSolution.ORIG
        variance = self._weights()
        self._variance = Image(variance, xy0=self._template.getXY0())
        solution = self._new_solution(basis_list, H)
        # the slot is replaced before building (as LSST): a failed refit leaves no stale PCA solution
        self._solutions[slot] = solution
        solution.build(self._template, self._science, self._variance)
        if cfg.checkConditionNumber:
            cond = solution.getConditionNumber(cfg.conditionNumberType)
            if cond > cfg.maxConditionNumber:
                _log.debug(
                    "candidate %d: condition number %.4g > maxConditionNumber %.4g; marked BAD",
                    self._id, cond, cfg.maxConditionNumber,
                )
                self.setStatus(CandidateStatus.BAD)
                return
        solution.solve()
        if cfg.iterateSingleKernel and not cfg.constantVarianceWeighting:
            diffim = self._difference(solution.getKernel(), solution.getBackground())
            self._variance = Image(diffim.variance.array.astype(float), xy0=self._template.getXY0())
            solution = self._new_solution(basis_list, H)
            self._solutions[slot] = solution
            solution.build(self._template, self._science, self._variance)
            solution.solve()
        self._initialized = True

    # -- solutions ---------------------------------------------------------------------------
    def _slot(self, which: CandidateSolution | str) -> CandidateSolution:
        which = CandidateSolution.coerce(which)
        if which is CandidateSolution.RECENT:
            return CandidateSolution.PCA if CandidateSolution.PCA in self._solutions else CandidateSolution.ORIG
        return which

    def getKernelSolution(  # noqa: N802 - LSST name
        self, which: CandidateSolution | str = CandidateSolution.RECENT
    ) -> StaticKernelSolution:
        """The solution in a slot (raises if the slot is empty or its solution unsolved)."""
        slot = self._slot(which)
        solution = self._solutions.get(slot)
        if solution is None or not solution.isSolved():
            state = "has no" if solution is None else "has an unsolved"
            msg = (
                f"kernel candidate {self._id} {state} {slot.name} solution"
                f"{'' if slot is CandidateSolution.ORIG else ' (it is made by a refit after the first build)'}; "
                "build() it first"
            )
            raise KernelCandidateError(msg)
        return solution

    def getKernel(  # noqa: N802 - LSST name
        self, which: CandidateSolution | str = CandidateSolution.RECENT
    ) -> LinearCombinationKernel:
        """Fitted kernel of a slot."""
        return self.getKernelSolution(which).getKernel()

    def getBackground(self, which: CandidateSolution | str = CandidateSolution.RECENT) -> float:  # noqa: N802
        """Fitted background of a slot."""
        return self.getKernelSolution(which).getBackground()

    def getKsum(self, which: CandidateSolution | str = CandidateSolution.RECENT) -> float:  # noqa: N802
        """Kernel sum of a slot."""
        return self.getKernelSolution(which).getKsum()

    def getKernelImage(self, which: CandidateSolution | str = CandidateSolution.RECENT) -> np.ndarray:  # noqa: N802
        """Kernel image ``[y, x]`` of a slot."""
        return self.getKernelSolution(which).getKernelImage()

    def getImage(self) -> np.ndarray:  # noqa: N802 - LSST name
        """The ``ORIG`` kernel image (afw's candidate image)."""
        return self.getKernelImage(CandidateSolution.ORIG)

    def getM(self, which: CandidateSolution | str = CandidateSolution.RECENT) -> np.ndarray:  # noqa: N802
        """Unregularized normal matrix of a slot (what the spatial fit adds)."""
        return self.getKernelSolution(which).getM()

    def getB(self, which: CandidateSolution | str = CandidateSolution.RECENT) -> np.ndarray:  # noqa: N802
        """Right-hand side of a slot's normal equations."""
        return self.getKernelSolution(which).getB()

    def _difference(self, kernel: Kernel, background: Any) -> MaskedImage:
        from ..kernel.convolve import convolveAndSubtract

        return convolveAndSubtract(self._template, self._science, kernel, background)

    def getDifferenceImage(  # noqa: N802 - LSST name
        self, which: CandidateSolution | str | Kernel = CandidateSolution.RECENT, background: Any = 0.0
    ) -> MaskedImage:
        """Difference image ``S − (K ⋆ T + bg)`` of the stamps.

        Parameters
        ----------
        which : CandidateSwitch, str or Kernel
            A solution slot (its kernel and background), or a kernel to use directly.
        background : float or SpatialFunction, optional
            Background when a kernel is given.
        """
        if isinstance(which, Kernel):
            return self._difference(which, background)
        solution = self.getKernelSolution(which)
        return self._difference(solution.getKernel(), solution.getBackground())

    def __repr__(self) -> str:
        slots = ",".join(s.name for s in self._solutions)
        return (
            f"KernelCandidate(id={self._id}, x={self._x:g}, y={self._y:g}, status={self._status.name}, "
            f"rating={self._rating:.4g}, solutions=[{slots}])"
        )
