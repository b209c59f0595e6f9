"""Launcher speed benchmark: ``diffim --help`` and the start-up overhead of ``diffim run``.

Run from the repository root after installing the package::

    python benchmarks/launcher.py            # prints Markdown tables
    python benchmarks/launcher.py --json out.json
    python benchmarks/launcher.py --only parallel --pairs demo --rounds 5

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

Parallel table (run by default; ``--only parallel`` skips the start-up figures)
--------------------------------------------------------------------------------
Issue 6: "with ``-j 2`` a table of 8 pairs runs >= 1.7x faster than serial". Measured exactly so:
the installed ``diffim`` command, ``diffim run -t ImagePsfMatchTask --inputs-table pairs.csv -o
OUT --log-level WARNING`` against the same command with ``-j 2``, 8 rows, wall time from
process launch to exit (interpreter start, plugin loading, planning, worker start-up, every job,
``run.json``), each in a fresh process with a fresh OUTDIR. The pairs (``--pairs``):

* ``SIZE`` (default 2048): 8 different ``make_pair.py`` pairs (seeds 1-8, no variance maps) of
  SIZE² pixels, the project's benchmark pair (``/work/shared/bench``, or ``DIFFIM_BENCH_DIR``),
  generated once into ``--cache``; a round takes ~35 s on 2 idle cores;
* ``demo``: the 256² DECam pair shipped for ``diffim demo`` eight times, with the demo's config.
  Its jobs take ~0.2 s while every process pays ~1.2 CPU-s of imports and first-run costs
  before its first job finishes (numpy, scipy, astropy, the task modules), so two workers
  cannot be 1.7x faster than one process there: the least favourable case, for information.

Rounds alternate which of the two runs first, so drifts in machine load hit both alike. The
figure is ``best serial / best -j 2`` over the rounds (machine noise only ever adds time); the
median and range of the per-round ratios show the spread. Before timing, one untimed round
writes bytecode caches and fills the file cache, and the outputs of the two runs are checked to
be identical (the launcher pins BLAS to one thread per job in both, so they are). A breakdown
from ``run.json`` shows where the time goes: before the jobs (start-up, planning), the jobs
phase (pool start-up included), and after (records, worker shut-down, exit); the CPU time of
the command and its workers shows the work the parallel run duplicates (worker start-up), which
other load on the machine does not change much. The machine must otherwise be idle for the
wall-time figure to mean anything: the CPU time other processes took during each timed run
(``/proc/stat`` minus ours) is shown, with a warning when it is not negligible.

What bounds the speed-up: the steady-state job time (each worker's first job, which pays the
imports and first-touch memory, left out) of the serial run against that of the parallel run
gives the speed-up N workers would reach with no start-up and no idle tail. The serial run's
jobs run their FFT stages on every core (``convolutionWorkers``) while a parallel job gets its
share (one core of two), and two jobs side by side share the cache and memory bandwidth, so
that bound is below N; ``--one-thread-serial`` adds the serial run with ``DIFFIM_THREADS=1``
as a reference that separates the executor's own cost from the serial run's use of the
other cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------------------------ parallel table

BENCH = Path(os.environ.get("DIFFIM_BENCH_DIR", "/work/shared/bench"))
N_PAIRS = 8
TARGET_SPEEDUP = 1.7
STEADY = "job time, steady state (median; each worker's first job left out)"


def make_pairs(cache: Path, size: int, n: int = N_PAIRS) -> list[tuple[Path, Path]]:
    """``n`` make_pair pairs of side ``size`` (seeds 1..n) in ``cache``, generated once."""
    pairs = []
    for seed in range(1, n + 1):
        folder = cache / f"pair{size}_seed{seed}"
        if not (folder / "science.fits").exists():
            script = BENCH / "make_pair.py"
            if not script.exists():
                msg = f"cannot find {script}; set DIFFIM_BENCH_DIR to the folder holding make_pair.py"
                raise FileNotFoundError(msg)
            subprocess.run([sys.executable, str(script), "--outdir", str(folder), "--size", str(size),
                            "--seed", str(seed), "--no-variance"], check=True, capture_output=True)
        pairs.append((folder / "template.fits", folder / "science.fits"))
    return pairs


def demo_pairs(n: int = N_PAIRS) -> tuple[list[tuple[Path, Path]], list[str]]:
    """The pair shipped for ``diffim demo``, ``n`` times, and the demo's config overrides."""
    from diffim.plugins import demo

    overrides = ["-c", "kernel.active.spatialKernelOrder=0", "-c", "kernel.active.spatialBgOrder=0"]
    return [(demo.TEMPLATE, demo.SCIENCE)] * n, overrides


