"""Tests for diffim.framework.metadata.TaskMetadata."""

from __future__ import annotations

import copy
import json
import math
import pickle
from enum import IntEnum

import numpy as np
import pytest

from diffim.framework.metadata import MetadataValueError, TaskMetadata


# --------------------------------------------------------------------------- scalars & arrays
def test_scalars_keep_their_exact_types() -> None:
    md = TaskMetadata()
    md["s"] = "text"
    md["i"] = 3
    md["f"] = 2.5
    md["b"] = True
    assert (md["s"], md["i"], md["f"], md["b"]) == ("text", 3, 2.5, True)
    assert type(md["i"]) is int
    assert type(md["b"]) is bool
    assert md.getScalar("f") == 2.5
    assert md.getArray("i") == [3]


def test_setting_a_list_stores_an_array_and_getitem_returns_last() -> None:
    md = TaskMetadata()
    md["a"] = [1, 2, 3]
    md["t"] = ("x", "y")
    assert md["a"] == 3
    assert md.getArray("a") == [1, 2, 3]
    assert md.getArray("t") == ["x", "y"]
    # getArray returns a copy: mutating it leaves the metadata alone.
    md.getArray("a").append(99)
    assert md.getArray("a") == [1, 2, 3]


def test_mixed_int_float_list_becomes_float() -> None:
    md = TaskMetadata()
    md["x"] = [1, 2.5]
    assert md.getArray("x") == [1.0, 2.5]
    assert all(type(v) is float for v in md.getArray("x"))


def test_setitem_replaces_previous_kind() -> None:
    md = TaskMetadata()
    md["k"] = [1, 2]
    md["k"] = "now a scalar"
    assert md.getArray("k") == ["now a scalar"]
    md["k"] = {"inner": 1}
    assert isinstance(md["k"], TaskMetadata)
    assert md["k.inner"] == 1


def test_int_enum_subclass_is_stored_as_plain_int() -> None:
    class Mode(IntEnum):
        FAST = 2

    md = TaskMetadata()
    md["mode"] = Mode.FAST
    assert md["mode"] == 2
    assert type(md["mode"]) is int


def test_empty_list_is_an_empty_array() -> None:
    md = TaskMetadata()
    md["e"] = []
    assert md.getArray("e") == []
    assert md.get("e", "dflt") == "dflt"
    with pytest.raises(KeyError, match="empty array"):
        md["e"]
    md.add("e", 4)
    assert md["e"] == 4


# --------------------------------------------------------------------------- add()
def test_add_creates_then_appends() -> None:
    md = TaskMetadata()
    md.add("calls", 1)
    md.add("calls", 2)
    assert md["calls"] == 2
    assert md.getArray("calls") == [1, 2]


def test_add_on_scalar_converts_to_two_element_array() -> None:
    md = TaskMetadata()
    md["x"] = 1.5
    md.add("x", 2.5)
    assert md.getArray("x") == [1.5, 2.5]


def test_add_list_extends() -> None:
    md = TaskMetadata()
    md.add("x", [1, 2])
    md.add("x", (3,))
    assert md.getArray("x") == [1, 2, 3]


def test_add_float_to_int_array_converts_to_float() -> None:
    md = TaskMetadata()
    md.add("x", 1)
    md.add("x", 0.5)
    assert md.getArray("x") == [1.0, 0.5]
    assert all(type(v) is float for v in md.getArray("x"))
    md.add("x", 7)  # int into a float array: coerced
    assert md.getArray("x")[-1] == 7.0
    assert type(md["x"]) is float


def test_add_type_mismatch_is_rejected_with_key_in_message() -> None:
    md = TaskMetadata()
    md.add("flags", True)
    with pytest.raises(MetadataValueError, match=r"'flags'.*int.*bool"):
        md.add("flags", 1)
    md.add("names", "a")
    with pytest.raises(ValueError, match="'names'"):
        md.add("names", 2.0)
    assert md.getArray("flags") == [True]


def test_add_to_nested_metadata_or_with_mapping_is_rejected() -> None:
    md = TaskMetadata()
    md["sub.x"] = 1
    with pytest.raises(MetadataValueError, match="'sub'"):
        md.add("sub", 3)
    with pytest.raises(MetadataValueError, match="'m'"):
        md.add("m", {"a": 1})


def test_add_dotted_key() -> None:
    md = TaskMetadata()
    md.add("a.b", 1)
    md.add("a.b", 2)
    assert md.getArray("a.b") == [1, 2]
    assert isinstance(md["a"], TaskMetadata)


def test_add_many_rolls_oldest_out() -> None:
    md = TaskMetadata()
    for i in range(25):
        md.add_many(("x", "y.z"), (i, float(i)), max_records=4)
    assert md.getArray("x") == [21, 22, 23, 24]
    assert md.getArray("y.z") == [21.0, 22.0, 23.0, 24.0]
    md.add_many(("x",), (99,))  # unbounded when max_records is None
    assert md.getArray("x") == [21, 22, 23, 24, 99]
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        md.add_many(("a", "b"), (1,))


