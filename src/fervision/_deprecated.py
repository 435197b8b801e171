"""Old module paths kept for one release: each warns once and forwards to its new home.

``fervision.classifier`` and the other top-level modules moved into subpackages
(``estimator``, ``nn``, ``data``, ``faces``, ``apps``) in 0.2.0.  The old paths are tiny
modules built by :func:`forward`; they will be removed in the release after that.
"""

from __future__ import annotations

import importlib
import warnings

#: old module name (below ``fervision.``) -> new module name
MOVED = {
    "classifier": "fervision.estimator",
    "backbones": "fervision.nn.backbones",
    "augmentation": "fervision.nn.augmentation",
    "batchnorm": "fervision.nn.batchnorm",
    "precision": "fervision.nn.precision",
    "export": "fervision.nn.export",
    "tta": "fervision.nn.tta",
    "callbacks": "fervision.nn.callbacks",
    "distillation": "fervision.nn.distillation",
    "datasets": "fervision.data.datasets",
    "preprocessing": "fervision.data.preprocessing",
    "audit": "fervision.data.audit",
    "evaluation": "fervision.data.evaluation",
    "labels": "fervision.data.labels",
    "detection": "fervision.faces.detection",
    "analysis": "fervision.faces.analysis",
    "video": "fervision.faces.video",
    "cli": "fervision.apps.cli",
    "app": "fervision.apps.streamlit_app",
}


def forward(old: str, new: str):
    """``(__getattr__, __dir__, __all__)`` for the deprecated module ``old``.

    Warns (``DeprecationWarning`` naming ``new``) when ``old`` is imported, and looks up
    every attribute, public or private, in ``new``, so ``from old import name`` and
    pickles that name ``old.Class`` keep working.
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; import from "
        f"{new} instead",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)

    def __getattr__(name):
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None

    def __dir__():
        return sorted(set(dir(module)))

    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and getattr(v, "__module__", None) == new]
    return __getattr__, __dir__, list(names)
