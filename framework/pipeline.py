"""Pipeline documents as LSST's pipetask reads them, and their resolution into configured tasks.

A pipeline document is YAML::

    description: Difference imaging with a narrower kernel
    parameters:
      ngauss: 2
    tasks:
      diff:
        class: ImagePsfMatchTask          # registered name or pkg.module.Class
        config:
          kernel.name: AL                 # dotted keys (or nested mappings)
          kernel.active.alardNGauss: parameters.ngauss
          file: overrides.yaml            # special key: override file(s), path or list
          python: "config.kernel.active.alardDegGauss = [4, 2]"   # special key: snippet
      stats: mypkg.tasks.StatsTask        # a bare class string: default config
    contracts:
      - contract: diff.kernel.active.alardNGauss == 2
        msg: the narrow kernel needs two Gaussians

Rules (as pipetask's):

* ``description`` and ``tasks`` are required; labels are Python identifiers (contracts refer to
  configs by label) and ``parameters`` is reserved.
* A task's ``config`` is a mapping or a list of mappings applied in order; inside each block the
  ``file:`` entries are applied first, then ``python:``, then the other keys. Relative ``file:``
  paths are taken from the pipeline file's folder; ``$VARS`` and ``~`` are expanded. A config
  field literally called ``file`` or ``python`` cannot be set from a block (use a nested mapping).
* A string value ``parameters.NAME`` (also inside a list, tuple or dict literal such as
  ``"[parameters.a, 3]"``) is replaced by the parameter's value; ``-c parameters:NAME=VALUE``
  overrides a parameter before any config is built.
* ``contracts`` are Python expressions over the label-named configs, checked after every
  override (pipeline and command line) and before anything runs. They are evaluated with a small
  set of builtins (``abs all any bool dict float int len list max min round set sorted str sum
  tuple``) and may not touch names or attributes starting with ``_``.
* Tasks run in declared order. A task input that is not given on the command line but is an
  output of an earlier task is passed along in memory (the only dataflow supported; there is
  no graph ordering).
* ``imports``, ``subsets``, ``steps`` and ``instrument`` are not supported (an error says so).
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import keyword
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import ConfigError
from .config.history import history_source

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config
    from .task import Task

__all__ = [
    "ContractEntry",
    "ContractError",
    "Pipeline",
    "PipelineDocument",
    "PipelineError",
    "PipelineTask",
    "TaskEntry",
    "build_pipeline",
    "parse_task_spec",
    "split_override",
    "substitute_parameters",
]

PARAMETERS_LABEL = "parameters"
_LABEL = re.compile(r"^[A-Za-z_]\w*$")
_UNSUPPORTED = ("imports", "subsets", "steps", "instrument")
_SAFE_BUILTINS: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in (
        "abs", "all", "any", "bool", "dict", "float", "int", "len", "list", "max", "min",
        "round", "set", "sorted", "str", "sum", "tuple",
    )
} | {"True": True, "False": False, "None": None}


class PipelineError(ConfigError):
    """A pipeline document is malformed, or a label or task spec is wrong (exit code 4)."""


class ContractError(ConfigError):
    """A pipeline contract failed or could not be evaluated (exit code 4)."""


# ------------------------------------------------------------------------------ document


class TaskEntry(BaseModel):
    """One task of a pipeline document: its class and config blocks."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: str = Field(alias="class", description="Registered task name or dotted class path.")
    config: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Config blocks applied in order: dotted keys, plus 'file' and 'python'.",
    )

    @field_validator("config", mode="before")
    @classmethod
    def _one_block(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, Mapping) else value


class ContractEntry(BaseModel):
    """A contract: a Python expression over label-named configs that must be true."""

    model_config = ConfigDict(extra="forbid")

    contract: str = Field(description="Python expression, e.g. 'diff.kernel.name == \"AL\"'.")
    msg: str | None = Field(None, description="Explanation printed when the contract fails.")


