"""Tests for diffim.framework.timing (timeMethod, timer, logInfo, duration_from_timeMethod).

Run this file as a script (``python tests/test_timing.py``) to print the per-call cost of
constructing a trivial task and calling a ``@timeMethod`` method; the tests themselves never
assert on absolute times.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from diffim.framework import timing
from diffim.framework.metadata import TaskMetadata
from diffim.framework.timing import duration_from_timeMethod, logInfo, timeMethod, timer

SUFFIXES = [
    "Utc",
    "CpuTime",
    "UserTime",
    "SystemTime",
    "MaxResidentSetSize",
    "MinorPageFaults",
    "MajorPageFaults",
    "BlockInputs",
    "BlockOutputs",
    "VoluntaryContextSwitches",
    "InvoluntaryContextSwitches",
]
NUMERIC = SUFFIXES[1:]


class Trivial:
    """A minimal task-like object: metadata + log."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter | None = None) -> None:  # type: ignore[type-arg]
        self.metadata = TaskMetadata()
        self.log = log if log is not None else logging.getLogger("test_timing.trivial")

    @timeMethod
    def run(self, x: int, *, scale: int = 1) -> int:
        """Return x * scale."""
        # Allocate a little so the counters have something to see.
        _ = [0] * 1000
        return x * scale

    @timeMethod
    def fail(self) -> None:
        msg = "boom"
        raise RuntimeError(msg)

    @timeMethod(max_records=3)
    def capped(self) -> None:
        pass

    @timeMethod(max_records=None)
    def unbounded(self) -> None:
        pass

    @timeMethod
    def outer(self) -> int:
        return self.run(2)


def test_keys_present_with_plausible_values() -> None:
    task = Trivial()
    assert task.run(3, scale=2) == 6
    md = task.metadata
    for side in ("Start", "End"):
        for suffix in SUFFIXES:
            assert f"run{side}{suffix}" in md, f"run{side}{suffix}"
    assert md["__version__"] == 1
    assert isinstance(md["nodeName"], str)
    assert md["nodeName"]
    for suffix in NUMERIC:
        assert md[f"runEnd{suffix}"] >= md[f"runStart{suffix}"], suffix
    assert md["runEndCpuTime"] > 0
    assert type(md["runStartUserTime"]) is float
    assert type(md["runStartMinorPageFaults"]) is int
    rss = md["runEndMaxResidentSetSize"]
    assert type(rss) is int
    assert rss > 1_000_000  # bytes, not KiB
    if sys.platform.startswith("linux"):
        assert rss % 1024 == 0
    assert md["runDuration"] >= 0.0
    assert type(md["runDuration"]) is float


def test_utc_strings_parse_and_are_ordered() -> None:
    before = datetime.now(timezone.utc)
    task = Trivial()
    task.run(1)
    after = datetime.now(timezone.utc)
    start = datetime.fromisoformat(task.metadata["runStartUtc"])
    end = datetime.fromisoformat(task.metadata["runEndUtc"])
    assert start.utcoffset() == timedelta(0)
    slack = timedelta(milliseconds=5)
    assert before - slack <= start <= end <= after + slack


@pytest.mark.parametrize("stamp", [0.0, 1.5, 1_700_000_000.123456, 1_700_000_000.999999, 1_700_000_001.0])
def test_utc_format_matches_datetime(stamp: float) -> None:
    ours = datetime.fromisoformat(timing._utc(stamp))
    ref = datetime.fromtimestamp(stamp, timezone.utc)
    assert abs(ours - ref) <= timedelta(microseconds=1)
    assert timing._utc(stamp).endswith("+00:00")


def test_wraps_preserves_metadata() -> None:
    assert Trivial.run.__name__ == "run"
    assert Trivial.run.__doc__ == "Return x * scale."
    assert Trivial.run.__wrapped__.__name__ == "run"  # type: ignore[attr-defined]
    assert Trivial.run.__qualname__ == "Trivial.run"


