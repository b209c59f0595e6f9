"""Resource-usage timing into task metadata: `timeMethod`, `timer`, `logInfo`.

Keys (LSST ``lsst.utils.timer`` names, so existing dashboards keep working), for a method or
block called ``<name>`` and each ``<side>`` in ``Start``/``End``:

==========================================  =========================================================
``<name><side>Utc``                         ISO-8601 UTC wall-clock time (``...+00:00``)
``<name><side>CpuTime``                     `time.process_time` (s)
``<name><side>UserTime``                    ``ru_utime`` (s)
``<name><side>SystemTime``                  ``ru_stime`` (s)
``<name><side>MaxResidentSetSize``          ``ru_maxrss`` in **bytes** (Linux reports KiB; converted)
``<name><side>MinorPageFaults``             ``ru_minflt``
``<name><side>MajorPageFaults``             ``ru_majflt``
``<name><side>BlockInputs``                 ``ru_inblock``
``<name><side>BlockOutputs``                ``ru_oublock``
``<name><side>VoluntaryContextSwitches``    ``ru_nvcsw``
``<name><side>InvoluntaryContextSwitches``  ``ru_nivcsw``
``<name>Duration``                          wall seconds from `time.perf_counter` (ours, not LSST's)
``__version__``, ``nodeName``               scalars, set once per metadata (``1``, the hostname)
==========================================  =========================================================

Differences from LSST, on purpose:

* **One snapshot per side**: a single ``getrusage(RUSAGE_SELF)``, one ``process_time()``
  and one ``time.time()`` (formatted without ``datetime``), so a timed call costs a few
  microseconds instead of ~128 µs.
* **Bounded growth**: LSST appends every call to every array forever. Here each array keeps
  only the last `MAX_RECORDS` values (rolling; oldest dropped), so ``md["runEndCpuTime"]``
  is the latest call and ``md.getArray("runEndCpuTime")`` the last ≤ `MAX_RECORDS` calls.
  Change the module constant for a process-wide default, or pass ``max_records=`` to
  `timeMethod` / `timer` (``None`` = unbounded, like LSST).
* The DEBUG log line is only formatted when the logger is enabled for that level.

On platforms without the `resource` module (Windows) only ``Utc``, ``CpuTime`` and
``Duration`` are recorded.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

from .metadata import TaskMetadata

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "MAX_RECORDS",
    "duration_from_timeMethod",
    "logInfo",
    "timeMethod",
    "timer",
]

#: Default number of values kept per timing key (rolling window, oldest dropped).
MAX_RECORDS: int = 10

P = ParamSpec("P")
R = TypeVar("R")
Logger = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg]

# ru_maxrss is KiB on Linux/BSD but bytes on macOS.
_MAXRSS_TO_BYTES: Final[int] = 1 if sys.platform == "darwin" else 1024

_RUSAGE_SUFFIXES: Final[tuple[str, ...]] = (
    "UserTime",
    "SystemTime",
    "MaxResidentSetSize",
    "MinorPageFaults",
    "MajorPageFaults",
    "BlockInputs",
    "BlockOutputs",
    "VoluntaryContextSwitches",
    "InvoluntaryContextSwitches",
)
_SUFFIXES: Final[tuple[str, ...]] = (
    ("Utc", "CpuTime", *_RUSAGE_SUFFIXES) if resource is not None else ("Utc", "CpuTime")
)

_process_time = time.process_time
_wall = time.time
_perf_counter = time.perf_counter
_DEBUG = logging.DEBUG

# --------------------------------------------------------------------- snapshot
# UTC formatting: datetime.isoformat costs ~1.3 µs; the "YYYY-MM-DDTHH:MM:SS" part only
# changes once a second, so cache it and append the microseconds.
_utc_cache: tuple[int, str] = (-1, "")


def _utc(wall: float) -> str:
    global _utc_cache
    sec = int(wall)
    cache = _utc_cache
    if cache[0] != sec:
        cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        _utc_cache = cache  # rebinding a tuple is atomic: safe across threads
    # %d truncates the float microseconds; cheaper than int() plus an f-string format spec.
    return "%s.%06d+00:00" % (cache[1], (wall - sec) * 1e6)  # noqa: UP031


if resource is not None:
    _getrusage = resource.getrusage
    _RUSAGE_SELF = resource.RUSAGE_SELF

    def _snapshot() -> tuple[Any, ...]:
        """Return one side's values, in `_SUFFIXES` order."""
        wall = _wall()
        cpu = _process_time()
        ru = _getrusage(_RUSAGE_SELF)
        return (
            _utc(wall),
            cpu,
            ru.ru_utime,
            ru.ru_stime,
            ru.ru_maxrss * _MAXRSS_TO_BYTES,
            ru.ru_minflt,
            ru.ru_majflt,
            ru.ru_inblock,
            ru.ru_oublock,
            ru.ru_nvcsw,
            ru.ru_nivcsw,
        )

