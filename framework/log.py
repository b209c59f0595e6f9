"""Logging for diffim tasks: LSST's ``lsst.utils.logging`` rebuilt on stdlib `logging`.

What it provides
----------------
* Two extra levels, ``TRACE = 5`` and ``VERBOSE = 15``, registered with `logging.addLevelName`.
* `DiffimLogAdapter`, the type of ``task.log``: a `logging.LoggerAdapter` with ``.trace()``,
  ``.verbose()``, ``getChild()``, ``temporary_log_level()`` and the level constants as attributes.
  Records point at the *caller's* file and line, not at this module.
* LSST's graded trace loggers, `trace_set_at` and `getTraceLogger`.
* Launcher helpers: `parse_log_level_spec`, `set_log_levels`, `configure_console`,
  `JsonLinesFormatter` and `add_json_log_file`.

Two different "trace" notions (as in LSST)
------------------------------------------
1. The **TRACE level** (5, below DEBUG): ``log.trace("...")`` emits a record at level 5 on the
   task's own logger. Turn it on with ``--log-level diffim.imagePsfMatch=TRACE`` (or
   ``logger.setLevel(TRACE)``).
2. The **graded trace loggers** ``TRACE0.<name>`` ... ``TRACE5.<name>``: code logs at DEBUG on
   ``getTraceLogger(log, n)``, a *separate* logger tree, so detail number ``n`` can be enabled on
   its own. ``trace_set_at(name, N)`` sets ``TRACE0..N.<name>`` to DEBUG and the rest to INFO;
   the logger ``name`` itself is left untouched.

Logger names
------------
Every diffim logger lives under `ROOT_LOGGER_NAME` (``"diffim"``); a task's logger is
``diffim.<task full name>``, e.g. ``diffim.imagePsfMatch.selectDetection``. Users coming from LSST
type LSST names (``trace_set_at("lsst.ip.diffim", 4)``); `add_logger_alias` lets the domain
packages map such a prefix onto a diffim prefix so both are set. The table starts empty.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import IO, Any

__all__ = [
    "CRITICAL",
    "DEBUG",
    "ERROR",
    "INFO",
    "MAX_TRACE_LEVEL",
    "NOTSET",
    "ROOT_LOGGER_NAME",
    "TRACE",
    "VERBOSE",
    "WARNING",
    "DiffimLogAdapter",
    "JsonLinesFormatter",
    "add_json_log_file",
    "add_logger_alias",
    "configure_console",
    "getLogger",
    "getTraceLogger",
    "logger_aliases",
    "parse_log_level",
    "parse_log_level_spec",
    "remove_logger_alias",
    "set_log_levels",
    "trace_set_at",
]

TRACE: int = 5
"""Level below DEBUG for very detailed output (``log.trace``)."""
VERBOSE: int = 15
"""Level between DEBUG and INFO (``log.verbose``)."""
CRITICAL: int = logging.CRITICAL
ERROR: int = logging.ERROR
WARNING: int = logging.WARNING
INFO: int = logging.INFO
DEBUG: int = logging.DEBUG
NOTSET: int = logging.NOTSET

logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(VERBOSE, "VERBOSE")

ROOT_LOGGER_NAME: str = "diffim"
"""Name of the logger every diffim logger descends from."""

MAX_TRACE_LEVEL: int = 5
"""Highest graded trace logger: `trace_set_at` manages ``TRACE0`` ... ``TRACE5``."""

# Level names accepted on the command line, most to least severe (also the order of the error text).
_LEVEL_NAMES: dict[str, int] = {
    "CRITICAL": CRITICAL,
    "ERROR": ERROR,
    "WARNING": WARNING,
    "INFO": INFO,
    "VERBOSE": VERBOSE,
    "DEBUG": DEBUG,
    "TRACE": TRACE,
}

# LSST logger-name prefix -> diffim prefix; filled by the domain packages, never here.
_LOGGER_ALIASES: dict[str, str] = {}


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


class DiffimLogAdapter(logging.LoggerAdapter):
    """A logger with LSST's extras: ``trace``, ``verbose``, ``getChild``, level constants.

    Parameters
    ----------
    logger : `logging.Logger`
        The wrapped logger.
    extra : `~collections.abc.Mapping`, optional
        Extra attributes added to every record (merged under any ``extra=`` given per call).

    Notes
    -----
    The inherited methods (``debug``, ``info``, ``warning``, ``error``, ``exception``,
    ``critical``, ``log``) live in the `logging` module, whose frames `logging` skips when it
    looks for the caller; the methods defined here add one to ``stacklevel`` for their own frame,
    so every record carries the caller's ``filename``/``lineno``.
    """

    CRITICAL = CRITICAL
    FATAL = CRITICAL
    ERROR = ERROR
    WARNING = WARNING
    INFO = INFO
    VERBOSE = VERBOSE
    DEBUG = DEBUG
    TRACE = TRACE
    NOTSET = NOTSET

    # LSST's adapter has ``fatal``; reuse the logging-module function so its frame is skipped.
    fatal = logging.LoggerAdapter.critical

    def __init__(self, logger: logging.Logger, extra: Mapping[str, object] | None = None) -> None:
        super().__init__(logger, dict(extra) if extra else None)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Merge the adapter's ``extra`` under the per-call ``extra`` (the stdlib replaces it).

        Parameters
        ----------
        msg : `object`
            The log message.
        kwargs : `~collections.abc.MutableMapping`
            Keyword arguments of the logging call.

        Returns
        -------
        msg, kwargs : `tuple`
            The message and the keyword arguments to pass to the logger.
        """
        if self.extra:
            kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def _log_here(self, level: int, msg: object, args: tuple[object, ...], kwargs: dict[str, Any]) -> None:
        # Two frames of this module sit between the user and logging: the public method and this one.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2
        self.log(level, msg, *args, **kwargs)

    def trace(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Log ``msg`` at the TRACE level (5).

        Parameters
        ----------
        msg : `object`
            Message, %-formatted with ``args``.
        *args : `object`
            Format arguments.
        **kwargs
            As for `logging.Logger.log` (``exc_info``, ``extra``, ``stacklevel`` ...).
        """
        if self.isEnabledFor(TRACE):
            self._log_here(TRACE, msg, args, kwargs)

    def verbose(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Log ``msg`` at the VERBOSE level (15).

        Parameters
        ----------
        msg : `object`
            Message, %-formatted with ``args``.
        *args : `object`
            Format arguments.
        **kwargs
            As for `logging.Logger.log`.
        """
        if self.isEnabledFor(VERBOSE):
            self._log_here(VERBOSE, msg, args, kwargs)

    @property
    def name(self) -> str:
        """Name of the wrapped logger (`str`)."""
        return self.logger.name

    def getChild(self, name: str) -> DiffimLogAdapter:
        """Return the adapter of the child logger ``<self.name>.<name>``.

        Parameters
        ----------
        name : `str`
            Child name (may itself be dotted).

        Returns
        -------
        child : `DiffimLogAdapter`
            Adapter around the child logger, with the same ``extra``.
        """
        return DiffimLogAdapter(self.logger.getChild(name), self.extra)

    @contextlib.contextmanager
    def temporary_log_level(self, level: int | str | None) -> Iterator[None]:
        """Set the logger's level for the duration of a ``with`` block.

        Parameters
        ----------
        level : `int`, `str` or `None`
            New level (a number or a name such as ``"DEBUG"``); `None` leaves the level alone.

        Yields
        ------
        None
        """
        if level is None:
            yield
            return
        old = self.logger.level
        self.logger.setLevel(parse_log_level(level))
        try:
            yield
        finally:
            self.logger.setLevel(old)

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, object] | None]]:
        # Rebuild by name in the other process: loggers are process-global singletons.
        return (_adapter_for_name, (self.logger.name, dict(self.extra) if self.extra else None))

    def __repr__(self) -> str:
        level = logging.getLevelName(self.logger.getEffectiveLevel())
        return f"<DiffimLogAdapter {self.logger.name} ({level})>"


