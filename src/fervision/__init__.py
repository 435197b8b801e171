"""fervision: facial emotion recognition as scikit-learn estimators over Keras 3.

Public names are loaded on first use (PEP 562), so ``import fervision`` and
``fervision --help`` do not import TensorFlow; ``fervision.EmotionClassifier`` does,
without TensorFlow's start-up lines on stderr unless ``FERVISION_VERBOSE=1`` or a
``TF_CPP_MIN_LOG_LEVEL`` asks for them (see ``fervision._quiet``).
"""

from __future__ import annotations

import importlib
import importlib.metadata

from .data.labels import EMOTIONS, canonical_emotion

try:  # one source for the version: the installed distribution's metadata (pyproject)
    __version__ = importlib.metadata.version("fervision")
except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

# public name -> module that defines it
_LAZY = {
    "EmotionClassifier": "estimator",
    "FaceDetector": "faces.detection",
    "Face": "faces.detection",
    "analyze": "faces.analysis",
    "analyze_files": "faces._batch",
    "annotate": "faces.analysis",
    "top_emotion": "faces.analysis",
    "process_video": "faces.video",
    "create_model": "nn.backbones",
    "list_backbones": "nn.backbones",
    "register_backbone": "nn.backbones",
    "load_image_folder": "data.datasets",
    "load_fer2013": "data.datasets",
    "evaluate": "data.evaluation",
}

__all__ = ["EMOTIONS", "canonical_emotion", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        if _LAZY[name].startswith(("estimator", "nn.")):
            from ._quiet import import_tensorflow

            import_tensorflow()
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
