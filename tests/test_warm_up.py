"""Worker warm-up: the launcher calls a task's ``warm_up`` before its first job; it changes no result."""

from __future__ import annotations

import sys
import types

from diffim.framework.launch.jobs import warm_task
from diffim.framework.task import Task
from diffim.tasks import ImagePsfMatchTask
from diffim.tasks.imagePsfMatch import _WARM_MODULES


class _WarmedTask(Task):
    _DefaultName = "warmed"
    calls: list[str] = []

    @classmethod
    def warm_up(cls) -> None:
        cls.calls.append("warm_up")


class _BrokenWarmUp(Task):
    _DefaultName = "broken"

    @classmethod
    def warm_up(cls) -> None:
        raise RuntimeError("cannot warm up")


def test_warm_task_calls_the_task_warm_up_and_survives_a_failing_one(monkeypatch) -> None:
    module = types.ModuleType("_warm_toys")
    module.WarmedTask, module.BrokenWarmUp = _WarmedTask, _BrokenWarmUp
    monkeypatch.setitem(sys.modules, "_warm_toys", module)
    warm_task("_warm_toys.WarmedTask")
    assert _WarmedTask.calls == ["warm_up"]
    warm_task("_warm_toys.BrokenWarmUp")  # best effort: the job reports real problems itself
    Task.warm_up()  # the default does nothing


def test_image_psf_match_warm_up_imports_its_lazy_modules() -> None:
    ImagePsfMatchTask.warm_up()
    assert all(name in sys.modules for name in _WARM_MODULES)
