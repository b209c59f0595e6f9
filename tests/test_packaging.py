"""Packaging guards: every subpackage listed, py.typed shipped, import direction, light imports."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIRS: dict[str, str] = SETUPTOOLS["package-dir"]


def _packages_on_disk() -> set[str]:
    found = set()
    for dotted, folder in PACKAGE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([dotted, *relative.parts]))
    return found


def test_every_subpackage_is_listed_in_pyproject() -> None:
    # setuptools silently drops unlisted subpackages from the wheel (style.md §C gotcha 1)
    on_disk = _packages_on_disk()
    listed = set(SETUPTOOLS["packages"])
    assert on_disk - listed == set(), f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert listed - on_disk == set(), f"listed but missing on disk: {sorted(listed - on_disk)}"


def test_py_typed_in_each_top_folder() -> None:
    for folder in PACKAGE_DIRS.values():
        assert (ROOT / folder / "py.typed").is_file(), folder


def test_bare_folder_names_are_not_importable() -> None:
    # --import-mode=importlib keeps the repo root off sys.path, so `import framework` cannot pass
    for name in ("framework", "tasks", "plugins"):
        assert importlib.util.find_spec(name) is None, name


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("framework", ("diffim.tasks", "diffim.plugins", "framework", "tasks", "plugins")),
        ("tasks", ("diffim.plugins", "framework", "tasks", "plugins")),
        ("plugins", ("framework", "tasks", "plugins")),
    ],
)
def test_imports_run_one_way(folder: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for path in (ROOT / folder).rglob("*.py"):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                offenders.append(f"{path.relative_to(ROOT)}: import {name}")
    assert offenders == []


def test_framework_import_stays_light() -> None:
    code = (
        "import sys\n"
        "from diffim.framework import Task, Config, Struct, TaskMetadata, timeMethod, getLogger\n"
        "from diffim.framework.plugins import get_plugin_manager\n"
        "import diffim.framework.cli, diffim.framework.debug\n"
        "get_plugin_manager()\n"
        "heavy = [m for m in ('numpy', 'scipy', 'astropy', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_wheel_contains_every_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("diffim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in SETUPTOOLS["packages"]:
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    for folder in PACKAGE_DIRS:
        assert f"{folder.replace('.', '/')}/py.typed" in names
    assert not any(name.startswith(("framework/", "tasks/", "plugins/", "debug.py")) for name in names)
    assert "diffim/plugins/demo_data/science_DEC-OBS04a.mini.fits" in names  # `diffim demo` data
    assert "diffim/plugins/demo_data/LICENSE-sfft-MIT.txt" in names
    assert "diffim/plugins/demo_data/debug.py" in names  # `diffim demo --debug` without a debug.py
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "diffim = diffim.framework.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
