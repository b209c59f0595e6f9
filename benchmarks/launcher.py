"""Launcher speed benchmark: ``diffim --help`` and the start-up overhead of ``diffim run``.

Run from the repository root after installing the package::

    python benchmarks/launcher.py            # prints a Markdown table
    python benchmarks/launcher.py --json out.json

Measured in fresh interpreters, bytecode cached (as on a user's machine; this workplace sets
PYTHONDONTWRITEBYTECODE, which is removed for the children):

* ``diffim --help`` wall time (the installed console script). Target ≤ 0.3 s; pipetask 1.5 s.
* ``diffim run`` start-up overhead: from process launch to the first line of a trivial task's
  ``run()`` (the task records ``time.time()``), for one task reading one small JSON input
  through a toy I/O plugin. Everything the launcher does first is included: interpreter start,
  plugin loading, argument parsing, logging set-up, pipeline and config resolution, input
  checks, output-directory checks, the executor, reading the input. Target ≤ 0.5 s; pipetask
  2.0 s for one trivial quantum. The total wall time (outputs, run.json written, exit) is
  reported too.

The toy task and its I/O plugin are written to a temporary folder and registered in-process by
a short driver (``register(toy); sys.exit(main(argv))``), since a real plugin would come
from an entry point; the console script does the same ``main(argv)`` call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOY = '''
import json, time
from pathlib import Path
from typing import ClassVar
from diffim.framework import Struct, Task
from diffim.framework.config import Config, Field
from diffim.framework.connections import Input, Output
from diffim.framework.plugins import hookimpl

class ToyConfig(Config):
    factor: float = Field(2.0, description="Multiplier.")

class ToyTask(Task):
    ConfigClass = ToyConfig
    _DefaultName = "toy"
    inputs: ClassVar = {"data": Input("toy.Numbers", "Numbers.")}
    outputs: ClassVar = {"started": Output("toy.Numbers", "Time run() started.")}

    def run(self, data):
        return Struct(started=[time.time()])

@hookimpl
def diffim_register_tasks(registry):
    registry.register("ToyTask", ToyTask)

@hookimpl
def diffim_read_input(type_name, path):
    return json.loads(Path(path).read_text()) if type_name == "toy.Numbers" else None

@hookimpl
def diffim_write_output(type_name, value, path):
    if type_name != "toy.Numbers":
        return None
    target = Path(str(path) + ".json")
    target.write_text(json.dumps(value))
    return target
'''

DRIVER = (
    "import sys, toy_launcher_bench as toy\n"
    "from diffim.framework.plugins import get_plugin_manager\n"
    "from diffim.plugins import executor_hooks\n"
    "pm = get_plugin_manager()\n"
    "pm.register(toy)\n"
    "pm.is_registered(executor_hooks) or pm.register(executor_hooks)  # until its entry point is installed\n"
    "from diffim.framework.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _diffim_script() -> list[str]:
    script = Path(sys.executable).with_name("diffim")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from diffim.framework.cli import main; sys.exit(main())"]


def _median_wall(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    subprocess.run(cmd, check=True, env=env, capture_output=True)  # warm-up writes .pyc
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _run_overhead(folder: Path, env: dict[str, str], repeat: int) -> tuple[float, float]:
    data = folder / "data.json"
    data.write_text("[1, 2, 3]")
    out = folder / "out"
    cmd = [sys.executable, "-c", DRIVER, "run", "-t", "ToyTask", "-i", f"data={data}", "-o", str(out),
           "--log-level", "WARNING"]
    overheads, totals = [], []
    for i in range(repeat + 1):
        shutil.rmtree(out, ignore_errors=True)
        launched = time.time()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        total = time.perf_counter() - start
        started = json.loads((out / "started.json").read_text())[0]
        if i:  # the first run writes the bytecode caches
            overheads.append(started - launched)
            totals.append(total)
    return statistics.median(overheads), statistics.median(totals)


def run(repeat: int) -> dict[str, float]:
    """Measure every figure.

    Parameters
    ----------
    repeat : `int`
        Interpreter starts per figure (medians are reported).

    Returns
    -------
    results : `dict` [`str`, `float`]
        Figure name -> seconds.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "toy_launcher_bench.py").write_text(TOY)
        env = _env(folder)
        results = {"python -c pass (s)": _median_wall([sys.executable, "-c", "pass"], env, repeat)}
        results["diffim --help (s)"] = _median_wall([*_diffim_script(), "--help"], env, repeat)
        results["diffim run --help (s)"] = _median_wall([*_diffim_script(), "run", "--help"], env, repeat)
        overhead, total = _run_overhead(folder, env, repeat)
        results["diffim run: launch to task run() start (s)"] = overhead
        results["diffim run: total wall time, trivial task (s)"] = total
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the figures as a Markdown table (and optionally save them as JSON).

    Parameters
    ----------
    argv : `list` [`str`], optional
        Command-line arguments.

    Returns
    -------
    code : `int`
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--repeat", type=int, default=11, help="interpreter starts per figure")
    args = parser.parse_args(argv)
    results = run(args.repeat)
    print("| measurement | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value:.3f} |")
    print("\ntargets: --help <= 0.3 s (pipetask 1.5 s); run start-up <= 0.5 s (pipetask run 2.0 s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
