"""Toy tasks and a toy JSON I/O plugin for the launcher tests (domain-free).

A separate module (found through ``sys.path``, as tests/_executor_jobs.py) so task classes have
an importable class path (``_launcher_toys.ScaleTask``) for ``-t``, saved pipelines and workers.

Data type ``toy.Numbers`` is a list of numbers stored as a JSON file; ``toy.Other`` has no
writer (to test the "no I/O plugin" error).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from diffim.framework import Struct, Task, getTraceLogger, timeMethod
from diffim.framework.config import Config, Field
from diffim.framework.connections import Input, Output
from diffim.framework.plugins import hookimpl

NUMBERS = "toy.Numbers"


class ScaleConfig(Config):
    """Config of `ScaleTask`."""

    factor: float = Field(2.0, description="Multiplier.")
    failValue: float | None = Field(None, description="Raise when an input number equals this.")


class ScaleTask(Task):
    """Multiply numbers (and add optional extra numbers)."""

    ConfigClass = ScaleConfig
    _DefaultName = "scale"
    inputs: ClassVar[dict[str, Input]] = {
        "data": Input(NUMBERS, "Numbers to scale."),
        "extra": Input(NUMBERS, "Numbers added after scaling.", optional=True),
    }
    outputs: ClassVar[dict[str, Output]] = {"scaled": Output(NUMBERS, "Scaled numbers.")}

    @timeMethod
    def run(self, data: list[float], extra: list[float] | None = None) -> Struct:
        self.log.info("scaling %d numbers", len(data))
        getTraceLogger(self.log, 2).debug("trace detail at level 2")
        if self.config.failValue is not None and self.config.failValue in data:
            msg = f"found the fail value {self.config.failValue}"
            raise ValueError(msg)
        out = [x * self.config.factor for x in data]
        if extra:
            out = [a + b for a, b in zip(out, extra, strict=False)]
        self.metadata["count"] = len(out)
        self.metadata["display"] = bool(self._display)
        return Struct(scaled=out)


class SumConfig(Config):
    """Config of `SumTask`."""

    start: float = Field(0.0, description="Initial value of the sum.")


class SumTask(Task):
    """Add numbers; its input ``scaled`` can come from `ScaleTask`'s output."""

    ConfigClass = SumConfig
    _DefaultName = "total"
    inputs: ClassVar[dict[str, Input]] = {"scaled": Input(NUMBERS, "Numbers to add.")}
    outputs: ClassVar[dict[str, Output]] = {"total": Output(NUMBERS, "One-element list: the sum.")}

    def run(self, scaled: list[float]) -> Struct:
        return Struct(total=[self.config.start + sum(scaled)])


class SlowConfig(Config):
    """Config of `SlowTask`."""

    seconds: float = Field(0.0, description="Seconds to busy-loop before answering, for inputs containing 13.")


class SlowTask(ScaleTask):
    """`ScaleTask` that busy-loops ``seconds`` when its input holds 13 (to test ``--timeout``)."""

    ConfigClass = SlowConfig  # type: ignore[assignment]

    def run(self, data: list[float], extra: list[float] | None = None) -> Struct:
        import time

        end = time.perf_counter() + (self.config.seconds if 13 in data else 0.0)
        while time.perf_counter() < end:
            try:
                pass
            except Exception:  # noqa: BLE001, S110 - as careless task code would
                pass
        return Struct(scaled=list(data))


class OtherOutputTask(ScaleTask):
    """Like `ScaleTask`, but its output type has no writer plugin."""

    outputs: ClassVar[dict[str, Output]] = {"scaled": Output("toy.Other", "Not writable.")}


class MissingOutputTask(ScaleTask):
    """Declares an output its run() does not return."""

    outputs: ClassVar[dict[str, Output]] = {
        "scaled": Output(NUMBERS, "Scaled numbers."),
        "histogram": Output(NUMBERS, "Never returned."),
    }


class NotATask:
    """Not a Task subclass."""


class ToyIO:
    """Plugin: registers the toy tasks and reads/writes ``toy.Numbers`` as JSON files."""

    @hookimpl
    def diffim_register_tasks(self, registry: Any) -> None:
        registry.register("ScaleTask", ScaleTask)
        # by path: imported only when used
        registry.register("SumTask", f"{__name__}.SumTask", doc="Add numbers.")
        registry.register("OtherOutputTask", OtherOutputTask)
        registry.register("MissingOutputTask", MissingOutputTask)
        registry.register("LoopingTask", SlowTask)

    @hookimpl
    def diffim_read_input(self, type_name: str, path: Path) -> Any:
        if type_name != NUMBERS:
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))

    @hookimpl
    def diffim_write_output(self, type_name: str, value: Any, path: Path) -> Path | None:
        if type_name != NUMBERS:
            return None
        target = Path(f"{path}.json")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle)
        os.replace(tmp, target)
        return target


@contextlib.contextmanager
def toy_plugins() -> Iterator[Any]:
    """Isolated plugin manager with `ToyIO` and the built-in executors (no entry points needed)."""
    from diffim.framework import executors
    from diffim.framework.debug import reset_debug
    from diffim.framework.plugins import isolated_plugin_manager
    from diffim.plugins import executor_hooks

    executors.executors.refresh()
    try:
        with isolated_plugin_manager(builtins=False) as manager:
            manager.register(ToyIO(), "toy")
            manager.register(executor_hooks, "executors-under-test")
            yield manager
    finally:
        executors.executors.refresh()
        reset_debug()