def test_exception_records_end_and_reraises() -> None:
    task = Trivial()
    with pytest.raises(RuntimeError, match="boom"):
        task.fail()
    md = task.metadata
    assert "failStartCpuTime" in md
    assert "failEndCpuTime" in md
    assert "failEndUtc" in md
    assert md["failEndCpuTime"] >= md["failStartCpuTime"]
    assert md["failDuration"] >= 0.0


def test_growth_is_bounded_after_50_calls() -> None:
    task = Trivial()
    for i in range(50):
        task.run(i)
    md = task.metadata
    for side in ("Start", "End"):
        for suffix in SUFFIXES:
            assert len(md.getArray(f"run{side}{suffix}")) == timing.MAX_RECORDS
    assert len(md.getArray("runDuration")) == timing.MAX_RECORDS
    cpu = md.getArray("runEndCpuTime")
    assert cpu == sorted(cpu)  # oldest dropped, latest last
    assert md["runEndCpuTime"] == cpu[-1]
    assert md["__version__"] == 1  # still a scalar


def test_per_decorator_cap_and_unbounded() -> None:
    task = Trivial()
    for _ in range(12):
        task.capped()
        task.unbounded()
    assert len(task.metadata.getArray("cappedEndUtc")) == 3
    assert len(task.metadata.getArray("unboundedEndUtc")) == 12


def test_decorator_with_empty_parentheses() -> None:
    class Task:
        def __init__(self) -> None:
            self.metadata = TaskMetadata()

        @timeMethod()
        def go(self) -> str:
            return "done"

    task = Task()
    assert task.go() == "done"
    assert "goEndCpuTime" in task.metadata


def test_module_constant_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "MAX_RECORDS", 2)
    task = Trivial()
    for i in range(5):
        task.run(i)
    assert len(task.metadata.getArray("runStartCpuTime")) == 2


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_invalid_max_records_rejected(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_records must be a positive int"):
        timeMethod(max_records=bad)
    with pytest.raises(ValueError, match="max_records"):
        timer(TaskMetadata(), "blk", max_records=bad)


def test_nested_timed_methods_record_separately() -> None:
    task = Trivial()
    assert task.outer() == 2
    md = task.metadata
    assert md["outerStartCpuTime"] <= md["runStartCpuTime"]
    assert md["runEndCpuTime"] <= md["outerEndCpuTime"]
    assert md["outerDuration"] >= md["runDuration"]


def test_no_metadata_attribute_is_a_plain_call() -> None:
    class Bare:
        @timeMethod
        def run(self, x: int) -> int:
            return x + 1

    bare = Bare()
    assert bare.run(1) == 2
    assert not hasattr(bare, "metadata")

    class NoneMeta:
        metadata = None

        @timeMethod
        def run(self) -> str:
            return "ok"

    assert NoneMeta().run() == "ok"


def test_debug_log_lines_when_enabled(caplog: pytest.LogCaptureFixture) -> None:
    task = Trivial(log=logging.getLogger("test_timing.debug"))
    with caplog.at_level(logging.DEBUG, logger="test_timing.debug"):
        task.run(1)
    messages = [r.getMessage() for r in caplog.records if r.name == "test_timing.debug"]
    assert len(messages) == 2
    assert messages[0].startswith("runStart: Utc=")
    assert "MaxResidentSetSize=" in messages[0]
    assert messages[1].startswith("runEnd: Utc=")
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_log_not_formatted_when_debug_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any) -> None:
        msg = "log line formatted although DEBUG is disabled"
        raise AssertionError(msg)

    monkeypatch.setattr(timing, "_emit", explode)
    log = logging.getLogger("test_timing.quiet")
    log.setLevel(logging.INFO)
    task = Trivial(log=log)
    assert task.run(2) == 2
    with timer(task.metadata, "blk", log):
        pass
    assert "runEndCpuTime" in task.metadata


def test_logger_adapter_is_accepted(caplog: pytest.LogCaptureFixture) -> None:
    adapter = logging.LoggerAdapter(logging.getLogger("test_timing.adapter"), {})
    task = Trivial(log=adapter)
    with caplog.at_level(logging.DEBUG, logger="test_timing.adapter"):
        task.run(1)
    assert sum(r.name == "test_timing.adapter" for r in caplog.records) == 2


