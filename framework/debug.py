"""Debug switches for tasks and displays: LSST's ``lsstDebug``, without its sharp edges.

How it is used
--------------
Tasks and display code call ``debug_info(__name__)`` (Task does it once, at construction) and
read flags from the returned `DebugInfo`: ``debug_info(name).display``. A flag nobody set reads as
`False`. Users switch flags on in a ``debug.py`` file that the launcher loads with `load_debug`
(``--debug``), either natively::

    from diffim.framework import debug
    info = debug.getInfo("diffim.tasks.psfMatch")
    info.display = True

or with an unchanged LSST file, which replaces ``lsstDebug.Info`` by its own function::

    import lsstDebug
    def DebugInfo(name):
        di = lsstDebug.getInfo(name)
        if name == "lsst.ip.diffim.psfMatch":
            di.display = True
        return di
    lsstDebug.Info = DebugInfo
    lsstDebug.frame = 1

That works because, when no real ``lsstDebug`` is installed, `install_lsstdebug_shim` registers
*this module* as ``lsstDebug``: the file's ``lsstDebug.Info = ...`` and ``lsstDebug.frame = 1``
are writes to this module's attributes, and `debug_info` calls whatever ``Info`` currently is.

Differences from LSST
---------------------
* Flags live in a registry keyed by dotted name (`DebugInfo` objects), not in the globals of the
  named module: no module-global pollution, and no `KeyError` for modules not imported yet.
* Names can be aliased (`add_alias`): with ``("diffim.tasks", "lsst.ip.diffim")`` registered, the
  names ``diffim.tasks.psfMatch`` and ``lsst.ip.diffim.psfMatch`` share one `DebugInfo`, so an
  LSST file that tests ``name == "lsst.ip.diffim.psfMatch"`` drives the diffim task. The alias
  table starts empty; the domain packages fill it.
* ``frame`` exists from the start (1), and `load_debug` says which file it loaded and turns a
  broken file into a one-line `DebugFileError`.

Where displays go
-----------------
Display plugins write their figures under `display_dir` (default ``./diffim-debug``). The
launcher points it at each job's folder, so ``diffim run ... -o OUTDIR --debug`` puts them in
``OUTDIR/debug`` (``OUTDIR/<id>/debug`` for the rows of an inputs table), unless the debug file
chose a folder itself with `set_display_dir`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_DISPLAY_DIR",
    "DebugFileError",
    "DebugInfo",
    "Info",
    "add_alias",
    "debug_aliases",
    "debug_info",
    "display_dir",
    "frame",
    "getDebugFrame",
    "getInfo",
    "install_lsstdebug_shim",
    "load_debug",
    "remove_alias",
    "reset_debug",
    "set_display_dir",
]

DEBUG_MODULE_NAME = "debug"
"""Module name a user's debug file is imported (or registered) as."""

LSSTDEBUG_MODULE_NAME = "lsstDebug"
"""Module name LSST code and LSST-style debug files import."""

frame: int = 1
"""Display frame counter; a user's debug file may set it, display code increments it."""

DEFAULT_DISPLAY_DIR = "diffim-debug"
"""Folder (relative to the working directory) displays write to when nobody chose one."""

# the folder chosen with set_display_dir (None: DEFAULT_DISPLAY_DIR)
_display_dir: Path | None = None

_log = logging.getLogger(__name__)


class DebugFileError(RuntimeError):
    """A debug file could not be found or raised while it was executed."""


class DebugInfo:
    """Attribute bag of debug flags for one dotted name; unset flags read as `False`.

    Parameters
    ----------
    name : `str`
        The dotted name (module or task) the flags belong to.

    Notes
    -----
    Obtain instances through `getInfo` / `debug_info` so that every caller shares the registry
    object for a name. Names starting with a double underscore are not treated as flags (they
    raise `AttributeError` as usual), so copying and pickling behave normally.
    """

    __slots__ = ("__dict__", "_debug_name", "_fallbacks")

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_debug_name", name)
        # Foreign objects with dynamic attributes (a real lsstDebug.Info), consulted on reads.
        object.__setattr__(self, "_fallbacks", {})

    def __getattr__(self, attr: str) -> Any:
        # Only reached when ``attr`` was never set on this object.
        if attr.startswith("__"):
            raise AttributeError(attr)
        for source in self._fallbacks.values():
            value = getattr(source, attr, False)
            if value is not False:
                return value
        return False

    def as_dict(self) -> dict[str, Any]:
        """Return the flags that were set, as a new `dict`.

        Returns
        -------
        flags : `dict` [`str`, `object`]
            Flag name -> value.
        """
        return dict(vars(self))

    def __repr__(self) -> str:
        flags = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"DebugInfo({self._debug_name!r}{', ' if flags else ''}{flags})"

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        # Fallbacks wrap live module state of this process, so only the set flags travel.
        return (_rebuild_debug_info, (self._debug_name, self.as_dict()))