else:  # pragma: no cover - Windows

    def _snapshot() -> tuple[Any, ...]:
        """Return one side's values, in `_SUFFIXES` order."""
        return (_utc(_wall()), _process_time())


# --------------------------------------------------------------------- keys
_node_name: str | None = None


def _get_node_name() -> str:
    global _node_name
    if _node_name is None:
        import socket  # lazy: keeps `import diffim.framework` light

        _node_name = socket.gethostname()
    return _node_name


_key_cache: dict[str, tuple[str, ...]] = {}


def _keys(prefix: str) -> tuple[str, ...]:
    """Return ``prefix + suffix`` for every suffix (cached: key strings are reused)."""
    keys = _key_cache.get(prefix)
    if keys is None:
        keys = tuple(prefix + s for s in _SUFFIXES)
        _key_cache[prefix] = keys
    return keys


def _check_max_records(max_records: int | None) -> None:
    if max_records is not None and (type(max_records) is not int or max_records < 1):
        msg = f"max_records must be a positive int or None, got {max_records!r}"
        raise ValueError(msg)


# --------------------------------------------------------------------- recording
def _ensure_header(metadata: Any) -> None:
    """Set the ``__version__`` / ``nodeName`` scalars once per metadata.

    Called before the Start snapshot so the one-off hostname lookup is not charged to the
    timed code.
    """
    if isinstance(metadata, TaskMetadata):
        if "nodeName" in metadata._data:
            return
    elif "nodeName" in metadata:
        return
    metadata["__version__"] = 1
    metadata["nodeName"] = _get_node_name()


def _record(
    metadata: Any,
    keys: tuple[str, ...],
    values: tuple[Any, ...],
    max_records: int | None,
) -> None:
    if isinstance(metadata, TaskMetadata):
        metadata.add_many(keys, values, max_records=max_records)
        return
    # Duck-typed fallback (e.g. a real lsst.pipe.base.TaskMetadata): unbounded add().
    for key, value in zip(keys, values, strict=True):
        metadata.add(key, value)


def _emit(log: Logger, level: int, prefix: str, keys: tuple[str, ...], values: tuple[Any, ...]) -> None:
    """Log one snapshot as ``<prefix>: Utc=..., CpuTime=..., ...`` (caller checked the level)."""
    start = len(prefix)
    body = ", ".join(f"{k[start:]}={v}" for k, v in zip(keys, values, strict=True))
    log.log(level, "%s: %s", prefix, body)


def _log(log: Logger | None, level: int, prefix: str, keys: tuple[str, ...], values: tuple[Any, ...]) -> None:
    if log is not None and log.isEnabledFor(level):
        _emit(log, level, prefix, keys, values)


