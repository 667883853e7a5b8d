"""Sphinx configuration: ``sphinx -W --keep-going -b html docs docs/_build/html``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The package is installed (editable); the examples and the local extension are not.
sys.path[:0] = [str(ROOT), str(Path(__file__).with_name("_ext"))]

import ws4py_integrations  # noqa: E402

project = "ws4py_integrations"
author = "the ws4py_integrations authors"
copyright = "the ws4py_integrations authors"
release = version = ws4py_integrations.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "ws4py_docs",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "furo"
html_css_files = ["custom.css"]
html_title = "ws4py_integrations"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Documented under their public, top-level names.
add_module_names = False
