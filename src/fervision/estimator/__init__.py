"""The estimator: :class:`EmotionClassifier` and its one-hot target encoder.

The class lives in private modules split by concern (``_classifier``, ``_validation``,
``_building``, ``_training``, ``_inference``, ``_persistence``, ``_encoders``,
``_state``); ``_scikeras`` holds every use of SciKeras internals.
"""

from __future__ import annotations

import warnings

from .._quiet import import_tensorflow

import_tensorflow()  # before Keras: TensorFlow's start-up lines kept off stderr

from ._classifier import EmotionClassifier  # noqa: E402
from ._encoders import OneHotTargetEncoder  # noqa: E402

__all__ = ["EmotionClassifier", "OneHotTargetEncoder"]


def __getattr__(name):
    if name == "LabelEncoder":
        warnings.warn(
            "fervision's LabelEncoder is renamed OneHotTargetEncoder (it one-hot encodes; "
            "scikit-learn's LabelEncoder returns integer codes); the old name will be "
            "removed in the next release",
            DeprecationWarning, stacklevel=2)
        return OneHotTargetEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
