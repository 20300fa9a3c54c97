"""Sphinx configuration: the how-to guides and reference pages (MyST Markdown) and the public API
(autodoc). ``make docs`` builds them into ``docs/_build/html`` with warnings as errors;
``tests/packaging/test_docs.py`` runs the same build in CI."""

from __future__ import annotations

from airflow_compute_provider import __version__

project = "airflow-compute-provider"
author = "airflow-compute-provider developers"
copyright = "airflow-compute-provider developers"
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Headings up to ### get anchors, so pages link to each other's sections as they do on GitHub.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
# The public API's signatures name Airflow's and pydantic's types; their docs are not built here.
nitpicky = False
# Links to files of the repository outside docs/ (example DAGs, bench/README.md) point at the
# source tree; Sphinx cannot resolve them as documents.
suppress_warnings: list[str] = []

html_theme = "alabaster"
html_title = "airflow-compute-provider"
