"""Record every hook call made through a plugin manager (pluggy's ``add_hookcall_monitoring``)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    import pluggy

__all__ = ["HookCall", "HookRecorder"]


@dataclasses.dataclass
class HookCall:
    """One hook call seen by a `HookRecorder`.

    Attributes
    ----------
    name : `str`
        Hook name, e.g. ``"diffim_register_kernel_bases"``.
    kwargs : `dict` [`str`, `object`]
        The arguments the caller passed (the objects themselves, not copies).
    plugins : `list` [`str`]
        Names of the plugins whose implementations were called, in call order.
    result : `object`
        What the call returned: the list of non-`None` results, or the first one for
        ``firstresult`` hooks. `None` while the call runs or when it raised.
    exception : `BaseException` or `None`
        The exception the call raised, if any.
    finished : `bool`
        Whether the call has returned (or raised).
    """

    name: str
    kwargs: dict[str, Any]
    plugins: list[str]
    result: Any = None
    exception: BaseException | None = None
    finished: bool = False


class HookRecorder:
    """Record every hook call on a plugin manager until :meth:`close`.

    Parameters
    ----------
    manager : `~diffim.framework.plugins.DiffimPluginManager` or `pluggy.PluginManager`, optional
        The manager to watch; default: the current process-wide manager
        (`~diffim.framework.plugins.get_plugin_manager`).

    Notes
    -----
    Every call through pluggy is seen: ``manager.call(...)``, ``manager.hook.<name>(...)`` and the
    typed methods. ``diffim_debug_display`` is the exception: ``diffim.tasks.hooks.debug_display``
    calls each display implementation on its own (so one broken display cannot hide the others),
    bypassing pluggy; test a display through its effects (files written, ``debug.frame``).

    Recorders may be nested; close them in reverse order of creation (pluggy restores the
    previous call monitor on close). The recorder is also a context manager.

    Examples
    --------
    >>> from diffim.framework.plugins import DiffimPluginManager
    >>> from diffim.testing import HookRecorder
    >>> pm = DiffimPluginManager()
    >>> with HookRecorder(pm) as recorder:
    ...     pm.call("diffim_register_executors", registry={})
    []
    >>> recorder.names()
    ['diffim_register_executors']
    """

    def __init__(self, manager: Any = None) -> None:
        if manager is None:
            from diffim.framework.plugins import get_plugin_manager

            manager = get_plugin_manager()
        self.manager = manager
        # a DiffimPluginManager wraps the pluggy manager in .manager
        pluggy_manager = getattr(manager, "manager", manager)
        self.calls: list[HookCall] = []
        self._lock = threading.Lock()
        self._local = threading.local()  # per-thread stack: hooks called from hooks nest
        self._undo: Any = pluggy_manager.add_hookcall_monitoring(self._before, self._after)

    # ------------------------------------------------------------------ monitoring
    def _stack(self) -> list[HookCall]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _before(
        self, hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        # pluggy calls the implementations last-registered-first
        plugins = [impl.plugin_name for impl in reversed(hook_impls)]
        call = HookCall(name=hook_name, kwargs=dict(kwargs), plugins=plugins)
        with self._lock:
            self.calls.append(call)
        self._stack().append(call)

    def _after(
        self,
        outcome: pluggy.Result[Any],
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        stack = self._stack()
        if not stack:  # pragma: no cover - recorder attached in the middle of a call
            return
        call = stack.pop()
        call.exception = outcome.exception
        if outcome.exception is None:
            call.result = outcome.get_result()
        call.finished = True

    # ------------------------------------------------------------------ queries
    def names(self) -> list[str]:
        """Return the names of the hooks called, in call order (repeats included).

        Returns
        -------
        names : `list` [`str`]
        """
        with self._lock:
            return [call.name for call in self.calls]

    def getcalls(self, name: str) -> list[HookCall]:
        """Return the calls of hook ``name``, in call order.

        Parameters
        ----------
        name : `str`
            Hook name.

        Returns
        -------
        calls : `list` [`HookCall`]
        """
        with self._lock:
            return [call for call in self.calls if call.name == name]

    def getcall(self, name: str) -> HookCall:
        """Return the one call of hook ``name``.

        Parameters
        ----------
        name : `str`
            Hook name.

        Returns
        -------
        call : `HookCall`

        Raises
        ------
        AssertionError
            If the hook was called zero or several times (the message lists what was called).
        """
        calls = self.getcalls(name)
        if len(calls) != 1:
            msg = f"expected exactly one call of hook {name!r}, got {len(calls)}; calls recorded: {self.names()}"
            raise AssertionError(msg)
        return calls[0]

    def clear(self) -> None:
        """Forget the calls recorded so far (recording goes on)."""
        with self._lock:
            self.calls.clear()

    def close(self) -> None:
        """Stop recording (idempotent); the recorded calls are kept."""
        if self._undo is not None:
            self._undo()
            self._undo = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run (`bool`)."""
        return self._undo is None

    def __len__(self) -> int:
        return len(self.calls)

    def __iter__(self) -> Iterator[HookCall]:
        return iter(list(self.calls))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "recording"
        return f"HookRecorder({len(self.calls)} calls, {state})"
