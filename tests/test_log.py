"""Tests for diffim.framework.log: levels, adapter, trace loggers, launcher helpers."""

from __future__ import annotations

import inspect
import io
import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from diffim.framework import log as dlog

THIS_FILE = Path(__file__).name


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put every logger level, the root handlers and the alias table back after each test."""
    manager = logging.Logger.manager
    levels = {name: lg.level for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    root = logging.getLogger()
    root_level = root.level
    root_handlers = list(root.handlers)
    aliases = dlog.logger_aliases()
    yield
    for name, lg in list(manager.loggerDict.items()):
        if isinstance(lg, logging.Logger):
            lg.setLevel(levels.get(name, logging.NOTSET))
    root.setLevel(root_level)
    for handler in list(root.handlers):
        if handler not in root_handlers:
            root.removeHandler(handler)
            handler.close()
    for lsst_prefix in dlog.logger_aliases():
        dlog.remove_logger_alias(lsst_prefix)
    for lsst_prefix, our_prefix in aliases.items():
        dlog.add_logger_alias(our_prefix, lsst_prefix)


def _line_after() -> int:
    """Line number of the caller's next line (where the logging call sits)."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1


# ------------------------------------------------------------------ levels and the adapter


def test_levels_registered() -> None:
    assert dlog.TRACE == 5
    assert dlog.VERBOSE == 15
    assert logging.getLevelName(5) == "TRACE"
    assert logging.getLevelName(15) == "VERBOSE"
    assert dlog.ROOT_LOGGER_NAME == "diffim"


def test_adapter_level_constants_and_name() -> None:
    log = dlog.getLogger("diffim.test.consts")
    assert isinstance(log, dlog.DiffimLogAdapter)
    assert (log.TRACE, log.DEBUG, log.VERBOSE, log.INFO) == (5, 10, 15, 20)
    assert (log.WARNING, log.ERROR, log.CRITICAL) == (30, 40, 50)
    assert log.name == "diffim.test.consts"
    child = log.getChild("sub")
    assert isinstance(child, dlog.DiffimLogAdapter)
    assert child.name == "diffim.test.consts.sub"


@pytest.mark.parametrize(("method", "level"), [("trace", 5), ("verbose", 15)])
def test_trace_verbose_emit_at_level_with_caller_location(
    caplog: pytest.LogCaptureFixture, method: str, level: int
) -> None:
    log = dlog.getLogger("diffim.test.extra")
    caplog.set_level(1, logger="diffim.test.extra")
    line = _line_after()
    getattr(log, method)("value %d", 42)
    (record,) = caplog.records
    assert record.levelno == level
    assert record.getMessage() == "value 42"
    assert record.filename == THIS_FILE
    assert record.lineno == line
    assert record.funcName == "test_trace_verbose_emit_at_level_with_caller_location"


@pytest.mark.parametrize("method", ["debug", "info", "warning", "error", "critical", "fatal"])
def test_usual_methods_report_caller_location(caplog: pytest.LogCaptureFixture, method: str) -> None:
    log = dlog.getLogger("diffim.test.usual")
    caplog.set_level(1, logger="diffim.test.usual")
    line = _line_after()
    getattr(log, method)("hello")
    (record,) = caplog.records
    assert (record.filename, record.lineno) == (THIS_FILE, line)


def test_child_trace_reports_caller_location(caplog: pytest.LogCaptureFixture) -> None:
    child = dlog.getLogger("diffim.test.parent").getChild("kid")
    caplog.set_level(1, logger="diffim.test.parent")
    line = _line_after()
    child.trace("deep")
    (record,) = caplog.records
    assert (record.name, record.levelname, record.lineno) == ("diffim.test.parent.kid", "TRACE", line)


def test_trace_suppressed_when_level_higher(caplog: pytest.LogCaptureFixture) -> None:
    log = dlog.getLogger("diffim.test.quiet")
    caplog.set_level(logging.DEBUG, logger="diffim.test.quiet")
    log.trace("hidden")
    log.verbose("shown")
    assert [r.levelname for r in caplog.records] == ["VERBOSE"]


def test_set_level_effective_level_and_enabled() -> None:
    log = dlog.getLogger("diffim.test.lvl")
    log.setLevel(dlog.VERBOSE)
    assert log.getEffectiveLevel() == 15
    assert log.isEnabledFor(dlog.INFO)
    assert not log.isEnabledFor(dlog.DEBUG)


