"""Subtask fields (pex_config's ``ConfigurableField``) and retargeting."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from functools import partial
from typing import Any

from pydantic import Field

from .base import Config
from .errors import ConfigError, ConfigRetargetWarning, FieldValidationError
from .history import current_source, history_source, record
from .node import ContainerNode, Node, _join

__all__ = ["ConfigurableField", "ConfigurableInstance", "import_target", "target_name"]


def target_name(target: Any) -> str:
    """Dotted import path of a class or function."""
    return f"{target.__module__}.{target.__qualname__}"


def import_target(path: str) -> Any:
    """Import ``package.module.Name`` (nested names allowed); one-line error when it fails."""
    if not isinstance(path, str) or "." not in path:
        msg = f"cannot import {path!r}: give a dotted path such as 'package.module.TaskClass'"
        raise FieldValidationError(msg)
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue
            raise
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            msg = f"cannot import {path!r}: module {module_name!r} has no {'.'.join(parts[split:])!r}"
            raise FieldValidationError(msg) from None
        return obj
    msg = f"cannot import {path!r}: no module {parts[0]!r} is installed"
    raise FieldValidationError(msg)


class ConfigurableInstance(ContainerNode):
    """The value of a subtask field: a target Task class and its config.

    Attribute access is forwarded to the config, so ``config.detection.threshold = 5`` works
    as in pex_config; ``target``, ``ConfigClass``, ``value``, :meth:`retarget` and
    :meth:`apply` belong to the field itself.
    """

    _assign_hint = "use .retarget() or assign field values instead"

    def __init__(self, target: Any, ConfigClass: type[Config] | None = None) -> None:  # noqa: N803
        if isinstance(target, str):
            target = import_target(target)
        config_class = ConfigClass or _config_class_of(target)
        d = self.__dict__
        d["_target"] = target
        d["_default_target"] = target
        d["_ConfigClass"] = config_class
        d["_value"] = config_class()
        d["_path"] = ""
        d["_frozen"] = False
        d["_history"] = None

    # -- the field's own API ----------------------------------------------------------------
    @property
    def target(self) -> Any:
        """The Task class (or other configurable) this field builds."""
        return self._target

    @property
    def ConfigClass(self) -> type[Config]:  # noqa: N802 - LSST name
        """Config class of the current target."""
        return self._ConfigClass

    @property
    def value(self) -> Config:
        """The subtask's config."""
        return self._value

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        """Build the target with this config: ``target(*args, config=value, **kwargs)``."""
        return self._target(*args, config=self._value, **kwargs)

    def retarget(self, target: Any, ConfigClass: type[Config] | None = None) -> None:  # noqa: N803
        """Point the field at another Task class (or dotted path to one).

        When the new target uses a different config class, every override made so far
        (values differing from the old class's defaults) is re-applied to the new config;
        overrides that no longer validate are dropped with a :class:`ConfigRetargetWarning`
        naming each of them.
        """
        self._check_not_frozen("target")
        if isinstance(target, str):
            target = import_target(target)
        new_class = ConfigClass or _config_class_of(target)
        old_value = self._value
        if type(old_value) is not new_class:
            new_value = new_class()
            new_value._attach(self._path)
            dropped = _transfer_overrides(old_value, new_value, target)
            self.__dict__["_value"] = new_value
            for path, value, reason in dropped:
                msg = (
                    f"retargeting '{self._path}' to {target_name(target)} dropped override "
                    f"{_join(self._path, path)}={value!r}: {reason}"
                )
                warnings.warn(msg, ConfigRetargetWarning, stacklevel=2)
        self.__dict__["_target"] = target
        self.__dict__["_ConfigClass"] = new_class
        record(self._history_dict(create=True), "target", target_name(target), current_source())

    # -- attribute forwarding ---------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name[0] == "_":
            raise AttributeError(name)
        return getattr(self.__dict__["_value"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "target":
            self.retarget(value)
        else:
            setattr(self._value, name, value)

    # -- node protocol ----------------------------------------------------------------------
    def _attach(self, path: str) -> None:
        self.__dict__["_path"] = path
        self._value._attach(path)

    def _tokens(self) -> list[str]:
        return ["target", *self._value._tokens()]

    def _child(self, token: str) -> Node | None:
        if token == "target":
            return None
        return self._value._child(token)

    def _set_leaf(self, token: str, value: Any) -> None:
        setattr(self, token, value)

    def _get_leaf(self, token: str) -> Any:
        if token == "target":
            return target_name(self._target)
        return getattr(self._value, token)

    def _leaf_default(self, token: str) -> Any:
        if token == "target":
            return target_name(self._default_target)
        return self._value._leaf_default(token)

    def _history_for(self, token: str) -> Node:
        return self if token == "target" else self._value

    def _to_data(self) -> dict[str, Any]:
        return {"target": target_name(self._target), **self._value._to_data()}

    def _assign(self, value: Any) -> None:
        if isinstance(value, Mapping):
            from .paths import apply_mapping

            apply_mapping(self, value)
        elif isinstance(value, Config) and isinstance(value, self._ConfigClass):
            self.__dict__["_value"] = value
            value._attach(self._path)
        elif isinstance(value, str) or isinstance(value, type):
            self.retarget(value)
        else:
            msg = (
                f"cannot assign {value!r} to subtask field '{self._path}': set its fields, "
                f"call .retarget(TaskClass), or assign a {self._ConfigClass.__name__}"
            )
            raise FieldValidationError(msg)

    def _set_frozen(self, frozen: bool) -> None:
        self.__dict__["_frozen"] = frozen
        self._value._set_frozen(frozen)

    def _validate_tree(self) -> None:
        self._value._validate_tree()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfigurableInstance):
            return NotImplemented
        return self._to_data() == other._to_data()

    def __repr__(self) -> str:
        return f"ConfigurableInstance(target={target_name(self._target)}, value={self._value!r})"


def _config_class_of(target: Any) -> type[Config]:
    config_class = getattr(target, "ConfigClass", None)
    if not (isinstance(config_class, type) and issubclass(config_class, Config)):
        msg = (
            f"{target_name(target)} has no ConfigClass (a diffim Config subclass); "
            "give ConfigClass= explicitly or set it on the target"
        )
        raise FieldValidationError(msg)
    return config_class


def _transfer_overrides(old: Config, new: Config, target: Any) -> list[tuple[str, Any, str]]:
    """Re-apply ``old``'s non-default values to ``new``; return what could not be applied."""
    from .compare import diff
    from .paths import apply_path, order_for_apply

    changed = [(path, value) for path, value, _ in diff(old, type(old)(), rtol=0.0, atol=0.0)]
    dropped = []
    with history_source(f"retarget to {target_name(target)} (carried over)"):
        for path, value in order_for_apply(changed):
            try:
                apply_path(new, path, value)
            except ConfigError as err:
                dropped.append((path, value, str(err)))
    return dropped


def ConfigurableField(  # noqa: N802 - LSST name
    target: Any,
    *,
    description: str,
    ConfigClass: type[Config] | None = None,  # noqa: N803
) -> Any:
    """Declare a subtask (pex_config's ``ConfigurableField``).

    Parameters
    ----------
    target : type or str
        The Task class (or its dotted import path) the parent builds with ``makeSubtask``.
    description : str
        What the subtask does.
    ConfigClass : type[Config], optional
        Config class when it is not ``target.ConfigClass``.
    """
    return Field(
        default_factory=partial(ConfigurableInstance, target, ConfigClass),
        description=description,
        json_schema_extra=_subtask_schema_extra(target, ConfigClass),
    )


def _subtask_schema_extra(target: Any, config_class: type[Config] | None) -> Any:
    def extra(schema: dict[str, Any]) -> None:
        from .schema import inline_config_schema

        resolved = import_target(target) if isinstance(target, str) else target
        cls = config_class or _config_class_of(resolved)
        inner = inline_config_schema(cls)
        props = {"target": {"type": "string", "default": target_name(resolved),
                            "description": "Dotted path of the Task class to build."}}
        props.update(inner.get("properties", {}))
        schema.update({"type": "object", "properties": props, "additionalProperties": False})

    return extra
