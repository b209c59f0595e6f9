"""``diffim run --fail-fast`` and ``--timeout``: stopping a table run early, limiting each job."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from diffim.framework.cli import EXIT_OK, EXIT_PARTIAL, EXIT_TASK, EXIT_USAGE, main

sys.path.insert(0, str(Path(__file__).parent))  # spawned workers inherit it
import _launcher_toys as toys

# Workers load plugins from entry points only: the debug file (re-loaded in every worker)
# registers the toy I/O plugin there.
DEBUG_FILE = """
from diffim.framework.plugins import get_plugin_manager
import _launcher_toys
pm = get_plugin_manager()
if pm.get_plugin("toy") is None:
    pm.register(_launcher_toys.ToyIO(), "toy")
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Rows a (ok), b (fails: holds the fail value 99), c (ok), and a debug file for workers."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIFFIM_TRACEBACK", raising=False)
    for name, values in {"a": [1], "b": [99], "c": [3], "slow": [13]}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(values))
    (tmp_path / "rows.csv").write_text("id,data\na,a.json\nb,b.json\nc,c.json\n")
    (tmp_path / "toy_debug.py").write_text(DEBUG_FILE)
    with toys.toy_plugins():
        yield tmp_path


def statuses(out: Path) -> dict[str, Any]:
    run = json.loads((out / "run.json").read_text())
    return {job["id"]: (job["status"], job["error_kind"]) for job in run["jobs"]} | {"counts": run["counts"]}


def test_fail_fast_starts_no_row_after_a_failure(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = ["run", "-t", "ScaleTask", "-c", "failValue=99", "--inputs-table", "rows.csv", "-o", "out"]
    assert main([*run, "--fail-fast"]) == EXIT_PARTIAL
    assert capsys.readouterr().err.splitlines()[-1] == (
        "diffim: error: 1 of 3 jobs failed, 1 not run (--fail-fast) (first: b: task 'scale' (_launcher_toys.ScaleTask) "
        f"failed: ValueError: found the fail value 99.0); details in {Path('out') / 'run.json'}"
    )
    assert statuses(folder / "out") == {
        "a": ("ok", None), "b": ("failed", "task"), "c": ("not_run", None),
        "counts": {"ok": 1, "failed": 1, "skipped": 0, "not_run": 1},
    }
    record = json.loads((folder / "out" / "run.json").read_text())
    assert record["fail_fast"] is True
    assert record["jobs"][2]["error"] == "not run: --fail-fast: job b failed first"
    assert not (folder / "out" / "c").exists()
    # the rows not run are not complete: --resume runs them (and the failed one again)
    (folder / "b.json").write_text("[2]")
    assert main([*run, "--resume"]) == EXIT_OK
    assert [s for s, _ in list(statuses(folder / "out").values())[:3]] == ["skipped", "ok", "ok"]


def test_fail_fast_runs_nothing_when_a_row_fails_while_planning(folder: Path) -> None:
    (folder / "gaps.csv").write_text("id,data\na,a.json\nmissing,nope.json\nc,c.json\n")
    run = ["run", "-t", "ScaleTask", "--inputs-table", "gaps.csv", "-o", "out", "--fail-fast"]
    assert main(run) == EXIT_TASK  # no row succeeded
    assert statuses(folder / "out") == {
        "a": ("not_run", None), "missing": ("failed", "input"), "c": ("not_run", None),
        "counts": {"ok": 0, "failed": 1, "skipped": 0, "not_run": 2},
    }
    assert main([*run[:-1], "--clobber"]) == EXIT_PARTIAL  # without --fail-fast the others run


def test_timeout_on_worker_processes_with_fail_fast(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # -j 1: one worker, rows in table order; the slow row busy-loops 60 s and is stopped after 0.5 s
    (folder / "slow.csv").write_text("id,data\na,a.json\nslow,slow.json\nc,c.json\n")
    run = ["run", "-t", "LoopingTask", "-c", "seconds=60", "--inputs-table", "slow.csv", "-o", "out",
           "--debug-file", "toy_debug.py", "-j", "1", "--timeout", "0.5", "--fail-fast"]
    assert main(run) == EXIT_PARTIAL
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("diffim: error: 1 of 3 jobs failed, 1 not run (--fail-fast) (first: slow: JobTimeout: the job "
                          "ran longer than its time limit of 0.5 s (--timeout) and was stopped)")
    assert statuses(folder / "out") == {
        "a": ("ok", None), "slow": ("failed", "timeout"), "c": ("not_run", None),
        "counts": {"ok": 1, "failed": 1, "skipped": 0, "not_run": 1},
    }
    record = json.loads((folder / "out" / "run.json").read_text())
    assert record["executor"] == {"name": "process", "processes": 1, "scheduler": None, "timeout": 0.5}
    slow = record["jobs"][1]
    assert 0.5 <= slow["seconds"] < 30 and "JobTimeout" in slow["traceback"]
    assert (folder / "out" / "slow" / "scale_log.jsonl").exists()  # the log of the stopped task is kept


def test_timeout_needs_an_executor_that_can_enforce_it(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = ["run", "-t", "ScaleTask", "-i", "data=a.json", "-o", "out", "--timeout", "5"]
    assert main([*run, "--executor", "serial"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[-1] == (
        "diffim: error: --executor serial: the 'serial' executor cannot enforce a per-job timeout (got timeout=5.0); "
        "use --executor process (or dask), or drop --timeout"
    )
    assert main([*run[:-2], "--timeout", "0"]) == EXIT_USAGE
    assert "--timeout: expected a positive number of seconds, got '0'" in capsys.readouterr().err
    assert main(["run", "-t", "ScaleTask", "-i", "data=a.json", "--timeout", "5", "--dry-run"]) == EXIT_OK
    assert "executor process (timeout=5.0)" in capsys.readouterr().out  # --timeout picks the process executor


def test_run_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--version"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("diffim ")