def _rebuild_debug_info(name: str, flags: dict[str, Any]) -> DebugInfo:
    """Unpickling helper for `DebugInfo`."""
    info = DebugInfo(name)
    vars(info).update(flags)
    return info


# dotted name (canonical, i.e. our spelling) -> shared DebugInfo
_registry: dict[str, DebugInfo] = {}
# LSST prefix -> our prefix, e.g. "lsst.ip.diffim" -> "diffim.tasks"; filled by domain packages.
_aliases: dict[str, str] = {}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _canonical(name: str) -> str:
    """Our spelling of ``name``: an aliased LSST prefix (longest first) is replaced by ours."""
    cached = _canonical_cache.get(name)
    if cached is not None:
        return cached
    result = name
    for lsst_prefix in sorted(_aliases, key=len, reverse=True):
        if _under(name, lsst_prefix):
            result = _aliases[lsst_prefix] + name[len(lsst_prefix) :]
            break
    _canonical_cache[name] = result
    return result


# name -> canonical name; tasks ask for the same few names at every construction
_canonical_cache: dict[str, str] = {}


def _spellings(name: str) -> list[str]:
    """``name``, its canonical form and every LSST spelling of it, without duplicates."""
    canonical = _canonical(name)
    names = [name, canonical]
    for lsst_prefix, our_prefix in _aliases.items():
        if _under(canonical, our_prefix):
            names.append(lsst_prefix + canonical[len(our_prefix) :])
    return list(dict.fromkeys(names))


def add_alias(our_prefix: str, lsst_prefix: str) -> None:
    """Make debug names under ``lsst_prefix`` share flags with the names under ``our_prefix``.

    Parameters
    ----------
    our_prefix : `str`
        Dotted diffim prefix, e.g. ``"diffim.tasks"``.
    lsst_prefix : `str`
        The LSST prefix users' debug files test for, e.g. ``"lsst.ip.diffim"``.

    Notes
    -----
    Flags already registered under the LSST spelling are merged into the diffim entry (values
    already set there win), so the order of aliasing and flag setting does not matter.
    """
    if not our_prefix or not lsst_prefix:
        msg = f"debug alias needs two non-empty prefixes, got {our_prefix!r} <-> {lsst_prefix!r}"
        raise ValueError(msg)
    _aliases[lsst_prefix] = our_prefix
    _canonical_cache.clear()
    for name in [key for key in _registry if _under(key, lsst_prefix)]:
        old = _registry.pop(name)
        target = _registry.setdefault(_canonical(name), old)
        if target is not old:
            for key, value in old.as_dict().items():
                vars(target).setdefault(key, value)


def remove_alias(lsst_prefix: str) -> None:
    """Forget the alias registered for ``lsst_prefix`` (no error if there is none).

    Parameters
    ----------
    lsst_prefix : `str`
        The LSST prefix given to `add_alias`.
    """
    _aliases.pop(lsst_prefix, None)
    _canonical_cache.clear()


def debug_aliases() -> dict[str, str]:
    """Return a copy of the alias table (LSST prefix -> diffim prefix).

    Returns
    -------
    aliases : `dict` [`str`, `str`]
        The registered aliases.
    """
    return dict(_aliases)


def Info(name: str) -> DebugInfo:
    """Return the shared `DebugInfo` for ``name`` (created empty on first use).

    A user's debug file may replace this module attribute (``lsstDebug.Info = DebugInfo``);
    `getInfo` keeps pointing to this original.

    Parameters
    ----------
    name : `str`
        Dotted module or task name; aliased spellings give the same object.

    Returns
    -------
    info : `DebugInfo`
        The registry object.
    """
    key = _canonical(name)
    info = _registry.get(key)
    if info is None:
        info = _registry[key] = DebugInfo(key)
    return info


getInfo = Info
_original_info = Info