def test_temporary_log_level_restores() -> None:
    log = dlog.getLogger("diffim.test.temp")
    log.setLevel(logging.WARNING)
    with log.temporary_log_level("TRACE"):
        assert log.getEffectiveLevel() == dlog.TRACE
    assert log.logger.level == logging.WARNING
    with log.temporary_log_level(None):
        assert log.logger.level == logging.WARNING


def test_extra_merges_and_survives(caplog: pytest.LogCaptureFixture) -> None:
    log = dlog.DiffimLogAdapter(logging.getLogger("diffim.test.extra2"), {"label": "isr"})
    caplog.set_level(logging.INFO, logger="diffim.test.extra2")
    log.info("x", extra={"visit": 3})
    (record,) = caplog.records
    assert (record.label, record.visit) == ("isr", 3)


def test_get_logger_wraps_existing_and_pickles() -> None:
    base = logging.getLogger("diffim.test.wrap")
    adapter = dlog.getLogger(logger=base)
    assert adapter.logger is base
    assert dlog.getLogger(logger=adapter) is adapter
    assert dlog.getLogger().logger is logging.getLogger()
    clone = pickle.loads(pickle.dumps(adapter))
    assert isinstance(clone, dlog.DiffimLogAdapter)
    assert clone.logger is base


# ------------------------------------------------------------------ graded trace loggers


def test_trace_set_at_sets_exactly_trace_loggers() -> None:
    base = logging.getLogger("diffim.test.graded")
    base.setLevel(logging.WARNING)
    dlog.trace_set_at("diffim.test.graded", 2)
    levels = [logging.getLogger(f"TRACE{i}.diffim.test.graded").level for i in range(6)]
    assert levels == [logging.DEBUG] * 3 + [logging.INFO] * 3
    assert dlog.MAX_TRACE_LEVEL == 5
    assert base.level == logging.WARNING  # the base logger is untouched
    assert "TRACE6.diffim.test.graded" not in logging.Logger.manager.loggerDict


def test_get_trace_logger_names_and_emission(caplog: pytest.LogCaptureFixture) -> None:
    assert dlog.getTraceLogger("diffim.a", 3).name == "TRACE3.diffim.a"
    assert dlog.getTraceLogger(logging.getLogger("diffim.b"), 0).name == "TRACE0.diffim.b"
    adapter = dlog.getLogger("diffim.c").getChild("d")
    assert dlog.getTraceLogger(adapter, 5).name == "TRACE5.diffim.c.d"
    logging.getLogger().setLevel(logging.INFO)  # restored by the fixture
    dlog.trace_set_at("diffim.c", 1)
    dlog.getTraceLogger(adapter, 1).debug("kept")
    dlog.getTraceLogger(adapter, 2).debug("dropped")
    assert [r.getMessage() for r in caplog.records] == ["kept"]
    assert caplog.records[0].name == "TRACE1.diffim.c.d"


def test_trace_set_at_lsst_alias_sets_both() -> None:
    dlog.add_logger_alias("diffim.testpkg", "lsst.test.pkg")
    assert dlog.logger_aliases()["lsst.test.pkg"] == "diffim.testpkg"
    dlog.trace_set_at("lsst.test.pkg.sub", 4)
    for prefix in ("lsst.test.pkg.sub", "diffim.testpkg.sub"):
        assert logging.getLogger(f"TRACE4.{prefix}").level == logging.DEBUG
        assert logging.getLogger(f"TRACE5.{prefix}").level == logging.INFO
    # A name merely sharing characters with the prefix is not aliased.
    dlog.trace_set_at("lsst.test.pkgother", 1)
    assert "TRACE0.diffim.testpkgother" not in logging.Logger.manager.loggerDict


# ------------------------------------------------------------------ launcher helpers


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("DEBUG", (None, 10)),
        ("verbose", (None, 15)),
        ("diffim.foo=DEBUG", ("diffim.foo", 10)),
        ("diffim.foo=trace", ("diffim.foo", 5)),
        (".=WARNING", ("", 30)),
        ("=error", ("", 40)),
        ("diffim=25", ("diffim", 25)),
        ("7", (None, 7)),
        ("Critical", (None, 50)),
    ],
)
def test_parse_log_level_spec_good(spec: str, expected: tuple[str | None, int]) -> None:
    assert dlog.parse_log_level_spec(spec) == expected


