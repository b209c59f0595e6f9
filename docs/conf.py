"""Sphinx configuration of the diffim documentation.

Build (warnings are errors, as in CI)::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The reference pages (config fields, metadata keys, hooks) are generated from the code at build
time by the local extension ``docs/_ext/diffim_docs.py``; the algorithm page's figures are drawn
by ``docs/make_figures.py`` at build time too.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version as _version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

# Only the diffim distribution's own plugins: the docs describe diffim, not what else is installed.
os.environ.setdefault("DIFFIM_DISABLE_PLUGIN_AUTOLOAD", "1")
# Headless figure drawing.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "diffim"
author = "diffim developers"
copyright = "diffim developers, GPL-3.0-or-later"
release = _version("diffim")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "diffim_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "README.md"]
templates_path: list[str] = []

# `name` in docstrings and pages links to the Python object when there is one (LSST's habit).
default_role = "py:obj"

# -- autodoc / numpydoc --------------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc docstrings carry the types; signatures stay readable
autodoc_inherit_docstrings = False  # pydantic's BaseModel docstrings are not ours
autodoc_preserve_defaults = False
numpydoc_show_class_members = False  # no autosummary tables (they need a stub page per member)
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

# -- MyST (Markdown pages: performance.md, plugin_tutorial.md) -----------------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- HTML ----------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"diffim {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "PSF matching and image subtraction, LSST style",
    "fixed_sidebar": True,
}
