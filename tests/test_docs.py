"""The docs cannot drift from the code: hooks, hook versions, metadata keys, LSST names.

Modelled on datasette's ``test_plugin_hooks_are_documented``. No Sphinx needed: the tests read
the docs' sources (``docs/plugins.rst``, ``docs/migrating.rst``) and the declarations of
:mod:`diffim.tasks.metadata_keys`, and run the tasks on a small generated image pair.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import itertools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from diffim.framework.task import Task
from diffim.tasks.metadata_keys import TASK_METADATA_KEYS, declared_keys

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOK_REFERENCE = DOCS / "plugins.rst"
MIGRATION = DOCS / "migrating.rst"
HOOKSPEC_MODULES = ("diffim.framework.hookspecs", "diffim.tasks.hookspecs")
_UNDERLINE = re.compile(r"""^([=\-~^"'`#*+.:_])\1{3,}$""")


def _load_docs_module(name: str) -> ModuleType:
    """Import a module of ``docs/_ext`` by path (it does not need Sphinx)."""
    module_name = f"_diffim_docs_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, DOCS / "_ext" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _hookspecs() -> dict[str, Callable[..., Any]]:
    specs = {}
    for module_name in HOOKSPEC_MODULES:
        module = importlib.import_module(module_name)
        for name, func in vars(module).items():
            if name.startswith("diffim_") and hasattr(func, "diffim_spec"):
                specs[name] = func
    return specs


def _signature(name: str, func: Callable[..., Any]) -> str:
    return f"{name}({', '.join(inspect.signature(func).parameters)})"


def _section_titles(text: str) -> set[str]:
    lines = text.splitlines()
    return {
        line.strip()
        for line, below in itertools.pairwise(lines)
        if line.strip() and _UNDERLINE.match(below.strip()) and len(below.strip()) >= len(line.strip())
    }


# ------------------------------------------------------------------------------------- hooks
def test_the_hookspec_modules_are_all_the_documented_ones() -> None:
    groups = importlib.metadata.entry_points(group="diffim.hookspecs")
    ours = {ep.value for ep in groups if ep.dist is not None and ep.dist.name == "diffim"}
    assert ours | {"diffim.framework.hookspecs"} == set(HOOKSPEC_MODULES)
    assert len(_hookspecs()) >= 9  # 5 framework hooks + 4 domain hooks at 0.1


def test_every_hook_has_a_section_in_the_hook_reference() -> None:
    text = HOOK_REFERENCE.read_text(encoding="utf-8")
    titles = _section_titles(text)
    generated = set(re.findall(r"^\.\. diffim-hook:: (\w+)\s*$", text, re.MULTILINE))
    specs = _hookspecs()
    missing = [_signature(n, f) for n, f in specs.items() if _signature(n, f) not in titles or n not in generated]
    assert not missing, (
        f"hooks without a section in {HOOK_REFERENCE.name}: {missing}; add a title 'NAME(args)' followed by "
        "'.. diffim-hook:: NAME'"
    )
    stale = sorted(generated - set(specs))
    assert not stale, f"{HOOK_REFERENCE.name} documents hooks that do not exist: {stale}"


def test_every_hookspec_states_the_version_that_added_it() -> None:
    release = tuple(int(p) for p in importlib.metadata.version("diffim").split(".")[:2])
    for name, func in _hookspecs().items():
        match = re.search(r"^\.\. versionadded:: (\d+)\.(\d+)(?:\.\d+)?\s*$", inspect.getdoc(func) or "", re.MULTILINE)
        assert match, f"hookspec {name} has no '.. versionadded:: X.Y' line in its docstring"
        added = (int(match.group(1)), int(match.group(2)))
        assert added <= release, f"hookspec {name} says it was added in {added}, after this release {release}"


# ----------------------------------------------------------------------------------- metadata
@pytest.fixture(scope="module")
def task_trees() -> list[Task]:
    """The top-level tasks after ImagePsfMatchTask.subtractExposures and ModelPsfMatchTask.run."""
    from diffim.tasks.imagePsfMatch import ImagePsfMatchTask
    from diffim.tasks.modelPsfMatch import ModelPsfMatchConfig, ModelPsfMatchTask
    from diffim.tasks.psf import DoubleGaussianPsf

    from diffim.testing import make_image_pair

    pair = make_image_pair()  # the plugin test kit's small synthetic pair
    image_task = ImagePsfMatchTask()
    image_task.subtractExposures(pair.template, pair.science)

    config = ModelPsfMatchConfig()  # LSST's test_modelPsfMatch set-up, on a 128² exposure
    config.kernel.active.kernelSize = 9
    config.kernel.active.kernelSizeMin = 9
    exposure = make_image_pair(128, nstars=5).template
    exposure.psf = DoubleGaussianPsf(11, 11, 2.0)
    model_task = ModelPsfMatchTask(config=config)
    model_task.run(exposure, DoubleGaussianPsf(11, 11, 3.7))
    return [image_task, model_task]


def _tasks(trees: list[Task]) -> list[Task]:
    return [task for tree in trees for task in tree.getTaskDict().values()]


def test_every_written_metadata_key_is_declared(task_trees: list[Task]) -> None:
    problems = []
    for task in _tasks(task_trees):
        declared = declared_keys(type(task)._DefaultName)
        undeclared = sorted(set(task.metadata.keys()) - set(declared))
        if undeclared:
            problems.append(f"{type(task).__name__} ({task.getFullName()}) writes undeclared keys {undeclared}")
    assert not problems, "; ".join(problems) + " -- declare them in tasks/metadata_keys.py"


def test_every_unconditional_declared_key_is_written(task_trees: list[Task]) -> None:
    problems = []
    for task in _tasks(task_trees):
        written = set(task.metadata.keys())
        declared = declared_keys(type(task)._DefaultName)
        missing = sorted(name for name, key in declared.items() if key.condition is None and name not in written)
        if missing:
            problems.append(f"{type(task).__name__} did not write {missing}")
    assert not problems, "; ".join(problems) + " -- remove them or give them a condition in tasks/metadata_keys.py"


def test_metadata_declarations_name_the_tasks_that_ran(task_trees: list[Task]) -> None:
    ran = {type(task)._DefaultName: type(task) for task in _tasks(task_trees)}
    assert set(TASK_METADATA_KEYS) == set(ran)  # every declared task was exercised above
    for name, entry in TASK_METADATA_KEYS.items():
        cls = ran[name]
        assert entry.task_class == f"{cls.__module__}.{cls.__qualname__}"
        assert callable(getattr(cls, entry.entry_point))
        for key in entry.all_keys().values():
            assert key.description.strip() and key.type, f"{name}: key {key.name} needs a type and a description"


def test_unknown_task_has_no_declared_keys() -> None:
    with pytest.raises(KeyError, match="no metadata keys declared for task 'nope'"):
        declared_keys("nope")


# ---------------------------------------------------------------------------------- migration
def test_every_name_of_the_lsst_migration_table_resolves() -> None:
    names = _load_docs_module("diffim_names")
    rows = names.parse_migration_tables(MIGRATION.read_text(encoding="utf-8").splitlines())
    assert {row.kind for row in rows} == set(names.KINDS)  # every kind of table is present
    assert len(rows) > 100
    failures = []
    for row in rows:
        try:
            names.resolve(row.kind, row.diffim)
        except LookupError as err:
            failures.append(f"{MIGRATION.name}:{row.line}: {err}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("module", "diffim.tasks.noSuchModule"),
        ("object", "diffim.tasks.psfMatch.NoSuchTask"),
        ("config", "diffim.tasks.psfMatch.PsfMatchConfigAL:noSuchField"),
        ("config", "diffim.tasks.imagePsfMatch.ImagePsfMatchConfig:kernel.XX.kernelSize"),
        ("config", "diffim.tasks.imagePsfMatch.ImagePsfMatchConfig:selectKernelCandidates.noSuchField"),
        ("debug", "diffim.tasks.psfMatch:noSuchFlag"),
        ("debug", "lsst.ip.diffim.noSuchModule"),
        ("logger", "diffim.noSuchTask"),
        ("trace", "TRACE9.diffim.imagePsfMatch"),
        ("command", "diffim run --no-such-option"),
        ("command", "diffim nosuchcommand"),
    ],
)
def test_the_migration_check_rejects_names_that_do_not_exist(kind: str, name: str) -> None:
    names = _load_docs_module("diffim_names")
    with pytest.raises(LookupError):
        names.resolve(kind, name)