@pytest.mark.parametrize("spec", ["LOUD", "diffim=", "diffim.foo=NOISY", "x=-3", "", "a=b=c"])
def test_parse_log_level_spec_bad(spec: str) -> None:
    with pytest.raises(ValueError, match="COMPONENT=LEVEL") as info:
        dlog.parse_log_level_spec(spec)
    text = str(info.value)
    assert "\n" not in text
    assert repr(spec) in text
    assert "VERBOSE" in text and "TRACE" in text


def test_set_log_levels_defaults_and_components() -> None:
    applied = dlog.set_log_levels(["VERBOSE", "diffim.sub=TRACE"], default_loggers=("myplugin",))
    assert logging.getLogger("diffim").level == dlog.VERBOSE
    assert logging.getLogger("myplugin").level == dlog.VERBOSE
    assert logging.getLogger("diffim.sub").level == dlog.TRACE
    assert applied == {"diffim": 15, "myplugin": 15, "diffim.sub": 5}


def test_set_log_levels_root_and_alias() -> None:
    dlog.add_logger_alias("diffim.aliased", "lsst.test.alias")
    dlog.set_log_levels([".=ERROR", "lsst.test.alias.x=DEBUG"])
    assert logging.getLogger().level == logging.ERROR
    assert logging.getLogger("lsst.test.alias.x").level == logging.DEBUG
    assert logging.getLogger("diffim.aliased.x").level == logging.DEBUG


def test_set_log_levels_bad_spec_changes_nothing() -> None:
    logging.getLogger("diffim").setLevel(logging.WARNING)
    with pytest.raises(ValueError, match="'nope'"):
        dlog.set_log_levels(["DEBUG", "nope"])
    assert logging.getLogger("diffim").level == logging.WARNING


def test_json_log_file_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    handler = dlog.add_json_log_file(path, logger_name="diffim.test.json")
    log = dlog.getLogger("diffim.test.json")
    log.setLevel(dlog.TRACE)
    try:
        line = _line_after()
        log.verbose("first %s", "msg", extra={"obj": object(), "label": "L"})
        log.trace("second\nwith newline")
        try:
            raise KeyError("boom")
        except KeyError:
            log.exception("failed")
    finally:
        logging.getLogger("diffim.test.json").removeHandler(handler)
        handler.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    records = [json.loads(text) for text in lines]
    first = records[0]
    assert first["level"] == "VERBOSE"
    assert first["name"] == "diffim.test.json"
    assert first["message"] == "first msg"
    assert (first["filename"], first["lineno"]) == (THIS_FILE, line)
    assert first["funcName"] == "test_json_log_file_one_object_per_line"
    assert isinstance(first["process"], int)
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert first["label"] == "L"
    assert first["obj"].startswith("<object object")
    assert "exc_info" not in first
    assert records[1]["message"] == "second\nwith newline"
    assert records[2]["level"] == "ERROR"
    assert "KeyError: 'boom'" in records[2]["exc_info"]


def test_configure_console_formats_and_is_idempotent() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    stream = io.StringIO()
    dlog.configure_console(level="INFO", stream=stream)
    handler = dlog.configure_console(level=dlog.VERBOSE, stream=stream)
    assert len(root.handlers) == before + 1
    assert logging.getLogger("diffim").level == dlog.VERBOSE
    dlog.getLogger("diffim.test.console").verbose("short form")
    assert stream.getvalue() == "diffim.test.console VERBOSE: short form\n"

    long_stream = io.StringIO()
    again = dlog.configure_console(long=True, stream=long_stream)
    assert again is handler
    assert len(root.handlers) == before + 1
    line = _line_after()
    dlog.getLogger("diffim.test.console").info("long form")
    text = long_stream.getvalue()
    assert text.startswith("INFO ")
    assert f"diffim.test.console ({THIS_FILE}:{line}) - long form" in text


def test_configure_console_extra_loggers() -> None:
    dlog.configure_console(level="DEBUG", stream=io.StringIO(), loggers=("someplugin",))
    assert logging.getLogger("diffim").level == logging.DEBUG
    assert logging.getLogger("someplugin").level == logging.DEBUG
