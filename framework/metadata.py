"""Hierarchical task metadata: a cheap, dict-backed take on LSST's ``TaskMetadata``.

A `TaskMetadata` maps string keys to

* a **scalar**: ``str``, ``int``, ``float`` or ``bool``;
* an **array**: a homogeneous ``list`` of one of those scalar types;
* a **nested** `TaskMetadata`.

Dotted keys walk the hierarchy (``md["a.b.c"] = 1`` creates ``a`` -> ``b`` -> item ``c``);
``":"`` is an ordinary key character, so the full-metadata key
``"parent:child.runStartCpuTime"`` means top-level entry ``parent:child``, item
``runStartCpuTime``.

Unlike LSST's version (a pydantic model validated on every insert) this is a plain ``dict``
with a type check on insert: ``md[k] = v`` and ``md.add(k, v)`` for a simple key and a plain
scalar cost a few hundred nanoseconds.

Value rules
-----------
* numpy scalars are accepted by duck typing and cast with ``.item()``; 1-D numpy arrays and
  tuples become lists. numpy itself is never imported here.
* ``bool`` is kept distinct from ``int``: a list mixing them is rejected.
* A list mixing ``int`` and ``float`` is stored as all ``float`` (the int values are exactly
  representable for any realistic metadata), and `TaskMetadata.add` of a float to an int
  array converts the array to float. LSST rejects such mixtures; coercing is friendlier and
  loses nothing that matters for metadata.
* NaN and ±Inf are allowed. `TaskMetadata.to_json` writes them as the non-standard JSON
  tokens ``NaN``/``Infinity``/``-Infinity`` (stdlib ``json`` with ``allow_nan=True``), which
  `TaskMetadata.from_json` (stdlib ``json``) reads back; YAML uses ``.nan``/``.inf``.
* Everything else (``None``, arbitrary objects, mixed lists, multi-dimensional arrays) raises
  `MetadataValueError` (a subclass of both ``TypeError`` and ``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

__all__ = ["MetadataValueError", "TaskMetadata"]

Scalar: TypeAlias = str | int | float | bool

# Exact types stored as-is; subclasses (IntEnum, numpy.float64, ...) go through _normalize.
_SCALAR_TYPES: frozenset[type] = frozenset({str, int, float, bool})
_ALLOWED = "str, int, float, bool, a homogeneous list of those, or a nested TaskMetadata/mapping"
_MISSING: Any = object()


class MetadataValueError(TypeError, ValueError):
    """A key or value cannot be stored in a `TaskMetadata`.

    Subclasses both ``TypeError`` (Python's convention for a wrong type) and ``ValueError``
    (what LSST's ``TaskMetadata`` raises), so either ``except`` clause catches it.
    """


def _short_repr(value: object, limit: int = 80) -> str:
    text = " ".join(repr(value).split())  # one line even for multi-line reprs (arrays)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject(key: str, value: object, why: str = "") -> MetadataValueError:
    detail = f" ({why})" if why else ""
    msg = (
        f"TaskMetadata key {key!r}: cannot store {_short_repr(value)} of type "
        f"{type(value).__qualname__}{detail}; allowed: {_ALLOWED}"
    )
    return MetadataValueError(msg)


def _normalize_scalar(key: str, value: Any) -> Scalar:
    """Return ``value`` as an exact str/int/float/bool, or raise `MetadataValueError`."""
    t = type(value)
    if t in _SCALAR_TYPES:
        return value  # type: ignore[no-any-return]
    if t.__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        item = value.item()  # numpy scalar or 0-d array -> Python scalar
        if type(item) in _SCALAR_TYPES:
            return item  # type: ignore[no-any-return]
        raise _reject(key, value, f"its .item() is a {type(item).__qualname__}")
    # Subclasses (IntEnum, StrEnum, ...): store the plain builtin value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    raise _reject(key, value)


def _normalize_array(key: str, value: Any) -> list[Scalar]:
    """Return ``value`` (list, tuple or 1-D numpy array) as a homogeneous list."""
    if type(value).__module__ == "numpy":
        if getattr(value, "ndim", None) != 1:
            raise _reject(key, value, f"numpy array with shape {getattr(value, 'shape', '?')}; only 1-D")
        value = value.tolist()
    items = [_normalize_scalar(key, v) for v in value]
    if not items:
        return items
    kinds = {type(v) for v in items}
    if len(kinds) == 1:
        return items
    if kinds == {int, float}:
        return [float(v) for v in items]
    names = ", ".join(sorted(k.__name__ for k in kinds))
    raise _reject(key, value, f"mixed element types {names}; a list must be homogeneous")


def _merge_arrays(key: str, current: list[Scalar], extra: list[Scalar]) -> list[Scalar]:
    """Return ``current + extra`` if the element types agree (int/float mix -> float)."""
    if not current or not extra:
        return current + extra
    t_cur, t_new = type(current[0]), type(extra[0])
    if t_cur is t_new:
        return current + extra
    if {t_cur, t_new} == {int, float}:
        return [float(v) for v in current] + [float(v) for v in extra]
    msg = (
        f"TaskMetadata key {key!r}: cannot add a {t_new.__name__} to an array of {t_cur.__name__}; "
        f"use a new key or replace the array with md[{key!r}] = [...]"
    )
    raise MetadataValueError(msg)


def _split_key(key: Any) -> list[str]:
    if type(key) is not str:
        msg = f"TaskMetadata keys must be str, got {_short_repr(key)} of type {type(key).__qualname__}"
        raise MetadataValueError(msg)
    parts = key.split(".")
    if "" in parts:
        msg = f"TaskMetadata key {key!r} has an empty component; use names like 'a.b.c'"
        raise MetadataValueError(msg)
    return parts


def _values_equal(a: Any, b: Any) -> bool:
    """Structural equality that keeps bool/int/float apart and treats NaN == NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is list:
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)  # str/int/bool, or TaskMetadata (recursive __eq__)


class TaskMetadata:
    """Hierarchical metadata container (scalars, homogeneous arrays, nested metadata).

    Parameters
    ----------
    data : `~collections.abc.Mapping`, optional
        Initial content, as accepted by `from_dict`.

    Notes
    -----
    * ``md[key] = value`` stores a scalar; a list/tuple/1-D array is stored as an array and a
      mapping or `TaskMetadata` as nested metadata. It replaces whatever was there.
    * ``md.add(key, value)`` appends to an array, creating it; adding to a scalar turns the
      scalar into a 2-element array (as LSST does).
    * ``md[key]`` / `getScalar` return a scalar, the **last** element of an array, or the
      nested `TaskMetadata`; `getArray` always returns a (new) list.
    * Copies (`copy`, ``copy.copy``, ``copy.deepcopy``) are always structural: nested metadata
      and arrays are copied; the values themselves are immutable.

    Examples
    --------
    >>> md = TaskMetadata()
    >>> md["parent:child.threshold"] = 2.5
    >>> md.add("parent:child.calls", 1)
    >>> md.add("parent:child.calls", 2)
    >>> md["parent:child.calls"], md.getArray("parent:child.calls")
    (2, [1, 2])
    >>> sorted(md.names())
    ['parent:child.calls', 'parent:child.threshold']
    """

    __slots__ = ("_data",)
    __hash__ = None  # type: ignore[assignment]  # mutable container

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        # Invariant: no stored key contains "."; values are exact scalars, lists of one
        # exact scalar type, or TaskMetadata.
        self._data: dict[str, Any] = {}
        if data:
            for key, value in data.items():
                self[key] = value

    # ------------------------------------------------------------------ navigation
    def _parent_for_write(self, key: str) -> tuple[TaskMetadata, str]:
        """Return the container holding the last component of ``key``, creating levels."""
        parts = _split_key(key)
        node = self
        for i, part in enumerate(parts[:-1]):
            child = node._data.get(part, _MISSING)
            if child is _MISSING:
                child = TaskMetadata()
                node._data[part] = child
            elif not isinstance(child, TaskMetadata):
                where = ".".join(parts[: i + 1])
                msg = (
                    f"TaskMetadata key {key!r}: {where!r} holds a {type(child).__name__}, not nested "
                    f"metadata; delete md[{where!r}] first to nest under it"
                )
                raise MetadataValueError(msg)
            node = child
        return node, parts[-1]

    def _parent_for_read(self, key: str) -> tuple[TaskMetadata, str] | None:
        """Return the container holding the last component of ``key``, or None if absent."""
        if type(key) is not str:
            return None
        parts = key.split(".")
        node = self
        for part in parts[:-1]:
            child = node._data.get(part)
            if not isinstance(child, TaskMetadata):
                return None
            node = child
        return node, parts[-1]

    def _lookup(self, key: str) -> Any:
        """Return the raw stored value for ``key`` or `_MISSING`."""
        if type(key) is str and "." not in key:
            return self._data.get(key, _MISSING)
        found = self._parent_for_read(key)
        if found is None:
            return _MISSING
        node, last = found
        return node._data.get(last, _MISSING)

    @staticmethod
    def _not_found(key: object) -> KeyError:
        return KeyError(f"{key!r} not found in TaskMetadata")

    # ------------------------------------------------------------------ mapping protocol
    def __setitem__(self, key: str, value: Any) -> None:
        if type(value) in _SCALAR_TYPES and type(key) is str and key and "." not in key:
            self._data[key] = value  # fast path: simple key, plain scalar
            return
        node, last = self._parent_for_write(key)
        node._data[last] = self._normalize_any(key, value)

    @staticmethod
    def _normalize_any(key: str, value: Any) -> Any:
        if isinstance(value, TaskMetadata):
            return value
        if isinstance(value, Mapping):
            nested = TaskMetadata()
            for sub_key, sub_value in value.items():
                node, last = nested._parent_for_write(sub_key)
                # Errors name the full dotted key, not just the inner one.
                node._data[last] = TaskMetadata._normalize_any(f"{key}.{sub_key}", sub_value)
            return nested
        if isinstance(value, list | tuple) or (
            type(value).__module__ == "numpy" and getattr(value, "ndim", 0) != 0
        ):
            return _normalize_array(key, value)
        return _normalize_scalar(key, value)

    def __getitem__(self, key: str) -> Any:
        value = self._lookup(key)
        if type(value) is list:
            if not value:
                msg = f"TaskMetadata key {key!r} holds an empty array; use getArray() to read it"
                raise KeyError(msg)
            return value[-1]
        if value is _MISSING:
            raise self._not_found(key)
        return value

    def __delitem__(self, key: str) -> None:
        found = self._parent_for_read(key)
        if found is None or found[1] not in found[0]._data:
            raise self._not_found(key)
        del found[0]._data[found[1]]

    def __contains__(self, key: object) -> bool:
        return self._lookup(key) is not _MISSING  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def keys(self) -> tuple[str, ...]:
        """Return the top-level keys.

        Returns
        -------
        keys : `tuple` [`str`]
            Top-level keys in insertion order.
        """
        return tuple(self._data)

    def items(self) -> Iterator[tuple[str, Any]]:
        """Iterate over top-level ``(key, value)`` pairs.

        Yields
        ------
        item : `tuple`
            The key and its value: a scalar, a copy of the array (a `list`), or the nested
            `TaskMetadata`.
        """
        for key, value in self._data.items():
            yield key, (list(value) if type(value) is list else value)

    def names(self) -> list[str]:
        """Return every leaf (scalar or array) name, fully dotted, recursively.

        Returns
        -------
        names : `list` [`str`]
            Names such as ``"parent:child.threshold"`` in insertion order. Nested metadata
            levels themselves are not listed (LSST's ``names()`` returns a set that also
            includes them).
        """
        out: list[str] = []
        for key, value in self._data.items():
            if isinstance(value, TaskMetadata):
                out.extend(f"{key}.{sub}" for sub in value.names())
            else:
                out.append(key)
        return out

    def paramNames(self, topLevelOnly: bool = False) -> set[str]:  # noqa: N802 (LSST name)
        """Return the names of scalar/array entries, as LSST does.

        Parameters
        ----------
        topLevelOnly : `bool`, optional
            If true, only the top-level scalar/array keys; otherwise all leaf names.

        Returns
        -------
        names : `set` [`str`]
            The parameter names.
        """
        if topLevelOnly:
            return {k for k, v in self._data.items() if not isinstance(v, TaskMetadata)}
        return set(self.names())

    # ------------------------------------------------------------------ LSST accessors
    def get(self, key: str, default: Any = None) -> Any:
        """Return ``self[key]`` (last element for arrays), or ``default`` if absent.

        Parameters
        ----------
        key : `str`
            Possibly dotted key.
        default : `object`, optional
            Returned when ``key`` is missing.

        Returns
        -------
        value : `object`
            Scalar, last array element, nested `TaskMetadata`, or ``default``.
        """
        value = self._lookup(key)
        if value is _MISSING or (type(value) is list and not value):
            return default
        return value[-1] if type(value) is list else value

    def getScalar(self, key: str) -> Any:  # noqa: N802 (LSST name)
        """Return the scalar for ``key``; for an array, its last element.

        Parameters
        ----------
        key : `str`
            Possibly dotted key.

        Returns
        -------
        value : `object`
            Scalar, last array element, or nested `TaskMetadata`.

        Raises
        ------
        KeyError
            If ``key`` is absent.
        """
        return self[key]

    def getArray(self, key: str) -> list[Any]:  # noqa: N802 (LSST name)
        """Return the values for ``key`` as a new list.

        Parameters
        ----------
        key : `str`
            Possibly dotted key.

        Returns
        -------
        values : `list`
            A copy of the array; a scalar (or nested metadata) is wrapped in a 1-element list.

        Raises
        ------
        KeyError
            If ``key`` is absent.
        """
        value = self._lookup(key)
        if value is _MISSING:
            raise self._not_found(key)
        return list(value) if type(value) is list else [value]

    def add(self, key: str, value: Any) -> None:
        """Append ``value`` to the array at ``key``, creating the array if needed.

        Parameters
        ----------
        key : `str`
            Possibly dotted key.
        value : scalar or sequence of scalars
            One value to append, or a list/tuple/1-D array of values to extend with.

        Raises
        ------
        MetadataValueError
            If ``value`` is not a scalar or homogeneous sequence, if its type does not match
            the existing array (int and float mix, giving float), or if ``key`` names nested
            metadata.

        Notes
        -----
        Adding to an existing scalar converts it to a 2-element array, as LSST does.
        """
        t = type(value)
        if t in _SCALAR_TYPES and type(key) is str and key and "." not in key:
            data = self._data
            current = data.get(key, _MISSING)
            if current is _MISSING:
                data[key] = [value]
                return
            if type(current) is list and current and type(current[-1]) is t:
                current.append(value)
                return
        self._add_slow(key, value)

    def _add_slow(self, key: str, value: Any) -> None:
        if isinstance(value, TaskMetadata | Mapping):
            raise _reject(key, value, "add() takes scalars or lists; use md[key] = mapping to nest")
        if isinstance(value, list | tuple) or (
            type(value).__module__ == "numpy" and getattr(value, "ndim", 0) != 0
        ):
            extra = _normalize_array(key, value)
        else:
            extra = [_normalize_scalar(key, value)]
        node, last = self._parent_for_write(key)
        current = node._data.get(last, _MISSING)
        if current is _MISSING:
            node._data[last] = extra
            return
        if isinstance(current, TaskMetadata):
            msg = f"TaskMetadata key {key!r} holds nested metadata; add() needs a scalar or array key"
            raise MetadataValueError(msg)
        if type(current) is not list:
            current = [current]
        node._data[last] = _merge_arrays(key, current, extra)

    def add_many(
        self,
        keys: Sequence[str],
        values: Sequence[Any],
        *,
        max_records: int | None = None,
    ) -> None:
        """`add` each ``values[i]`` to ``keys[i]``, optionally keeping only recent entries.

        Parameters
        ----------
        keys : `~collections.abc.Sequence` [`str`]
            Keys, one per value.
        values : `~collections.abc.Sequence`
            Scalar values.
        max_records : `int`, optional
            If given, each touched array keeps only its last ``max_records`` elements
            (a rolling window; oldest dropped). ``None`` means unbounded.

        Notes
        -----
        This is the hot path of `~diffim.framework.timing.timeMethod` (22 keys per call),
        so simple keys appended to an existing array of the same type skip all checks.
        """
        if len(keys) != len(values):
            msg = f"add_many() got {len(keys)} keys but {len(values)} values; pass one value per key"
            raise ValueError(msg)
        data = self._data
        get = data.get  # local lookups: this loop runs ~23 times per timed call
        cap = max_records if max_records is not None else -1
        for key, value in zip(keys, values):
            current = get(key)
            if current.__class__ is list and current and current[-1].__class__ is value.__class__:
                # A stored top-level key never contains ".", so finding a list here means
                # `key` is simple; same element type means `value` is a valid exact scalar.
                current.append(value)
                if len(current) > cap >= 1:
                    del current[: len(current) - cap]
            elif current is None and type(value) in _SCALAR_TYPES and type(key) is str and key and "." not in key:
                data[key] = [value]
            else:
                self.add(key, value)
                if cap >= 1:
                    current = self._lookup(key)
                    if len(current) > cap:
                        del current[: len(current) - cap]

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """Return a plain nested ``dict`` (JSON/YAML-safe; lists are copies).

        Returns
        -------
        data : `dict`
            Scalars, lists and nested dicts.
        """
        out: dict[str, Any] = {}
        for key, value in self._data.items():
            if isinstance(value, TaskMetadata):
                out[key] = value.to_dict()
            elif type(value) is list:
                out[key] = list(value)
            else:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskMetadata:
        """Build metadata from a nested mapping (the inverse of `to_dict`).

        Parameters
        ----------
        data : `~collections.abc.Mapping`
            Keys map to scalars, sequences (arrays) or mappings (nested metadata). Dotted keys
            create nesting.

        Returns
        -------
        metadata : `TaskMetadata`
            The new container.
        """
        md = cls()
        for key, value in data.items():
            md[key] = value
        return md

    def to_json(self, **kwargs: Any) -> str:
        """Serialize to JSON with the stdlib ``json`` module.

        Parameters
        ----------
        **kwargs
            Passed to `json.dumps` (e.g. ``indent=2``). ``allow_nan`` defaults to true, so
            NaN/±Inf are written as the (non-standard) tokens ``NaN``/``Infinity``.

        Returns
        -------
        text : `str`
            The JSON document of `to_dict`.
        """
        import json

        kwargs.setdefault("allow_nan", True)
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskMetadata:
        """Parse JSON written by `to_json` (``NaN``/``Infinity`` tokens accepted).

        Parameters
        ----------
        text : `str` or `bytes`
            JSON document whose top level is an object.

        Returns
        -------
        metadata : `TaskMetadata`
            The parsed container.
        """
        import json

        data = json.loads(text)
        if not isinstance(data, dict):
            msg = f"TaskMetadata.from_json needs a JSON object at top level, got {type(data).__name__}"
            raise MetadataValueError(msg)
        return cls.from_dict(data)

    def to_yaml(self, **kwargs: Any) -> str:
        """Serialize to YAML (``yaml.safe_dump``; NaN/Inf become ``.nan``/``.inf``).

        Parameters
        ----------
        **kwargs
            Passed to `yaml.safe_dump`; ``sort_keys`` defaults to false.

        Returns
        -------
        text : `str`
            The YAML document of `to_dict`.
        """
        import yaml

        kwargs.setdefault("sort_keys", False)
        return str(yaml.safe_dump(self.to_dict(), **kwargs))

    @classmethod
    def from_yaml(cls, text: str | bytes) -> TaskMetadata:
        """Parse YAML written by `to_yaml` (``yaml.safe_load``).

        Parameters
        ----------
        text : `str` or `bytes`
            YAML document whose top level is a mapping.

        Returns
        -------
        metadata : `TaskMetadata`
            The parsed container.
        """
        import yaml

        data = yaml.safe_load(text)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            msg = f"TaskMetadata.from_yaml needs a YAML mapping at top level, got {type(data).__name__}"
            raise MetadataValueError(msg)
        return cls.from_dict(data)

    # ------------------------------------------------------------------ copying, equality
    def copy(self) -> TaskMetadata:
        """Return a structural copy (nested metadata and arrays are copied).

        Returns
        -------
        metadata : `TaskMetadata`
            An independent copy.
        """
        new = TaskMetadata()
        data = new._data
        for key, value in self._data.items():
            if isinstance(value, TaskMetadata):
                data[key] = value.copy()
            elif type(value) is list:
                data[key] = list(value)
            else:
                data[key] = value
        return new

    def __copy__(self) -> TaskMetadata:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> TaskMetadata:
        return self.copy()

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # Rebuild from the raw dict (nested TaskMetadata pickle themselves); no revalidation.
        return (_from_raw, (self._data,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskMetadata):
            return NotImplemented
        if self._data.keys() != other._data.keys():
            return False
        return all(_values_equal(v, other._data[k]) for k, v in self._data.items())

    def __repr__(self) -> str:
        return f"TaskMetadata({self.to_dict()!r})"

    def update(self, other: Mapping[str, Any] | TaskMetadata | Iterable[tuple[str, Any]]) -> None:
        """Set each key of ``other`` with ``self[key] = value``.

        Parameters
        ----------
        other : `~collections.abc.Mapping`, `TaskMetadata` or iterable of pairs
            Keys (possibly dotted) and values to set.
        """
        pairs = other.items() if isinstance(other, Mapping | TaskMetadata) else other
        for key, value in pairs:
            self[key] = value


def _from_raw(data: dict[str, Any]) -> TaskMetadata:
    """Unpickling helper: wrap an already-validated raw dict."""
    md = TaskMetadata()
    md._data = data
    return md
