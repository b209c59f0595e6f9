"""``diffim run --inputs-table``: one job per row, failing rows recorded, ``--resume``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from diffim.framework.cli import EXIT_INPUT, EXIT_PARTIAL, EXIT_TASK, main

sys.path.insert(0, str(Path(__file__).parent))
import _launcher_toys as toys

RUN = ["run", "-t", "ScaleTask", "-c", "failValue=99", "--inputs-table", "rows.csv", "-o", "out"]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Data files under data/, a table of 3 rows (row 'b' hits the fail value, 'c' misses its file)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIFFIM_TRACEBACK", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.json").write_text("[1, 2]")
    (data / "b.json").write_text("[99]")
    (data / "extra.json").write_text("[100, 100]")
    (tmp_path / "rows.csv").write_text("id,data,extra\na,data/a.json,data/extra.json\nb,data/b.json,\nc,data/c.json,\n")
    with toys.toy_plugins():
        yield tmp_path


def run_record(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_table_runs_every_row_and_records_failures(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(RUN) == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "diffim: error: 2 of 3 jobs failed (first: b: task 'scale' (_launcher_toys.ScaleTask) failed: "
        f"ValueError: found the fail value 99.0); details in {Path('out') / 'run.json'}"
    )
    assert "job c failed: input 'data': file '" in err  # each failing row is logged
    out = folder / "out"
    assert json.loads((out / "a" / "scaled.json").read_text()) == [102.0, 104.0]
    run = run_record(out / "run.json")
    assert run["status"] == "partial" and run["counts"] == {"ok": 1, "failed": 2, "skipped": 0, "not_run": 0}
    jobs = {job["id"]: job for job in run["jobs"]}
    assert [job["id"] for job in run["jobs"]] == ["a", "b", "c"]
    assert jobs["a"]["status"] == "ok" and jobs["a"]["inputs"]["extra"] == str(Path("data") / "extra.json")
    assert jobs["b"]["error_kind"] == "task" and "Traceback" in jobs["b"]["traceback"]
    assert jobs["c"]["error_kind"] == "input" and jobs["c"]["error"].endswith("c.json' does not exist")
    assert len(run["errors"]) == 2 and run["errors"][0].startswith("b: task 'scale'")
    # every row that ran has its own run.json (resumable even if the whole run is killed)
    assert run_record(out / "a" / "run.json")["jobs"][0]["status"] == "ok"
    assert run_record(out / "b" / "run.json")["jobs"][0]["status"] == "failed"
    assert not (out / "c").exists()


def test_resume_skips_complete_rows(folder: Path) -> None:
    assert main(RUN) == EXIT_PARTIAL
    out = folder / "out"
    stamp = (out / "a" / "scaled.json").stat().st_mtime_ns
    (folder / "data" / "b.json").write_text("[5]")
    (folder / "data" / "c.json").write_text("[6]")
    assert main(RUN) != 0  # without --resume (or --clobber) the folder is refused
    assert main([*RUN, "--resume"]) == 0
    run = run_record(out / "run.json")
    assert [job["status"] for job in run["jobs"]] == ["skipped", "ok", "ok"]
    assert run["status"] == "ok" and run["counts"] == {"ok": 2, "failed": 0, "skipped": 1, "not_run": 0}
    assert run["jobs"][0]["tasks"]["scale"]["outputs"]["scaled"].endswith("scaled.json")  # kept
    assert (out / "a" / "scaled.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "c" / "scaled.json").read_text()) == [12.0]
    (out / "b" / "scaled.json").unlink()  # an output went missing: that row is incomplete again
    assert main([*RUN, "--resume"]) == 0
    assert [job["status"] for job in run_record(out / "run.json")["jobs"]] == ["skipped", "ok", "skipped"]


def test_every_row_failing_is_a_task_failure(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "all.csv").write_text("data\ndata/b.json\ndata/b.json\n")
    args = ["run", "-t", "ScaleTask", "-c", "failValue=99", "--inputs-table", "all.csv", "-o", "out"]
    assert main(args) == EXIT_TASK
    run = run_record(folder / "out" / "run.json")
    assert run["status"] == "failed" and [job["id"] for job in run["jobs"]] == ["0", "1"]  # default ids


def test_constant_input_and_paths_relative_to_the_table(folder: Path) -> None:
    (folder / "data" / "only.csv").write_text("id,data\nx,a.json\n")  # next to the table
    args = ["run", "-t", "ScaleTask", "--inputs-table", "data/only.csv", "-i", "extra=data/extra.json", "-o", "out"]
    assert main(args) == 0
    assert json.loads((folder / "out" / "x" / "scaled.json").read_text()) == [102.0, 104.0]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("id,data,bogus\na,data/a.json,x\n", "inputs table 'bad.csv' column: unknown input 'bogus'"),
        ("id,extra\na,data/a.json\n", "missing input 'data' (Numbers to scale); give -i data=PATH or add a column 'data'"),
        ("id,data\na,data/a.json\na,data/a.json\n", "row 2: id 'a' repeats row 1"),
        ("id,data\n../up,data/a.json\n", "id '../up' cannot name a folder"),
        ("id,data\n", "inputs table 'bad.csv' has no rows"),
        ("", "has no header row"),
    ],
)
def test_bad_tables_are_input_errors(folder: Path, capsys: pytest.CaptureFixture[str], table: str, expected: str) -> None:
    (folder / "bad.csv").write_text(table)
    assert main(["run", "-t", "ScaleTask", "--inputs-table", "bad.csv", "-o", "out"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (folder / "out").exists()


def test_dry_run_of_a_table_shows_failing_and_skipped_rows(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(RUN) == EXIT_PARTIAL
    capsys.readouterr()
    assert main([*RUN, "--resume", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert f"job 0 [a] -> {Path('out') / 'a'}  SKIPPED: complete (--resume)" in plan
    assert f"job 1 [b] -> {Path('out') / 'b'}\n" in plan
    assert "job 2 [c]" in plan and "FAILS: input 'data': file '" in plan