def _adapter_for_name(name: str, extra: dict[str, object] | None) -> DiffimLogAdapter:
    """Unpickling helper for `DiffimLogAdapter`."""
    return DiffimLogAdapter(logging.getLogger(name), extra)


def getLogger(
    name: str | None = None, logger: logging.Logger | logging.LoggerAdapter | None = None
) -> DiffimLogAdapter:
    """Return a `DiffimLogAdapter` for a logger name or an existing logger.

    Parameters
    ----------
    name : `str`, optional
        Logger name; `None` (with no ``logger``) means the Python root logger, as in `logging`.
    logger : `logging.Logger` or `logging.LoggerAdapter`, optional
        Wrap this logger instead of looking one up by name. A `DiffimLogAdapter` is returned as is.

    Returns
    -------
    log : `DiffimLogAdapter`
        The adapter.
    """
    if logger is not None:
        if isinstance(logger, DiffimLogAdapter):
            return logger
        if isinstance(logger, logging.LoggerAdapter):
            return DiffimLogAdapter(logger.logger, logger.extra)
        return DiffimLogAdapter(logger)
    adapter = _ADAPTERS.get(name)
    if adapter is None:
        # adapters hold no state beyond their logger, so one per name is shared
        adapter = _ADAPTERS[name] = DiffimLogAdapter(logging.getLogger(name))
    return adapter