def _absorb(info: DebugInfo, result: object, source: str) -> None:
    """Fold flags from an object returned by someone's ``Info(name)`` into ``info``."""
    if result is info or result is None:
        return
    if isinstance(result, DebugInfo):
        vars(info).update(result.as_dict())
        return
    public = {k: v for k, v in getattr(result, "__dict__", {}).items() if not k.startswith("_")}
    vars(info).update(public)
    if hasattr(type(result), "__getattr__"):
        # Dynamic lookups (a real lsstDebug.Info reads module globals): ask it on each read.
        info._fallbacks[source] = result


def _real_lsstdebug() -> Any:
    """The imported ``lsstDebug`` module when it is not this one, else `None`.

    Only `sys.modules` is looked at: a debug file must import ``lsstDebug`` to configure it.
    """
    module = sys.modules.get(LSSTDEBUG_MODULE_NAME)
    if module is None or module is sys.modules.get(__name__):
        return None
    return module


def debug_info(name: str) -> DebugInfo:
    """Return the debug flags for ``name``, honouring a user-replaced ``Info``.

    The current ``Info`` attribute of this module (possibly a user's ``DebugInfo`` function) is
    called for ``name`` and for each aliased spelling of it; when a real ``lsstDebug`` is imported,
    its ``Info`` is asked too (a `KeyError` for a module it does not know is ignored). Everything
    lands in the one shared registry object, which is returned.

    Parameters
    ----------
    name : `str`
        Dotted module or task name, e.g. ``"diffim.tasks.psfMatch"``.

    Returns
    -------
    info : `DebugInfo`
        The shared flags object for ``name``.
    """
    info = _original_info(name)
    current = globals()["Info"]
    real = _real_lsstdebug()
    if current is _original_info and real is None:
        return info  # nobody else holds flags: the common, fast case
    spellings = _spellings(name)
    if current is not _original_info:
        for spelling in spellings:
            try:
                _absorb(info, current(spelling), f"Info:{spelling}")
            except KeyError:
                continue
    if real is not None and callable(getattr(real, "Info", None)):
        # A user's DebugInfo calls ``lsstDebug.getInfo(name)``, which in the real module raises
        # KeyError for a name that is not an imported module (the LSST spellings of our modules
        # never are). Lend it our getInfo for the call so those flags land in the registry.
        had_get_info = "getInfo" in vars(real)
        saved_get_info = vars(real).get("getInfo")
        real.getInfo = _original_info
        try:
            for spelling in spellings:
                try:
                    _absorb(info, real.Info(spelling), f"lsstDebug:{spelling}")
                except KeyError:  # the real Info wants the module imported already
                    continue
        finally:
            if had_get_info:
                real.getInfo = saved_get_info
            else:
                del real.getInfo
    return info


def getDebugFrame(debugDisplay: object, name: str) -> Any:
    """Return the display frame for ``name`` from a ``display`` flag, else `None`.

    Parameters
    ----------
    debugDisplay : `object`
        The value of a ``display`` flag: a mapping of name -> frame, or anything else.
    name : `str`
        Key to look up (e.g. a subtask name).

    Returns
    -------
    frame : `object` or `None`
        ``debugDisplay[name]`` when ``debugDisplay`` is a mapping containing ``name``.
    """
    if isinstance(debugDisplay, Mapping) and name in debugDisplay:
        return debugDisplay[name]
    return None


def install_lsstdebug_shim() -> bool:
    """Register this module as ``lsstDebug`` unless a real one can be imported.

    Idempotent. A debug file doing ``import lsstDebug`` then configures diffim.

    Returns
    -------
    active : `bool`
        `True` when ``lsstDebug`` is (now) this module.
    """
    this = sys.modules[__name__]
    existing = sys.modules.get(LSSTDEBUG_MODULE_NAME)
    if existing is not None:
        return existing is this
    if importlib.util.find_spec(LSSTDEBUG_MODULE_NAME) is not None:
        return False
    sys.modules[LSSTDEBUG_MODULE_NAME] = this
    return True


def _search_path() -> list[str]:
    """Where ``import debug`` looks: the working directory first, then `sys.path`."""
    cwd = os.getcwd()
    entries = [cwd]
    for entry in sys.path:
        if os.path.abspath(entry or cwd) != cwd:
            entries.append(entry)
    return entries