def _write_table(path: Path, pairs: list[tuple[Path, Path]]) -> Path:
    lines = ["id,template,science"] + [f"p{i},{t},{s}" for i, (t, s) in enumerate(pairs)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _epoch(iso: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(iso).timestamp()


def _busy_cpu_seconds() -> float:
    """CPU time used by every process of the machine so far (Linux ``/proc/stat``; NaN elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    ticks = [int(value) for value in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _timed_table_run(cmd: list[str], out: Path, env: dict[str, str]) -> dict[str, float]:
    """Run one ``diffim run`` into a fresh ``out``; wall time and its phases from run.json."""
    shutil.rmtree(out, ignore_errors=True)
    before_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = _busy_cpu_seconds()
    launched = time.time()
    start = time.perf_counter()
    done = subprocess.run([*cmd, "-o", str(out)], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    busy = _busy_cpu_seconds() - busy_before
    after_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        msg = f"{' '.join(cmd)} failed with exit code {done.returncode}: {done.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    record = json.loads((out / "run.json").read_text())
    jobs = record["jobs"]
    before = _epoch(record["start"]) - launched
    steady, first, ends = _job_phases(jobs)
    return {
        "wall": wall,
        "before jobs (start-up, planning)": before,
        "jobs phase (pool start-up included)": float(record["seconds"]),
        "after jobs (records, shut-down, exit)": wall - before - float(record["seconds"]),
        "first job start after launch": min(_epoch(j["start"]) for j in jobs) - launched,
        "sum of job times": sum(float(j["seconds"]) for j in jobs),
        STEADY: statistics.median(steady),
        "job time, each worker's first job (mean)": statistics.mean(first),
        "one worker idle at the end (first worker done to last)": max(ends) - min(ends),
        # the command and its workers (reaped before it exits): shows duplicated work, whatever the load
        "CPU time, all processes": (cpu := (after_cpu.ru_utime - before_cpu.ru_utime)
                                    + (after_cpu.ru_stime - before_cpu.ru_stime)),
        # what other processes of the machine took meanwhile: must be ~0 for a valid wall time
        "CPU time of other processes meanwhile": max(0.0, busy - cpu),
    }


#: Streams 2 x 64 MB arrays (a += b) and prints GB/s: memory-bound like a subtraction's image passes.
_STREAM = (
    "import numpy as np, time\n"
    "a = np.ones(8_000_000); b = np.ones(8_000_000)\n"
    "for _ in range(3): a += b\n"
    "t = time.perf_counter()\n"
    "for _ in range(60): a += b\n"
    "print(60 * 3 * a.nbytes / 1e9 / (time.perf_counter() - t))\n"
)


def memory_bandwidth(processes: int) -> dict[str, float]:
    """Streaming bandwidth of one process alone and of each of ``processes`` running at once (GB/s).

    Two jobs side by side share the cache and the memory bus: on a machine whose per-process
    bandwidth drops when several stream at once, parallel jobs run slower than serial ones.
    """

    def streams(n: int) -> list[float]:
        children = [subprocess.Popen([sys.executable, "-c", _STREAM], stdout=subprocess.PIPE, text=True)
                    for _ in range(n)]
        return [float(child.communicate()[0]) for child in children]

    # medians of 5: the figure that held while the table ran, not the machine's best moment
    alone = statistics.median(streams(1)[0] for _ in range(5))
    together = statistics.median(statistics.mean(streams(processes)) for _ in range(5))
    return {"one process (GB/s)": alone, f"each of {processes} at once (GB/s)": together}


def _job_phases(jobs: list[dict[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """Job times after each worker's first, the first jobs' times, and each worker's end time."""
    seen: set[str] = set()
    steady, first = [], []
    ends: dict[str, float] = {}
    for job in sorted(jobs, key=lambda j: _epoch(j["start"])):
        worker = str(job.get("worker", job.get("pid")))
        (steady if worker in seen else first).append(float(job["seconds"]))
        seen.add(worker)
        ends[worker] = max(ends.get(worker, 0.0), _epoch(job["start"]) + float(job["seconds"]))
    return steady or first, first, list(ends.values())


def _different_outputs(a: Path, b: Path) -> list[str]:
    """Files whose data differ between two table runs (FITS data compared, headers not)."""
    import numpy as np
    from astropy.io import fits

    differ = []
    for file_a in sorted(a.glob("*/*.fits")):
        file_b = b / file_a.relative_to(a)
        with fits.open(file_a) as hdus_a, fits.open(file_b) as hdus_b:
            for hdu_a, hdu_b in zip(hdus_a, hdus_b, strict=True):
                data_a, data_b = hdu_a.data, hdu_b.data
                if data_a is None and data_b is None:
                    continue
                if getattr(data_a, "dtype", None) is not None and data_a.dtype.names:
                    same = all(np.array_equal(data_a[c], data_b[c]) for c in data_a.dtype.names)
                else:
                    same = np.array_equal(data_a, data_b, equal_nan=True)
                if not same:
                    differ.append(f"{file_a.relative_to(a)}[{hdu_a.name}]")
    return differ


def run_parallel(
    pairs_spec: str, rounds: int, processes: int, cache: Path | None, *, one_thread: bool = False
) -> dict[str, Any]:
    """Time serial against ``-j processes`` on a table of 8 pairs (see the module docstring).

    Parameters
    ----------
    pairs_spec : `str`
        ``demo`` or a make_pair image side such as ``2048``.
    rounds : `int`
        Timed rounds (each runs both commands).
    processes : `int`
        ``-j`` value.
    cache : `pathlib.Path` or `None`
        Where make_pair pairs are kept (default: a folder under the system temporary folder).
    one_thread : `bool`, optional
        Also time the serial run with ``DIFFIM_THREADS=1`` (every stage on one core), the
        reference that separates the executor's own cost from the serial run's use of the
        other cores.

    Returns
    -------
    results : `dict`
        Per-round timings, phases and the speed-up figures.
    """
    overrides: list[str] = []
    if pairs_spec == "demo":
        pairs, overrides = demo_pairs()
        what = f"{N_PAIRS} x the 256² DECam demo pair"
    else:
        size = int(pairs_spec)
        cache = cache or Path(tempfile.gettempdir()) / "diffim-bench-pairs"
        pairs = make_pairs(cache, size)
        what = f"{N_PAIRS} make_pair pairs of {size}²"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    bandwidth = memory_bandwidth(processes)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table = _write_table(folder / "pairs.csv", pairs)
        base = [*_diffim_script(), "run", "-t", "ImagePsfMatchTask", "--inputs-table", str(table),
                "--log-level", "WARNING", *overrides]
        commands = {"serial": (base, env), f"-j {processes}": ([*base, "-j", str(processes)], env)}
        if one_thread:
            commands["serial, 1 thread"] = (base, {**env, "DIFFIM_THREADS": "1"})
        names = list(commands)
        # untimed: bytecode and file caches; and the two executors must give identical outputs
        for name, (cmd, cmd_env) in list(commands.items())[:2]:
            _timed_table_run(cmd, folder / name.replace(" ", ""), cmd_env)
        differ = _different_outputs(folder / "serial", folder / names[1].replace(" ", ""))
        timings: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for index in range(rounds):
            for name in names if index % 2 == 0 else names[::-1]:
                cmd, cmd_env = commands[name]
                timings[name].append(_timed_table_run(cmd, folder / "out", cmd_env))
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    walls = {name: [t["wall"] for t in values] for name, values in timings.items()}
    ratios = [s / p for s, p in zip(walls[names[0]], walls[names[1]], strict=True)]
    best = {name: min(values, key=lambda t: t["wall"]) for name, values in timings.items()}
    steady = {name: statistics.median(t[STEADY] for t in values) for name, values in timings.items()}
    extra = {}
    if one_thread:
        extra["speedup_over_one_thread_serial"] = best[names[2]]["wall"] / best[names[1]]["wall"]
    return {
        "pairs": what,
        "processes": processes,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "rounds": timings,
        "best": best,
        "speedup": best[names[0]]["wall"] / best[names[1]]["wall"],
        "speedup_median_of_rounds": statistics.median(ratios),
        "speedup_range": [min(ratios), max(ratios)],
        # no start-up, no idle tail: N jobs at a time, each as long as next to N-1 others
        "steady_state_job_seconds": steady,
        "speedup_steady_state_bound": processes * steady[names[0]] / steady[names[1]],
        **extra,
        "memory_bandwidth": bandwidth,
        "outputs_identical": not differ,
        "outputs_differing": differ,
        "load_average_1min": [load_before, load_after],
    }


def print_parallel(report: dict[str, Any]) -> None:
    """Print `run_parallel`'s figures as Markdown."""
    names = list(report["best"])
    serial, parallel = names[:2]
    print(f"\n## diffim run --inputs-table: {report['pairs']}, serial vs {parallel} ({report['cores']} cores)\n")
    heads = " | ".join(f"{name} (s)" for name in names)
    print(f"| round | {heads} | speed-up |\n|---|{'---|' * len(names)}---|")
    for i, row in enumerate(zip(*(report["rounds"][name] for name in names), strict=True)):
        walls = " | ".join(f"{t['wall']:.2f}" for t in row)
        print(f"| {i + 1} | {walls} | {row[0]['wall'] / row[1]['wall']:.2f}x |")
    print(f"\n| phase (best round of each) | {heads} |\n|---|{'---|' * len(names)}")
    for key in report["best"][serial]:
        print(f"| {key} | " + " | ".join(f"{report['best'][name][key]:.2f}" for name in names) + " |")
    low, high = report["speedup_range"]
    identical = "identical" if report["outputs_identical"] else f"DIFFERENT: {report['outputs_differing'][:5]}"
    print(f"\noutputs of the two runs: {identical}")
    others = max(t["CPU time of other processes meanwhile"] for values in report["rounds"].values() for t in values)
    walls_min = min(t["wall"] for values in report["rounds"].values() for t in values)
    if others > 0.05 * walls_min:
        print(f"WARNING: other processes used up to {others:.1f} CPU-s during a timed run: -j {report['processes']} "
              "competed with them for the cores, so the wall times and speed-up do not measure the launcher; "
              "rerun on an idle machine")
    steady = report["steady_state_job_seconds"]
    print(f"steady state (medians over rounds): a job takes {steady[serial]:.2f} s in the serial run and "
          f"{steady[parallel]:.2f} s next to another job: bound without start-up or idle tail "
          f"{report['speedup_steady_state_bound']:.2f}x")
    alone, together = report["memory_bandwidth"].values()
    print(f"memory bandwidth (streaming): {alone:.1f} GB/s for one process, {together:.1f} GB/s each "
          f"for {report['processes']} at once ({1 - together / alone:.0%} less)")
    if "speedup_over_one_thread_serial" in report:
        print(f"speed-up of {parallel} over the serial run on one thread (DIFFIM_THREADS=1, best/best): "
              f"{report['speedup_over_one_thread_serial']:.2f}x")
    print(f"speed-up of {parallel} over serial, 8-row table, launch to exit (best/best): {report['speedup']:.2f}x "
          f"(per-round median {report['speedup_median_of_rounds']:.2f}x, range {low:.2f}-{high:.2f}x; "
          f"target >= {TARGET_SPEEDUP}x)")


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
    parser.add_argument("--repeat", type=int, default=11, help="interpreter starts per start-up figure")
    parser.add_argument("--only", choices=("startup", "parallel"), help="run only one part")
    parser.add_argument("--pairs", default="2048",
                        help="parallel table: make_pair image side (default 2048) or 'demo' (shipped 256² pair)")
    parser.add_argument("--rounds", type=int, default=3, help="parallel table: timed rounds (default 3)")
    parser.add_argument("-j", "--processes", type=int, default=2, help="parallel table: -j value (default 2)")
    parser.add_argument("--cache", type=Path, help="parallel table: folder keeping the make_pair pairs")
    parser.add_argument("--one-thread-serial", action="store_true",
                        help="parallel table: also time the serial run with DIFFIM_THREADS=1 (reference)")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    if args.only != "parallel":
        results = report["startup"] = run(args.repeat)
        print("| measurement | value |\n|---|---|")
        for key, value in results.items():
            print(f"| {key} | {value:.3f} |")
        print("\ntargets: --help <= 0.3 s (pipetask 1.5 s); run start-up <= 0.5 s (pipetask run 2.0 s)")
    if args.only != "startup":
        report["parallel"] = run_parallel(args.pairs, args.rounds, args.processes, args.cache,
                                          one_thread=args.one_thread_serial)
        print_parallel(report["parallel"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
