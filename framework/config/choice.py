"""Choice among configs (pex_config's ``ConfigChoiceField`` and ``RegistryField``)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import partial
from typing import Any

from pydantic import Field

from .allowed import choices_message
from .base import Config
from .errors import FieldValidationError, UnknownFieldError
from .history import current_source, record
from .node import ContainerNode, Node, _join
from .registry import Registry

__all__ = ["ConfigChoice", "ConfigChoiceField", "RegistryField"]

_RESERVED = frozenset({"name", "names", "active", "apply", "keys", "items", "values"})


class _EmptyConfig(Config):
    """A registered item without options."""


class ConfigChoice(ContainerNode):
    """The value of a choice field: one config per alternative, and the selected name.

    Every alternative keeps its own values, so ``config.kernel["AL"].alardNGauss = 4`` works
    while ``"DF"`` is selected. Alternatives are built on first access.

    Parameters
    ----------
    choices : mapping of str to type[Config], or Registry
        The alternatives. With a :class:`Registry`, names come from plugins and an item
        without a ConfigClass gets an empty config.
    default : str or None
        The alternative selected at first.
    """

    _assign_hint = "assign the selected name or a mapping instead"

    def __init__(self, choices: Mapping[str, type[Config]] | Registry, default: str | None) -> None:
        d = self.__dict__
        d["_choices"] = choices
        d["_default"] = default
        d["_name"] = default
        d["_values"] = {}
        d["_path"] = ""
        d["_frozen"] = False
        d["_history"] = None

    # -- selection --------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """Name of the selected alternative."""
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._check_not_frozen("name")
        if value is not None and value not in self._choices:
            msg = f"invalid value for config field '{_join(self._path, 'name')}': " + choices_message(
                value, list(self._choices), self._docs()
            )
            raise FieldValidationError(msg)
        self.__dict__["_name"] = value
        record(self._history_dict(create=True), "name", value, current_source())

    @property
    def active(self) -> Config | None:
        """The selected alternative's config (None when nothing is selected)."""
        return None if self._name is None else self[self._name]

    def keys(self) -> list[str]:
        """Names of every alternative."""
        return list(self._choices)

    names = property(keys, doc="Names of every alternative (same as keys()).")

    def items(self) -> list[tuple[str, Config]]:
        """``(name, config)`` for every alternative (building the ones not yet used)."""
        return [(name, self[name]) for name in self._choices]

    def __contains__(self, name: object) -> bool:
        return name in self._choices

    def __getitem__(self, name: str) -> Config:
        values = self._values
        config = values.get(name)
        if config is None:
            config = values[name] = self._config_class(name)()
            config._attach(_join(self._path, name))
            if self._frozen:
                config._set_frozen(True)
        return config

    def __setitem__(self, name: str, config: Config) -> None:
        self._check_not_frozen(name)
        expected = self._config_class(name)
        if not isinstance(config, expected):
            msg = (
                f"config '{_join(self._path, name)}' must be a {expected.__name__}, "
                f"got {type(config).__name__}"
            )
            raise FieldValidationError(msg)
        self._values[name] = config
        config._attach(_join(self._path, name))

    def _config_class(self, name: str) -> type[Config]:
        if name not in self._choices:
            msg = f"'{self._path}' has no alternative {name!r}; " + choices_message(
                name, list(self._choices), self._docs()
            ).split("; ", 1)[1]
            raise UnknownFieldError(msg)
        choice = self._choices[name]
        if isinstance(choice, type):
            return choice
        return choice.ConfigClass or _EmptyConfig  # a RegistryEntry

    def _docs(self) -> dict[str, str]:
        if isinstance(self._choices, Registry):
            return self._choices.docs()
        return {k: (v.__doc__ or "").strip().split("\n")[0] for k, v in self._choices.items()}

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        """Build the selected registered item with its config (registry-backed choices only)."""
        if not isinstance(self._choices, Registry):
            msg = f"'{self._path}' is a plain config choice; apply() needs a registry-backed RegistryField"
            raise TypeError(msg)
        if self._name is None:
            msg = f"nothing is selected in '{self._path}'; set {self._path}.name first"
            raise FieldValidationError(msg)
        return self._choices.make(self._name, *args, config=self.active, **kwargs)

    # -- attribute access: alternatives read like fields ------------------------------------
    def __getattr__(self, name: str) -> Any:
        choices = self.__dict__.get("_choices", ())
        if name[0] != "_" and name in choices:
            return self[name]
        msg = f"config choice '{self.__dict__.get('_path', '')}' has no attribute {name!r}"
        raise AttributeError(msg)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "name":
            ConfigChoice.name.fset(self, value)  # type: ignore[attr-defined]
        elif name in self._choices:
            if isinstance(value, Config):
                self[name] = value
            else:
                self[name]._assign(value)
        else:
            self._unknown(name)

    def _unknown(self, token: str) -> None:
        tokens = self._tokens()
        close = difflib.get_close_matches(token, tokens, n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        msg = (
            f"config choice '{self._path}' has no {token!r}; {hint}"
            f"use '{_join(self._path, 'name')}' to select, or one of {', '.join(map(repr, self._choices))}"
        )
        raise UnknownFieldError(msg)

    # -- node protocol ----------------------------------------------------------------------
    def _attach(self, path: str) -> None:
        self.__dict__["_path"] = path
        for name, config in self._values.items():
            config._attach(_join(path, name))

    def _tokens(self) -> list[str]:
        return ["name", *self._choices]

    def _child(self, token: str) -> Node | None:
        if token == "name":
            return None
        if token in self._choices:
            return self[token]
        if token == "active" and self._name is not None:  # `-c kernel.active.x=1`, as pipetask allows
            return self[self._name]
        self._unknown(token)
        return None  # pragma: no cover - _unknown raises

    def _leaf_default(self, token: str) -> Any:
        return self._default

    def _to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self._name}
        for name in self._choices:
            data[name] = self[name]._to_data()
        return data

    def _assign(self, value: Any) -> None:
        if isinstance(value, str) or value is None:
            self.name = value
        elif isinstance(value, Mapping):
            from .paths import apply_mapping

            apply_mapping(self, value)
        else:
            msg = (
                f"cannot assign {value!r} to config choice '{self._path}': assign an alternative "
                f"name to '{_join(self._path, 'name')}' or a mapping such as {{'name': ..., alt: {{...}}}}"
            )
            raise FieldValidationError(msg)

    def _set_frozen(self, frozen: bool) -> None:
        self.__dict__["_frozen"] = frozen
        for config in self._values.values():
            config._set_frozen(frozen)

    def _validate_tree(self) -> None:
        active = self.active
        if active is not None:
            active._validate_tree()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfigChoice):
            return NotImplemented
        return list(self._choices) == list(other._choices) and self._to_data() == other._to_data()

    def __repr__(self) -> str:
        return f"ConfigChoice(name={self._name!r}, choices={list(self._choices)!r})"