def logInfo(  # noqa: N802 (LSST name)
    obj: Any = None,
    prefix: str = "",
    logLevel: int = _DEBUG,  # noqa: N803 (LSST name)
    metadata: TaskMetadata | None = None,
    logger: Logger | None = None,
    *,
    max_records: int | None | EllipsisType = ...,
) -> None:
    """Record one resource snapshot under ``prefix`` (e.g. ``"runStart"``) and log it.

    Parameters
    ----------
    obj : `object`, optional
        Object whose ``metadata`` and ``log`` attributes are used when ``metadata`` /
        ``logger`` are not given.
    prefix : `str`
        Key prefix, normally ``<name>Start`` or ``<name>End``.
    logLevel : `int`, optional
        Level of the log line (default DEBUG); nothing is formatted if disabled.
    metadata : `TaskMetadata`, optional
        Where to record; if neither this nor ``obj.metadata`` exists, only logs.
    logger : `logging.Logger` or `logging.LoggerAdapter`, optional
        Where to log; defaults to ``obj.log``.
    max_records : `int` or `None`, optional
        Values kept per key; ``...`` (default) means `MAX_RECORDS` read at call time,
        ``None`` = unbounded.
    """
    if max_records is ...:
        max_records = MAX_RECORDS
    _check_max_records(max_records)
    if metadata is None:
        metadata = getattr(obj, "metadata", None)
    if logger is None:
        logger = getattr(obj, "log", None)
    keys = _keys(prefix)
    if metadata is not None:
        _ensure_header(metadata)
    values = _snapshot()
    if metadata is not None:
        _record(metadata, keys, values, max_records)
    _log(logger, logLevel, prefix, keys, values)


class _Timer:
    """Context manager behind `timer` (a class: cheaper than ``contextlib``)."""

    __slots__ = ("_duration_key", "_end", "_level", "_log", "_max", "_metadata", "_name", "_start", "_t0")

    def __init__(
        self,
        metadata: TaskMetadata | None,
        name: str,
        log: Logger | None,
        max_records: int | None,
        level: int,
    ) -> None:
        self._metadata = metadata
        self._name = name
        self._log = log
        self._max = max_records
        self._level = level
        self._start = _keys(name + "Start")
        self._end = _keys(name + "End")
        self._duration_key = name + "Duration"
        self._t0 = 0.0

    def __enter__(self) -> None:
        if self._metadata is not None:
            _ensure_header(self._metadata)
        values = _snapshot()
        if self._metadata is not None:
            _record(self._metadata, self._start, values, self._max)
        _log(self._log, self._level, self._name + "Start", self._start, values)
        self._t0 = _perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration = _perf_counter() - self._t0
        values = _snapshot()
        if self._metadata is not None:
            _record(self._metadata, (*self._end, self._duration_key), (*values, duration), self._max)
        _log(self._log, self._level, self._name + "End", self._end, values)


def timer(
    metadata: TaskMetadata | None,
    name: str,
    log: Logger | None = None,
    *,
    max_records: int | None | EllipsisType = ...,
    logLevel: int = _DEBUG,  # noqa: N803 (LSST name)
) -> _Timer:
    """Context manager recording ``<name>Start*`` / ``<name>End*`` / ``<name>Duration``.

    Parameters
    ----------
    metadata : `TaskMetadata` or `None`
        Where to record (``None``: only log).
    name : `str`
        Key prefix for the block, e.g. ``"solve"``.
    log : `logging.Logger` or `logging.LoggerAdapter`, optional
        Logger for the DEBUG lines (formatted only if enabled).
    max_records : `int` or `None`, optional
        Values kept per key; ``...`` (default) means `MAX_RECORDS` read when called,
        ``None`` = unbounded.
    logLevel : `int`, optional
        Level of the two log lines.

    Returns
    -------
    cm : context manager
        Use as ``with timer(task.metadata, "solve", task.log): ...``. End values are
        recorded even if the block raises; the exception propagates.
    """
    if max_records is ...:
        max_records = MAX_RECORDS
    _check_max_records(max_records)
    return _Timer(metadata, name, log, max_records, logLevel)