class PipelineDocument(BaseModel):
    """The pipeline YAML document (pydantic model, as pipetask's ``PipelineIR``)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(description="What the pipeline does.")
    tasks: dict[str, TaskEntry] = Field(description="Label -> class string or {class, config}.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Shared values referenced as parameters.NAME."
    )
    contracts: list[ContractEntry] = Field(
        default_factory=list, description="Expressions over the configs checked before running."
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _class_strings(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: {"class": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("contracts", mode="before")
    @classmethod
    def _contract_strings(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [{"contract": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _no_parameters(cls, value: Any) -> Any:
        return {} if value is None else value

    @classmethod
    def from_data(cls, data: Any, source: str = "<pipeline>") -> PipelineDocument:
        """Validate parsed YAML data.

        Parameters
        ----------
        data : `object`
            Parsed document.
        source : `str`, optional
            Where it came from, for messages.

        Returns
        -------
        document : `PipelineDocument`

        Raises
        ------
        PipelineError
            One line naming the source, the key and the problem.
        """
        if not isinstance(data, Mapping):
            msg = (
                f"pipeline {source!r} must be a YAML mapping with 'description' and 'tasks', "
                f"not {type(data).__name__}"
            )
            raise PipelineError(msg)
        for key in _UNSUPPORTED:
            if key in data:
                msg = (
                    f"pipeline {source!r}: key {key!r} is not supported by diffim; "
                    "use description, tasks, parameters and contracts"
                )
                raise PipelineError(msg)
        try:
            document = cls.model_validate(dict(data))
        except ValidationError as err:
            raise PipelineError(f"pipeline {source!r}: {_format_errors(err)}") from None
        for label in document.tasks:
            _check_label(label, source)
        return document

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PipelineDocument:
        """Read and validate a pipeline YAML file.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            The file.

        Returns
        -------
        document : `PipelineDocument`

        Raises
        ------
        PipelineError
            If the file is missing, is not YAML, or is not a valid pipeline.
        """
        import yaml

        path = Path(path)
        if not path.is_file():
            msg = f"pipeline file '{path}' does not exist"
            raise PipelineError(msg)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            msg = f"pipeline file '{path}'{where} is not valid YAML: {getattr(err, 'problem', None) or err}"
            raise PipelineError(msg) from None
        return cls.from_data(data, str(path))


def _format_errors(err: ValidationError) -> str:
    parts = []
    for item in err.errors(include_url=False):
        loc = ".".join(str(x) for x in item.get("loc", ()))
        if item.get("type") == "extra_forbidden":
            parts.append(f"unknown key {loc!r}")
        elif item.get("type") == "missing":
            parts.append(f"missing required key {loc!r}")
        else:
            parts.append(f"{loc}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(parts)


def _check_label(label: str, source: str) -> None:
    if not _LABEL.match(label) or keyword.iskeyword(label) or label == PARAMETERS_LABEL:
        msg = (
            f"pipeline {source!r}: task label {label!r} is not valid; use a Python identifier "
            f"other than {PARAMETERS_LABEL!r} (contracts refer to configs by label)"
        )
        raise PipelineError(msg)


def parse_task_spec(spec: str) -> tuple[str, str | None]:
    """Split a ``-t`` value ``TASK[:LABEL]`` into ``(task, label or None)``.

    Parameters
    ----------
    spec : `str`
        E.g. ``"ImagePsfMatchTask:diff"`` or ``"pkg.mod.Task"``.

    Returns
    -------
    task, label : `str`, `str` or `None`

    Raises
    ------
    PipelineError
        If the task part is empty or the label is not an identifier.
    """
    task, sep, label = spec.partition(":")
    task = task.strip()
    if not task or (sep and not label.strip()):
        msg = f"bad task spec {spec!r}: expected TASK or TASK:LABEL, e.g. ImagePsfMatchTask:diff"
        raise PipelineError(msg)
    if sep:
        _check_label(label.strip(), "-t")
        return task, label.strip()
    return task, None


# ---------------------------------------------------------------------------- parameters


class _Unresolved(Exception):
    """The text is not a parameter expression; use it as it is."""


def substitute_parameters(value: Any, parameters: Mapping[str, Any], where: str) -> Any:
    """Replace ``parameters.NAME`` references in a config value.

    Parameters
    ----------
    value : `object`
        A value from a config block or a ``-c`` override (strings are inspected).
    parameters : `~collections.abc.Mapping`
        The pipeline parameters.
    where : `str`
        Context for the error message (e.g. ``"task 'diff' key 'kernel.name'"``).

    Returns
    -------
    value : `object`
        The value with references replaced; other strings come back unchanged.

    Raises
    ------
    PipelineError
        If a referenced parameter is not defined.
    """
    if isinstance(value, list):
        return [substitute_parameters(v, parameters, where) for v in value]
    if isinstance(value, dict):
        return {k: substitute_parameters(v, parameters, where) for k, v in value.items()}
    if not isinstance(value, str) or f"{PARAMETERS_LABEL}." not in value:
        return value
    try:
        tree = ast.parse(value.strip(), mode="eval")
        return _eval_parameter_expr(tree.body, parameters, where)
    except (SyntaxError, _Unresolved):
        return value


def _eval_parameter_expr(node: ast.AST, parameters: Mapping[str, Any], where: str) -> Any:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == PARAMETERS_LABEL:
        if node.attr not in parameters:
            known = ", ".join(sorted(parameters)) or "none defined"
            msg = f"{where}: unknown pipeline parameter {node.attr!r} (parameters: {known})"
            raise PipelineError(msg)
        return parameters[node.attr]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_eval_parameter_expr(e, parameters, where) for e in node.elts]
        return items if not isinstance(node, ast.Set) else set(items)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {
            _eval_parameter_expr(k, parameters, where): _eval_parameter_expr(v, parameters, where)
            for k, v in zip(node.keys, node.values, strict=True)
            if k is not None
        }
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _eval_parameter_expr(node.operand, parameters, where)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    raise _Unresolved


# ------------------------------------------------------------------------------ pipeline


@dataclasses.dataclass
class PipelineTask:
    """One resolved task of a pipeline.

    Attributes
    ----------
    label : `str`
        Its label (also the task's name, so its logger is ``diffim.<label>``).
    task_class : `type` [`~diffim.framework.task.Task`]
        The task class.
    config : `~diffim.framework.config.Config`
        Its config, with every override applied.
    spelled : `str`
        The task as the user gave it (registered name or class path).
    """

    label: str
    task_class: type[Task]
    config: Config
    spelled: str

    @property
    def class_path(self) -> str:
        """Dotted import path of the task class (`str`)."""
        return f"{self.task_class.__module__}.{self.task_class.__qualname__}"


@dataclasses.dataclass
class Pipeline:
    """A resolved pipeline: configured tasks in order, parameters and contracts.

    Attributes
    ----------
    description : `str`
        What it does.
    tasks : `dict` [`str`, `PipelineTask`]
        Label -> resolved task, in run order.
    parameters : `dict` [`str`, `object`]
        Pipeline parameters (after ``-c parameters:NAME=VALUE``).
    contracts : `list` [`ContractEntry`]
        Contracts, checked by `check_contracts`.
    source : `str`
        The pipeline file, or ``"-t"`` for a pipeline built from the command line.
    """

    description: str
    tasks: dict[str, PipelineTask]
    parameters: dict[str, Any]
    contracts: list[ContractEntry]
    source: str

    @property
    def labels(self) -> list[str]:
        """Task labels in run order (`list` [`str`])."""
        return list(self.tasks)

    def task_for(self, label: str | None, what: str) -> PipelineTask:
        """Return the task ``label`` names, or the only task when ``label`` is `None`.

        Parameters
        ----------
        label : `str` or `None`
            A label, or `None`.
        what : `str`
            The option being applied, for messages (e.g. ``"-c kernel.name=AL"``).

        Returns
        -------
        task : `PipelineTask`

        Raises
        ------
        PipelineError
            If the label is unknown, or `None` while the pipeline has several tasks.
        """
        if label is None:
            if len(self.tasks) == 1:
                return next(iter(self.tasks.values()))
            msg = f"{what}: the pipeline has several tasks; prefix the label (labels: {', '.join(self.tasks)})"
            raise PipelineError(msg)
        if label not in self.tasks:
            import difflib

            close = difflib.get_close_matches(label, list(self.tasks), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            msg = f"{what}: unknown task label {label!r}; {hint}labels: {', '.join(self.tasks) or 'none'}"
            raise PipelineError(msg)
        return self.tasks[label]

    # -- overrides --------------------------------------------------------------------------
    def apply_override(self, text: str) -> None:
        """Apply one ``-c [LABEL:]dotted.path=VALUE`` (``parameters.NAME`` values resolve).

        Parameters
        ----------
        text : `str`
            The override as typed.

        Raises
        ------
        ConfigError
            Malformed override, unknown label or field, or an invalid value.
        """
        label, path, value_text = split_override(text)
        task = self.task_for(label, f"-c {text}")
        from .config.overrides import parse_value
        from .config.paths import apply_path

        value = substitute_parameters(parse_value(value_text), self.parameters, f"-c {text}")
        with history_source(f"-c {text}"):
            try:
                apply_path(task.config, path, value)
            except ConfigError as err:
                raise type(err)(f"-c {text}: {err}") from None

    def apply_config_file(self, text: str) -> None:
        """Apply one ``-C [LABEL:]FILE`` (.py, .yaml, .yml, .toml or .json).

        Parameters
        ----------
        text : `str`
            The option value as typed.

        Raises
        ------
        ConfigError
            Unknown label, missing file or a bad value in it.
        """
        head, sep, rest = text.partition(":")
        if sep and head in self.tasks:
            label, file = head, rest
        elif sep and _LABEL.match(head) and not Path(text).exists() and len(head) > 1:
            label, file = head, rest  # let task_for report the unknown label
        else:
            label, file = None, text
        task = self.task_for(label, f"-C {text}")
        task.config.load(os.path.expanduser(file))

    # -- contracts --------------------------------------------------------------------------
    def check_contracts(self) -> None:
        """Evaluate every contract; raise on the first one that is false.

        Raises
        ------
        ContractError
            One line quoting the contract and its ``msg``, or why it could not be evaluated.
        """
        namespace: dict[str, Any] = {label: task.config for label, task in self.tasks.items()}
        namespace[PARAMETERS_LABEL] = _Parameters(self.parameters)
        for entry in self.contracts:
            expression = " ".join(entry.contract.split())
            code = _compile_contract(expression)
            try:
                ok = eval(code, {"__builtins__": _SAFE_BUILTINS}, dict(namespace))
            except Exception as err:  # noqa: BLE001 - reported as one line naming the contract
                msg = (
                    f"contract {expression!r} cannot be evaluated: {type(err).__name__}: {err} "
                    f"(names available: {', '.join(namespace)})"
                )
                raise ContractError(msg) from None
            if not ok:
                why = f": {entry.msg}" if entry.msg else ""
                msg = f"contract {expression!r} failed{why}"
                raise ContractError(msg)

    # -- saving -----------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """Return the resolved pipeline as a document (reloadable with ``-p``).

        Every task gets its class path and, as dotted keys, every config value that differs
        from the class default (pipeline blocks, files and ``-c``/``-C`` overrides resolved).

        Returns
        -------
        document : `dict`
        """
        from .config.paths import order_for_apply

        tasks: dict[str, Any] = {}
        for label, task in self.tasks.items():
            default = task.task_class.ConfigClass()
            changed = [(path, value) for path, value, _ in task.config.diff(default, rtol=0.0, atol=0.0)]
            entry: dict[str, Any] = {"class": task.class_path}
            if changed:
                entry["config"] = dict(order_for_apply(changed))
            tasks[label] = entry
        document: dict[str, Any] = {"description": self.description}
        if self.parameters:
            document["parameters"] = dict(self.parameters)
        document["tasks"] = tasks
        if self.contracts:
            document["contracts"] = [
                entry.model_dump(exclude_none=True) for entry in self.contracts
            ]
        return document

    def to_yaml(self) -> str:
        """Return `to_document` as YAML text.

        Returns
        -------
        text : `str`
        """
        import yaml

        return yaml.safe_dump(self.to_document(), sort_keys=False, default_flow_style=False)


class _Parameters:
    """``parameters.NAME`` inside contracts."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


def _compile_contract(expression: str) -> Any:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        msg = f"contract {expression!r} is not a valid Python expression: {err.msg}"
        raise ContractError(msg) from None
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name is not None and name.startswith("_"):
            msg = f"contract {expression!r} uses the private name {name!r}, which contracts may not access"
            raise ContractError(msg)
        if isinstance(node, (ast.Lambda, ast.NamedExpr)):
            msg = f"contract {expression!r}: lambdas and ':=' are not allowed in contracts"
            raise ContractError(msg)
    return compile(tree, "<contract>", "eval")


def split_override(text: str) -> tuple[str | None, str, str]:
    """Split ``[LABEL:]dotted.path=VALUE`` into ``(label or None, path, value text)``.

    Parameters
    ----------
    text : `str`
        The ``-c`` value.

    Returns
    -------
    label, path, value : `str` or `None`, `str`, `str`

    Raises
    ------
    ConfigError
        If there is no ``=`` or no path.
    """
    head, sep, value = text.partition("=")
    label: str | None = None
    if ":" in head:
        label, _, head = head.partition(":")
        label = label.strip()
    path = head.strip()
    if not sep or not path or label == "":
        msg = f"bad config override {text!r}: expected [LABEL:]dotted.path=VALUE, e.g. diff:kernel.name=AL"
        raise ConfigError(msg)
    return label, path, value


def _expand_path(file: str, base: Path | None) -> Path:
    path = Path(os.path.expanduser(os.path.expandvars(file)))
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _apply_block(
    config: Config, block: Mapping[str, Any], *, label: str, source: str, base: Path | None,
    parameters: Mapping[str, Any],
) -> None:
    from .config.paths import apply_mapping

    files = block.get("file", [])
    for file in [files] if isinstance(files, str) else list(files or []):
        config.load(_expand_path(str(file), base))
    snippet = block.get("python")
    if snippet:
        where = f"pipeline {source} [{label}] python"
        with history_source(where):
            try:
                exec(compile(str(snippet), where, "exec"), {"config": config})  # noqa: S102 - as pipetask's python: key
            except ConfigError as err:
                raise type(err)(f"pipeline {source!r} task {label!r} python: {err}") from None
            except Exception as err:
                msg = f"pipeline {source!r} task {label!r} python: {type(err).__name__}: {err}"
                raise PipelineError(msg) from err
    rest = {
        str(k): substitute_parameters(v, parameters, f"pipeline {source!r} task {label!r} key {k!r}")
        for k, v in block.items()
        if k not in ("file", "python")
    }
    if rest:
        try:
            apply_mapping(config, rest, source_of=lambda key: f"pipeline {source} [{label}] {key}")
        except ConfigError as err:
            raise type(err)(f"pipeline {source!r} task {label!r}: {err}") from None


def build_pipeline(
    pipeline_file: str | os.PathLike[str] | None = None,
    task_specs: Sequence[str] = (),
    overrides: Iterable[tuple[str, str]] = (),
    *,
    resolve: Callable[[str], type[Task]] | None = None,
    check_contracts: bool = True,
) -> Pipeline:
    """Resolve a pipeline from a file and/or ``-t`` specs, apply overrides, check contracts.

    Parameters
    ----------
    pipeline_file : `str` or `os.PathLike`, optional
        Pipeline YAML (``-p``).
    task_specs : sequence of `str`, optional
        ``TASK[:LABEL]`` values (``-t``), appended after the pipeline's tasks. The default
        label is the task's ``_DefaultName`` (else its class name).
    overrides : iterable of (`str`, `str`), optional
        ``("c", "[LABEL:]path=value")`` and ``("C", "[LABEL:]FILE")`` in command-line order;
        ``-c parameters:NAME=VALUE`` entries set parameters before any config is built.
    resolve : callable, optional
        Task name -> class; default `diffim.framework.launch.registry.resolve_task`.
    check_contracts : `bool`, optional
        Evaluate the contracts at the end.

    Returns
    -------
    pipeline : `Pipeline`

    Raises
    ------
    PipelineError, ContractError, ConfigError
        One-line messages (exit code 4).
    UnknownTaskError
        For an unknown task name (exit code 2).
    """
    if resolve is None:
        from .launch.registry import resolve_task as resolve

    if pipeline_file is not None:
        document = PipelineDocument.from_file(pipeline_file)
        source = str(pipeline_file)
        base: Path | None = Path(pipeline_file).parent
    else:
        if not task_specs:
            msg = "no tasks: give -t TASK[:LABEL] or -p PIPELINE.yaml"
            raise PipelineError(msg)
        document = PipelineDocument(description="Pipeline built from the command line.", tasks={})
        source = "-t"
        base = None
    overrides = list(overrides)
    parameters = dict(document.parameters)
    for kind, text in overrides:
        label, path, value = split_override(text) if kind == "c" else (None, "", "")
        if kind == "c" and label == PARAMETERS_LABEL:
            from .config.overrides import parse_value

            if pipeline_file is not None and path not in parameters:
                known = ", ".join(parameters) or "none defined"
                msg = f"-c {text}: the pipeline has no parameter {path!r} (parameters: {known})"
                raise PipelineError(msg)
            parameters[path] = parse_value(value)

    resolved: dict[str, PipelineTask] = {}
    for label, entry in document.tasks.items():
        task_class = resolve(entry.class_)
        config = task_class.ConfigClass()
        for block in entry.config:
            _apply_block(config, block, label=label, source=source, base=base, parameters=parameters)
        resolved[label] = PipelineTask(label, task_class, config, entry.class_)
    for spec in task_specs:
        name, label = parse_task_spec(spec)
        task_class = resolve(name)
        if label is None:
            label = getattr(task_class, "_DefaultName", None) or task_class.__name__
        if label in resolved:
            msg = f"-t {spec}: task label {label!r} is already used; give another as -t {name}:LABEL"
            raise PipelineError(msg)
        resolved[label] = PipelineTask(label, task_class, task_class.ConfigClass(), name)
    pipeline = Pipeline(
        description=document.description,
        tasks=resolved,
        parameters=parameters,
        contracts=list(document.contracts),
        source=source,
    )
    for kind, text in overrides:
        if kind == "C":
            pipeline.apply_config_file(text)
        elif split_override(text)[0] != PARAMETERS_LABEL:
            pipeline.apply_override(text)
    if check_contracts:
        pipeline.check_contracts()
    return pipeline
