"""``Struct``: the named-results object every task ``run`` returns."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

__all__ = ["Struct"]


class Struct(SimpleNamespace):
    """An attribute bag for task results (LSST's ``pipe.base.Struct``).

    Results are read by name (``result.subtractedExposure``), so adding a field never breaks
    a caller and removing one fails loudly, unlike tuples.

    Examples
    --------
    >>> r = Struct(kernel=1, background=2)
    >>> r.kernel, sorted(r.getDict())
    (1, ['background', 'kernel'])
    """

    def __init__(self, **kwargs: Any) -> None:
        for name in kwargs:
            if name.startswith("__"):
                msg = f"Struct field {name!r} is not allowed: names starting with '__' are reserved"
                raise ValueError(msg)
        super().__init__(**kwargs)

    def getDict(self) -> dict[str, Any]:  # noqa: N802 - LSST name
        """A shallow copy of the fields as a dict."""
        return dict(self.__dict__)

    def mergeItems(self, struct: Struct, *names: str) -> None:  # noqa: N802 - LSST name
        """Copy the named fields of ``struct`` into this one (refusing to overwrite)."""
        for name in names:
            if name in self.__dict__:
                msg = f"Struct already has a field {name!r}; mergeItems never overwrites"
                raise RuntimeError(msg)
            setattr(self, name, getattr(struct, name))

    def copy(self) -> Struct:
        """A shallow copy."""
        return Struct(**self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)