def test_timer_context_manager() -> None:
    md = TaskMetadata()
    with timer(md, "solve"):
        _ = sum(range(1000))
    for side in ("Start", "End"):
        for suffix in SUFFIXES:
            assert f"solve{side}{suffix}" in md
    assert md["solveEndCpuTime"] >= md["solveStartCpuTime"]
    assert md["solveDuration"] >= 0.0
    assert md["nodeName"]
    for _ in range(15):
        with timer(md, "solve", max_records=4):
            pass
    assert len(md.getArray("solveEndUtc")) == 4


def test_timer_records_end_on_exception() -> None:
    md = TaskMetadata()
    with pytest.raises(KeyError, match="inside"), timer(md, "blk"):
        raise KeyError("inside")
    assert "blkEndCpuTime" in md
    assert "blkDuration" in md


def test_timer_without_metadata_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test_timing.timer_only")
    with caplog.at_level(logging.DEBUG, logger="test_timing.timer_only"), timer(None, "blk", log):
        pass
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["blkStart", "blkEnd"]


def test_log_info_records_one_side() -> None:
    task = Trivial()
    logInfo(task, prefix="prep")
    assert task.metadata["prepCpuTime"] > 0
    assert "prepUtc" in task.metadata
    md = TaskMetadata()
    logInfo(prefix="initStart", metadata=md)
    assert "initStartMaxResidentSetSize" in md


def test_duck_typed_metadata_fallback() -> None:
    class FakeMetadata:
        def __init__(self) -> None:
            self.added: list[tuple[str, Any]] = []
            self.scalars: dict[str, Any] = {}

        def __contains__(self, key: str) -> bool:
            return key in self.scalars

        def __setitem__(self, key: str, value: Any) -> None:
            self.scalars[key] = value

        def add(self, key: str, value: Any) -> None:
            self.added.append((key, value))

    class Task:
        def __init__(self) -> None:
            self.metadata = FakeMetadata()

        @timeMethod
        def run(self) -> int:
            return 5

    task = Task()
    assert task.run() == 5
    keys = [k for k, _ in task.metadata.added]
    assert keys[0] == "runStartUtc"
    assert keys[-1] == "runDuration"
    assert len(keys) == 2 * len(SUFFIXES) + 1
    assert task.metadata.scalars["__version__"] == 1


def test_duration_helper() -> None:
    task = Trivial()
    assert duration_from_timeMethod(task.metadata, "run") is None
    assert duration_from_timeMethod(None, "run") is None
    task.run(1)
    task.run(2)
    md = task.metadata
    cpu = duration_from_timeMethod(md, "run")
    assert cpu == pytest.approx(md["runEndCpuTime"] - md["runStartCpuTime"])
    assert cpu is not None
    assert cpu >= 0.0
    assert duration_from_timeMethod(md, "run", clock="Wall") == md["runDuration"]
    user = duration_from_timeMethod(md, "run", clock="User")
    assert user == pytest.approx(md["runEndUserTime"] - md["runStartUserTime"])
    with pytest.raises(ValueError, match="clock must be"):
        duration_from_timeMethod(md, "run", clock="wall")


def _bench(n: int = 20000) -> None:  # pragma: no cover - manual measurement
    import timeit

    class Plain:
        def __init__(self) -> None:
            self.metadata = TaskMetadata()
            self.log = logging.getLogger("bench")

        def run(self) -> int:
            return 1

    reused = Trivial()
    cases = {
        "construct + @timeMethod call": "Trivial().run(1)",
        "reused task, @timeMethod call": "reused.run(1)",
        "construct + plain call": "Plain().run()",
    }
    for label, stmt in cases.items():
        best = min(timeit.repeat(stmt, globals={**globals(), **locals()}, number=n, repeat=5)) / n
        print(f"{label:32s} {best * 1e6:7.2f} µs/iter")


if __name__ == "__main__":  # pragma: no cover
    _bench()