# --------------------------------------------------------------------------- nesting & keys
def test_dotted_keys_create_and_traverse_nesting() -> None:
    md = TaskMetadata()
    md["a.b.c"] = 1
    assert isinstance(md["a"], TaskMetadata)
    assert isinstance(md["a.b"], TaskMetadata)
    assert md["a"]["b"]["c"] == 1
    assert md["a.b.c"] == 1
    assert "a.b.c" in md
    assert "a.b" in md
    assert "a.x" not in md
    assert "a.b.c.d" not in md
    assert md.keys() == ("a",)
    assert md["a.b"].keys() == ("c",)


def test_colon_is_a_plain_key_character() -> None:
    md = TaskMetadata()
    md["parent:child.runStartCpuTime"] = 0.5
    md["parent.runStartCpuTime"] = 0.25
    assert set(md.keys()) == {"parent:child", "parent"}
    assert md["parent:child"]["runStartCpuTime"] == 0.5
    assert sorted(md.names()) == ["parent.runStartCpuTime", "parent:child.runStartCpuTime"]


def test_names_are_fully_dotted_leaves() -> None:
    md = TaskMetadata({"top": 1, "a": {"b": {"c": [1, 2]}, "d": "x"}})
    assert md.names() == ["top", "a.b.c", "a.d"]
    assert md.paramNames(topLevelOnly=True) == {"top"}
    assert md.paramNames() == {"top", "a.b.c", "a.d"}


def test_len_iter_delitem_get() -> None:
    md = TaskMetadata()
    md["x"] = 1
    md["a.b"] = 2
    md["a.c"] = 3
    assert len(md) == 2
    assert list(md) == ["x", "a"]
    del md["a.b"]
    assert "a.b" not in md
    assert md["a.c"] == 3
    del md["x"]
    assert list(md) == ["a"]
    with pytest.raises(KeyError, match="'nope'"):
        del md["nope"]
    with pytest.raises(KeyError, match="'a.zz' not found"):
        md["a.zz"]
    assert md.get("a.zz") is None
    assert md.get("a.zz", 7) == 7
    assert md.get("a.c") == 3


def test_cannot_nest_under_a_scalar() -> None:
    md = TaskMetadata()
    md["a"] = 1
    with pytest.raises(MetadataValueError, match=r"'a\.b'.*'a' holds a int"):
        md["a.b"] = 2
    assert md["a"] == 1


@pytest.mark.parametrize("key", ["", "a..b", ".a", "a."])
def test_empty_key_components_rejected(key: str) -> None:
    md = TaskMetadata()
    with pytest.raises(MetadataValueError, match="empty component"):
        md[key] = 1


def test_non_string_key_rejected() -> None:
    md = TaskMetadata()
    with pytest.raises(TypeError, match="keys must be str"):
        md[3] = 1  # type: ignore[index]


def test_nesting_a_task_metadata() -> None:
    child = TaskMetadata()
    child["threshold"] = 2.5
    full = TaskMetadata()
    full["parent:child"] = child
    assert full["parent:child.threshold"] == 2.5
    assert full.names() == ["parent:child.threshold"]


# --------------------------------------------------------------------------- numpy values
def test_numpy_scalars_are_cast_to_python_types() -> None:
    md = TaskMetadata()
    md["i"] = np.int64(4)
    md["f"] = np.float32(1.5)
    md["d"] = np.float64(2.5)
    md["b"] = np.bool_(True)
    md["s"] = np.str_("hi")
    md["z"] = np.array(3.0)  # 0-d array
    assert [type(md[k]) for k in "ifdbsz"] == [int, float, float, bool, str, float]
    assert md["i"] == 4
    assert md["b"] is True
    md.add("arr", np.int32(1))
    md.add("arr", np.int32(2))
    assert md.getArray("arr") == [1, 2]


def test_numpy_arrays_become_lists() -> None:
    md = TaskMetadata()
    md["a"] = np.arange(3)
    md["f"] = np.array([0.5, np.nan])
    md["b"] = np.array([True, False])
    assert md.getArray("a") == [0, 1, 2]
    assert type(md["a"]) is int
    assert md.getArray("f")[0] == 0.5
    assert math.isnan(md["f"])
    assert md.getArray("b") == [True, False]
    assert type(md["b"]) is bool
    md.add("a", np.array([3, 4]))
    assert md.getArray("a") == [0, 1, 2, 3, 4]


def test_numpy_2d_array_rejected() -> None:
    md = TaskMetadata()
    with pytest.raises(MetadataValueError, match=r"'img'.*ndarray.*shape \(2, 2\)"):
        md["img"] = np.zeros((2, 2))


