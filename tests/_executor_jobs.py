"""Job functions for tests/test_executors.py.

They live in their own module because process and dask workers import a job function by name:
the test module itself is imported by pytest under a name workers cannot import, while this
module is found through ``sys.path`` (the test module puts ``tests/`` there, and spawned
workers receive the launcher's ``sys.path``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

DEBUG_NAME = "diffim.tests.executors"
LOGGER_NAME = "diffim.tests.executors"


def compute(seed: int) -> dict[str, Any]:
    """A small deterministic numpy computation; a negative seed raises."""
    import numpy as np

    if seed < 0:
        msg = f"bad seed {seed}\nsecond line of the message"
        raise ValueError(msg)
    values = np.random.default_rng(seed).standard_normal(2000)
    spectrum = np.abs(np.fft.rfft(values))
    return {
        "seed": seed,
        "sum": float(values.sum()),
        "digest": hashlib.sha256(spectrum.tobytes()).hexdigest(),
    }


def _thread_budget() -> int:
    from diffim.framework.executors import thread_budget

    return thread_budget()


def probe(_: object) -> dict[str, Any]:
    """Report the worker's state: pid, BLAS variables, debug flag, log level."""
    from diffim.framework.debug import debug_info

    return {
        "pid": os.getpid(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "EXTRA": os.environ.get("DIFFIM_TEST_EXTRA"),
        "threads": _thread_budget(),
        "flag": debug_info(DEBUG_NAME).flag,
        "level": logging.getLogger(LOGGER_NAME).getEffectiveLevel(),
    }


def crash_or_square(value: int) -> int:
    """Kill the worker process for a negative value, else return the square."""
    if value < 0:
        os._exit(3)
    return value * value


def spin(seconds: float) -> float:
    """Busy-loop in Python for ``seconds`` (a long job that a time limit can interrupt).

    It catches `Exception` on purpose, as task code often does: a time limit must still stop it.
    """
    import time

    end = time.perf_counter() + seconds
    while True:
        try:
            if time.perf_counter() >= end:
                return seconds
        except Exception:  # noqa: BLE001, S112 - what a careless task does
            continue


def spin_deaf(seconds: float) -> float:
    """Like `spin`, with SIGALRM blocked: only killing the worker stops it before ``seconds``."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        return spin(seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


WARMED: list[str] = []


def warm() -> None:
    """Called by ``Executor.start`` warm-ups (``"_executor_jobs:warm"``): leaves a mark."""
    WARMED.append(str(os.getpid()))


def warm_marks(_: object) -> dict[str, Any]:
    """The worker's pid and the warm-up marks left in it."""
    return {"pid": os.getpid(), "warmed": list(WARMED)}


def fail_or_spin(seconds: float) -> float:
    """Raise at once for a negative value, else busy-loop ``seconds`` (`spin`)."""
    if seconds < 0:
        msg = f"negative duration {seconds}"
        raise ValueError(msg)
    return spin(seconds)