_ADAPTERS: dict[str | None, DiffimLogAdapter] = {}


def _logger_name(logger: str | logging.Logger | logging.LoggerAdapter) -> str:
    """Name of a logger given as a name, a Logger or an adapter; the root logger is ``""``."""
    if isinstance(logger, str):
        return logger
    base = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
    return "" if base is logging.root else base.name


# --------------------------------------------------------------------------------------------
# LSST logger-name aliases
# --------------------------------------------------------------------------------------------


def add_logger_alias(our_prefix: str, lsst_prefix: str) -> None:
    """Make LSST logger names under ``lsst_prefix`` also address ``our_prefix``.

    The argument order matches :func:`diffim.framework.debug.add_alias`. After
    ``add_logger_alias("diffim", "lsst.ip.diffim")``, ``trace_set_at("lsst.ip.diffim", 4)``
    and ``--log-level lsst.ip.diffim=DEBUG`` set the LSST-named loggers *and* the ``diffim`` ones.

    Parameters
    ----------
    our_prefix : `str`
        The diffim prefix, e.g. ``"diffim"``.
    lsst_prefix : `str`
        Dotted LSST logger-name prefix it answers to, e.g. ``"lsst.ip.diffim"``.
    """
    if not lsst_prefix or not our_prefix:
        msg = f"logger alias needs two non-empty prefixes, got {lsst_prefix!r} -> {our_prefix!r}"
        raise ValueError(msg)
    _LOGGER_ALIASES[lsst_prefix] = our_prefix


def remove_logger_alias(lsst_prefix: str) -> None:
    """Forget the alias registered for ``lsst_prefix`` (no error if there is none).

    Parameters
    ----------
    lsst_prefix : `str`
        The LSST prefix given to `add_logger_alias`.
    """
    _LOGGER_ALIASES.pop(lsst_prefix, None)


def logger_aliases() -> dict[str, str]:
    """Return a copy of the alias table (LSST prefix -> diffim prefix).

    Returns
    -------
    aliases : `dict` [`str`, `str`]
        The registered aliases.
    """
    return dict(_LOGGER_ALIASES)


def _with_aliases(name: str) -> list[str]:
    """``name`` followed by the diffim names its LSST prefix maps to (no duplicates)."""
    names = [name]
    for lsst_prefix, our_prefix in _LOGGER_ALIASES.items():
        if name == lsst_prefix or name.startswith(lsst_prefix + "."):
            mapped = our_prefix + name[len(lsst_prefix) :]
            if mapped not in names:
                names.append(mapped)
    return names


# --------------------------------------------------------------------------------------------
# Graded trace loggers
# --------------------------------------------------------------------------------------------


def _trace_logger_name(name: str, index: int) -> str:
    return f"TRACE{index}.{name}" if name else f"TRACE{index}"


def trace_set_at(name: str, number: int) -> None:
    """Enable graded trace loggers ``TRACE0.<name>`` ... ``TRACE<number>.<name>``.

    Loggers ``TRACE<i>.<name>`` with ``i <= number`` are set to DEBUG, those up to
    `MAX_TRACE_LEVEL` above it to INFO. The logger ``name`` itself is not touched: this is not
    the TRACE *level* (see the module docstring). A name under a registered LSST alias
    (`add_logger_alias`) sets the matching diffim trace loggers too.

    Parameters
    ----------
    name : `str`
        Base logger name, e.g. ``"diffim.imagePsfMatch"`` or ``"lsst.ip.diffim"``.
    number : `int`
        Highest trace detail to enable; a negative number turns them all off (INFO).
    """
    for base in _with_aliases(name):
        for index in range(MAX_TRACE_LEVEL + 1):
            level = DEBUG if index <= number else INFO
            logging.getLogger(_trace_logger_name(base, index)).setLevel(level)


