"""Registers the built-in executors ``serial``, ``process`` and ``dask`` (see :mod:`diffim.plugins.executors`).

Kept import-light: the plugin manager imports this module at start-up, while the executor
classes (and multiprocessing) load only when the executor registry is first read. dask itself
is imported only when the ``dask`` executor is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffim.framework.plugins import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from diffim.framework.config import Registry

__all__ = ["diffim_register_executors"]


@hookimpl(tryfirst=True)  # built-ins first, so plugins can replace them by name
def diffim_register_executors(registry: Registry) -> None:
    """Register the built-in executors in ``registry``.

    Parameters
    ----------
    registry : `diffim.framework.config.Registry`
        The executor registry.
    """
    from . import executors

    registry.register("serial", executors.SerialExecutor, doc="Run jobs one after another in this process (default).")
    registry.register("process", executors.ProcessExecutor, doc="Run jobs on N spawned worker processes (-j N).")
    registry.register(
        "dask", executors.DaskExecutor, doc='Run jobs on a dask cluster (--scheduler ADDRESS); needs pip install "diffim[dask]".'
    )
