"""Allowed values with a doc string each (pex_config's ``ChoiceField(allowed={...})``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

__all__ = ["Allowed", "choices_message"]


def choices_message(value: Any, names: Iterable[Any], docs: Mapping[Any, str] | None = None) -> str:
    """``'x' is not allowed; choose one of: 'a' (doc), 'b' (doc)``."""
    docs = docs or {}
    listed = ", ".join(f"{n!r} ({docs[n]})" if docs.get(n) else repr(n) for n in names)
    return f"{value!r} is not allowed; choose one of: {listed}"


class Allowed:
    """Annotation metadata restricting a field to documented values.

    Parameters
    ----------
    values : mapping, optional
        Allowed value -> doc string. Keyword arguments add more (for identifier values).

    Examples
    --------
    >>> from typing import Annotated
    >>> from diffim.framework.config import Allowed, Config, Field
    >>> class C(Config):
    ...     conditionNumberType: Annotated[str, Allowed(
    ...         SVD="from singular values", EIGENVALUE="from eigenvalues")] = Field(
    ...         "EIGENVALUE", description="How to compute condition numbers.")
    """

    def __init__(self, values: Mapping[Any, str] | None = None, /, **docs: str) -> None:
        self.values: dict[Any, str] = {**(values or {}), **docs}
        if not self.values:
            msg = "Allowed() needs at least one allowed value"
            raise ValueError(msg)

    def _check(self, value: Any) -> Any:
        if value not in self.values:
            raise ValueError(choices_message(value, self.values, self.values))
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        result = handler(schema)
        result["enum"] = list(self.values)
        result["x-allowed"] = {str(k): v for k, v in self.values.items()}
        return result

    def __repr__(self) -> str:
        return f"Allowed({self.values!r})"


class _LazyAllowed(Allowed):
    """Allowed values computed on use (for registries filled by plugins)."""

    def __init__(self, provider: Callable[[], Mapping[str, str]], label: str) -> None:
        self._provider = provider
        self._label = label

    @property  # type: ignore[override]
    def values(self) -> dict[Any, str]:
        return dict(self._provider())

    def __repr__(self) -> str:
        return f"RegistryName({self._label})"
