"""The node protocol shared by every element of a config tree.

A config tree is made of three kinds of node: :class:`~diffim.framework.config.Config`
(a pydantic model), :class:`~diffim.framework.config.ConfigChoice` (LSST's
``ConfigChoiceField`` value) and :class:`~diffim.framework.config.ConfigurableInstance`
(LSST's ``ConfigurableField`` value). The tree utilities (paths, overrides, save/load, diff,
freeze, history) only talk to nodes through the methods declared here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from .errors import FrozenConfigError
from .history import HistoryEntry

__all__ = ["Node", "ContainerNode", "plain_value"]


class Node:
    """Mixin declaring what the tree utilities need from a node."""

    __slots__ = ()

    # -- identity ---------------------------------------------------------------------------
    def _get_path(self) -> str:
        """Dotted path of this node from the root config (``""`` for the root)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _attach(self, path: str) -> None:
        """Record ``path`` as this node's position and re-attach the children below it."""
        raise NotImplementedError  # pragma: no cover - abstract

    # -- structure --------------------------------------------------------------------------
    def _tokens(self) -> list[str]:
        """Names valid as the next path token below this node (for suggestions)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _child(self, token: str) -> Node | None:
        """The child node called ``token``, or None when ``token`` is a leaf value.

        Raises `UnknownFieldError` for a token that is neither.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def _set_leaf(self, token: str, value: Any) -> None:
        """Assign a leaf value (validated, recorded in history)."""
        setattr(self, token, value)

    def _get_leaf(self, token: str) -> Any:
        return getattr(self, token)

    def _leaf_default(self, token: str) -> Any:
        """The value a leaf had before any recorded change."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _to_data(self) -> dict[str, Any]:
        """Plain nested data (YAML/JSON safe) describing this node's values."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _assign(self, value: Any) -> None:
        """Handle ``parent.field = value`` where ``value`` is not a node of the same kind."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _set_frozen(self, frozen: bool) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _validate_tree(self) -> None:
        """Run the cross-field checks of the configs in use below this node."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _history_dict(self, create: bool = False) -> dict[str, deque[HistoryEntry]] | None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _is_frozen(self) -> bool:
        raise NotImplementedError  # pragma: no cover - abstract

    def _check_not_frozen(self, token: str) -> None:
        if self._is_frozen():
            path = _join(self._get_path(), token)
            msg = (
                f"cannot set config field '{path}': the config is frozen "
                "(a running task's config is read-only; use config.copy() to get an editable copy)"
            )
            raise FrozenConfigError(msg)


class ContainerNode(Node):
    """Shared plumbing of the plain-Python nodes (choices and subtask fields).

    Their state lives in ``__dict__`` under ``_path``, ``_frozen`` and ``_history``; a field of
    this type accepts only an instance (assigning names or mappings is routed to ``_assign`` by
    the parent config before pydantic sees it).
    """

    #: What to do instead of replacing the node, for the validation message.
    _assign_hint = "assign its values instead"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Any:
            if isinstance(value, cls):
                return value
            msg = f"expected a {cls.__name__}; {cls._assign_hint}"
            raise ValueError(msg)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v._to_data()),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "object"}  # the field's json_schema_extra fills in the details

    def _get_path(self) -> str:
        return self.__dict__["_path"]

    def _is_frozen(self) -> bool:
        return self.__dict__["_frozen"]

    def _history_dict(self, create: bool = False) -> dict[str, deque[HistoryEntry]] | None:
        history = self.__dict__["_history"]
        if history is None and create:
            history = self.__dict__["_history"] = {}
        return history

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _join(prefix: str, token: str) -> str:
    return f"{prefix}.{token}" if prefix else token


def plain_value(value: Any) -> Any:
    """Convert a leaf value to plain YAML/JSON-safe data (tuples become lists, enums values)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, Node):
        return value._to_data()
    enum_value = getattr(value, "value", None)
    if enum_value is not None and type(value).__module__ != "builtins":
        return plain_value(enum_value)
    return str(value)
