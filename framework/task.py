"""``Task``: the unit of work, as in LSST's pipe_base, on diffim's light framework."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from .config import Config, ConfigurableInstance
from .debug import debug_info
from .log import ROOT_LOGGER_NAME, DiffimLogAdapter, getLogger
from .metadata import TaskMetadata
from .timing import timer as _timer

__all__ = ["Task", "TaskError", "AlgorithmError"]


class TaskError(RuntimeError):
    """An error for which a traceback is not useful: the message says everything.

    The launcher prints it as one line.
    """


class AlgorithmError(TaskError):
    """An algorithm could not produce a result for this data (e.g. no usable candidates).

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    **metadata
        Numbers describing the failure; kept in :attr:`metadata` for the run record.
    """

    def __init__(self, message: str, /, **metadata: Any) -> None:
        super().__init__(message)
        self.metadata: dict[str, Any] = metadata


class Task:
    """Base class of every diffim task.

    Parameters
    ----------
    config : Config, optional
        The task's config; default ``ConfigClass()`` (or the parent's subtask config).
    name : str, optional
        Task name; default ``_DefaultName``. Required for subtasks.
    parentTask : Task, optional
        The parent, for subtasks (use :meth:`makeSubtask` rather than passing this).
    log : logging.Logger or logging.LoggerAdapter, optional
        Logger whose name prefixes this task's logger name (default ``"diffim"``);
        ignored for subtasks, whose logger is a child of the parent's.

    Notes
    -----
    Class attributes: ``ConfigClass`` (the config class) and ``_DefaultName``. A task has
    ``config``, ``metadata`` (:class:`TaskMetadata`), ``log`` (named ``diffim.<full name>``)
    and ``_display``, read once at construction from the debug flags of its module
    (``diffim.framework.debug``, compatible with ``lsstDebug``).
    """

    ConfigClass: ClassVar[type[Config]] = Config
    _DefaultName: ClassVar[str | None] = None

    config: Config
    metadata: TaskMetadata
    log: DiffimLogAdapter

    def __init__(
        self,
        config: Config | None = None,
        *,
        name: str | None = None,
        parentTask: Task | None = None,  # noqa: N803 - LSST name
        log: Any = None,
    ) -> None:
        if parentTask is not None:
            if name is None:
                msg = f"{type(self).__name__}: a subtask needs name= (use parent.makeSubtask(name))"
                raise TaskError(msg)
            full_name = f"{parentTask._fullName}.{name}"
            if config is None:
                config = _subtask_config(parentTask, name)
            task_dict = parentTask._taskDict
            logger_name = f"{parentTask.log.name}.{name}"
        else:
            if name is None:
                name = self._DefaultName
                if name is None:
                    msg = (
                        f"{type(self).__name__} has no _DefaultName: set it on the class "
                        "or pass name= when constructing the task"
                    )
                    raise TaskError(msg)
            full_name = name
            if config is None:
                config = self.ConfigClass()
            elif not isinstance(config, self.ConfigClass):
                msg = (
                    f"{type(self).__name__} needs a {self.ConfigClass.__name__}, "
                    f"got {type(config).__name__}"
                )
                raise TaskError(msg)
            config.validate()
            task_dict = {}
            prefix = ROOT_LOGGER_NAME if log is None else log.name
            logger_name = f"{prefix}.{name}"
        self._name = name
        self._fullName = full_name
        self._parentTask = parentTask
        self._taskDict: dict[str, Task] = task_dict
        self.config = config
        self.metadata = TaskMetadata()
        self.log = getLogger(logger_name)
        self._display = debug_info(type(self).__module__).display
        task_dict[full_name] = self

    @classmethod
    def warm_up(cls) -> None:
        """Import what a first run needs but the task's module does not import itself.

        The launcher's worker processes call it before their first job, while the launching
        process still resolves the pipeline, so lazy imports and plugin loading done by the first
        ``run`` overlap that work instead of delaying the job. The default does nothing; a task
        whose run imports heavy modules lazily lists them here. It must not change any state a
        run depends on (results are the same with or without it).
        """

    # -- names and the task tree ------------------------------------------------------------
    def getName(self) -> str:  # noqa: N802 - LSST name
        """The task's own name (``child`` for ``parent.child``)."""
        return self._name

    def getFullName(self) -> str:  # noqa: N802 - LSST name
        """Dotted name from the top-level task, e.g. ``imagePsfMatch.selectDetection``."""
        return self._fullName

    def getTaskDict(self) -> dict[str, Task]:  # noqa: N802 - LSST name
        """Full name -> task, for this task's whole tree (a copy)."""
        return dict(self._taskDict)

    def makeSubtask(self, name: str, **kwargs: Any) -> Task:  # noqa: N802 - LSST name
        """Build the subtask declared by the config field ``name`` and set ``self.<name>``.

        Parameters
        ----------
        name : str
            Name of a :func:`~diffim.framework.config.ConfigurableField` of this task's config.
        **kwargs
            Passed to the subtask's constructor.
        """
        field = self.config.__dict__.get(name)
        if not isinstance(field, ConfigurableInstance):
            msg = (
                f"{self._fullName}'s config ({type(self.config).__name__}) has no subtask field "
                f"{name!r}; declare it with ConfigurableField(target=...)"
            )
            raise KeyError(msg)
        subtask = field.apply(name=name, parentTask=self, **kwargs)
        setattr(self, name, subtask)
        return subtask

    # -- metadata and timing ----------------------------------------------------------------
    def getFullMetadata(self) -> TaskMetadata:  # noqa: N802 - LSST name
        """Metadata of the whole task tree, keyed ``parent:child`` as in LSST."""
        full = TaskMetadata()
        for full_name, task in self._taskDict.items():
            full[full_name.replace(".", ":")] = task.metadata
        return full

    def emptyMetadata(self) -> None:  # noqa: N802 - LSST name
        """Reset the metadata of every task in the tree."""
        for task in self._taskDict.values():
            task.metadata = TaskMetadata()

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Record ``<name>Start*``/``<name>End*`` resource usage around a block."""
        with _timer(self.metadata, name, log=self.log):
            yield

    def __reduce__(self) -> Any:
        # picklable for process pools; the parent is rebuilt by its own reduction
        return (_rebuild_task, (type(self), self.config, self._name, self._parentTask))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._fullName!r}>"


def _subtask_config(parent: Task, name: str) -> Config:
    field = parent.config.__dict__.get(name)
    if isinstance(field, ConfigurableInstance):
        return field.value
    if isinstance(field, Config):
        return field
    msg = f"{parent._fullName}'s config has no field {name!r} to configure subtask {name!r}"
    raise TaskError(msg)


def _rebuild_task(cls: type[Task], config: Config, name: str, parent: Task | None) -> Task:
    if parent is None:
        return cls(config=config, name=name)
    return cls(config=config, name=name, parentTask=parent)