def _choice_schema_extra(choices: Mapping[str, type[Config]] | Registry, default: str | None) -> Any:
    def extra(schema: dict[str, Any]) -> None:
        from .schema import inline_config_schema

        names = list(choices)
        props: dict[str, Any] = {"name": {"enum": names, "default": default, "description": "Selected alternative."}}
        for name in names:
            item = choices[name]
            config_class = item if isinstance(item, type) else (item.ConfigClass or _EmptyConfig)
            props[name] = inline_config_schema(config_class)
        schema.update({"type": "object", "properties": props, "additionalProperties": False})

    return extra


def ConfigChoiceField(  # noqa: N802 - LSST name
    typemap: Mapping[str, type[Config]],
    *,
    default: str | None,
    description: str,
) -> Any:
    """Declare a choice among configs (pex_config's ``ConfigChoiceField``).

    Parameters
    ----------
    typemap : mapping of str to type[Config]
        Alternative name -> its config class.
    default : str or None
        The alternative selected by default.
    description : str
        What the choice is about.

    Examples
    --------
    ``kernel: ConfigChoice = ConfigChoiceField({"AL": PsfMatchConfigAL, "DF": PsfMatchConfigDF},
    default="AL", description="Kernel basis configuration")``
    """
    typemap = dict(typemap)
    bad = sorted(set(typemap) & _RESERVED)
    if bad:
        msg = f"config choice alternatives cannot be called {', '.join(map(repr, bad))}: rename them"
        raise ValueError(msg)
    if default is not None and default not in typemap:
        msg = f"default {default!r} is not one of the alternatives {list(typemap)}"
        raise ValueError(msg)
    return Field(
        default_factory=partial(ConfigChoice, typemap, default),
        description=description,
        json_schema_extra=_choice_schema_extra(typemap, default),
    )


def RegistryField(  # noqa: N802 - LSST name
    registry: Registry,
    *,
    default: str | None,
    description: str,
) -> Any:
    """Declare a choice among a registry's items, each with its own config (``RegistryField``).

    The allowed names are whatever plugins registered; ``config.field.apply(...)`` builds
    the selected item with its config.
    """
    return Field(
        default_factory=partial(ConfigChoice, registry, default),
        description=description,
        json_schema_extra=_choice_schema_extra(registry, default),
    )
