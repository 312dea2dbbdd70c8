"""Sphinx configuration of the cytoviz documentation site.

    make docs        # sphinx-build -W --keep-going -b html docs docs/_build/html (what CI runs)
    make docs-full   # the same, executing the ten notebooks in fast mode (CYTOVIZ_DOCS_EXECUTE=1)

The notebooks are copied from ``notebooks/`` (stored without outputs) into ``docs/notebooks/``
at the start of every build and rendered by myst-nb. By default they are not executed
(``nb_execution_mode = "off"``: the pages show the code and the narrative); with
``CYTOVIZ_DOCS_EXECUTE=1`` they run with ``CYTOVIZ_FAST=1`` and their outputs are cached
(``"cache"``, in ``docs/_build/.jupyter_cache``), which takes several minutes on two cores.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

import cytoviz  # noqa: E402  (after the path set-up above)

project = "cytoviz"
author = "cytoviz developers"
copyright = "cytoviz developers"
release = cytoviz.__version__
version = release

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build", "_templates", "**.ipynb_checkpoints", "notebooks/*.py"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme = "pydata_sphinx_theme"
html_title = "cytoviz"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
}
# Pages without sub-pages need no section navigation on the left.
html_sidebars = {name: [] for name in (
    "index", "getting_started", "method", "models", "results", "reliability", "development",
    "changelog")}

# A broken cross-reference to anything of cytoviz fails the build (-W); references to other
# libraries' objects (numpy, pandas, torch, plotly, ...) are left unresolved, since the
# documentation is built offline (no intersphinx inventories).
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"^(?!cytoviz\b).*")]

# --- MyST and notebooks --------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

EXECUTE = os.environ.get("CYTOVIZ_DOCS_EXECUTE", "0").strip().lower() not in ("", "0", "false", "no")
nb_execution_mode = "cache" if EXECUTE else "off"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_merge_streams = True
if EXECUTE:
    # The notebooks' kernels inherit this environment: fast budgets, outputs kept out of the
    # repository, one torch thread per process on the 2-core machine.
    os.environ["CYTOVIZ_FAST"] = "1"
    os.environ.setdefault("CYTOVIZ_OUTPUT_DIR", str(DOCS / "_build" / "notebook_outputs"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Plotly figures as static PNGs (kaleido): the pages stay small and work offline; myst-nb
    # cannot render plotly's own JSON mime type.
    os.environ.setdefault("PLOTLY_RENDERER", "png")


def _copy_notebooks() -> None:
    """Copy ``notebooks/*.ipynb`` into ``docs/notebooks/`` (only the files that changed)."""
    dest = DOCS / "notebooks"
    dest.mkdir(exist_ok=True)
    for src in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        target = dest / src.name
        if not target.exists() or target.read_bytes() != src.read_bytes():
            shutil.copyfile(src, target)


def _write_cli_reference() -> None:
    """Write ``docs/api/cli.md``: the ``--help`` of every ``cytoviz`` command, from the parser."""
    import argparse

    from cytoviz.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps its help to the terminal width
    parser = build_parser()
    lines = [
        "# Command line",
        "",
        "Generated at build time from `cytoviz.cli.build_parser()`: the `--help` of every",
        "command. Run `cytoviz COMMAND --help` for the same text.",
        "",
    ]

    def add(title: str, p: argparse.ArgumentParser, level: int) -> None:
        lines.extend([f"{'#' * level} `{title}`", "", "```text", p.format_help().rstrip(), "```", ""])
        for action in p._actions:  # argparse has no public accessor for sub-parsers
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    add(f"{title} {name}", child, min(level + 1, 4))

    with contextlib.redirect_stdout(io.StringIO()):
        add("cytoviz", parser, 2)
    text = "\n".join(lines) + "\n"
    target = DOCS / "api" / "cli.md"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


_copy_notebooks()
_write_cli_reference()

# --- API reference -------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
autodoc_default_options = {"exclude-members": "__init__, __new__, __post_init__"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()


# --- cross-references to cytoviz's own objects ---------------------------------------------
# Docstrings often name an object by the module that defines it
# (``cytoviz.evaluation.prototypes.compare_generators``) while the reference documents it under
# the namespace that exports it (``cytoviz.evaluation.compare_generators``). A reference that
# Sphinx cannot find is resolved here to the documented name of the same object; one to a
# private object that exists (``cytoviz._paths.default_model_dir``) is shown as code without a
# link; one to a name that does not exist stays unresolved, and -W fails the build.

_MISSING = object()


def _import(dotted: str) -> object:
    """The object named ``dotted`` (module path, then attributes), or ``_MISSING``."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


def _key(obj: object) -> object:
    return getattr(obj, "__func__", obj)


_PUBLIC: dict[int, str] = {}


def _public_name(obj: object, py: Any) -> str | None:
    """The documented name of ``obj`` (the first one registered), or None."""
    if not _PUBLIC:
        for name in sorted(py.objects, key=lambda n: (n.count("."), n)):
            found = _import(name)
            if found is not _MISSING:
                _PUBLIC.setdefault(id(_key(found)), name)
    return _PUBLIC.get(id(_key(obj)))


def _resolve_cytoviz(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    from sphinx.util.nodes import make_refnode

    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("cytoviz"):
        return None
    obj = _import(target)
    if obj is _MISSING:
        return None  # a name that does not exist: the build fails on it
    py = env.get_domain("py")
    name = _public_name(obj, py)
    if name is None and isinstance(obj, type(sys)):
        # an undocumented submodule: link the documented namespace above it
        parent = target
        while name is None and "." in parent:
            parent = parent.rsplit(".", 1)[0]
            name = parent if parent in py.objects else None
    if name is None:
        return contnode  # private but real: code without a link
    entry = py.objects[name]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


def setup(app: Any) -> None:
    """Connect the reference resolver (conf.py acts as a local extension)."""
    app.connect("missing-reference", _resolve_cytoviz)
