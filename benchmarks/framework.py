"""Framework speed benchmark: import time, timed trivial task, parent task with subtask/choice/registry.

Run from the repository root after installing the package::

    python benchmarks/framework.py            # prints a Markdown table
    python benchmarks/framework.py --json out.json

Figures to beat (LSST pipe_base 30.2026.500 on the same kind of 2-core machine, from
../shared/spec/framework_anchors.md §A.5): ``import lsst.pipe.base`` 1.35 s; trivial task
construct + run with ``@timeMethod`` 145 µs; task with a subtask, a ConfigChoiceField and a
RegistryField constructed + run 600 µs. Targets: 0.15 s, 20 µs, 100 µs.

Timings are medians of repeated runs; each is also given as a ratio to a baseline measured in
the same process (an empty interpreter for imports, the undecorated method for timeMethod), since
machines here are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
from typing import Annotated, Any


def _median_wall(code: str, repeat: int) -> float:
    # as on a user's machine: bytecode cached (this workplace sets PYTHONDONTWRITEBYTECODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)  # warm-up writes .pyc
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _per_call(fn: Any, number: int, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def _define_tasks() -> dict[str, Any]:
    from diffim.framework import Struct, Task, timeMethod
    from diffim.framework.config import (
        Config,
        ConfigChoice,
        ConfigChoiceField,
        ConfigurableField,
        ConfigurableInstance,
        Field,
        Registry,
        RegistryField,
        RegistryName,
    )

    class TrivialConfig(Config):
        """Trivial."""

        factor: float = Field(2.0, description="Multiplier.")

    class TrivialTask(Task):
        ConfigClass = TrivialConfig
        _DefaultName = "trivial"

        @timeMethod
        def run(self, x: float) -> Struct:
            return Struct(y=x * self.config.factor)

    class UntimedTask(TrivialTask):
        def run(self, x: float) -> Struct:  # type: ignore[override]
            return Struct(y=x * self.config.factor)

    class AlgoA(Config):
        """A."""

        alpha: float = Field(1.0, description="Alpha.")

    class AlgoB(Config):
        """B."""

        beta: int = Field(2, ge=0, description="Beta.")

    class Thing:
        """A registered thing."""

        def __init__(self, config: Config) -> None:
            self.config = config

    registry = Registry("thing")
    registry.register("one", Thing, ConfigClass=AlgoA)
    registry.register("two", Thing, ConfigClass=AlgoB)

    class ParentConfig(Config):
        """Parent."""

        child: ConfigurableInstance = ConfigurableField(target=TrivialTask, description="Child.")
        algo: ConfigChoice = ConfigChoiceField({"a": AlgoA, "b": AlgoB}, default="a", description="Algorithm.")
        thing: ConfigChoice = RegistryField(registry, default="one", description="Thing.")
        thingName: Annotated[str, RegistryName(registry)] = Field("one", description="Thing by name.")

    class ParentTask(Task):
        ConfigClass = ParentConfig
        _DefaultName = "parent"

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.makeSubtask("child")

        @timeMethod
        def run(self, x: float) -> Struct:
            return Struct(y=self.child.run(x).y + self.config.algo.active.alpha)

    return {"TrivialTask": TrivialTask, "UntimedTask": UntimedTask, "ParentTask": ParentTask, "ParentConfig": ParentConfig}


def run(repeat_imports: int = 15) -> dict[str, float]:
    results: dict[str, float] = {}
    results["python -c pass (s)"] = _median_wall("pass", repeat_imports)
    results["import diffim.framework (s)"] = _median_wall("import diffim.framework", repeat_imports)
    results["from diffim.framework import Task, Config, timeMethod (s)"] = _median_wall(
        "from diffim.framework import Task, Config, timeMethod, TaskMetadata", repeat_imports
    )
    results["import pydantic, pluggy, logging + one pydantic model (s)"] = _median_wall(
        "import pydantic, pluggy, logging\nclass M(pydantic.BaseModel):\n    x: int = 1", repeat_imports
    )

    tasks = _define_tasks()
    trivial, untimed, parent = tasks["TrivialTask"], tasks["UntimedTask"], tasks["ParentTask"]
    results["trivial task construct + run, @timeMethod (us)"] = 1e6 * _per_call(lambda: trivial().run(1.0), 2000)
    results["trivial task construct + run, no timeMethod (us)"] = 1e6 * _per_call(lambda: untimed().run(1.0), 2000)
    results["ParentConfig construct (us)"] = 1e6 * _per_call(tasks["ParentConfig"], 2000)
    results["parent task (subtask+choice+registry) construct (us)"] = 1e6 * _per_call(parent, 2000)
    results["parent task construct + run (us)"] = 1e6 * _per_call(lambda: parent().run(1.0), 2000)

    reused = trivial()
    for _ in range(1000):
        reused.run(1.0)
    results["metadata JSON after 1000 runs of one task (kB)"] = len(reused.metadata.to_json()) / 1e3

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = [parent() for _ in range(1000)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    results["retained memory per parent task (KiB)"] = grown / len(kept) / 1024
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--repeat", type=int, default=15, help="interpreter starts per import figure")
    args = parser.parse_args(argv)
    results = run(args.repeat)
    print("| measurement | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value:.3g} |")
    timed = results["trivial task construct + run, @timeMethod (us)"]
    untimed = results["trivial task construct + run, no timeMethod (us)"]
    print(f"\ntimeMethod overhead: {timed - untimed:.1f} us per call")
    print(f"import diffim.framework over bare interpreter: "
          f"{results['import diffim.framework (s)'] - results['python -c pass (s)']:.3f} s; "
          f"with Task/Config loaded: "
          f"{results['from diffim.framework import Task, Config, timeMethod (s)'] - results['python -c pass (s)']:.3f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
