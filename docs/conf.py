"""Sphinx configuration for spectheory (``make docs``).

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (warnings are errors). The
example gallery (``docs/examples/plot_*.py``) is executed by sphinx-gallery on every full build.
The package is imported under its installed names (``spectheory.solvers`` is the folder
``solvers/``, ``spectheory.simulations`` the folder ``simulations/``), so it must be installed
(``pip install -e '.[docs]'``); nothing is added to ``sys.path`` here.
"""

from __future__ import annotations

import os
import re

import spectheory

# -- project ------------------------------------------------------------------------------------
project = "spectheory"
author = "spectheory developers"
copyright = "spectheory developers"
release = spectheory.__version__
version = release

# -- extensions ---------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
root_doc = "index"
pygments_style = "sphinx"
smartquotes = False     # q' is "q prime", not a quotation

# -- autodoc / autosummary / napoleon ----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"          # the NumPy-style docstrings state the types
autodoc_preserve_defaults = True
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
# "Attributes" as a field list like "Parameters": no duplicate attribute entries next to :members:,
# and "a, b : float" keeps both names (the ivar style would read "a," as a type).
napoleon_custom_sections = [("Attributes", "params_style")]
napoleon_use_rtype = False
napoleon_preprocess_types = False

# The package's module docstrings use free-form NumPy-style headings ("Schemes", "Quadrature",
# "Reproducibility rule", ...). A section title is not allowed inside an autodoc directive, so
# every heading that napoleon does not know is turned into a rubric before napoleon runs.
_NAPOLEON_SECTIONS = {
    "args", "arguments", "attention", "attributes", "caution", "danger", "error", "example",
    "examples", "hint", "important", "keyword args", "keyword arguments", "methods", "note", "notes",
    "other parameters", "parameters", "receive", "receives", "return", "returns", "raise", "raises",
    "references", "see also", "tip", "todo", "warning", "warnings", "warn", "warns", "yield", "yields",
}
_UNDERLINE = re.compile(r"^\s*([-=~^\"'`#*+])\1{2,}\s*$")


def _headings_to_rubrics(lines):
    i = 0
    while i < len(lines) - 1:
        title, under = lines[i], lines[i + 1]
        if (title.strip() and _UNDERLINE.match(under) and len(under.strip()) >= len(title.strip())
                and title.strip().lower() not in _NAPOLEON_SECTIONS):
            indent = title[: len(title) - len(title.lstrip())]
            lines[i: i + 2] = [f"{indent}.. rubric:: {title.strip()}", ""]
        i += 1


# The docstrings write set sizes as |supp q| and |H|, which reStructuredText reads as substitution
# references, and set differences as "Ω \ T", where "\ " is an escaped (removed) space. Escape both
# in running text; leave inline literals, roles, literal blocks, doctest blocks, line blocks and
# grid tables alone.
_LITERAL_SPAN = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`)")


def _indent(line):
    return len(line) - len(line.lstrip())


def _escape_text(lines):
    literal_indent = None   # inside a literal block introduced by "::" at this indent
    doctest = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if literal_indent is not None:
            if not stripped or _indent(line) > literal_indent:
                continue
            literal_indent = None
        if doctest:
            if stripped:
                continue
            doctest = False
            continue
        if stripped.startswith(">>>"):
            doctest = True
            continue
        if stripped.endswith("::"):
            literal_indent = _indent(line)
        if ("|" not in line and "\\ " not in line) or stripped.startswith("| ") or re.match(r"^\s*\+[-=+]+\+\s*$", line):
            continue
        parts = _LITERAL_SPAN.split(line)
        for j in range(0, len(parts), 2):
            parts[j] = re.sub(r"(?<!\\)\|", r"\\|", parts[j])
            parts[j] = re.sub(r"(?<!\\)\\ ", r"\\\\ ", parts[j])   # set difference "Ω \ T"
        lines[i] = "".join(parts)


def _drop_builtin_type_doc(what, obj, lines):
    """Constants (dicts, tuples, ints) without a doc comment would show their type's docstring."""
    doc = type(obj).__doc__
    if (what in ("data", "attribute") and type(obj).__module__ == "builtins" and doc and lines
            and lines[0].strip() == doc.strip().splitlines()[0].strip()):
        lines[:] = []


def _process_docstring(app, what, name, obj, options, lines):
    _drop_builtin_type_doc(what, obj, lines)
    _headings_to_rubrics(lines)
    _escape_text(lines)


# -- doctest ------------------------------------------------------------------------------------
# Only the explicit ``.. doctest::`` blocks of these pages run under ``sphinx-build -b doctest``;
# the docstrings' own examples are run by pytest (tests/test_doctests.py).
doctest_test_doctest_blocks = ""
doctest_global_setup = "import numpy as np\nimport spectheory as st\n"
import doctest as _doctest  # noqa: E402

doctest_default_flags = _doctest.ELLIPSIS | _doctest.NORMALIZE_WHITESPACE | _doctest.DONT_ACCEPT_TRUE_FOR_1

# -- intersphinx --------------------------------------------------------------------------------
# Offline builds (CI without network) must not warn: no inventories are fetched unless asked.
intersphinx_mapping = {}
if os.environ.get("SPECTHEORY_DOCS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
    }

# -- sphinx-gallery -----------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "capture_repr": ("_repr_html_", "__repr__"),
    "plot_gallery": "True",
}

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"spectheory {release}"
html_static_path = []
html_theme_options = {"navigation_with_keys": True}


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring, priority=100)
