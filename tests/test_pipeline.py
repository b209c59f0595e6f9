"""Pipeline documents (pipetask format): validation, parameters, config blocks, contracts, saving."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from diffim.framework.cli import EXIT_CONFIG, main
from diffim.framework.config import ConfigError
from diffim.framework.pipeline import (
    ContractError,
    PipelineDocument,
    PipelineError,
    build_pipeline,
    parse_task_spec,
    substitute_parameters,
)

sys.path.insert(0, str(Path(__file__).parent))
import _launcher_toys as toys

SCALE = "_launcher_toys.ScaleTask"
SUM = "_launcher_toys.SumTask"

PIPELINE = f"""
description: scale, then add
parameters:
  f: 10
  s: 1
tasks:
  scale:
    class: {SCALE}
    config:
      factor: parameters.f
  total:
    class: {SUM}
    config:
      - start: parameters.s
      - python: "config.start = config.start + 1"
contracts:
  - contract: scale.factor >= 5
    msg: the factor must be at least 5
  - "total.start == parameters.s + 1"
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIFFIM_TRACEBACK", raising=False)
    (tmp_path / "pipe.yaml").write_text(PIPELINE)
    (tmp_path / "data.json").write_text("[1, 2, 3]")
    with toys.toy_plugins():
        yield tmp_path


def test_document_shorthands() -> None:
    doc = PipelineDocument.from_data(
        {"description": "d", "tasks": {"a": SCALE, "b": {"class": SUM, "config": {"start": 2}}},
         "contracts": ["a.factor > 0", {"contract": "b.start > 0", "msg": "positive"}]}
    )
    assert doc.tasks["a"].class_ == SCALE and doc.tasks["a"].config == []
    assert doc.tasks["b"].config == [{"start": 2}]
    assert [(c.contract, c.msg) for c in doc.contracts] == [("a.factor > 0", None), ("b.start > 0", "positive")]
    assert doc.parameters == {}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tasks": {"a": SCALE}}, "pipeline 'p.yaml': missing required key 'description'"),
        ({"description": "d"}, "missing required key 'tasks'"),
        ({"description": "d", "tasks": {"a": SCALE}, "stuff": 1}, "unknown key 'stuff'"),
        ({"description": "d", "tasks": {"a": {"class": SCALE, "conifg": {}}}}, "unknown key 'tasks.a.conifg'"),
        ({"description": "d", "tasks": {"a": SCALE}, "imports": []}, "key 'imports' is not supported by diffim"),
        ({"description": "d", "tasks": {"my-label": SCALE}}, "task label 'my-label' is not valid"),
        ({"description": "d", "tasks": {"parameters": SCALE}}, "task label 'parameters' is not valid"),
        (["a", "b"], "must be a YAML mapping with 'description' and 'tasks', not list"),
    ],
)
def test_document_errors(data: object, expected: str) -> None:
    with pytest.raises(PipelineError) as info:
        PipelineDocument.from_data(data, "p.yaml")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="pipeline file '.*nope.yaml' does not exist"):
        PipelineDocument.from_file(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("description: x\ntasks: [a\n")
    with pytest.raises(PipelineError, match=r"bad.yaml' line 3 is not valid YAML"):
        PipelineDocument.from_file(tmp_path / "bad.yaml")


def test_parse_task_spec() -> None:
    assert parse_task_spec("pkg.Task") == ("pkg.Task", None)
    assert parse_task_spec("pkg.Task:diff") == ("pkg.Task", "diff")
    with pytest.raises(PipelineError, match="expected TASK or TASK:LABEL"):
        parse_task_spec("pkg.Task:")
    with pytest.raises(PipelineError, match="label 'a-b' is not valid"):
        parse_task_spec("pkg.Task:a-b")


def test_substitute_parameters() -> None:
    params = {"a": 2, "name": "AL"}
    assert substitute_parameters("parameters.a", params, "w") == 2
    assert substitute_parameters("[parameters.a, 3]", params, "w") == [2, 3]
    assert substitute_parameters("-parameters.a", params, "w") == -2
    assert substitute_parameters({"k": ["parameters.name"]}, params, "w") == {"k": ["AL"]}
    assert substitute_parameters("parameters.a + 1", params, "w") == "parameters.a + 1"  # not a reference
    assert substitute_parameters("plain", params, "w") == "plain"
    with pytest.raises(PipelineError, match=r"w: unknown pipeline parameter 'b' \(parameters: a, name\)"):
        substitute_parameters("parameters.b", params, "w")


def test_build_applies_parameters_blocks_and_contracts(folder: Path) -> None:
    pipeline = build_pipeline("pipe.yaml")
    assert pipeline.labels == ["scale", "total"]
    assert pipeline.tasks["scale"].config.factor == 10.0
    assert pipeline.tasks["total"].config.start == 2.0  # block 1 sets 1, the python block adds 1
    history = pipeline.tasks["scale"].config.formatHistory("factor").splitlines()
    assert history[2].split(None, 1) == ["10.0", "pipeline pipe.yaml [scale] factor"]
    pipeline = build_pipeline("pipe.yaml", overrides=[("c", "parameters:f=20"), ("c", "parameters:s=4")])
    assert pipeline.tasks["scale"].config.factor == 20.0 and pipeline.tasks["total"].config.start == 5.0
    pipeline = build_pipeline("pipe.yaml", overrides=[("c", "scale:factor=parameters.s")], check_contracts=False)
    assert pipeline.tasks["scale"].config.factor == 1.0


def test_file_key_is_relative_to_the_pipeline(folder: Path) -> None:
    sub = folder / "sub"
    sub.mkdir()
    (sub / "scale.yaml").write_text("factor: 3\n")
    (sub / "p.yaml").write_text(f"description: d\ntasks:\n  s:\n    class: {SCALE}\n    config:\n      file: scale.yaml\n      failValue: 5\n")
    config = build_pipeline(sub / "p.yaml").tasks["s"].config
    assert (config.factor, config.failValue) == (3.0, 5.0)


@pytest.mark.parametrize(
    ("overrides", "error", "expected"),
    [
        ([("c", "parameters:f=2")], ContractError, "contract 'scale.factor >= 5' failed: the factor must be at least 5"),
        ([("c", "total:start=7")], ContractError, "contract 'total.start == parameters.s + 1' failed"),
        ([("c", "parameters:nope=2")], PipelineError, "the pipeline has no parameter 'nope' (parameters: f, s)"),
        ([("c", "factor=2")], PipelineError, "-c factor=2: the pipeline has several tasks; prefix the label (labels: scale, total)"),
        ([("c", "scal:factor=2")], PipelineError, "unknown task label 'scal'; did you mean 'scale'?"),
        ([("c", "scale:factor=parameters.x")], PipelineError, "unknown pipeline parameter 'x'"),
        ([("C", "scale:missing.yaml")], ConfigError, "config file 'missing.yaml' does not exist"),
    ],
)
def test_override_and_contract_errors(
    folder: Path, overrides: list[tuple[str, str]], error: type[Exception], expected: str
) -> None:
    with pytest.raises(error) as info:
        build_pipeline("pipe.yaml", overrides=overrides)
    assert expected in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        ("scale.__class__", "uses the private name '__class__'"),
        ("scale._frozen", "uses the private name '_frozen'"),
        ("open('x')", "cannot be evaluated: NameError: name 'open' is not defined (names available: scale, total, parameters)"),
        ("scale.factor >", "is not a valid Python expression"),
        ("(lambda: 1)()", "lambdas and ':=' are not allowed"),
    ],
)
def test_contracts_are_restricted(folder: Path, contract: str, expected: str) -> None:
    (folder / "c.yaml").write_text(
        f"description: d\ntasks:\n  scale: {SCALE}\n  total: {SUM}\ncontracts:\n  - {json.dumps(contract)}\n"
    )
    with pytest.raises(ContractError) as info:
        build_pipeline("c.yaml")
    assert expected in str(info.value)


