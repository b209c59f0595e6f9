"""Executor speed-up benchmark: ``serial`` against ``process`` with 2 workers on 8 CPU-bound jobs.

Run from the repository root after installing the package::

    python benchmarks/executors.py                  # Markdown table, best of 3 rounds
    python benchmarks/executors.py --jobs 8 --seconds 0.5 --repeat 5 --json out.json

Set-up (issue 6 target: with ``-j 2`` a table of 8 jobs runs >= 1.7x faster than serially). Each
job is the same numpy work: forward and inverse 2-D real FFTs of a 512x512 float64 array, repeated
a number of times calibrated in this process so that one job takes ``--seconds`` (0.5 s); pocketfft
is single-threaded, so the serial baseline uses one core, like a job pinned to one BLAS thread.
Timings, for each round:

- ``serial``: ``SerialExecutor.map`` in this process (numpy already imported);
- ``process (cold)``: ``ProcessExecutor(processes=2)`` created, ``map`` and ``close``: what a
  ``diffim run -j 2`` pays, worker start-up (spawn, imports of diffim and numpy) included;
- ``process (warm)``: ``map`` on a pool whose workers have already run a job.

Speed-up = serial time / process time, from the best round of each (machine noise only ever adds
time). Rounds alternate the cases so that drifts in machine load affect all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from diffim.framework.worker import JobResult
from diffim.plugins.executors import ProcessExecutor, SerialExecutor

SIZE = 512


def fft_work(repeats: int) -> float:
    """One CPU-bound job: ``repeats`` forward+inverse 2-D real FFTs; returns a checksum.

    numpy is imported here so that a spawned worker, which imports this script as
    ``__mp_main__``, loads it only when it runs a job.
    """
    import numpy as np

    data = np.random.default_rng(repeats).standard_normal((SIZE, SIZE))
    for _ in range(repeats):
        data = np.fft.irfft2(np.fft.rfft2(data), s=data.shape)
    return float(data.sum())


def calibrate(seconds: float) -> int:
    """Number of FFT repeats that makes one job last ``seconds`` here."""
    fft_work(2)  # warm-up: numpy import, FFT plan cache
    repeats = 8
    while True:  # time a run long enough for the CPU clock to settle and timer noise to vanish
        start = time.perf_counter()
        fft_work(repeats)
        elapsed = time.perf_counter() - start
        if elapsed >= min(0.3, seconds):
            break
        repeats *= 2
    repeats = max(1, round(seconds * repeats / elapsed))
    start = time.perf_counter()  # one full-length job corrects the estimate (warm CPU clock)
    fft_work(repeats)
    return max(1, round(seconds * repeats / (time.perf_counter() - start)))


def _check(results: list[JobResult]) -> None:
    failed = [r.error for r in results if not r.ok]
    if failed:
        msg = f"benchmark job failed: {failed[0]}"
        raise RuntimeError(msg)


def run(n_jobs: int, seconds: float, repeat: int, processes: int) -> dict[str, Any]:
    """Time the three cases ``repeat`` times; return the timings and speed-ups."""
    repeats = calibrate(seconds)
    jobs = [repeats] * n_jobs
    times: dict[str, list[float]] = {"serial": [], "process (cold)": [], "process (warm)": []}
    with ProcessExecutor(processes=processes) as warm:
        _check(warm.map(fft_work, [1] * processes))  # start the workers and import numpy there
        for _ in range(repeat):
            start = time.perf_counter()
            with SerialExecutor() as serial:
                _check(serial.map(fft_work, jobs))
            times["serial"].append(time.perf_counter() - start)

            start = time.perf_counter()
            with ProcessExecutor(processes=processes) as cold:
                _check(cold.map(fft_work, jobs))
            times["process (cold)"].append(time.perf_counter() - start)

            start = time.perf_counter()
            _check(warm.map(fft_work, jobs))
            times["process (warm)"].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    return {
        "jobs": n_jobs,
        "processes": processes,
        "fft_repeats_per_job": repeats,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "times": times,
        "best": best,
        "median": {name: statistics.median(values) for name, values in times.items()},
        "speedup_cold": best["serial"] / best["process (cold)"],
        "speedup_warm": best["serial"] / best["process (warm)"],
    }


def main() -> None:
    """Parse options, run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="number of jobs (default 8)")
    parser.add_argument("--seconds", type=float, default=0.5, help="duration of one job (default 0.5)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    report = run(args.jobs, args.seconds, args.repeat, args.processes)
    print(f"{report['jobs']} jobs of ~{args.seconds} s, {report['processes']} workers, {report['cores']} cores\n")
    print("| executor | best (s) | median (s) | speed-up vs serial |")
    print("|---|---|---|---|")
    for name, best in report["best"].items():
        print(f"| {name} | {best:.2f} | {report['median'][name]:.2f} | {report['best']['serial'] / best:.2f}x |")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(report, stream, indent=2)


if __name__ == "__main__":
    main()
