"""Dotted paths into a config tree: ``kernel.AL.alardNGauss``, ``kernel['AL'].alardNGauss``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .errors import UnknownFieldError
from .history import HistoryEntry, history_source
from .node import Node, _join, plain_value

__all__ = [
    "tokenize",
    "resolve",
    "apply_path",
    "apply_mapping",
    "iter_leaf_paths",
    "order_for_apply",
    "field_history",
]

_BRACKET = re.compile(r"""\[\s*(?:'([^']*)'|"([^"]*)"|([^\]'"]+?))\s*\]""")


def tokenize(path: str) -> list[str]:
    """Split a dotted path into tokens; ``a['b'].c``, ``a[b].c`` and ``a.b.c`` are the same."""
    if not isinstance(path, str) or not path.strip():
        msg = f"empty config path {path!r}: give a dotted field name such as 'kernel.name'"
        raise UnknownFieldError(msg)
    tokens: list[str] = []
    pos = 0
    text = path.strip()
    while pos < len(text):
        if text[pos] == "[":
            match = _BRACKET.match(text, pos)
            if not match:
                msg = f"malformed config path {path!r}: unclosed '['"
                raise UnknownFieldError(msg)
            tokens.append(next(g for g in match.groups() if g is not None))
            pos = match.end()
        elif text[pos] == ".":
            pos += 1
        else:
            end = pos
            while end < len(text) and text[end] not in ".[":
                end += 1
            tokens.append(text[pos:end].strip())
            pos = end
    if not tokens or any(not t for t in tokens):
        msg = f"malformed config path {path!r}"
        raise UnknownFieldError(msg)
    return tokens


def resolve(root: Node, path: str | list[str]) -> tuple[Node, str]:
    """Return ``(node, leaf token)`` for a path; raises `UnknownFieldError` with suggestions."""
    tokens = tokenize(path) if isinstance(path, str) else path
    node = root
    for token in tokens[:-1]:
        child = node._child(token)
        if child is None:
            msg = (
                f"config path {'.'.join(tokens)!r}: '{_join(node._get_path(), token)}' is a value, "
                "not a group of fields"
            )
            raise UnknownFieldError(msg)
        node = child
    node._child(tokens[-1])  # validates the last token
    return node, tokens[-1]


def apply_path(root: Node, path: str, value: Any) -> None:
    """Set one dotted path (validated; a mapping value is applied to a group of fields)."""
    node, token = resolve(root, path)
    child = node._child(token)
    if child is not None and isinstance(value, Mapping):
        apply_mapping(child, value)
    else:
        node._set_leaf(token, value)


def apply_mapping(
    node: Node,
    data: Mapping[str, Any],
    *,
    source_of: Any = None,
    prefix: str = "",
) -> None:
    """Apply nested and/or dotted keys to ``node``; ``target`` and ``name`` keys go first.

    ``source_of(full_key)``, when given, returns the history source of each leaf.
    """
    for key, value in sorted(data.items(), key=lambda kv: _apply_rank(str(kv[0]))):
        key = str(key)
        full = _join(prefix, key)
        target, token = resolve(node, key)
        child = target._child(token)
        if child is not None and isinstance(value, Mapping):
            apply_mapping(child, value, source_of=source_of, prefix=full)
        elif source_of is not None:
            with history_source(source_of(full)):
                target._set_leaf(token, value)
        else:
            target._set_leaf(token, value)


def _apply_rank(path: str) -> int:
    last = path.rsplit(".", 1)[-1]
    return 0 if last == "target" else 1 if last == "name" else 2


def order_for_apply(items: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Order flat ``(path, value)`` pairs so retargets, then selections, come first."""
    return sorted(items, key=lambda item: (_apply_rank(item[0]), item[0].count(".")))


def iter_leaf_paths(node: Node, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted path, plain value)`` for every leaf below ``node``."""
    yield from _flatten(node._to_data(), prefix)


def _flatten(data: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        full = _join(prefix, key)
        if isinstance(value, dict):
            yield from _flatten(value, full)
        else:
            yield full, value


def field_history(root: Node, path: str) -> list[HistoryEntry]:
    """The default value of a field followed by every recorded change."""
    node, token = resolve(root, path)
    history_node = getattr(node, "_history_for", lambda t: node)(token)
    entries = [HistoryEntry(plain_value(history_node._leaf_default(token)), "default")]
    history = history_node._history_dict()
    if history and token in history:
        entries.extend(history[token])
    return entries
