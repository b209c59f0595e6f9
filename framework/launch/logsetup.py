"""Logging for one launcher command: console, ``--log-level``, ``--trace``, ``--log-file``.

Everything is undone when the command ends (handlers removed, logger levels restored), so
`diffim.framework.cli.main` can be called repeatedly in one process (tests, notebooks).
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ..config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import DiffimPluginManager

__all__ = ["logging_session", "parse_trace_spec", "plugin_logger_names", "worker_log_levels"]

_IGNORED_TOP = frozenset({"diffim", "builtins", "__main__", "__mp_main__"})


def plugin_logger_names(pm: DiffimPluginManager) -> list[str]:
    """Return the top-level package names of the registered plugins (their loggers' roots).

    Parameters
    ----------
    pm : `~diffim.framework.plugins.DiffimPluginManager`
        The plugin manager.

    Returns
    -------
    names : `list` [`str`]
        E.g. ``["diffim_fits_extra"]``; ``diffim`` itself is left out (always covered).
    """
    names: list[str] = []
    for info in pm.list_plugins():
        plugin = pm.get_plugin(info.name)
        if isinstance(plugin, types.ModuleType):
            module = plugin.__name__
        elif isinstance(plugin, type):
            module = plugin.__module__
        else:
            module = type(plugin).__module__
        top = module.split(".")[0]
        if top not in _IGNORED_TOP and top not in names:
            names.append(top)
    return names


def parse_trace_spec(spec: str) -> tuple[str, int]:
    """Parse ``--trace NAME=N``.

    Parameters
    ----------
    spec : `str`
        E.g. ``"diffim.imagePsfMatch=3"``.

    Returns
    -------
    name, level : `str`, `int`

    Raises
    ------
    ValueError
        One line saying the expected form.
    """
    name, sep, number = spec.partition("=")
    try:
        level = int(number)
    except ValueError:
        level = -2
    if not sep or not name.strip() or level < -1:
        msg = (
            f"bad --trace value {spec!r}: expected LOGGER=N with N an integer >= -1, "
            "e.g. --trace diffim.imagePsfMatch=3"
        )
        raise ValueError(msg)
    return name.strip(), level


def worker_log_levels(
    levels: Sequence[str], traces: Sequence[str], default_loggers: Sequence[str]
) -> list[str]:
    """Express the console defaults, ``--log-level`` and ``--trace`` as explicit level specs.

    Worker processes apply these with `~diffim.framework.log.set_log_levels`, so they log what
    the launching process would.

    Parameters
    ----------
    levels : sequence of `str`
        ``--log-level`` values.
    traces : sequence of `str`
        ``--trace`` values.
    default_loggers : sequence of `str`
        Loggers a component-less level applies to (``diffim`` and the plugin loggers).

    Returns
    -------
    specs : `list` [`str`]
        ``LOGGER=LEVEL`` specs, in order.
    """
    from ..log import MAX_TRACE_LEVEL, parse_log_level_spec

    targets = list(dict.fromkeys(["diffim", *default_loggers]))
    specs = [f"{name}=INFO" for name in targets]
    for spec in levels:
        component, level = parse_log_level_spec(spec)
        if component is None:
            specs += [f"{name}={level}" for name in targets]
        else:
            specs.append(f"{component or '.'}={level}")
    for spec in traces:
        name, number = parse_trace_spec(spec)
        specs += [
            f"TRACE{i}.{name}={'DEBUG' if i <= number else 'INFO'}" for i in range(MAX_TRACE_LEVEL + 1)
        ]
    return specs


@contextlib.contextmanager
def logging_session(
    *,
    levels: Sequence[str] = (),
    traces: Sequence[str] = (),
    log_file: str | None = None,
    long_log: bool = False,
    default_loggers: Sequence[str] = (),
) -> Iterator[logging.Handler | None]:
    """Configure logging for one command and undo it afterwards.

    Parameters
    ----------
    levels : sequence of `str`
        ``--log-level [LOGGER=]LEVEL`` values; component-less ones apply to ``diffim`` and
        ``default_loggers`` (INFO by default).
    traces : sequence of `str`
        ``--trace NAME=N`` values (`~diffim.framework.log.trace_set_at`).
    log_file : `str`, optional
        ``--log-file``: every record that passes the logger levels, as JSON lines (appended).
    long_log : `bool`, optional
        Long console format (time, file and line).
    default_loggers : sequence of `str`
        Plugin loggers covered by the default level.

    Yields
    ------
    handler : `logging.Handler` or `None`
        The JSON log-file handler, if any.

    Raises
    ------
    ValueError
        A malformed ``--log-level`` or ``--trace`` value (nothing is changed then).
    ConfigError
        If the log file cannot be opened.
    """
    from ..log import add_json_log_file, configure_console, set_log_levels, trace_set_at

    parsed_traces = [parse_trace_spec(spec) for spec in traces]  # validate before touching anything
    manager = logging.Logger.manager
    root = logging.getLogger()
    saved = {name: logger.level for name, logger in manager.loggerDict.items() if isinstance(logger, logging.Logger)}
    saved_root = root.level
    before = list(root.handlers)
    file_handler: logging.Handler | None = None
    try:
        configure_console(long=long_log, loggers=default_loggers)
        set_log_levels(levels, default_loggers=default_loggers)
        for name, number in parsed_traces:
            trace_set_at(name, number)
        if log_file:
            try:
                file_handler = add_json_log_file(log_file)
            except OSError as err:
                msg = f"cannot open --log-file {log_file!r}: {err.strerror or err}"
                raise ConfigError(msg) from None
        yield file_handler
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                if handler is file_handler:
                    handler.close()
        root.setLevel(saved_root)
        for name, logger in list(manager.loggerDict.items()):
            if isinstance(logger, logging.Logger):
                logger.setLevel(saved.get(name, logging.NOTSET))