def getTraceLogger(logger: str | logging.Logger | logging.LoggerAdapter, trace_level: int) -> DiffimLogAdapter:
    """Return the graded trace logger ``TRACE<trace_level>.<logger name>``.

    Code logs at DEBUG on it; the record appears once `trace_set_at` enabled that detail.

    Parameters
    ----------
    logger : `str`, `logging.Logger` or `logging.LoggerAdapter`
        The logger (or its name) whose trace logger is wanted.
    trace_level : `int`
        Detail number, 0 (least detailed) to `MAX_TRACE_LEVEL`.

    Returns
    -------
    log : `DiffimLogAdapter`
        Adapter for the trace logger.
    """
    return getLogger(_trace_logger_name(_logger_name(logger), trace_level))


# --------------------------------------------------------------------------------------------
# Launcher helpers
# --------------------------------------------------------------------------------------------

_ALLOWED_TEXT = ", ".join(_LEVEL_NAMES) + " (any case) or a non-negative integer"


def parse_log_level(value: int | str) -> int:
    """Convert a level name (any case) or number to an `int` level.

    Parameters
    ----------
    value : `int` or `str`
        ``"debug"``, ``"VERBOSE"``, ``"15"``, ``10`` ...

    Returns
    -------
    level : `int`
        The numeric level.

    Raises
    ------
    ValueError
        If ``value`` is not a known name or a non-negative integer.
    """
    if isinstance(value, bool):  # bool is an int subclass; True is not a level
        msg = f"log level {value!r} is not valid; use one of {_ALLOWED_TEXT}"
        raise ValueError(msg)
    if isinstance(value, int):
        level = value
    else:
        text = str(value).strip()
        upper = text.upper()
        if upper in _LEVEL_NAMES:
            return _LEVEL_NAMES[upper]
        try:
            level = int(text)
        except ValueError:
            msg = f"log level {value!r} is not valid; use one of {_ALLOWED_TEXT}"
            raise ValueError(msg) from None
    if level < 0:
        msg = f"log level {value!r} is not valid; use one of {_ALLOWED_TEXT}"
        raise ValueError(msg)
    return level


def parse_log_level_spec(spec: str) -> tuple[str | None, int]:
    """Parse a ``--log-level`` value: ``LEVEL`` or ``COMPONENT=LEVEL``.

    Parameters
    ----------
    spec : `str`
        E.g. ``"DEBUG"``, ``"diffim.imagePsfMatch=trace"``, ``".=WARNING"``, ``"=INFO"``, ``"5"``.

    Returns
    -------
    logger_name : `str` or `None`
        `None` when no component was given (the caller applies the level to its default
        loggers); ``""`` (the Python root logger) for a component of ``.`` or empty.
    level : `int`
        The numeric level.

    Raises
    ------
    ValueError
        One line quoting the spec and listing what is allowed.
    """
    component: str | None
    if "=" in spec:
        component, _, level_text = spec.partition("=")
        component = component.strip()
        if component == ".":
            component = ""
    else:
        component, level_text = None, spec
    try:
        level = parse_log_level(level_text)
    except ValueError:
        msg = (
            f"bad log level spec {spec!r}: use LEVEL or COMPONENT=LEVEL (COMPONENT '.' is the root logger) "
            f"where LEVEL is one of {_ALLOWED_TEXT}"
        )
        raise ValueError(msg) from None
    return component, level


def _default_targets(default_loggers: Iterable[str]) -> list[str]:
    """`ROOT_LOGGER_NAME` plus the given names, in order, without duplicates."""
    return list(dict.fromkeys([ROOT_LOGGER_NAME, *default_loggers]))


