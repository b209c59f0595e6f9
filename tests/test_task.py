"""Task, Struct and the task tree: names, subtasks, metadata, logging, debug flags."""

from __future__ import annotations

import logging
import pickle
import sys
from pathlib import Path

import pytest

from diffim.framework import debug as fdebug
from diffim.framework.metadata import TaskMetadata
from diffim.framework.struct import Struct
from diffim.framework.task import AlgorithmError, Task, TaskError
from diffim.framework.timing import timeMethod

sys.path.insert(0, str(Path(__file__).parent))
import _configs as m  # noqa: E402


class TimedTask(m.ChildTask):
    _DefaultName = "timed"

    @timeMethod
    def run(self, x: float) -> Struct:
        return Struct(value=x * self.config.threshold)


def test_names_and_task_dict() -> None:
    parent = m.ParentTask()
    assert parent.getName() == "parent" and parent.getFullName() == "parent"
    assert parent.child.getName() == "child" and parent.child.getFullName() == "parent.child"
    assert parent.getTaskDict() == {"parent": parent, "parent.child": parent.child}
    assert parent.child.getTaskDict() == parent.getTaskDict()


def test_subtask_uses_the_parent_config() -> None:
    config = m.ParentConfig()
    config.child.threshold = 2.0
    parent = m.ParentTask(config=config)
    assert parent.child.config is config.child.value
    assert parent.run(3.0) == 3.0 * 2.0 * config.scale


def test_retargeted_subtask_is_built_from_the_new_target() -> None:
    config = m.ParentConfig()
    config.child.retarget(m.SubclassChildTask)
    assert type(m.ParentTask(config=config).child) is m.SubclassChildTask


def test_name_override_and_missing_default_name() -> None:
    assert m.ChildTask(name="other").getFullName() == "other"

    class Nameless(Task):
        ConfigClass = m.ChildConfig

    with pytest.raises(TaskError, match="no _DefaultName"):
        Nameless()
    assert Nameless(name="n").config.threshold == 5.0


def test_wrong_config_type_is_refused() -> None:
    with pytest.raises(TaskError, match="ChildTask needs a ChildConfig, got AltChildConfig"):
        m.ChildTask(config=m.AltChildConfig())


def test_task_construction_validates_the_config() -> None:
    config = m.ParentConfig()
    config.algo.name = "b"
    config.algo.b.nGauss = 1
    with pytest.raises(m.FieldValidationError, match="nGauss is 1"):
        m.ParentTask(config=config)


def test_make_subtask_unknown_field() -> None:
    parent = m.ParentTask()
    with pytest.raises(KeyError, match="has no subtask field 'nested'"):
        parent.makeSubtask("nested")
    with pytest.raises(KeyError, match="has no subtask field 'nosuch'"):
        parent.makeSubtask("nosuch")


def test_full_metadata_uses_lsst_keys() -> None:
    parent = m.ParentTask()
    parent.metadata["calls"] = 1
    parent.child.metadata.add("thresholds", 2.5)
    full = parent.getFullMetadata()
    assert isinstance(full, TaskMetadata)
    assert full["parent.calls"] == 1
    assert full["parent:child.thresholds"] == 2.5
    assert full.getArray("parent:child.thresholds") == [2.5]
    parent.emptyMetadata()
    assert "calls" not in parent.metadata and "thresholds" not in parent.child.metadata


def test_time_method_records_lsst_keys() -> None:
    task = TimedTask()
    assert task.run(2.0).value == 10.0
    md = task.metadata
    for key in ("runStartUtc", "runEndUtc", "runStartCpuTime", "runEndCpuTime", "runEndMaxResidentSetSize"):
        assert key in md, key
    assert md["runEndCpuTime"] >= md["runStartCpuTime"]
    with task.timer("block"):
        pass
    assert "blockEndUtc" in md


def test_reused_task_metadata_stays_bounded() -> None:
    from diffim.framework.timing import MAX_RECORDS

    task = TimedTask()
    for _ in range(MAX_RECORDS * 5):
        task.run(1.0)
    assert len(task.metadata.getArray("runEndCpuTime")) == MAX_RECORDS
    assert len(task.metadata.to_json()) < 20_000


def test_logger_names_follow_the_task_tree(caplog: pytest.LogCaptureFixture) -> None:
    parent = m.ParentTask()
    assert parent.log.name == "diffim.parent"
    assert parent.child.log.name == "diffim.parent.child"
    with caplog.at_level(logging.INFO, logger="diffim"):
        parent.child.log.info("hello %d", 3)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("diffim.parent.child", "hello 3")]
    custom = m.ChildTask(log=logging.getLogger("mypipe"))
    assert custom.log.name == "mypipe.child"


def test_display_flag_read_from_debug_info_at_construction() -> None:
    fdebug.reset_debug()
    try:
        assert m.ChildTask()._display is False
        fdebug.Info(m.ChildTask.__module__).display = {"child": 2}
        task = m.ChildTask()
        assert task._display == {"child": 2}
        assert fdebug.getDebugFrame(task._display, "child") == 2
    finally:
        fdebug.reset_debug()


def test_task_pickles_with_its_config() -> None:
    config = m.ParentConfig()
    config.child.threshold = 1.5
    parent = m.ParentTask(config=config)
    clone = pickle.loads(pickle.dumps(parent))
    assert clone.config == config and clone.child.config.threshold == 1.5
    child = pickle.loads(pickle.dumps(parent.child))
    assert child.getFullName() == "parent.child"


def test_struct() -> None:
    s = Struct(a=1, b="x")
    assert s.a == 1 and s.getDict() == {"a": 1, "b": "x"} and len(s) == 2
    t = Struct(c=3)
    t.mergeItems(s, "a")
    assert t.a == 1
    with pytest.raises(RuntimeError, match="already has a field 'a'"):
        t.mergeItems(s, "a")
    with pytest.raises(ValueError, match="reserved"):
        Struct(__x=1)
    assert s.copy() == s and s.copy() is not s


def test_algorithm_error_carries_numbers() -> None:
    err = AlgorithmError("no usable candidates; lower nStarPerCell", nGood=0)
    assert isinstance(err, TaskError) and isinstance(err, RuntimeError)
    assert err.metadata == {"nGood": 0}


sys.path.insert(0, str(Path(__file__).parent))
from _reference_debug import REFERENCE_DEBUG_PY as LSST_DEBUG_PY  # noqa: E402


def test_lsst_debug_file_reaches_a_task_of_the_lsst_named_module(tmp_path: Path) -> None:
    import diffim.tasks  # registers the lsst.ip.diffim spelling  # noqa: F401

    class PsfMatchLike(m.ChildTask):
        _DefaultName = "psfMatchLike"

    PsfMatchLike.__module__ = "diffim.tasks.psfMatch"
    path = tmp_path / "debug.py"
    path.write_text(LSST_DEBUG_PY)
    fdebug.reset_debug()
    try:
        assert PsfMatchLike()._display is False
        assert fdebug.load_debug(path) == str(path)
        task = PsfMatchLike()
        assert task._display is True
        flags = fdebug.debug_info("diffim.tasks.psfMatch")
        assert flags.maskTransparency == 80 and flags.displayCandidates is True
        assert flags.displayKernelBasis is False and flags.unsetFlag is False
        assert fdebug.frame == 1
        assert m.ChildTask()._display is False  # other modules untouched
    finally:
        fdebug.reset_debug()
        sys.modules.pop("lsstDebug", None)