def _failure_line(path: str, exc: BaseException) -> int | None:
    """Line of ``path`` where executing it failed, from the error or its traceback."""
    if isinstance(exc, SyntaxError) and exc.filename and _same_file(exc.filename, path):
        return exc.lineno
    lineno = None
    for frame_summary in traceback.extract_tb(exc.__traceback__):
        if _same_file(frame_summary.filename, path):
            lineno = frame_summary.lineno  # keep the innermost frame in the file
    if lineno is None and isinstance(exc, SyntaxError):
        return exc.lineno
    return lineno


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _execute(spec: importlib.machinery.ModuleSpec, path: str) -> None:
    """Execute the debug module described by ``spec`` as `DEBUG_MODULE_NAME`."""
    module = importlib.util.module_from_spec(spec)
    sys.modules[DEBUG_MODULE_NAME] = module
    try:
        assert spec.loader is not None  # guaranteed by the callers
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(DEBUG_MODULE_NAME, None)
        lineno = _failure_line(path, exc)
        where = f" at line {lineno}" if lineno is not None else ""
        detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        error = f"{type(exc).__name__}: {_one_line(detail)}" if detail else type(exc).__name__
        msg = f"debug file {path!r} failed{where}: {error} — fix or remove it, or run without --debug"
        raise DebugFileError(msg) from exc


def load_debug(path: str | os.PathLike[str] | None = None, *, log: Any = None) -> str | None:
    """Load a user's debug file (what ``--debug`` does); safe to call again, e.g. in workers.

    Installs the ``lsstDebug`` shim first, then executes the file as module ``debug`` (a
    previous ``debug`` module is dropped, so the file always runs again).

    Parameters
    ----------
    path : `str` or `os.PathLike`, optional
        The file to load. `None`: find module ``debug`` like ``import debug`` would, searching the
        current working directory first, then `sys.path`.
    log : `logging.Logger` or `logging.LoggerAdapter`, optional
        Where to report the loaded file (INFO) or a missing module (WARNING).

    Returns
    -------
    loaded : `str` or `None`
        Path of the executed file; `None` when ``path`` is `None` and no module was found.

    Raises
    ------
    DebugFileError
        If ``path`` does not exist or is not a file, or the file raised while executing (the
        message names the file, the line and the error; the original is chained).
    """
    logger = _log if log is None else log
    install_lsstdebug_shim()
    sys.modules.pop(DEBUG_MODULE_NAME, None)
    if path is None:
        importlib.invalidate_caches()  # a debug.py created since the last import must be seen
        spec = importlib.machinery.PathFinder.find_spec(DEBUG_MODULE_NAME, _search_path())
        if spec is None or spec.loader is None or spec.origin is None:
            logger.warning("No 'debug' module found in the working directory or on sys.path")
            return None
        location = spec.origin
    else:
        given = os.fspath(path)
        if not os.path.isfile(given):
            reason = "is not a file" if os.path.exists(given) else "not found"
            msg = f"debug file {given!r} {reason}; give the path of an existing debug.py"
            raise DebugFileError(msg)
        location = os.path.realpath(given)
        loader = importlib.machinery.SourceFileLoader(DEBUG_MODULE_NAME, location)
        spec = importlib.util.spec_from_file_location(DEBUG_MODULE_NAME, location, loader=loader)
        assert spec is not None  # a loader was given, so a spec is always built
    _execute(spec, location)
    logger.info("Loaded debug file %s", location)
    return location


def set_display_dir(path: str | os.PathLike[str] | None) -> Path | None:
    """Choose the folder debug displays write their figures to.

    Parameters
    ----------
    path : `str`, `os.PathLike` or `None`
        The folder (created by the display code when it first writes); `None` goes back to the
        default, `DEFAULT_DISPLAY_DIR` in the working directory.

    Returns
    -------
    previous : `pathlib.Path` or `None`
        The folder chosen before (`None` if none was), so callers can restore it.

    Examples
    --------
    In a debug file::

        from diffim.framework import debug
        debug.set_display_dir("/tmp/my-figures")
    """
    global _display_dir
    previous = _display_dir
    _display_dir = None if path is None else Path(os.fspath(path))
    return previous


def display_dir() -> Path:
    """Return the folder debug displays write to (see `set_display_dir`).

    Returns
    -------
    folder : `pathlib.Path`
        The chosen folder, else ``Path(DEFAULT_DISPLAY_DIR)`` (relative to the working directory).
    """
    return Path(DEFAULT_DISPLAY_DIR) if _display_dir is None else _display_dir


def reset_debug() -> None:
    """Forget all debug state (for tests): flags, ``Info``, ``frame``, ``debug``, display folder.

    Aliases are kept: they are registered by the domain packages at import time.
    """
    global Info, getInfo, frame, _display_dir
    _registry.clear()
    Info = _original_info
    getInfo = _original_info
    frame = 1
    _display_dir = None
    sys.modules.pop(DEBUG_MODULE_NAME, None)
