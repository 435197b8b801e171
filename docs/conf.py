"""Sphinx configuration for fervision's documentation.

Build with ``nox -s docs`` or ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
No extension needs the network (no intersphinx); the gallery runs ``examples/plot_*.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))  # document the checkout even if not installed

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")

import fervision  # noqa: E402

project = "fervision"
author = "fervision developers"
copyright = "fervision developers"
release = fervision.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "**/*.md5", "**/*.pickle"]
templates_path: list[str] = []

# -- pages other engineers write (Markdown) ------------------------------------------
# They may not exist yet: link to them through substitutions that degrade to plain
# text, and list them in the toctree only when present, so the build passes either way.
OPTIONAL_PAGES = {
    "detectors": "Face-detector comparison",
    "model_card": "Pretrained model card",
    "dataset_audit": "FER2013 dataset audit",
}
PRESENT_PAGES = [name for name in OPTIONAL_PAGES if (HERE / f"{name}.md").is_file()]
rst_epilog = "\n".join(
    f".. |{name.replace('_', '-')}| replace:: :doc:`{OPTIONAL_PAGES[name].lower()} "
    f"</{name}>`"
    if name in PRESENT_PAGES
    else f".. |{name.replace('_', '-')}| replace:: {OPTIONAL_PAGES[name].lower()} "
    f"(``docs/{name}.md``, not part of this build)"
    for name in OPTIONAL_PAGES
)

# -- autodoc / numpydoc --------------------------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc "Parameters" sections carry the types
autosummary_generate = False  # api.rst uses autodoc directly: no generated stub files
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- sphinx-gallery ------------------------------------------------------------------
# examples/ holds the gallery only (plot_*.py, all run); maintainer scripts are in tools/.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "write_computation_times": False,  # no sg_execution_times.rst in the source tree
    "remove_config_comments": True,
    "download_all_examples": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
}

# examples/images/ holds data for the examples (with a README.md about its licence), not
# examples; sphinx-gallery would treat any sub-folder with a README as a gallery
# sub-section.  Only sub-folders that contain plot_*.py scripts are sub-sections here.
import sphinx_gallery.gen_gallery as _sg_gen  # noqa: E402

if hasattr(_sg_gen, "get_subsections"):
    _sg_get_subsections = _sg_gen.get_subsections

    def _example_subsections(srcdir, examples_dir, gallery_conf, *args, **kwargs):
        found = _sg_get_subsections(srcdir, examples_dir, gallery_conf, *args, **kwargs)
        base = Path(srcdir) / examples_dir
        return [sub for sub in found if any((base / sub).glob("plot_*.py"))]

    _sg_gen.get_subsections = _example_subsections

# -- HTML ----------------------------------------------------------------------------
try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
except ImportError:  # pragma: no cover - fallback theme ships with Sphinx
    html_theme = "alabaster"
html_title = f"fervision {release}"
html_static_path = ["_static"] if (HERE / "_static").is_dir() else []


def _list_optional_pages(app, docname, source):
    """Put the optional pages that exist into index.rst's toctree."""
    if docname == root_doc:
        entries = "\n".join(f"   {name}" for name in PRESENT_PAGES)
        source[0] = source[0].replace("   |optional-pages|", entries)


def setup(app):
    app.connect("source-read", _list_optional_pages)
