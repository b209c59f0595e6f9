"""``diffim run``/``build``/``tasks``/``config`` end to end on toy tasks (in-process, serial executor)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from diffim.framework.cli import (
    EXIT_CONFIG,
    EXIT_INPUT,
    EXIT_PLUGIN_ERROR,
    EXIT_TASK,
    EXIT_USAGE,
    main,
)
from diffim.framework.config import load_config
from diffim.framework.debug import reset_debug
from diffim.framework.metadata import TaskMetadata
from diffim.framework.plugins import DiffimPluginManager

sys.path.insert(0, str(Path(__file__).parent))
import _launcher_toys as toys


@pytest.fixture
def pm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DiffimPluginManager]:
    """Toy tasks + JSON I/O + the built-in executors; cwd is a temporary folder holding data.json."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIFFIM_TRACEBACK", raising=False)
    (tmp_path / "data.json").write_text("[1, 2, 3]")
    with toys.toy_plugins() as manager:
        yield manager


def one_error_line(err: str) -> str:
    """The single ``diffim: error:`` line of ``err`` (log lines before it are allowed)."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("diffim: error: ")]
    assert len(errors) == 1, err
    assert err.rstrip("\n").splitlines()[-1] == errors[0]
    return errors[0]


def read_json(path: Path) -> object:
    return json.loads(path.read_text())


RUN = ["run", "-t", "ScaleTask", "-i", "data=data.json"]


def test_run_writes_outputs_records_and_run_json(pm: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*RUN, "-o", "out", "-c", "factor=3"]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "run.json", "scale_config.yaml", "scale_log.jsonl", "scale_metadata.json", "scaled.json",
    ]  # nothing else: no temporary files left behind
    assert read_json(out / "scaled.json") == [3.0, 6.0, 9.0]
    config = load_config(out / "scale_config.yaml")
    assert isinstance(config, toys.ScaleConfig) and config.factor == 3.0
    metadata = TaskMetadata.from_json((out / "scale_metadata.json").read_text())
    assert metadata.getScalar("scale.count") == 3
    assert "scale.runStartUtc" in metadata.names()
    logs = [json.loads(line) for line in (out / "scale_log.jsonl").read_text().splitlines()]
    assert [(r["name"], r["message"], r["label"]) for r in logs] == [("diffim.scale", "scaling 3 numbers", "scale")]
    run = read_json(out / "run.json")
    assert isinstance(run, dict)
    assert run["status"] == "ok" and run["counts"] == {"ok": 1, "failed": 0, "skipped": 0, "not_run": 0}
    assert run["command"] == ["diffim", *RUN, "-o", "out", "-c", "factor=3"]
    assert {"python", "diffim", "numpy", "pydantic"} <= set(run["versions"])
    assert "toy" in [p["name"] for p in run["plugins"]]
    assert run["executor"]["name"] == "serial"
    assert run["pipeline"] == {"scale": "_launcher_toys.ScaleTask"}
    (job,) = run["jobs"]
    assert job["tasks"]["scale"]["outputs"] == {"scaled": str(Path("out") / "scaled.json")}
    assert job["status"] == "ok" and job["seconds"] >= 0 and job["error"] is None
    assert "scaling 3 numbers" in capsys.readouterr().err  # INFO reaches the console by default


def test_saved_config_reloads_with_C_and_overrides_apply_in_order(pm: object, tmp_path: Path) -> None:
    assert main([*RUN, "-o", "a", "-c", "factor=5"]) == 0
    (tmp_path / "f.yaml").write_text("factor: 7\n")
    args = [*RUN, "-o", "b", "-C", "a/scale_config.yaml", "-c", "factor=6", "-C", "f.yaml"]
    assert main(args) == 0
    assert read_json(tmp_path / "b" / "scaled.json") == [7.0, 14.0, 21.0]  # last one wins
    assert main([*RUN, "-o", "c", "-C", "scale:a/scale_config.yaml"]) == 0  # with a label
    assert read_json(tmp_path / "c" / "scaled.json") == [5.0, 10.0, 15.0]


def test_show_prints_and_does_not_run(pm: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.yaml").write_text("factor: 7\n")
    args = ["run", "-t", "ScaleTask", "-C", "f.yaml", "-c", "factor=4", "-o", "out",
            "--show", "config=FAC*", "--show", "history=factor", "--show", "pipeline", "--show", "tasks"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "scale: factor = 4.0" in out
    history = out[out.index("scale: factor\n"):].splitlines()[:4]
    assert [line.split()[0] for line in history[1:]] == ["2.0", "7.0", "4.0"]
    assert history[2].split()[1] == f"{Path('f.yaml')}:1" and "-c factor=4" in history[3]
    assert "class: _launcher_toys.ScaleTask" in out and "factor: 4.0" in out
    assert "input data (toy.Numbers): Numbers to scale." in out
    assert not (tmp_path / "out").exists()
    assert main(["run", "-t", "ScaleTask", "--show", "config"]) == 0
    full = capsys.readouterr().out
    assert "### Configuration for task 'scale'" in full and "__class__: _launcher_toys.ScaleConfig" in full
    assert main(["run", "-t", "ScaleTask", "--show", "config=nothing*"]) == 0
    assert "no config field of scale matches" in capsys.readouterr().out
    assert main(["run", "-t", "ScaleTask", "--show", "config=scale::FAC*:NOIGNORECASE"]) == 0
    assert "no config field of scale matches 'FAC*'" in capsys.readouterr().out
    assert main(["run", "-t", "ScaleTask", "--show", "history=scale::factor"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["scale: factor", "  2.0  default"]
    assert main(["run", "-t", "ScaleTask", "--show", "history=other::factor"]) == EXIT_CONFIG
    assert "unknown task label 'other'" in one_error_line(capsys.readouterr().err)


def test_dry_run_prints_the_plan_and_writes_nothing(pm: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*RUN, "-o", "out", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "dry run (nothing is written)" in plan and "read data <- data.json" in plan
    assert f"write scale.scaled -> {Path('out') / 'scaled'}.* (toy.Numbers)" in plan
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_existing_output_directory_needs_clobber(pm: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    assert main([*RUN, "-o", "out"]) == 0  # empty folder: fine
    capsys.readouterr()
    assert main([*RUN, "-o", "out", "-c", "factor=10"]) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert "output directory 'out' exists and is not empty; pass --clobber" in line
    assert read_json(tmp_path / "out" / "scaled.json") == [2.0, 4.0, 6.0]  # untouched
    assert main([*RUN, "-o", "out", "-c", "factor=10", "--clobber"]) == 0
    assert read_json(tmp_path / "out" / "scaled.json") == [10.0, 20.0, 30.0]


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["run", "-t", "ScaleTsk", "-i", "data=data.json", "-o", "o"], EXIT_USAGE,
         "unknown task 'ScaleTsk'; did you mean 'ScaleTask'?"),
        (["run", "-t", "_launcher_toys.NotATask", "-o", "o"], EXIT_USAGE, "not a Task subclass"),
        (["run", "-t", "no_such_module_xyz.Task", "-o", "o"], EXIT_USAGE, "no module 'no_such_module_xyz'"),
        ([*RUN, "-o", "o", "-c", "factr=2"], EXIT_CONFIG, "-c factr=2: ScaleConfig has no field 'factr'"),
        ([*RUN, "-o", "o", "-c", "factor=abc"], EXIT_CONFIG, "invalid value 'abc' for config field 'factor'"),
        ([*RUN, "-o", "o", "-c", "factor"], EXIT_CONFIG, "expected [LABEL:]dotted.path=VALUE"),
        ([*RUN, "-o", "o", "-C", "nope.yaml"], EXIT_CONFIG, "config file 'nope.yaml' does not exist"),
        (["run", "-t", "ScaleTask", "-i", "dta=data.json", "-o", "o"], EXIT_INPUT,
         "unknown input 'dta'; did you mean 'data'? the pipeline's inputs are: data (toy.Numbers), extra"),
        (["run", "-t", "ScaleTask", "-i", "data=missing.json", "-o", "o"], EXIT_INPUT,
         "input 'data': file 'missing.json' does not exist"),
        (["run", "-t", "ScaleTask", "-o", "o"], EXIT_INPUT, "missing input 'data' (Numbers to scale); give -i data=PATH"),
        (["run", "-t", "ScaleTask", "-i", "data", "-o", "o"], EXIT_INPUT, "expected -i NAME=PATH"),
        ([*RUN, "-o", "o", "-c", "failValue=2"], EXIT_TASK,
         "task 'scale' (_launcher_toys.ScaleTask) failed: ValueError: found the fail value 2.0"),
        (["run", "-t", "OtherOutputTask", "-i", "data=data.json", "-o", "o"], EXIT_PLUGIN_ERROR,
         "no I/O plugin writes data type 'toy.Other' (output 'scaled' of task 'scale')"),
        (["run", "-t", "MissingOutputTask", "-i", "data=data.json", "-o", "o"], EXIT_TASK,
         "returned no 'histogram', a declared output (its result fields: scaled)"),
        (["run", "-t", "ScaleTask", "-i", "data=bad.json", "-o", "o"], EXIT_INPUT,
         "cannot read input 'data' from 'bad.json': plugin 'toy' failed in hook 'diffim_read_input': JSONDecodeError"),
        ([*RUN, "-o", "o", "--log-level", "LOUD"], EXIT_USAGE, "bad log level spec 'LOUD'"),
        ([*RUN, "-o", "o", "--trace", "diffim"], EXIT_USAGE, "bad --trace value 'diffim'"),
        ([*RUN, "-o", "o", "--show", "graph"], EXIT_USAGE, "unknown --show item 'graph'"),
        ([*RUN, "-o", "o", "--executor", "nope"], EXIT_USAGE, "--executor: no executor called 'nope'"),
        ([*RUN], EXIT_USAGE, "diffim run needs an output directory: -o OUTDIR"),
        ([*RUN, "-o", "o", "--debug-file", "nodebug.py"], EXIT_CONFIG, "debug file 'nodebug.py' not found"),
        (["config", "-t", "Nope"], EXIT_USAGE, "unknown task 'Nope'"),
    ],
)
def test_errors_are_one_line_with_distinct_exit_codes(
    pm: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, expected: str
) -> None:
    (tmp_path / "bad.json").write_text("[1, 2,")
    assert main(args) == code
    line = one_error_line(capsys.readouterr().err)
    assert expected in line, line


def test_debug_log_level_or_traceback_flag_adds_the_traceback(pm: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*RUN, "-o", "o1", "-c", "failValue=1", "--log-level", "DEBUG"]) == EXIT_TASK
    err = capsys.readouterr().err
    assert "Traceback" in err and "raise ValueError(msg)" in err  # the task's own frame
    assert err.splitlines()[-1].startswith("diffim: error: task 'scale'")
    assert main(["--traceback", *RUN, "-o", "o2", "-c", "factr=1"]) == EXIT_CONFIG
    assert "Traceback" in capsys.readouterr().err
    assert main([*RUN, "-o", "o3", "-c", "factr=1", "--log-level", "diffim.other=DEBUG"]) == EXIT_CONFIG
    assert "Traceback" not in capsys.readouterr().err  # DEBUG on another logger: no traceback


def test_failed_task_still_writes_its_records(pm: object, tmp_path: Path) -> None:
    assert main([*RUN, "-o", "out", "-c", "failValue=3"]) == EXIT_TASK
    out = tmp_path / "out"
    assert not (out / "scaled.json").exists()
    run = read_json(out / "run.json")
    assert isinstance(run, dict) and run["status"] == "failed"
    (job,) = run["jobs"]
    assert job["error_kind"] == "task" and "found the fail value 3.0" in job["error"]
    assert "Traceback" in job["traceback"]
    assert load_config(out / "scale_config.yaml").failValue == 3.0
    logs = [json.loads(line) for line in (out / "scale_log.jsonl").read_text().splitlines()]
    assert logs[-1]["level"] == "ERROR" and "ValueError" in logs[-1]["exc_info"]
    assert TaskMetadata.from_json((out / "scale_metadata.json").read_text()).getScalar("scale.runStartCpuTime") >= 0


def test_log_level_trace_and_json_log_file(pm: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [*RUN, "-o", "out", "--trace", "diffim.scale=2", "--log-file", "all.jsonl", "--log-level", "WARNING"]
    assert main(args) == 0
    task_log = (tmp_path / "out" / "scale_log.jsonl").read_text()
    assert "trace detail at level 2" in task_log and "scaling 3 numbers" not in task_log
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [r["message"] for r in records if r["name"] == "TRACE2.diffim.scale"] == ["trace detail at level 2"]
    assert all(r["label"] == "scale" for r in records if r["name"].endswith("diffim.scale"))
    assert "scaling" not in capsys.readouterr().err  # WARNING hides the task's INFO on the console
    assert main([*RUN, "-o", "out2", "--trace", "diffim.scale=1"]) == 0
    assert "trace detail" not in (tmp_path / "out2" / "scale_log.jsonl").read_text()


def test_logging_is_restored_after_main(pm: object) -> None:
    import logging

    before = (logging.getLogger("diffim").level, list(logging.getLogger().handlers))
    assert main([*RUN, "-o", "out", "--log-level", "DEBUG", "--log-file", "x.jsonl"]) == 0
    assert (logging.getLogger("diffim").level, list(logging.getLogger().handlers)) == before


def test_debug_file_sets_task_display(pm: object, tmp_path: Path) -> None:
    (tmp_path / "mydebug.py").write_text(
        "from diffim.framework import debug\ndebug.getInfo('_launcher_toys').display = True\n"
    )
    assert main([*RUN, "-o", "out", "--debug-file", "mydebug.py"]) == 0
    metadata = TaskMetadata.from_json((tmp_path / "out" / "scale_metadata.json").read_text())
    assert metadata.getScalar("scale.display") is True
    reset_debug()
    assert main([*RUN, "-o", "out2", "--debug"]) == 0  # no debug.py in cwd: a warning, still runs
    assert TaskMetadata.from_json((tmp_path / "out2" / "scale_metadata.json").read_text()).getScalar("scale.display") is False


def test_class_path_and_label(pm: object, tmp_path: Path) -> None:
    assert main(["run", "-t", "_launcher_toys.ScaleTask:doubler", "-i", "data=data.json", "-o", "out",
                 "-c", "doubler:factor=4"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["doubler_config.yaml", "doubler_log.jsonl", "doubler_metadata.json", "run.json", "scaled.json"]
    assert read_json(tmp_path / "out" / "scaled.json") == [4.0, 8.0, 12.0]


def test_optional_input(pm: object, tmp_path: Path) -> None:
    (tmp_path / "extra.json").write_text("[10, 20, 30]")
    assert main([*RUN, "-i", "extra=extra.json", "-o", "out"]) == 0
    assert read_json(tmp_path / "out" / "scaled.json") == [12.0, 24.0, 36.0]


def test_resume_single_run(pm: object, tmp_path: Path) -> None:
    assert main([*RUN, "-o", "out"]) == 0
    stamp = (tmp_path / "out" / "scaled.json").stat().st_mtime_ns
    for _ in range(2):  # a resumed run stays resumable
        assert main([*RUN, "-o", "out", "--resume"]) == 0
        run = read_json(tmp_path / "out" / "run.json")
        assert isinstance(run, dict) and run["jobs"][0]["status"] == "skipped" and run["status"] == "ok"
    assert (tmp_path / "out" / "scaled.json").stat().st_mtime_ns == stamp
    (tmp_path / "out" / "scaled.json").unlink()  # incomplete now: runs again
    assert main([*RUN, "-o", "out", "--resume"]) == 0
    assert read_json(tmp_path / "out" / "scaled.json") == [2.0, 4.0, 6.0]


def test_build_prints_and_saves_a_reloadable_pipeline(pm: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-t", "ScaleTask", "-c", "factor=5"]) == 0
    printed = capsys.readouterr().out
    assert "class: _launcher_toys.ScaleTask" in printed and "factor: 5.0" in printed
    assert main(["build", "-t", "ScaleTask", "-c", "factor=5", "-s", "saved.yaml"]) == 0
    assert main(["run", "-p", "saved.yaml", "-i", "data=data.json", "-o", "out"]) == 0
    assert read_json(tmp_path / "out" / "scaled.json") == [5.0, 10.0, 15.0]
    assert main(["build", "-p", "saved.yaml", "--show", "config=factor"]) == 0
    assert capsys.readouterr().out.strip().endswith("scale: factor = 5.0")


def test_tasks_and_config_commands(pm: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    text = capsys.readouterr().out
    assert "ScaleTask  _launcher_toys.ScaleTask" in text
    assert "    input extra (toy.Numbers, optional): Numbers added after scaling." in text
    assert "SumTask  _launcher_toys.SumTask\n    Add numbers." in text  # registered by path
    assert main(["tasks", "--json"]) == 0
    infos = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
    assert infos["ScaleTask"]["outputs"] == {"scaled": {"type": "toy.Numbers", "doc": "Scaled numbers.", "optional": False}}
    assert main(["config", "-t", "ScaleTask"]) == 0
    assert "# Multiplier.\nfactor: 2.0" in capsys.readouterr().out
    assert main(["config", "-t", "_launcher_toys.SumTask", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["start"]["default"] == 0.0


def test_help_documents_exit_codes(pm: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "build", "tasks", "config", "plugins"):
        assert f"    {command} " in out
    assert "exit codes:" in out and "7    partial failure" in out