# --------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (None, "NoneType"),
        (object(), "object"),
        ([1, "a"], "list"),
        ([True, 1], "list"),
        ([1, None], "NoneType"),
        (1 + 2j, "complex"),
        (np.datetime64("2020-01-01"), "datetime64"),
    ],
)
def test_bad_values_rejected_naming_key_type_and_allowed(value: object, type_name: str) -> None:
    md = TaskMetadata()
    with pytest.raises(MetadataValueError) as info:
        md["sub.bad_key"] = value
    text = str(info.value)
    assert "'sub.bad_key'" in text
    assert type_name in text
    assert "allowed: str, int, float, bool" in text
    assert "\n" not in text
    assert "sub.bad_key" not in md


def test_bad_value_errors_are_type_and_value_errors() -> None:
    md = TaskMetadata()
    with pytest.raises(TypeError):
        md["x"] = None
    with pytest.raises(ValueError):
        md["x"] = [1, "a"]
    with pytest.raises(ValueError):
        md.add("y", None)


def test_bad_value_in_nested_mapping_names_full_key() -> None:
    md = TaskMetadata()
    with pytest.raises(MetadataValueError, match="'outer.inner'"):
        md["outer"] = {"inner": None}
    assert "outer" not in md


# --------------------------------------------------------------------------- serialization
def _sample() -> TaskMetadata:
    md = TaskMetadata()
    md["parent.count"] = 3
    md["parent:child.threshold"] = 2.5
    md["parent:child.nan"] = float("nan")
    md["parent:child.infs"] = [float("inf"), -float("inf"), 1.0]
    md["flags"] = [True, False]
    md["name"] = "diffim"
    md.add("calls", 1)
    md.add("calls", 2)
    return md


def test_to_dict_is_plain_and_from_dict_round_trips() -> None:
    md = _sample()
    d = md.to_dict()
    assert type(d["parent"]) is dict
    assert d["parent"] == {"count": 3}
    assert d["calls"] == [1, 2]
    d["calls"].append(3)  # a copy
    assert md.getArray("calls") == [1, 2]
    assert TaskMetadata.from_dict(md.to_dict()) == md


def test_json_round_trip_with_nan_and_inf() -> None:
    md = _sample()
    text = md.to_json()
    assert "NaN" in text
    assert "-Infinity" in text
    back = TaskMetadata.from_json(text)
    assert back == md
    assert math.isnan(back["parent:child.nan"])
    assert back.getArray("parent:child.infs")[:2] == [math.inf, -math.inf]
    assert type(back["parent.count"]) is int
    assert json.loads(md.to_json(indent=2)) is not None


def test_from_json_rejects_non_object() -> None:
    with pytest.raises(MetadataValueError, match="JSON object"):
        TaskMetadata.from_json("[1, 2]")


def test_yaml_round_trip_with_nan_and_inf() -> None:
    md = _sample()
    text = md.to_yaml()
    assert ".nan" in text
    assert "-.inf" in text
    assert "parent:child" in text
    back = TaskMetadata.from_yaml(text)
    assert back == md
    assert math.isnan(back["parent:child.nan"])
    assert TaskMetadata.from_yaml("") == TaskMetadata()


def test_pickle_round_trip() -> None:
    md = _sample()
    back = pickle.loads(pickle.dumps(md))
    assert back == md
    back["parent.count"] = 4
    assert md["parent.count"] == 3


# --------------------------------------------------------------------------- equality, copy, repr
def test_equality_is_structural_and_type_strict() -> None:
    a = TaskMetadata({"x": 1, "n": {"v": [1.0, 2.0]}})
    b = TaskMetadata()
    b["n.v"] = [1.0, 2.0]
    b["x"] = 1
    assert a == b
    assert TaskMetadata({"x": 1}) != TaskMetadata({"x": 1.0})
    assert TaskMetadata({"x": 1}) != TaskMetadata({"x": True})
    assert TaskMetadata({"x": 1}) != TaskMetadata({"x": [1]})
    assert TaskMetadata({"x": 1}) != TaskMetadata({"x": 1, "y": 2})
    assert TaskMetadata({"x": float("nan")}) == TaskMetadata({"x": float("nan")})
    assert TaskMetadata({"x": 1}) != {"x": 1}


def test_copy_is_structural() -> None:
    md = _sample()
    for dup in (md.copy(), copy.copy(md), copy.deepcopy(md)):
        assert dup == md
        dup.add("calls", 3)
        dup["parent.count"] = 10
        assert md.getArray("calls") == [1, 2]
        assert md["parent.count"] == 3


def test_repr_shows_content() -> None:
    md = TaskMetadata()
    md["a.b"] = 1
    assert repr(md) == "TaskMetadata({'a': {'b': 1}})"


def test_update_and_items() -> None:
    md = TaskMetadata()
    md.update({"x": 1, "a.b": [1, 2]})
    md.update([("y", "z")])
    items = dict(md.items())
    assert items["x"] == 1
    assert items["y"] == "z"
    assert isinstance(items["a"], TaskMetadata)
    assert md.getArray("a.b") == [1, 2]


def test_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(TaskMetadata())
