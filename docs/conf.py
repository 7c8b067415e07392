"""Sphinx configuration of dlnref's documentation site.

Build it with ``python -m sphinx -W -b html docs docs/_build/html`` (the lessons run in their quick
mode unless ``DLNREF_QUICK=0`` is set). The maths is rendered by MathJax served from the built site
(``sphinx-mathjax-offline``): no page loads anything from the network.
"""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The lessons read DLNREF_QUICK (examples/*.py): quick mode unless the builder asks for the full sizes.
os.environ.setdefault("DLNREF_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import dlnref  # noqa: E402

project = "dlnref"
author = "the dlnref developers"
copyright = "the dlnref developers"
release = version = dlnref.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",   # MathJax 3 copied into _static/mathjax: no CDN
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.py", "auto_examples/*.ipynb",
                    "auto_examples/*.zip", "auto_examples/*.codeobj.json", "auto_examples/*.md5"]
suppress_warnings = ["config.cache"]   # sphinx-gallery's dict holds a function: the env is rebuilt each time

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

html_theme = "pydata_sphinx_theme"
html_title = "dlnref"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 7,
}
html_static_path = ["_static"]
html_css_files = ["dlnref.css"]
# Wide pages (tables of four columns) without the left sidebar, which would be empty there anyway.
html_sidebars = {page: [] for page in ("getting-started", "paper-map", "check-your-implementation",
                                       "public-implementations")}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",        # every lesson is executed
    "ignore_pattern": r"__init__\.py|/_",  # private helpers of the lessons, if any
    "image_scrapers": ("matplotlib",),
    "download_all_examples": True,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "reset_argv": lambda gallery_conf, script_vars: [],
    "within_subsection_order": "FileNameSortKey",
    "write_computation_times": False,     # its page loads jQuery and DataTables from CDNs
}
