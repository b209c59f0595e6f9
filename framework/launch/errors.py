"""Exit codes of the ``diffim`` command line and the launcher's exception classes.

Stdlib only: imported by ``diffim --help``.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_PLUGIN_ERROR",
    "EXIT_TASK",
    "EXIT_USAGE",
    "InputError",
    "LaunchError",
    "OutputDirError",
    "TaskFailure",
    "UnknownTaskError",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PLUGIN_ERROR = 3
EXIT_CONFIG = 4
EXIT_INPUT = 5
EXIT_TASK = 6
EXIT_PARTIAL = 7
EXIT_INTERRUPTED = 130

#: Text of the exit-code table (``diffim --help`` epilog and the docs).
EXIT_CODES_HELP = """exit codes:
  0    success (also --help, --show, --dry-run)
  1    unexpected error (a bug: run again with --traceback and report it)
  2    usage error: bad arguments, unknown task, output directory exists (--clobber)
  3    plugin error: a plugin failed to load or failed in a hook, or no plugin handles a data type
  4    config error: bad override, config file, pipeline document, failed contract, debug file
  5    input error: unknown input name, missing input, missing or unreadable input file, bad table
  6    task failure: the task raised or ran past --timeout (or no row of an inputs table succeeded)
  7    partial failure: some rows of an inputs table failed or were not run (see OUTDIR/run.json)
  130  interrupted"""


class LaunchError(RuntimeError):
    """Base class of launcher errors; `exit_code` is the process exit code.

    Parameters
    ----------
    msg : `str`
        One line naming the culprit and the fix.
    remote_traceback : `str` or `None`, optional
        Traceback text of a failure that happened in a job (possibly in a worker process),
        printed with ``--traceback`` or ``--log-level DEBUG``.
    """

    exit_code: int = EXIT_ERROR

    def __init__(self, msg: str, *, remote_traceback: str | None = None) -> None:
        super().__init__(msg)
        self.remote_traceback = remote_traceback


class UnknownTaskError(LaunchError):
    """A task name is neither registered nor an importable task class (exit code 2)."""

    exit_code = EXIT_USAGE


class OutputDirError(LaunchError):
    """The output directory is missing, not empty without ``--clobber``, or not a directory (2)."""

    exit_code = EXIT_USAGE


class InputError(LaunchError):
    """An input is unknown, missing, or its file does not exist or cannot be read (exit code 5)."""

    exit_code = EXIT_INPUT


class TaskFailure(LaunchError):
    """A task raised while running (exit code 6, or another given ``exit_code``).

    Parameters
    ----------
    msg : `str`
        One-line message.
    exit_code : `int`, optional
        Exit code to use instead of `EXIT_TASK`.
    remote_traceback : `str` or `None`, optional
        Traceback text of the failure.
    """

    exit_code = EXIT_TASK

    def __init__(
        self, msg: str, *, exit_code: int | None = None, remote_traceback: str | None = None
    ) -> None:
        super().__init__(msg, remote_traceback=remote_traceback)
        if exit_code is not None:
            self.exit_code = exit_code
