"""The :class:`Config` base class: pex_config's habits on a pydantic v2 model."""

from __future__ import annotations

import copy as _copy
import difflib
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic import Field as Field  # re-exported: config fields are declared with it

from .errors import ConfigError, FieldValidationError, FrozenConfigError, UnknownFieldError
from .history import HistoryEntry, current_source, record
from .node import Node, _join, plain_value

_object_setattr = object.__setattr__

__all__ = ["Config", "ConfigField", "Field", "format_validation_error"]


class Config(BaseModel, Node):
    """Base class of every diffim config.

    A pydantic v2 model with the habits of LSST's ``pex_config``:

    * every field must have a ``description`` (the class refuses to be defined otherwise);
    * assignments are validated at once and unknown field names are rejected, with the
      closest valid names suggested;
    * every change is recorded with its source (:meth:`formatHistory`);
    * :meth:`setDefaults` lets a subclass change inherited defaults;
    * :meth:`validate` runs cross-field checks (override it and call ``super().validate()``);
    * :meth:`freeze`, :meth:`copy`, structural ``==``, :meth:`compare`/:meth:`diff`,
      :meth:`save`/:meth:`load` that round-trip exactly, and :meth:`json_schema`.

    Examples
    --------
    >>> from diffim.framework.config import Config, Field
    >>> class ChildConfig(Config):
    ...     threshold: float = Field(5.0, ge=0, description="Detection threshold (sigma).")
    >>> c = ChildConfig()
    >>> c.threshold = 3
    >>> c.threshold
    3.0
    """

    model_config = ConfigDict(
        validate_assignment=True,
        extra="forbid",
        arbitrary_types_allowed=True,
        validate_default=False,
        revalidate_instances="never",
        protected_namespaces=(),
    )

    # Our per-instance state (frozen flag, dotted path, history) lives in the dict pydantic
    # keeps for private attributes, set up in model_post_init: declaring PrivateAttr fields
    # would cost pydantic ~2.5 us per construction.

    #: Field names holding a nested node (Config, ConfigChoice, ConfigurableInstance).
    __node_fields__: ClassVar[tuple[str, ...]] = ()
    #: Whether this class (or a parent below Config) overrides setDefaults.
    __has_set_defaults__: ClassVar[bool] = False

    # -- class creation ---------------------------------------------------------------------
    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        missing = [name for name, info in cls.model_fields.items() if not info.description]
        if missing:
            msg = (
                f"config class {cls.__module__}.{cls.__qualname__} has fields without a "
                f"description: {', '.join(missing)}; declare them as "
                "Field(default, description='what it means, with units')"
            )
            raise TypeError(msg)
        cls.__node_fields__ = tuple(
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, Node)
        )
        cls.__has_set_defaults__ = cls.setDefaults is not Config.setDefaults

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            # an error of ours raised during setDefaults arrives wrapped by pydantic: unwrap it
            for item in err.errors(include_url=False):
                original = (item.get("ctx") or {}).get("error")
                if isinstance(original, ConfigError):
                    raise original from None
            raise FieldValidationError(format_validation_error(err, type(self), "")) from None

    def model_post_init(self, context: Any, /) -> None:
        _object_setattr(self, "__pydantic_private__", {"_frozen": False, "_path": "", "_history": None})
        for name in self.__node_fields__:
            self.__dict__[name]._attach(name)
        given = tuple(self.model_fields_set)  # before setDefaults adds to it
        if self.__has_set_defaults__:
            # as pex_config: setDefaults first, then the constructor's keywords win
            passed = {name: self.__dict__[name] for name in given}
            self.setDefaults()
            self.__dict__.update(passed)  # pydantic may have replaced __dict__ meanwhile
        if given:
            history = self._history_dict(create=True)
            source = current_source()
            for name in given:
                record(history, name, self.__dict__[name], source)

    def setDefaults(self) -> None:  # noqa: N802 - LSST name
        """Change inherited defaults; called at the end of construction.

        Subclasses override this (calling ``super().setDefaults()`` first) instead of
        re-declaring a field just to change its default, as in LSST.
        """

    # -- attribute access -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if name[0] == "_":
            _object_setattr(self, name, value)  # slots and dunders only; state is in private
            return
        if name not in type(self).model_fields:
            self._raise_unknown(name)
        self._check_not_frozen(name)
        if name in self.__node_fields__ and not isinstance(value, Node):
            self.__dict__[name]._assign(value)
            return
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            path = self.__pydantic_private__["_path"]
            raise FieldValidationError(format_validation_error(err, type(self), path)) from None
        new = self.__dict__[name]
        if isinstance(new, Node):
            new._attach(_join(self.__pydantic_private__["_path"], name))
        record(self._history_dict(create=True), name, new, current_source())

    def _raise_unknown(self, name: str) -> None:
        path = _join(self.__pydantic_private__["_path"], name)
        close = difflib.get_close_matches(name, list(type(self).model_fields), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        msg = f"{type(self).__name__} has no field {name!r} (config path '{path}'){hint}"
        raise UnknownFieldError(msg)

    # -- node protocol ----------------------------------------------------------------------
    def _get_path(self) -> str:
        return self.__pydantic_private__["_path"]

    def _attach(self, path: str) -> None:
        self.__pydantic_private__["_path"] = path
        for name in self.__node_fields__:
            self.__dict__[name]._attach(_join(path, name))

    def _tokens(self) -> list[str]:
        return list(type(self).model_fields)

    def _child(self, token: str) -> Node | None:
        if token not in type(self).model_fields:
            self._raise_unknown(token)
        value = self.__dict__[token]
        return value if isinstance(value, Node) else None

    def _leaf_default(self, token: str) -> Any:
        return type(self).model_fields[token].get_default(call_default_factory=True)

    def _to_data(self) -> dict[str, Any]:
        values = self.__dict__
        return {name: plain_value(values[name]) for name in type(self).model_fields}

    def _assign(self, value: Any) -> None:
        if isinstance(value, Mapping):
            from .paths import apply_mapping

            apply_mapping(self, value)
            return
        msg = (
            f"cannot assign {value!r} to config '{self._get_path()}': give a "
            f"{type(self).__name__} instance or a mapping of its field values"
        )
        raise FieldValidationError(msg)

    def _set_frozen(self, frozen: bool) -> None:
        self.__pydantic_private__["_frozen"] = frozen
        values = self.__dict__
        for name in type(self).model_fields:
            value = values[name]
            if isinstance(value, Node):
                value._set_frozen(frozen)
            elif frozen and isinstance(value, list):
                values[name] = FrozenList(value, _join(self._get_path(), name))
            elif not frozen and isinstance(value, FrozenList):
                values[name] = list(value)

    def _is_frozen(self) -> bool:
        return self.__pydantic_private__["_frozen"]

    def _history_dict(self, create: bool = False) -> dict[str, deque[HistoryEntry]] | None:
        private = self.__pydantic_private__
        history = private["_history"]
        if history is None and create:
            history = private["_history"] = {}
        return history

    # -- public API -------------------------------------------------------------------------
    def validate(self) -> None:  # type: ignore[override]
        """Check cross-field constraints of this config and every nested config.

        Field-level checks run at each assignment; checks that involve several fields (which
        may be changed one at a time) belong here. Override, call ``super().validate()`` and
        raise :class:`FieldValidationError` with a message naming the fields and the fix.
        """
        values = self.__dict__
        for name in self.__node_fields__:
            values[name]._validate_tree()

    def _validate_tree(self) -> None:
        self.validate()

    def freeze(self) -> None:
        """Make this config and everything below it read-only (recursively)."""
        self._set_frozen(True)

    @property
    def frozen(self) -> bool:
        """True once :meth:`freeze` has been called."""
        return self._is_frozen()

    def copy(self) -> Config:  # type: ignore[override]
        """Return a deep, unfrozen copy (history included)."""
        new = _copy.deepcopy(self)
        new._set_frozen(False)
        return new

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        from .compare import diff

        return not diff(self, other, rtol=0.0, atol=0.0)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of all values (choice alternatives and subtask targets included)."""
        return self._to_data()

    toDict = to_dict  # noqa: N815 - LSST name

    def names(self) -> list[str]:
        """Every leaf field as a dotted path, e.g. ``kernel.AL.alardNGauss``."""
        from .paths import iter_leaf_paths

        return [path for path, _ in iter_leaf_paths(self)]

    def items_flat(self) -> Iterator[tuple[str, Any]]:
        """Iterate ``(dotted path, value)`` over every leaf field."""
        from .paths import iter_leaf_paths

        return iter_leaf_paths(self)

    def override(self, *specs: str, source: str | None = None) -> None:
        """Apply ``dotted.path=value`` overrides, as ``-c`` on the command line does."""
        from .overrides import apply_override

        for spec in specs:
            apply_override(self, spec, source=source)

    def load(self, path: str | Path) -> None:
        """Apply an override file: ``.py`` (executed with ``config`` bound), YAML, TOML or JSON."""
        from .overrides import load_override_file

        load_override_file(self, path)

    def save(self, path: str | Path, *, overwrite: bool = True) -> None:
        """Write every value (with field docs as comments) to YAML or JSON, atomically.

        The file reloads with :meth:`load` (or :meth:`from_file`) into an equal config.
        """
        from .persist import save_config

        save_config(self, path, overwrite=overwrite)

    def dumps(self) -> str:
        """The YAML text :meth:`save` writes."""
        from .persist import config_to_yaml

        return config_to_yaml(self)

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        """Build a config from a file written by :meth:`save` (its ``__class__`` is checked)."""
        from .persist import load_config

        return load_config(path, expected=cls)

    def compare(
        self,
        other: Config,
        *,
        shortcut: bool = False,
        rtol: float = 1e-8,
        atol: float = 1e-8,
        output: Any = None,
    ) -> bool:
        """True if equal within tolerances; each difference is passed to ``output`` as text.

        Messages read ``path: a != b`` as in pex_config.
        """
        from .compare import diff

        differences = diff(self, other, rtol=rtol, atol=atol, first_only=shortcut)
        if output is not None:
            for path, a, b in differences:
                output(f"{path}: {a!r} != {b!r}")
        return not differences

    def diff(self, other: Config, *, rtol: float = 1e-8, atol: float = 1e-8) -> list[tuple[str, Any, Any]]:
        """List ``(path, self value, other value)`` for every leaf that differs."""
        from .compare import diff

        return diff(self, other, rtol=rtol, atol=atol)

    def history(self, name: str) -> list[HistoryEntry]:
        """Recorded values of a (dotted) field, the default first."""
        from .paths import field_history

        return field_history(self, name)

    def formatHistory(self, name: str) -> str:  # noqa: N802 - LSST name
        """Human-readable history of a (dotted) field: one line per value with its source."""
        entries = self.history(name)
        lines = [name]
        width = max(len(repr(e.value)) for e in entries)
        lines += [f"  {e.value!r:<{width}}  {e.source}" for e in entries]
        return "\n".join(lines)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON schema of this config: every field with its type, bounds, default and docs."""
        from .schema import config_json_schema

        return config_json_schema(cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def ConfigField(config_class: type[Config], *, description: str, **kwargs: Any) -> Any:  # noqa: N802
    """A field holding a nested config (pex_config's ``ConfigField``).

    Parameters
    ----------
    config_class : type[Config]
        The nested config class; its default instance is built for each parent.
    description : str
        What the nested config is for.
    """
    return Field(default_factory=config_class, description=description, **kwargs)


class FrozenList(tuple):
    """A list field's value in a frozen config: reads like a list, refuses in-place changes."""

    path: str

    def __new__(cls, values: Any, path: str = "") -> FrozenList:
        new = super().__new__(cls, values)
        new.path = path
        return new

    def __reduce__(self) -> Any:
        return (FrozenList, (tuple(self), self.path))

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        msg = (
            f"cannot change list config field '{self.path}' in place: the config is frozen "
            "(use config.copy() to get an editable copy)"
        )
        raise FrozenConfigError(msg)

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return list(self) == other
        return tuple.__eq__(self, other)

    __hash__ = tuple.__hash__


def format_validation_error(err: ValidationError, cls: type, path: str) -> str:
    """One line per pydantic error, naming the field path, quoting the value and the rule."""
    parts = []
    for item in err.errors(include_url=False):
        loc = ".".join(str(x) for x in item.get("loc", ()))
        full = _join(path, loc) if loc else path
        field = cls.model_fields.get(str(item["loc"][0])) if item.get("loc") else None
        if item.get("type") == "extra_forbidden":
            close = difflib.get_close_matches(str(item["loc"][0]), list(cls.model_fields), n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            parts.append(f"{cls.__name__} has no field {item['loc'][0]!r} (config path '{full}'){hint}")
            continue
        doc = f" ({_first_sentence(field.description)})" if field is not None and field.description else ""
        rule = item["msg"].removeprefix("Value error, ")
        parts.append(f"invalid value {item.get('input')!r} for config field '{full}'{doc}: {rule}")
    return "; ".join(parts)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]
