"""Run records (``run.json``), the output-folder policy and the "complete" test of ``--resume``.

``run.json`` (format 1) holds:

* ``command`` (argument list) and ``command_line`` (shell-quoted), ``cwd``, ``host``;
* ``versions``: diffim, python, and numpy, astropy, scipy, pydantic, pluggy, PyYAML when
  installed (read from package metadata; nothing is imported);
* ``plugins``: name, distribution, version of every registered plugin;
* ``executor`` (name, processes, scheduler, timeout), ``fail_fast``, ``pipeline`` (label ->
  task class);
* ``start``, ``end`` (UTC ISO 8601), ``seconds``, ``status`` (``ok``, ``partial`` or
  ``failed``), ``counts`` (ok, failed, skipped, not_run);
* ``jobs``: one record per job (see `diffim.framework.launch.jobs.run_job`): its folder,
  inputs, per-label status, timings, output files and, when it failed, ``error`` (one line),
  ``error_kind`` (``config``, ``input``, ``plugin``, ``task``, ``output``, ``timeout`` or
  ``internal``) and ``traceback``. Rows skipped by ``--resume`` have ``status: "skipped"``;
  rows never started because ``--fail-fast`` stopped the run have ``status: "not_run"``.

A job is **complete** (skipped by ``--resume``) when its folder's ``run.json`` exists, has a
record for that job with ``status`` ``ok`` (or ``skipped``, from an earlier resume) listing the
same task labels, each with ``status: "ok"``, and every output file it lists exists. Configs
are not compared: after changing a config, rerun without ``--resume``.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import OutputDirError

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import DiffimPluginManager

__all__ = [
    "RUN_FORMAT",
    "check_output_dir",
    "is_complete",
    "run_header",
    "versions",
    "write_json_atomic",
    "write_run_record",
]

RUN_FORMAT = 1
_VERSIONED = ("numpy", "astropy", "scipy", "pydantic", "pluggy", "PyYAML")


def versions() -> dict[str, str]:
    """Return the versions of diffim, Python and the main libraries that are installed.

    Returns
    -------
    versions : `dict` [`str`, `str`]
        Distribution name -> version (nothing is imported).
    """
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("diffim", *_VERSIONED):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def run_header(
    argv: Sequence[str],
    pm: DiffimPluginManager,
    *,
    executor: Mapping[str, Any],
    pipeline: Mapping[str, str],
) -> dict[str, Any]:
    """Return the part of ``run.json`` that describes the run as a whole.

    Parameters
    ----------
    argv : sequence of `str`
        Arguments after the program name.
    pm : `~diffim.framework.plugins.DiffimPluginManager`
        The plugin manager (for the plugin list).
    executor : `~collections.abc.Mapping`
        Executor name and options.
    pipeline : `~collections.abc.Mapping`
        Label -> task class path.

    Returns
    -------
    header : `dict`
    """
    command = ["diffim", *argv]
    return {
        "format": RUN_FORMAT,
        "command": command,
        "command_line": shlex.join(command),
        "cwd": os.getcwd(),
        "host": platform.node(),
        "versions": versions(),
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version}
            for p in pm.list_plugins()
        ],
        "executor": dict(executor),
        "pipeline": dict(pipeline),
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary file and a rename.

    Parameters
    ----------
    path : `pathlib.Path`
        Target file (overwritten).
    data : `object`
        JSON-serialisable data (other values are written with `str`).
    """
    from ..config.persist import write_atomic

    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n", overwrite=True)


def write_run_record(
    path: Path,
    header: Mapping[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    status: str,
    *,
    start: str | None = None,
    end: str | None = None,
    seconds: float | None = None,
    errors: Iterable[str] = (),
) -> dict[str, Any]:
    """Write a ``run.json`` (see the module docstring) and return what was written.

    Parameters
    ----------
    path : `pathlib.Path`
        Target file.
    header : `~collections.abc.Mapping`
        From `run_header`.
    jobs : sequence of `~collections.abc.Mapping`
        Job records.
    status : `str`
        Overall status.
    start, end : `str`, optional
        Run start and end; default the first job's start and the last job's end.
    seconds : `float`, optional
        Wall time of the run; default the jobs' total.
    errors : iterable of `str`, optional
        One-line errors of the run.

    Returns
    -------
    data : `dict`
    """
    counts = {"ok": 0, "failed": 0, "skipped": 0, "not_run": 0}
    for job in jobs:
        key = job.get("status")
        if key in counts:
            counts[key] += 1
    data = {
        **header,
        "start": start or (jobs[0].get("start") if jobs else None),
        "end": end or (jobs[-1].get("end") if jobs else None),
        "seconds": seconds if seconds is not None else round(sum(j.get("seconds") or 0 for j in jobs), 6),
        "status": status,
        "counts": counts,
        "errors": list(errors),
        "jobs": list(jobs),
    }
    write_json_atomic(path, data)
    return data


def check_output_dir(path: Path, *, clobber: bool, resume: bool) -> None:
    """Refuse an output folder that exists and is not empty, unless clobbering or resuming.

    Parameters
    ----------
    path : `pathlib.Path`
        The ``-o`` folder.
    clobber : `bool`
        ``--clobber`` was given (files are overwritten; other files are left alone).
    resume : `bool`
        ``--resume`` was given.

    Raises
    ------
    OutputDirError
        One line naming the folder and the fix.
    """
    if path.exists() and not path.is_dir():
        msg = f"output directory '{path}' exists and is not a directory; choose another -o"
        raise OutputDirError(msg)
    if clobber or resume or not path.exists():
        return
    if any(path.iterdir()):
        msg = (
            f"output directory '{path}' exists and is not empty; pass --clobber to overwrite its "
            "files, --resume to skip the jobs already done, or choose another -o"
        )
        raise OutputDirError(msg)


def is_complete(directory: Path, labels: Sequence[str], job_id: str | None) -> bool:
    """Return whether the job that writes to ``directory`` already finished successfully.

    Parameters
    ----------
    directory : `pathlib.Path`
        The job's folder (holding its ``run.json``).
    labels : sequence of `str`
        Task labels the job runs now.
    job_id : `str` or `None`
        The job's row id (`None` for a single run).

    Returns
    -------
    complete : `bool`
        See the module docstring for the definition.
    """
    try:
        data = json.loads((directory / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    records = [job for job in data.get("jobs", []) if isinstance(job, dict) and job.get("id") == job_id]
    if len(records) != 1:
        return False
    record = records[0]
    tasks = record.get("tasks") or {}
    if record.get("status") not in ("ok", "skipped") or list(tasks) != list(labels):
        return False
    for entry in tasks.values():
        if entry.get("status") != "ok":
            return False
        for file in (entry.get("outputs") or {}).values():
            if not Path(file).is_file():
                return False
    return True
