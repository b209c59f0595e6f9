"""``diffim run -j 2``: a table run on spawned worker processes gives the serial run's results.

Workers only load plugins from entry points, so the toy I/O plugin reaches them through the
debug file, which the launcher re-loads in every worker (``--debug-file``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from diffim.framework.cli import EXIT_PARTIAL, main

sys.path.insert(0, str(Path(__file__).parent))  # spawned workers inherit it
import _launcher_toys as toys

DEBUG_FILE = """
from diffim.framework.plugins import get_plugin_manager
import _launcher_toys
pm = get_plugin_manager()
if pm.get_plugin("toy") is None:  # in a worker: register the toy I/O plugin
    pm.register(_launcher_toys.ToyIO(), "toy")
"""


def test_process_executor_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rows = ["id,data"]
    for i in range(4):
        (tmp_path / f"d{i}.json").write_text(json.dumps([i, i + 1]))
        rows.append(f"r{i},d{i}.json")
    rows.append("bad,d1.json")  # the fail value below
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "toy_debug.py").write_text(DEBUG_FILE)
    common = ["run", "-t", "ScaleTask", "-c", "factor=3", "-c", "failValue=2", "--inputs-table", "rows.csv",
              "--debug-file", "toy_debug.py"]
    with toys.toy_plugins():
        assert main([*common, "-o", "serial"]) == EXIT_PARTIAL
        assert main([*common, "-o", "parallel", "-j", "2"]) == EXIT_PARTIAL
    runs = {name: json.loads((tmp_path / name / "run.json").read_text()) for name in ("serial", "parallel")}
    assert runs["parallel"]["executor"] == {"name": "process", "processes": 2, "scheduler": None, "timeout": None}
    for name, run in runs.items():
        assert [(j["id"], j["status"]) for j in run["jobs"]] == [
            ("r0", "ok"), ("r1", "failed"), ("r2", "failed"), ("r3", "ok"), ("bad", "failed")
        ], name
    for row in ("r0", "r3"):
        assert (tmp_path / "serial" / row / "scaled.json").read_text() == (tmp_path / "parallel" / row / "scaled.json").read_text()
    parallel_pids = {j["pid"] for j in runs["parallel"]["jobs"]}
    assert runs["serial"]["jobs"][0]["pid"] not in parallel_pids  # really ran elsewhere
    errors = [j["error"] for j in runs["parallel"]["jobs"] if j["status"] == "failed"]
    assert errors == [j["error"] for j in runs["serial"]["jobs"] if j["status"] == "failed"]
