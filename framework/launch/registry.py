"""The registry of runnable tasks (filled by the ``diffim_register_tasks`` hook) and task lookup."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from ..config import Registry
from .errors import UnknownTaskError

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import DiffimPluginManager
    from ..task import Task

__all__ = ["class_path", "register_class", "resolve_task", "task_registry", "tasks"]


def _populate(registry: Registry) -> None:
    from ..plugins import get_plugin_manager

    get_plugin_manager().diffim_register_tasks(registry)


#: Runnable tasks by name (``ImagePsfMatchTask``, ...), filled by ``diffim_register_tasks``.
#: Entries' targets are task classes or their dotted import paths.
tasks = Registry("task", "Runnable tasks by name, for 'diffim run -t NAME'.", populate=_populate)

_populated_by: DiffimPluginManager | None = None

# class path -> class, for classes resolved in this process: a job resolves its task class here
# first, so tasks that cannot be re-imported by path (defined in a test or a notebook) still run
# in-process.
_known_classes: dict[str, type] = {}


def task_registry() -> Registry:
    """Return `tasks`, refilled when the process-wide plugin manager has changed.

    Returns
    -------
    registry : `diffim.framework.config.Registry`
        The task registry as seen by the current plugin manager.
    """
    global _populated_by
    from ..plugins import get_plugin_manager

    manager = get_plugin_manager()
    if manager is not _populated_by:
        tasks.refresh()
        _populated_by = manager
    return tasks


def class_path(cls: type) -> str:
    """Return the dotted import path ``module.QualName`` of ``cls``.

    Parameters
    ----------
    cls : `type`
        A class.

    Returns
    -------
    path : `str`
    """
    return f"{cls.__module__}.{cls.__qualname__}"


def register_class(cls: type) -> str:
    """Remember ``cls`` under its class path for this process and return the path.

    Parameters
    ----------
    cls : `type`
        A task class.

    Returns
    -------
    path : `str`
        Its class path.
    """
    path = class_path(cls)
    _known_classes[path] = cls
    return path


def _check_task_class(obj: Any, spelled: str) -> type[Task]:
    from ..task import Task

    if not (isinstance(obj, type) and issubclass(obj, Task)):
        msg = f"{spelled!r} is {obj!r}, not a Task subclass; give a task name or a task class path"
        raise UnknownTaskError(msg)
    register_class(obj)
    return obj


def resolve_task(name: str) -> type[Task]:
    """Return the task class named by a registered name or a dotted class path.

    Parameters
    ----------
    name : `str`
        ``"ImagePsfMatchTask"`` (registered by a plugin) or ``"pkg.module.TaskClass"``.

    Returns
    -------
    task_class : `type` [`~diffim.framework.task.Task`]

    Raises
    ------
    UnknownTaskError
        If the name is neither registered nor importable (one line with close matches and
        the registered names), or names something that is not a Task subclass.
    """
    if name in _known_classes:
        return _known_classes[name]  # type: ignore[return-value]
    registry = task_registry()
    if name in registry:
        target = registry[name].target
        if isinstance(target, str):
            target = _import(target, f"task {name!r} is registered as {target!r}, but")
        return _check_task_class(target, name)
    if "." in name:
        return _check_task_class(_import(name, ""), name)
    close = difflib.get_close_matches(name, list(registry), n=3)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    known = ", ".join(sorted(registry)) or "none (is the plugin providing it installed?)"
    msg = f"unknown task {name!r}; {hint}registered tasks: {known}; or give a class path such as 'pkg.module.TaskClass'"
    raise UnknownTaskError(msg)


def _import(path: str, prefix: str) -> Any:
    from ..config import ConfigError, import_target

    try:
        return import_target(path)
    except ConfigError as err:
        msg = f"{prefix} {err}".strip() if prefix else f"unknown task: {err}"
        raise UnknownTaskError(msg) from None
    except ImportError as err:  # the module exists but one of its own imports fails
        msg = f"{prefix} cannot import task {path!r}: {type(err).__name__}: {err}".strip()
        raise UnknownTaskError(msg) from err
