"""Sphinx configuration: the pages are Markdown (MyST), the API reference
comes from the docstrings of the installed package (autodoc)."""
from pyclone import __version__   # the installed package: `make docs` installs it

project = "pyclone"
author = "the pyclone authors"
copyright = "the pyclone authors, MIT licence"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3            # links to headings, as GitHub renders them
myst_enable_extensions = ["colon_fence"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "alabaster"
html_static_path = []