@overload
def timeMethod(func: Callable[P, R]) -> Callable[P, R]: ...  # noqa: N802


@overload
def timeMethod(  # noqa: N802
    func: None = None,
    *,
    max_records: int | None | EllipsisType = ...,
    logLevel: int = ...,  # noqa: N803
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def timeMethod(  # noqa: N802 (LSST name)
    func: Callable[P, R] | None = None,
    *,
    max_records: int | None | EllipsisType = ...,
    logLevel: int = _DEBUG,  # noqa: N803 (LSST name)
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a method to record resource usage into ``self.metadata`` on every call.

    Usable bare (``@timeMethod``) or with options (``@timeMethod(max_records=100)``).

    Parameters
    ----------
    func : callable, optional
        The method (when used bare).
    max_records : `int` or `None`, optional
        Values kept per key; ``...`` (default) means the module's `MAX_RECORDS` read at
        each call.
        ``None`` keeps every call (LSST behaviour, unbounded growth).
    logLevel : `int`, optional
        Level of the ``<method>Start`` / ``<method>End`` log lines on ``self.log``
        (default DEBUG; not formatted unless enabled).

    Returns
    -------
    wrapped : callable
        The wrapper (``functools.wraps`` applied).

    Notes
    -----
    If ``self`` has no ``metadata`` attribute (or it is None) the method is simply called.
    If the method raises, the End values and ``Duration`` are still recorded and the
    exception is re-raised. Keys are listed in the module docstring.
    """
    use_default = max_records is ...
    fixed_cap: int | None = None
    if not isinstance(max_records, EllipsisType):
        _check_max_records(max_records)
        fixed_cap = max_records

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = fn.__name__
        start_prefix = name + "Start"
        end_prefix = name + "End"
        start_keys = _keys(start_prefix)
        end_keys = (*_keys(end_prefix), name + "Duration")
        level = logLevel

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            metadata = getattr(args[0], "metadata", None) if args else None
            if metadata is None:
                return fn(*args, **kwargs)
            log = getattr(args[0], "log", None)
            cap = MAX_RECORDS if use_default else fixed_cap
            _ensure_header(metadata)
            values = _snapshot()
            _record(metadata, start_keys, values, cap)
            if log is not None and log.isEnabledFor(level):
                _emit(log, level, start_prefix, start_keys, values)
            t0 = _perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                duration = _perf_counter() - t0
                values = _snapshot()
                _record(metadata, end_keys, (*values, duration), cap)
                if log is not None and log.isEnabledFor(level):
                    _emit(log, level, end_prefix, end_keys[:-1], values)

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate


def duration_from_timeMethod(  # noqa: N802 (LSST name)
    metadata: TaskMetadata | None,
    method_name: str,
    clock: str = "Cpu",
) -> float | None:
    """Return the latest duration of a `timeMethod`-decorated method (or `timer` block).

    Parameters
    ----------
    metadata : `TaskMetadata` or `None`
        Metadata the method recorded into.
    method_name : `str`
        Method (or block) name, e.g. ``"run"``.
    clock : `str`, optional
        ``"Cpu"`` (default, as LSST), ``"User"`` or ``"System"``: End minus Start of
        ``<method>{Start,End}<clock>Time``; ``"Wall"``: the recorded ``<method>Duration``.

    Returns
    -------
    duration : `float` or `None`
        Seconds for the most recent call, or `None` if ``metadata`` is None or the keys are
        missing.
    """
    if clock not in {"Cpu", "User", "System", "Wall"}:
        msg = f"clock must be 'Cpu', 'User', 'System' or 'Wall', got {clock!r}"
        raise ValueError(msg)
    if metadata is None:
        return None
    if clock == "Wall":
        value = metadata.get(f"{method_name}Duration")
        return None if value is None else float(value)
    start = metadata.get(f"{method_name}Start{clock}Time")
    end = metadata.get(f"{method_name}End{clock}Time")
    if start is None or end is None:
        return None
    return float(end) - float(start)
