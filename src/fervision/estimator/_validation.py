"""Parameter, input and label checks of :class:`EmotionClassifier`, and its tags.

Parameters are declared in :data:`PARAMETER_CONSTRAINTS` (in the spirit of
scikit-learn's ``_parameter_constraints``) and checked by :func:`validate_params`
before a fit does any work; ``__init__`` stores them untouched.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import type_of_target

from ..data.preprocessing import check_images, flat_features
from ..nn.eval_crop import check_crop_pct
from ..nn.tta import resolve_tta

__all__ = ["PARAMETER_CONSTRAINTS", "check_X", "check_y", "set_tags", "validate_data",
           "validate_params"]


def _tta(value) -> bool:
    resolve_tta(value)  # raises its own message, naming the valid modes
    return True


def _crop_pct(value) -> bool:
    if not (isinstance(value, str) and value == "auto"):
        check_crop_pct(value)  # raises its own message
    return True


def _positive_int(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, numbers.Integral)
            and value >= 1)


def _finite_non_negative(value) -> bool:
    # 0 is allowed: it trains nothing, but says so (tests use it to freeze).
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and bool(np.isfinite(value) and value >= 0))


def _batch_size(value) -> bool:
    return value is None or (not isinstance(value, bool)
                             and isinstance(value, numbers.Integral)
                             and (value > 0 or value == -1))


#: parameter -> (check, what a valid value is); checked in this order.
PARAMETER_CONSTRAINTS = {
    "tta": (_tta, None),
    "crop_pct": (_crop_pct, None),
    "input_size": (_positive_int, "a positive int (the side of the square images the "
                                  "network sees)"),
    "learning_rate": (_finite_non_negative, "a finite non-negative number"),
    "fine_tune_learning_rate": (lambda v: v is None or _finite_non_negative(v),
                                "a finite non-negative number"),
    "batch_size": (_batch_size, "a positive int, -1 (all samples in one batch) or None"),
    # Keras takes any truthy value: "no" would quietly train eagerly.
    "run_eagerly": (lambda v: isinstance(v, bool | np.bool_), "True or False"),
}


def validate_params(est) -> None:
    """Check the parameters a fit depends on, before any work is done.

    A bad ``tta`` fails now, not after hours of training.
    """
    for name, (check, valid) in PARAMETER_CONSTRAINTS.items():
        value = getattr(est, name)
        if not check(value):
            raise ValueError(f"{name} must be {valid}, got {value!r}")


def set_tags(tags):
    """Set the estimator's tags explicitly.

    SciKeras 0.13 still describes itself with the removed ``_more_tags`` dict and lists
    ``BaseEstimator`` before ``ClassifierMixin`` (so the mixin's tags are never
    reached).
    """
    tags.estimator_type = "classifier"
    if tags.classifier_tags is None:
        from sklearn.utils import ClassifierTags

        tags.classifier_tags = ClassifierTags()
    tags.classifier_tags.multi_class = True
    tags.classifier_tags.multi_label = False
    tags.classifier_tags.poor_score = False
    tags.target_tags.required = True
    tags.target_tags.single_output = True
    tags.target_tags.multi_output = False
    tags.input_tags.two_d_array = True
    tags.input_tags.three_d_array = True
    tags.input_tags.sparse = False
    tags.input_tags.allow_nan = False
    tags.non_deterministic = False
    return tags


def validate_data(est, X=None, y=None, reset=False):
    """Check ``X`` and ``y`` the way the one preprocessing path needs.

    Every check runs before any model is built, and 2-D (flattened) ``X`` keeps
    scikit-learn's ``n_features_in_`` contract.
    """
    if X is not None:
        X = check_X(est, X, reset=reset)
    if y is not None:
        y = check_y(y)
        if X is not None and len(X) != len(y):
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {len(X)} images but "
                f"{len(y)} labels"
            )
        if reset:
            est.target_type_ = type_of_target(y, input_name="y")
    return X, y


def check_X(est, X, reset):
    arr = X if isinstance(X, np.ndarray) else None
    if arr is None and not isinstance(X, list | tuple) and hasattr(X, "__array__"):
        arr = np.asarray(X)  # DataFrames, memmaps, ... (lists may be ragged)
        X = arr
    if arr is not None and np.iscomplexobj(arr):
        raise ValueError("Complex data not supported; images must be real-valued")
    width = flat_features(X)  # rows of flattened images (arrays or lists of lists)
    if reset:
        if width is not None:
            est.n_features_in_ = width
        elif "n_features_in_" in est.__dict__:
            del est.n_features_in_
    elif width is not None and hasattr(est, "n_features_in_") and (
            width != est.n_features_in_):
        raise ValueError(
            f"X has {width} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input."
        )
    return check_images(X, est.input_size)


def check_label_types(y) -> None:
    """Refuse labels that mix strings and numbers (their order is undefined)."""
    text = number = None
    for value in y.ravel():
        if isinstance(value, str | bytes):
            text = value if text is None else text
        elif isinstance(value, numbers.Number) and not (
                isinstance(value, float) and value != value):  # NaN is reported later
            number = value if number is None else number
    if text is not None and number is not None:
        raise ValueError(
            f"y mixes string and numeric labels (e.g. {text!r} and {number!r}); use one "
            "type for every label, e.g. all class names or all integers"
        )


def check_y(y):
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    if isinstance(y, list | tuple):
        # np.asarray(["happy", 1]) silently turns 1 into the string "1"; look at
        # the labels as given first.
        check_label_types(np.asarray(y, dtype=object))
    y = np.asarray(y)
    if y.dtype.kind == "O":
        check_label_types(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change "
            "the shape of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=5,
        )
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per image), got shape {y.shape}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or infinity.")
    if y.dtype.kind == "O" and any(v is None or (isinstance(v, float) and v != v)
                                   for v in y):
        raise ValueError("Input y contains NaN or None.")
    return y