def test_contracts_may_use_safe_builtins(folder: Path) -> None:
    (folder / "c.yaml").write_text(
        f"description: d\ntasks:\n  scale: {SCALE}\ncontracts:\n  - 'abs(scale.factor - 2) < 1e-9 and max(1, 2) == 2'\n"
    )
    assert build_pipeline("c.yaml").labels == ["scale"]


def test_task_specs_add_to_the_pipeline(folder: Path) -> None:
    pipeline = build_pipeline("pipe.yaml", ["ScaleTask:again"])
    assert pipeline.labels == ["scale", "total", "again"]
    with pytest.raises(PipelineError, match="task label 'scale' is already used"):
        build_pipeline("pipe.yaml", ["ScaleTask"])
    with pytest.raises(PipelineError, match="no tasks: give -t"):
        build_pipeline(None, [])


def test_saved_document_round_trips(folder: Path) -> None:
    pipeline = build_pipeline("pipe.yaml", overrides=[("c", "scale:failValue=7")])
    (folder / "saved.yaml").write_text(pipeline.to_yaml())
    again = build_pipeline("saved.yaml")
    for label in pipeline.labels:
        assert again.tasks[label].config == pipeline.tasks[label].config
    assert again.to_document() == pipeline.to_document()
    assert again.to_document()["tasks"]["total"] == {"class": SUM, "config": {"start": 2.0}}


def test_cli_runs_a_pipeline_with_nested_outputs_and_chained_input(folder: Path) -> None:
    assert main(["run", "-p", "pipe.yaml", "-i", "data=data.json", "-o", "out"]) == 0
    out = folder / "out"
    assert json.loads((out / "scale" / "scaled.json").read_text()) == [10.0, 20.0, 30.0]
    assert json.loads((out / "total" / "total.json").read_text()) == [62.0]  # start 2 + 60, fed in memory
    for label in ("scale", "total"):
        for suffix in ("_config.yaml", "_metadata.json", "_log.jsonl"):
            assert (out / f"{label}{suffix}").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["pipeline"] == {"scale": SCALE, "total": SUM}
    assert list(run["jobs"][0]["tasks"]) == ["scale", "total"]


def test_cli_failing_contract_stops_before_anything_runs(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-p", "pipe.yaml", "-i", "data=data.json", "-o", "out", "-c", "parameters:f=1"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err == "diffim: error: contract 'scale.factor >= 5' failed: the factor must be at least 5\n"
    assert not (folder / "out").exists()


def test_cli_explicit_input_replaces_a_chained_one(folder: Path) -> None:
    (folder / "other.json").write_text("[100]")
    assert main(["run", "-p", "pipe.yaml", "-i", "data=data.json", "-i", "scaled=other.json", "-o", "out"]) == 0
    assert json.loads((folder / "out" / "total" / "total.json").read_text()) == [102.0]
