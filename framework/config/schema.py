"""JSON-schema export of config classes (choice and subtask fields inlined)."""

from __future__ import annotations

from typing import Any

__all__ = ["config_json_schema", "inline_config_schema"]


def config_json_schema(cls: type) -> dict[str, Any]:
    """Full JSON schema of a config class, with ``$defs`` resolved inline."""
    schema = inline_config_schema(cls)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["x-class"] = f"{cls.__module__}.{cls.__qualname__}"
    return schema


def inline_config_schema(cls: type) -> dict[str, Any]:
    """JSON schema of ``cls`` with every ``$ref`` replaced by its definition."""
    raw = cls.model_json_schema()  # type: ignore[attr-defined]
    defs = raw.pop("$defs", {})
    return _inline(raw, defs)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            resolved = dict(_inline(defs[ref.split("/")[-1]], defs))
            resolved.update({k: _inline(v, defs) for k, v in node.items() if k != "$ref"})
            return resolved
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node