def set_log_levels(specs: Iterable[str], default_loggers: Iterable[str] = (ROOT_LOGGER_NAME,)) -> dict[str, int]:
    """Apply ``--log-level`` specs in order.

    A spec without a component applies to `ROOT_LOGGER_NAME` **and** every name in
    ``default_loggers`` (e.g. plugin loggers). LSST's pipetask applied it to the ``lsst`` tree
    only, which hid the INFO output of user packages. A component under a registered LSST alias
    (`add_logger_alias`) sets the matching diffim logger too.

    Parameters
    ----------
    specs : iterable of `str`
        Values as accepted by `parse_log_level_spec`.
    default_loggers : iterable of `str`, optional
        Extra loggers that a component-less spec applies to.

    Returns
    -------
    applied : `dict` [`str`, `int`]
        Logger name (``""`` for the root logger) -> level finally set.

    Raises
    ------
    ValueError
        If a spec is malformed (nothing is changed then).
    """
    parsed = [parse_log_level_spec(spec) for spec in specs]  # validate all before touching anything
    defaults = _default_targets(default_loggers)
    applied: dict[str, int] = {}
    for component, level in parsed:
        targets = defaults if component is None else _with_aliases(component)
        for name in targets:
            logging.getLogger(name or None).setLevel(level)
            applied[name] = level
    return applied


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS: frozenset[str] = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonLinesFormatter(logging.Formatter):
    """Format each record as one JSON object on one line.

    Keys: ``time`` (ISO 8601, UTC), ``level``, ``name``, ``message``, ``filename``, ``lineno``,
    ``funcName``, ``process``; ``exc_info`` and ``stack_info`` (text) when present; then any
    ``extra=`` attributes (a name clashing with a key above gets an ``extra.`` prefix). Values that
    JSON cannot represent are written with `str`.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for ``record``.

        Parameters
        ----------
        record : `logging.LogRecord`
            The record.

        Returns
        -------
        line : `str`
            One JSON object, no newline.
        """
        import datetime  # noqa: PLC0415 - only JSON log files need these
        import json  # noqa: PLC0415

        data: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc).isoformat(),
            "level": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
            "filename": record.filename,
            "lineno": record.lineno,
            "funcName": record.funcName,
            "process": record.process,
        }
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS:
                data[f"extra.{key}" if key in data else key] = value
        return json.dumps(data, default=str)


def add_json_log_file(
    path: str | os.PathLike[str], level: int | str = NOTSET, logger_name: str = "", *, mode: str = "a"
) -> logging.FileHandler:
    """Write log records to ``path`` as JSON lines (`JsonLinesFormatter`).

    Parameters
    ----------
    path : `str` or `os.PathLike`
        Output file (UTF-8).
    level : `int` or `str`, optional
        Handler threshold; the default passes everything the loggers let through.
    logger_name : `str`, optional
        Logger to attach the handler to; ``""`` is the Python root logger.
    mode : `str`, optional
        ``"a"`` (append, default) or ``"w"`` (truncate).

    Returns
    -------
    handler : `logging.FileHandler`
        The installed handler; remove it with ``logging.getLogger(logger_name).removeHandler``
        and close it when done.
    """
    handler = logging.FileHandler(os.fspath(path), mode=mode, encoding="utf-8")
    handler.setLevel(parse_log_level(level))
    handler.setFormatter(JsonLinesFormatter())
    logging.getLogger(logger_name or None).addHandler(handler)
    return handler


_SHORT_FORMAT = "%(name)s %(levelname)s: %(message)s"
_LONG_FORMAT = "%(levelname)s %(asctime)s %(name)s (%(filename)s:%(lineno)d) - %(message)s"
_CONSOLE_MARK = "_diffim_console"


def _console_formatter(long: bool) -> logging.Formatter:
    formatter = logging.Formatter(_LONG_FORMAT if long else _SHORT_FORMAT)
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03d"
    return formatter


def configure_console(
    level: int | str = INFO,
    long: bool = False,
    *,
    stream: IO[str] | None = None,
    loggers: Iterable[str] = (ROOT_LOGGER_NAME,),
) -> logging.StreamHandler[IO[str]]:
    """Install (once) a console handler on the Python root logger and set the diffim level.

    Calling it again updates the existing handler (format, stream) instead of adding another.
    The handler itself has no threshold: what is shown is decided by the logger levels, so later
    `set_log_levels` calls (``--log-level``) take effect.

    Parameters
    ----------
    level : `int` or `str`, optional
        Level set on `ROOT_LOGGER_NAME` and on every name in ``loggers``.
    long : `bool`, optional
        `False`: ``name LEVEL: msg``; `True`: ``LEVEL time name (file:line) - msg``.
    stream : file-like, optional
        Where to write; default `sys.stderr` at call time.
    loggers : iterable of `str`, optional
        More loggers (e.g. plugin loggers) to set to ``level``.

    Returns
    -------
    handler : `logging.StreamHandler`
        The console handler.
    """
    root = logging.getLogger()
    target = sys.stderr if stream is None else stream
    handler = next((h for h in root.handlers if getattr(h, _CONSOLE_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(target)
        setattr(handler, _CONSOLE_MARK, True)
        root.addHandler(handler)
    elif handler.stream is not target:
        handler.setStream(target)
    handler.setLevel(NOTSET)
    handler.setFormatter(_console_formatter(long))
    numeric = parse_log_level(level)
    for name in _default_targets(loggers):
        logging.getLogger(name).setLevel(numeric)
    return handler
