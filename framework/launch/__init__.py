"""The ``diffim`` launcher: ``diffim run``/``build``/``tasks``/``config`` (pipetask-style).

Modules
-------
`~diffim.framework.launch.errors`
    Exit codes and launcher exceptions (stdlib only).
`~diffim.framework.launch.commands`
    The argparse subcommands and their handlers (argparse only at import).
`~diffim.framework.launch.registry`
    The task registry filled by ``diffim_register_tasks``; `resolve_task`.
`~diffim.framework.launch.plan`
    Inputs, inputs tables and job specs; the ``--dry-run`` plan.
`~diffim.framework.launch.jobs`
    `run_job`: one job (read inputs, run each label, write outputs and records).
`~diffim.framework.launch.runner`
    Executing a plan through an executor and writing ``run.json``.
`~diffim.framework.launch.outputs`
    ``run.json`` contents, the output-folder policy, the ``--resume`` completeness test.
`~diffim.framework.launch.show`
    ``--show`` items.
`~diffim.framework.launch.logsetup`
    Logging set-up for one command, undone afterwards.

Nothing is imported here, so ``diffim --help`` stays fast.
"""

from __future__ import annotations

__all__: list[str] = []
