"""Declared inputs and outputs of runnable tasks (what the launcher reads and writes).

A task the ``diffim run`` launcher can execute declares its named inputs and outputs as class
attributes, and its ``run`` takes the inputs as keyword arguments and returns a
`~diffim.framework.struct.Struct` whose fields include the outputs::

    class MyTask(Task):
        ConfigClass = MyConfig
        _DefaultName = "myTask"
        inputs: ClassVar[dict[str, Input]] = {
            "science": Input("mypkg.image.Exposure", "Image to process."),
        }
        outputs: ClassVar[dict[str, Output]] = {
            "catalog": Output("mypkg.table.Catalog", "Detected sources."),
        }

        def run(self, science): ...

Types are dotted *strings* naming the data type, so the framework never imports the domain;
I/O plugins (hooks ``diffim_read_input`` / ``diffim_write_output``) decide how each type is
read from and written to files.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

__all__ = ["Input", "Output", "check_runnable", "task_inputs", "task_outputs"]

_TYPE_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_IO_NAME = re.compile(r"^[A-Za-z_]\w*$")


def _check(kind: str, type_name: object, doc: object) -> None:
    if not isinstance(type_name, str) or not _TYPE_NAME.match(type_name):
        msg = f"{kind} type {type_name!r} is not valid: give a dotted type name such as 'mypkg.image.Exposure'"
        raise TypeError(msg)
    if not isinstance(doc, str) or not doc.strip():
        msg = (
            f"{kind} of type {type_name!r} has no doc: describe what it holds, "
            f"e.g. {kind}({type_name!r}, 'Science image.')"
        )
        raise TypeError(msg)


@dataclasses.dataclass(frozen=True, slots=True)
class Input:
    """One named input of a runnable task.

    Parameters
    ----------
    type : `str`
        Dotted name of the data type (e.g. ``"diffim.tasks.image.Exposure"``); I/O plugins
        read files into values of this type.
    doc : `str`
        What the input is, shown by ``diffim tasks`` and in error messages.
    optional : `bool`, optional
        Whether the task can run without it (``run`` then gets no such keyword).
    """

    type: str
    doc: str
    optional: bool = False

    def __post_init__(self) -> None:
        _check("Input", self.type, self.doc)


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """One named output of a runnable task.

    Parameters
    ----------
    type : `str`
        Dotted name of the data type; an I/O plugin writes values of this type.
    doc : `str`
        What the output is.
    optional : `bool`, optional
        Whether ``run`` may leave it out of its result (or set it to `None`).
    """

    type: str
    doc: str
    optional: bool = False

    def __post_init__(self) -> None:
        _check("Output", self.type, self.doc)


def _declared(task_class: type, attr: str, kind: type) -> dict[str, Any]:
    value = getattr(task_class, attr, None)
    name = f"{task_class.__module__}.{task_class.__qualname__}"
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"{name}.{attr} must be a dict of name -> {kind.__name__}(...), not {type(value).__name__}"
        raise TypeError(msg)
    for key, item in value.items():
        if not isinstance(key, str) or not _IO_NAME.match(key):
            msg = f"{name}.{attr} has an invalid name {key!r}: use a Python identifier (it becomes a run() keyword)"
            raise TypeError(msg)
        if not isinstance(item, kind):
            msg = f"{name}.{attr}[{key!r}] must be a {kind.__name__}(type, doc), not {item!r}"
            raise TypeError(msg)
    return dict(value)


def task_inputs(task_class: type) -> dict[str, Input]:
    """Return the declared inputs of ``task_class`` (empty when it declares none).

    Parameters
    ----------
    task_class : `type`
        A task class.

    Returns
    -------
    inputs : `dict` [`str`, `Input`]
        Name -> declaration, in declaration order.

    Raises
    ------
    TypeError
        If the declaration is malformed (the message names the class and the entry).
    """
    return _declared(task_class, "inputs", Input)


def task_outputs(task_class: type) -> dict[str, Output]:
    """Return the declared outputs of ``task_class`` (empty when it declares none).

    Parameters
    ----------
    task_class : `type`
        A task class.

    Returns
    -------
    outputs : `dict` [`str`, `Output`]
        Name -> declaration, in declaration order.

    Raises
    ------
    TypeError
        If the declaration is malformed.
    """
    return _declared(task_class, "outputs", Output)


def check_runnable(task_class: type) -> None:
    """Check that ``task_class`` can be run by the launcher.

    Parameters
    ----------
    task_class : `type`
        The class to check.

    Raises
    ------
    TypeError
        If it has no ``run`` method or its ``inputs``/``outputs`` declarations are malformed.
    """
    name = f"{task_class.__module__}.{task_class.__qualname__}"
    if not callable(getattr(task_class, "run", None)):
        msg = f"task {name} has no run() method, so 'diffim run' cannot execute it"
        raise TypeError(msg)
    task_inputs(task_class)
    task_outputs(task_class)
