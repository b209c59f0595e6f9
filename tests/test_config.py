"""Config: pex_config habits on pydantic (fields, choices, subtasks, registries, history, I/O)."""

from __future__ import annotations

import json
import math
import pickle
import sys
import warnings
from pathlib import Path

import pytest

from diffim.framework.config import (
    Config,
    ConfigError,
    ConfigRetargetWarning,
    Field,
    FieldValidationError,
    FrozenConfigError,
    UnknownFieldError,
    load_config,
)

sys.path.insert(0, str(Path(__file__).parent))
import _configs as m  # noqa: E402


@pytest.fixture
def config() -> m.ParentConfig:
    return m.ParentConfig()


# -- fields ---------------------------------------------------------------------------------
def test_defaults_and_set_defaults(config: m.ParentConfig) -> None:
    assert config.child.threshold == 5.0
    assert config.scale == 2.0  # changed by setDefaults
    assert config.algo.name == "a" and isinstance(config.algo.active, m.AlgoAConfig)
    assert config.executor.name == "serial"
    assert config.nested.size == 21


def test_assignment_is_validated_and_coerced(config: m.ParentConfig) -> None:
    config.child.threshold = 3
    assert config.child.threshold == 3.0 and isinstance(config.child.threshold, float)
    with pytest.raises(FieldValidationError, match=r"invalid value -1 for config field 'child.threshold'.*greater than or equal to 0"):
        config.child.threshold = -1
    with pytest.raises(FieldValidationError, match="'abc'"):
        config.child.threshold = "abc"
    assert config.child.threshold == 3.0  # unchanged after a failed assignment


def test_range_bounds_are_explicit(config: m.ParentConfig) -> None:
    config.child.niter = 0
    config.child.niter = 9
    with pytest.raises(FieldValidationError, match="less than 10"):
        config.child.niter = 10
    with pytest.raises(FieldValidationError, match="greater than 0"):
        config.scale = 0.0


def test_allowed_values_list_their_docs(config: m.ParentConfig) -> None:
    config.child.mode = "slow"
    with pytest.raises(FieldValidationError) as err:
        config.child.mode = "medium"
    text = str(err.value)
    assert "'medium'" in text and "'fast' (quick and rough)" in text and "'slow' (careful)" in text
    assert "\n" not in text


def test_list_length_checked(config: m.ParentConfig) -> None:
    with pytest.raises(FieldValidationError, match="child.planes"):
        config.child.planes = []


def test_unknown_field_suggests_close_names(config: m.ParentConfig) -> None:
    with pytest.raises(UnknownFieldError, match=r"did you mean 'threshold'"):
        config.child.threshhold = 1.0
    with pytest.raises(AttributeError):  # UnknownFieldError is also an AttributeError
        config.scael = 1.0
    with pytest.raises(FieldValidationError, match="no field 'scael'.*did you mean 'scale'"):
        m.ParentConfig(scael=1.0)


def test_field_without_description_is_refused() -> None:
    with pytest.raises(TypeError, match="without a description: x"):

        class Bad(Config):
            x: int = Field(1)


