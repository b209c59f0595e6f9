"""``index.html`` next to the debug figures: every figure of this process, with the task metadata.

The page is rewritten (atomically: temporary file then rename) after each figure, so it is
complete at any moment and a browser can be pointed at it while the run goes on. One page per
folder; a figure saved again under the same file name replaces its entry.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import logging
import re
import threading
from pathlib import Path
from typing import Any

__all__ = ["FigureEntry", "REPORT_NAME", "add_figure", "figures", "render_html", "reset_reports"]

REPORT_NAME = "index.html"
"""File name of the report in the display folder."""

_MAX_LIST = 12  # list values longer than this are shortened in the metadata tables

# the per-method resource keys timeMethod writes (shown folded, they would drown the rest)
_TIMING_KEY = re.compile(
    r"(Start|End)(Utc|CpuTime|UserTime|SystemTime|MaxResidentSetSize|MinorPageFaults|MajorPageFaults|"
    r"BlockInputs|BlockOutputs|VoluntaryContextSwitches|InvoluntaryContextSwitches)$"
)


@dataclasses.dataclass
class FigureEntry:
    """One figure of the report.

    Attributes
    ----------
    frame : int
        Display frame number.
    file : str
        PNG file name (relative to the report).
    title : str
        Figure title.
    description : str
        What the figure shows.
    task : str
        Full name of the task that drew it ("" when called by hand).
    stage : str
        Hook stage.
    module : str
        Debug name of the calling module.
    flag : str
        Debug flag that asked for it.
    created : str
        UTC time the figure was saved.
    """

    frame: int
    file: str
    title: str
    description: str
    task: str
    stage: str
    module: str
    flag: str
    created: str


@dataclasses.dataclass
class _Report:
    figures: list[FigureEntry] = dataclasses.field(default_factory=list)
    metadata: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


_lock = threading.Lock()
_reports: dict[Path, _Report] = {}
_log = logging.getLogger("diffim.plugins.displays")


def _task_name(task: Any) -> str:
    getter = getattr(task, "getFullName", None)
    if callable(getter):
        return str(getter())
    return "" if task is None else type(task).__name__


def _task_metadata(task: Any) -> dict[str, Any] | None:
    getter = getattr(task, "getFullMetadata", None)
    if not callable(getter):
        return None
    metadata = getter()
    to_dict = getattr(metadata, "to_dict", None)
    return to_dict() if callable(to_dict) else dict(metadata)


def add_figure(folder: Path, path: Path, *, frame: int, title: str, description: str, ctx: Any) -> Path:
    """Record a saved figure and rewrite ``folder/index.html``.

    Parameters
    ----------
    folder : pathlib.Path
        The display folder (one report per folder).
    path : pathlib.Path
        The PNG just written.
    frame : int
        Its frame number.
    title, description : str
        Its title and what it shows.
    ctx : DisplayContext
        The caller: task (its metadata is snapshotted), stage, module, flag and debug flags.

    Returns
    -------
    pathlib.Path
        The report file.
    """
    from diffim.framework.config.persist import write_atomic

    entry = FigureEntry(
        frame=frame, file=path.name, title=title, description=description, task=_task_name(ctx.task),
        stage=ctx.stage, module=ctx.module, flag=ctx.flag,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    )
    metadata = _task_metadata(ctx.task)
    key = folder.resolve()
    target = folder / REPORT_NAME
    with _lock:
        report = _reports.get(key)
        if report is None:
            report = _reports[key] = _Report()
            _log.info("Debug displays: figures and %s in %s", REPORT_NAME, folder)
        report.figures = [f for f in report.figures if f.file != entry.file]
        report.figures.append(entry)
        if metadata is not None:
            report.metadata[entry.task] = metadata
        if ctx.module and ctx.debug is not None and hasattr(ctx.debug, "as_dict"):
            report.flags[ctx.module] = ctx.debug.as_dict()
        # entries whose PNG is gone (an earlier run in this folder was cleaned) are dropped
        report.figures = [f for f in report.figures if (folder / f.file).exists()]
        write_atomic(target, render_html(report, folder), overwrite=True)
    return target


def figures(folder: Path) -> list[FigureEntry]:
    """The figures recorded for ``folder`` in this process, in the order they were drawn."""
    with _lock:
        report = _reports.get(folder.resolve())
        return list(report.figures) if report else []


def reset_reports() -> None:
    """Forget every report (for tests); the files stay."""
    with _lock:
        _reports.clear()


# ------------------------------------------------------------------------------ HTML


def _value_text(value: Any) -> str:
    if isinstance(value, list) and len(value) > _MAX_LIST:
        shown = ", ".join(_value_text(v) for v in value[:_MAX_LIST])
        return f"[{shown}, … ({len(value)} values)]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    return str(value)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _table(rows: list[tuple[str, Any]]) -> str:
    esc = html.escape
    body = "".join(f"<tr><td><code>{esc(k)}</code></td><td>{esc(_value_text(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
figure { margin: 1.2em 0; padding: 0.6em; border: 1px solid #ddd; border-radius: 4px; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.4em; }
code { background: #f6f6f6; padding: 0 3px; }
"""


def render_html(report: _Report, folder: Path) -> str:
    """The report page (figures in drawing order, then debug flags and task metadata)."""
    esc = html.escape
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>diffim debug displays</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>diffim debug displays</h1>",
        f"<p>{len(report.figures)} figure(s) in <code>{esc(str(folder.resolve()))}</code>; "
        f"updated {esc(now)} UTC. Each figure is also a PNG file next to this page.</p>",
    ]
    if report.figures:
        parts.append("<table><tr><th>frame</th><th>figure</th><th>task</th><th>stage</th><th>flag</th></tr>")
        for f in report.figures:
            parts.append(
                f'<tr><td>{f.frame}</td><td><a href="#frame-{f.frame}">{esc(f.title)}</a></td>'
                f"<td>{esc(f.task)}</td><td>{esc(f.stage)}</td><td><code>{esc(f.flag)}</code></td></tr>"
            )
        parts.append("</table>")
    for f in report.figures:
        caption = (
            f"<b>Frame {f.frame}: {esc(f.title)}</b> — task <code>{esc(f.task or '-')}</code>, "
            f"stage <code>{esc(f.stage)}</code>, flag <code>{esc(f.module)}.{esc(f.flag)}</code>, "
            f"{esc(f.created)} UTC."
        )
        if f.description:
            caption += f"<br>{esc(f.description)}"
        parts.append(
            f'<figure id="frame-{f.frame}"><a href="{esc(f.file)}"><img src="{esc(f.file)}" '
            f'alt="{esc(f.title)}" loading="lazy"></a><figcaption>{caption}</figcaption></figure>'
        )
    if report.flags:
        parts.append("<h2>Debug flags</h2>")
        for module, flags in report.flags.items():
            parts.append(f"<h3><code>{esc(module)}</code></h3>{_table(list(flags.items()))}")
    if report.metadata:
        parts.append("<h2>Task metadata</h2><p>As of the task's last figure (the run's "
                     "<code>&lt;label&gt;_metadata.json</code> has the final values).</p>")
        for task, metadata in report.metadata.items():
            flat = _flatten(metadata)
            main = [(k, v) for k, v in flat if not _TIMING_KEY.search(k)]
            timing = [(k, v) for k, v in flat if _TIMING_KEY.search(k)]
            parts.append(f"<details open><summary><b>{esc(task or '(no task)')}</b></summary>"
                         f"{_table(main)}")
            if timing:
                parts.append(f"<details><summary>timing ({len(timing)} keys)</summary>{_table(timing)}</details>")
            parts.append("</details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