def test_every_config_class_in_the_package_documents_its_fields() -> None:
    import importlib
    import pkgutil

    import diffim.framework
    import diffim.plugins
    import diffim.tasks

    for package in (diffim.framework, diffim.tasks, diffim.plugins):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    seen = []
    stack = list(Config.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__module__.startswith("diffim."):
            continue
        seen.append(cls)
        for name, info in cls.model_fields.items():
            assert info.description, f"{cls.__qualname__}.{name} has no description"
        cls()  # defaults are valid
    assert any(c.__name__ == "_EmptyConfig" for c in seen)


def test_cross_field_validate() -> None:
    config = m.ParentConfig()
    config.algo.name = "b"
    config.algo.b.nGauss = 2  # fields can change one at a time...
    with pytest.raises(FieldValidationError, match="degGauss has 3 entries but nGauss is 2"):
        config.validate()  # ...and validate() checks the combination
    config.algo.b.degGauss = [4, 2]
    config.validate()
    config.algo.b.nGauss = 5
    config.algo.name = "a"  # only the active alternative is validated
    config.validate()


# -- choice fields --------------------------------------------------------------------------
def test_choice_keeps_every_alternative(config: m.ParentConfig) -> None:
    config.algo["b"].beta = 7  # set while "a" is active
    config.algo.a.alpha = 3.5
    config.algo.name = "b"
    assert config.algo.active.beta == 7
    config.algo.name = "a"
    assert config.algo.active.alpha == 3.5 and config.algo["b"].beta == 7
    assert set(config.algo.keys()) == {"a", "b"}


def test_choice_errors(config: m.ParentConfig) -> None:
    with pytest.raises(FieldValidationError, match=r"'algo.name'.*'c' is not allowed.*'a' \(Algorithm A.\)"):
        config.algo.name = "c"
    with pytest.raises(UnknownFieldError, match="no alternative 'c'"):
        config.algo["c"]
    with pytest.raises(FieldValidationError, match="must be a AlgoBConfig"):
        config.algo["b"] = m.AlgoAConfig()
    config.algo = "b"  # assigning a name selects it
    assert config.algo.name == "b"
    config.algo = {"name": "a", "b": {"beta": 9}}
    assert config.algo.name == "a" and config.algo.b.beta == 9


def test_registry_field_names_come_from_the_registry(config: m.ParentConfig) -> None:
    config.executor.name = "process-pool"
    config.executor["process-pool"].processes = 4
    executor = config.executor.apply()
    assert isinstance(executor, m.ProcessExecutor) and executor.config.processes == 4
    with pytest.raises(FieldValidationError, match="'dask' is not allowed.*'serial' \\(Run jobs one after another.\\)"):
        config.executor.name = "dask"
    config.executorName = "process-pool"
    with pytest.raises(FieldValidationError, match="'proc' is not allowed"):
        config.executorName = "proc"


def test_registry_register_and_unknown_names() -> None:
    registry = m.Registry("widget")
    registry.register("a", m.SerialExecutor)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", m.ProcessExecutor)
    registry.register("a", m.ProcessExecutor, ConfigClass=m.ProcessConfig, replace=True)
    with pytest.raises(KeyError, match="no widget called 'b'.*registered: 'a'"):
        registry["b"]
    assert registry.make("a").config.processes == 2
    assert registry.docs() == {"a": "Run jobs in a process pool."}


# -- subtask fields -------------------------------------------------------------------------
def test_subtask_field_forwards_and_applies(config: m.ParentConfig) -> None:
    config.child.threshold = 2.5
    assert config.child.value.threshold == 2.5
    assert config.child.target is m.ChildTask and config.child.ConfigClass is m.ChildConfig


def test_retarget_same_config_class_keeps_everything(config: m.ParentConfig) -> None:
    config.child.threshold = 2.5
    config.child.retarget(m.SubclassChildTask)
    assert config.child.target is m.SubclassChildTask and config.child.threshold == 2.5


def test_retarget_keeps_valid_overrides_and_warns_about_dropped(config: m.ParentConfig) -> None:
    config.child.threshold = 1.5  # valid in AltChildConfig too (<= 2)
    config.child.niter = 4  # AltChildConfig has no niter
    with pytest.warns(ConfigRetargetWarning, match=r"dropped override child.niter=4: .*no field 'niter'"):
        config.child.retarget("_configs.AltChildTask")
    assert config.child.target is m.AltChildTask
    assert config.child.threshold == 1.5 and config.child.extra == 7
    assert "retarget to _configs.AltChildTask" in config.formatHistory("child.threshold")
    assert "_configs.AltChildTask" in config.formatHistory("child.target")


def test_retarget_drops_values_that_no_longer_validate(config: m.ParentConfig) -> None:
    config.child.threshold = 4.0  # AltChildConfig allows at most 2
    with pytest.warns(ConfigRetargetWarning, match="child.threshold=4.0"):
        config.child.retarget(m.AltChildTask)
    assert config.child.threshold == 1.0


def test_retarget_by_override_string(config: m.ParentConfig) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config.override("child.target=_configs.AltChildTask", "child.extra=9")
    assert config.child.extra == 9
    with pytest.raises(FieldValidationError, match="cannot import 'nosuch.Task'"):
        config.override("child.target=nosuch.Task")


# -- overrides ------------------------------------------------------------------------------
def test_dotted_overrides_parse_literals(config: m.ParentConfig) -> None:
    config.override("child.threshold=2", "algo.name=b", "algo['b'].degGauss=[1, 2, 3]", "doThing=False")
    assert config.child.threshold == 2.0 and config.algo.name == "b"
    assert config.algo.b.degGauss == [1, 2, 3] and config.doThing is False
    config.override("algo[b].beta=5", "executor.name='process-pool'")
    assert config.algo.b.beta == 5 and config.executor.name == "process-pool"


@pytest.mark.parametrize(
    ("spec", "error", "pattern"),
    [
        ("child.threshhold=1", UnknownFieldError, "did you mean 'threshold'"),
        ("nested.size.x=1", UnknownFieldError, "is a value, not a group"),
        ("algo.c.alpha=1", UnknownFieldError, "'algo' has no 'c'"),
        ("child.threshold=-3", FieldValidationError, "invalid value -3"),
        ("child.threshold", ConfigError, "expected dotted.path=value"),
        ("algo[b.beta=1", UnknownFieldError, "unclosed"),
    ],
)
def test_bad_overrides_fail_at_once(config: m.ParentConfig, spec: str, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern) as err:
        config.override(spec)
    assert "\n" not in str(err.value)


def test_override_files(tmp_path: Path, config: m.ParentConfig) -> None:
    py = tmp_path / "over.py"
    py.write_text('config.algo.name = "b"\nfor i in range(2):\n    config.child.niter = i + 5\n')
    yml = tmp_path / "over.yaml"
    yml.write_text("child:\n  threshold: 1.25\nalgo.b.beta: 11\nexecutor:\n  name: process-pool\n")
    tml = tmp_path / "over.toml"
    tml.write_text('scale = 3.5\n[nested]\nsize = 15\n')
    js = tmp_path / "over.json"
    js.write_text(json.dumps({"child.mode": "slow", "algo": {"a": {"alpha": 0.5}}}))
    for path in (py, yml, tml, js):
        config.load(path)
    assert config.algo.name == "b" and config.child.niter == 6
    assert config.child.threshold == 1.25 and config.algo.b.beta == 11
    assert config.executor.name == "process-pool"
    assert config.scale == 3.5 and config.nested.size == 15
    assert config.child.mode == "slow" and config.algo.a.alpha == 0.5
    history = config.formatHistory("child.threshold")
    assert f"{yml}:2" in history
    assert f"{py}:3" in config.formatHistory("child.niter")
    assert f"{tml}:3" in config.formatHistory("nested.size")


def test_override_file_errors_are_one_line(tmp_path: Path, config: m.ParentConfig) -> None:
    bad_py = tmp_path / "bad.py"
    bad_py.write_text("x = 1\nconfig.child.threshold = -1\n")
    with pytest.raises(FieldValidationError, match=r"bad.py' line 2: invalid value -1"):
        config.load(bad_py)
    raising = tmp_path / "raise.py"
    raising.write_text("import nosuchmodule\n")
    with pytest.raises(ConfigError, match=r"raise.py' line 1: ModuleNotFoundError"):
        config.load(raising)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("child:\n  threshhold: 1\n")
    with pytest.raises(UnknownFieldError, match="bad.yaml'.*did you mean 'threshold'"):
        config.load(bad_yaml)
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown type"):
        (tmp_path / "x.ini").write_text("")
        config.load(tmp_path / "x.ini")


# -- history --------------------------------------------------------------------------------
def test_history_records_value_and_source(config: m.ParentConfig) -> None:
    config.child.threshold = 1.0
    config.override("child.threshold=2.0")
    entries = config.history("child.threshold")
    assert [e.value for e in entries] == [5.0, 1.0, 2.0]
    assert entries[0].source == "default"
    assert entries[1].source == f"{__file__}:{test_history_records_value_and_source.__code__.co_firstlineno + 1}"
    assert entries[2].source == "-c child.threshold=2.0"
    text = config.formatHistory("child.threshold")
    assert text.splitlines()[0] == "child.threshold" and len(text.splitlines()) == 4


def test_history_is_bounded(config: m.ParentConfig) -> None:
    from diffim.framework.config import MAX_HISTORY

    for i in range(MAX_HISTORY * 3):
        config.nested.size = i + 1
    assert len(config.history("nested.size")) == MAX_HISTORY + 1  # + the default


def test_history_of_set_defaults_and_constructor_arguments() -> None:
    config = m.ParentConfig(doThing=False)
    assert "_configs.py" in config.history("scale")[1].source
    assert config.history("doThing")[1].value is False


# -- freeze, copy, equality, compare --------------------------------------------------------
def test_freeze_is_recursive(config: m.ParentConfig) -> None:
    config.freeze()
    for action in (
        lambda: setattr(config, "scale", 3.0),
        lambda: setattr(config.child, "threshold", 1.0),
        lambda: setattr(config.algo, "name", "b"),
        lambda: setattr(config.algo.b, "beta", 1),
        lambda: config.child.retarget(m.AltChildTask),
        lambda: config.child.planes.append("X"),
        lambda: setattr(config.nested, "size", 3),
    ):
        with pytest.raises(FrozenConfigError, match="frozen"):
            action()
    assert config.child.planes == ["NO_DATA", "EDGE"]


def test_copy_is_deep_and_unfrozen(config: m.ParentConfig) -> None:
    config.freeze()
    copy = config.copy()
    assert copy == config and not copy.frozen
    copy.child.planes.append("SAT")
    copy.algo.b.beta = 99
    assert config.child.planes == ["NO_DATA", "EDGE"] and config.algo.b.beta == 2
    assert copy != config


def test_equality_is_structural() -> None:
    a, b = m.ParentConfig(), m.ParentConfig()
    assert a == b  # LSST's == is False for configs with subtasks
    b.algo.b.beta = 3
    assert a != b
    assert a.diff(b) == [("algo.b.beta", 2, 3)]


def test_compare_with_tolerance() -> None:
    a, b = m.ParentConfig(), m.ParentConfig()
    b.child.threshold = 5.0 + 1e-12
    assert a != b
    assert a.compare(b)
    b.child.threshold = 6.0
    messages: list[str] = []
    assert not a.compare(b, output=messages.append)
    assert messages == ["child.threshold: 5.0 != 6.0"]


def test_names_lists_every_leaf(config: m.ParentConfig) -> None:
    names = config.names()
    for expected in ("child.target", "child.threshold", "algo.name", "algo.b.beta", "executor.process-pool.processes", "nested.size", "scale"):
        assert expected in names


# -- save / load ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_round_trip_exactly(tmp_path: Path, config: m.ParentConfig, suffix: str) -> None:
    config.child.threshold = 0.1 + 0.2
    config.child.planes = ["a: b", "#hash", "'quote'"]
    config.algo.name = "b"
    config.executor.name = "process-pool"
    config.nested.size = 1
    with pytest.warns(ConfigRetargetWarning):
        config.child.retarget(m.AltChildTask)
    config.child.threshold = math.nextafter(1.0, 2.0)
    path = tmp_path / f"config{suffix}"
    config.save(path)
    loaded = m.ParentConfig.from_file(path)
    assert loaded == config and not loaded.diff(config)
    assert loaded.child.threshold == math.nextafter(1.0, 2.0)
    assert loaded.child.target is m.AltChildTask
    assert isinstance(load_config(path), m.ParentConfig)


def test_saved_yaml_is_commented_and_reloadable_as_overrides(tmp_path: Path, config: m.ParentConfig) -> None:
    path = tmp_path / "c.yaml"
    config.save(path)
    text = path.read_text()
    assert "# Detection threshold in sigma." in text and "__class__: _configs.ParentConfig" in text
    other = m.ParentConfig()
    other.child.threshold = 9.0
    other.load(path)  # a saved file also works as an override file
    assert other == config


def test_save_refuses_to_overwrite_when_asked(tmp_path: Path, config: m.ParentConfig) -> None:
    path = tmp_path / "c.yaml"
    config.save(path)
    with pytest.raises(FileExistsError, match="already exists"):
        config.save(path, overwrite=False)
    with pytest.raises(ConfigError, match="holds a _configs.ParentConfig"):
        m.ChildConfig.from_file(path)


def test_pickle_round_trip(config: m.ParentConfig) -> None:
    config.algo.b.beta = 5
    config.freeze()
    clone = pickle.loads(pickle.dumps(config))
    assert clone == config and clone.frozen


def test_json_schema_export() -> None:
    schema = m.ParentConfig.json_schema()
    props = schema["properties"]
    assert props["child"]["properties"]["threshold"]["minimum"] == 0.0
    assert props["child"]["properties"]["niter"]["exclusiveMaximum"] == 10
    assert props["child"]["properties"]["mode"]["x-allowed"] == {"fast": "quick and rough", "slow": "careful"}
    assert props["algo"]["properties"]["name"]["enum"] == ["a", "b"]
    assert props["algo"]["properties"]["b"]["properties"]["beta"]["description"] == "Beta."
    assert set(props["executor"]["properties"]) == {"name", "serial", "process-pool"}
    assert "$ref" not in json.dumps(schema)
    json.dumps(schema)  # serializable


def test_constructor_keywords_win_over_set_defaults() -> None:
    config = m.ParentConfig(scale=5.0)
    assert config.scale == 5.0  # setDefaults sets 2.0, the keyword wins as in pex_config
    assert m.ParentConfig().scale == 2.0


def test_override_through_the_active_alternative(config: m.ParentConfig) -> None:
    config.override("algo.name=b", "algo.active.beta=8")
    assert config.algo.b.beta == 8
    assert "-c algo.active.beta=8" in config.formatHistory("algo.b.beta")
