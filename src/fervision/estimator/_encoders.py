"""Target encoders: one-hot labels and soft targets.

:class:`OneHotTargetEncoder` is the estimator's ``target_encoder``.  Soft targets are
per-image label distributions for :meth:`EmotionClassifier.fit`.

FER+ gives each face the votes of 10 taggers, and a teacher model gives each face a
probability vector; both are better targets than one hard label.  The estimator keeps
scikit-learn's contract (``y`` holds hard labels, so ``classes_``, ``score`` and every
scorer work unchanged) and takes the distribution as a per-sample fit parameter,
``target_distribution``, which ``GridSearchCV`` and ``cross_val_score`` slice with the
folds like ``sample_weight``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.multiclass import type_of_target

__all__ = ["OneHotTargetEncoder", "check_distribution", "distribution_classes"]


class OneHotTargetEncoder(TransformerMixin, BaseEstimator):
    """One-hot target encoder for :class:`EmotionClassifier` (its ``target_encoder``).

    Called ``LabelEncoder`` before 0.2.0 (that name, still importable for one release,
    misled: scikit-learn's ``LabelEncoder`` returns integer codes).  SciKeras's
    ``ClassifierLabelEncoder`` encodes two-class targets as a single 0/1 column; the
    network always ends in a softmax with one unit per class, so targets are always
    one-hot here.

    Parameters
    ----------
    classes : array-like or None, default=None
        Fixed class order (e.g. the output order of a wrapped Keras model).  ``None``
        takes ``np.unique(y)``, scikit-learn's order.

    Attributes
    ----------
    classes_ : ndarray
        Class labels; column ``i`` of the probabilities is ``classes_[i]``.
    n_classes_ : int
        Number of classes.
    """

    def __init__(self, classes=None):
        self.classes = classes

    def fit(self, y):
        y = np.asarray(y)
        if self.classes is not None:
            self.classes_ = np.asarray(self.classes)
        else:
            target_type = type_of_target(y, input_name="y")
            if target_type not in ("binary", "multiclass"):
                raise ValueError(
                    f"Unknown label type: {target_type!r}. EmotionClassifier needs one class "
                    "label (string or integer) per image."
                )
            self.classes_ = np.unique(y)
        self.n_classes_ = len(self.classes_)
        self._index = {c: i for i, c in enumerate(self.classes_.tolist())}
        return self

    def transform(self, y):
        y = np.asarray(y).tolist()
        try:
            idx = np.fromiter((self._index[v] for v in y), dtype=np.int64, count=len(y))
        except KeyError as err:
            raise ValueError(
                f"y contains label {err.args[0]!r} not seen in fit; known classes: "
                f"{self.classes_.tolist()}"
            ) from None
        onehot = np.zeros((len(y), self.n_classes_), dtype=np.float32)
        onehot[np.arange(len(y)), idx] = 1.0
        return onehot

    def inverse_transform(self, proba, return_proba=False):
        proba = np.asarray(proba)
        if return_proba:
            return proba
        return self.classes_[np.argmax(proba, axis=1)]

    def get_metadata(self):
        """Attributes SciKeras copies onto the classifier after fitting."""
        return {"classes_": self.classes_, "n_classes_": self.n_classes_,
                "n_outputs_expected_": 1}



def _columns(P):
    """Column names of a DataFrame-like ``P``, else None."""
    columns = getattr(P, "columns", None)
    return None if columns is None else [c for c in columns]


def distribution_classes(P, y) -> np.ndarray | None:
    """Classes a fit must know: ``y``'s labels plus named columns of ``P``.

    A fold of a cross-validation may lack a rare class in ``y`` while the distribution
    still gives it probability; with named columns (a DataFrame) the class stays in
    ``classes_``.  Returns None when ``P`` has no column names (``classes_`` then comes
    from ``y`` alone).
    """
    names = _columns(P)
    if names is None:
        return None
    labels = np.unique(np.asarray(y))
    text = labels.dtype.kind in "USO" and all(isinstance(v, str) for v in labels.tolist())
    if not all(isinstance(c, str) == text for c in names):
        raise ValueError(
            f"target_distribution's column names {names} must be labels of the same kind "
            f"as y's ({'strings' if text else 'numbers'}: {labels.tolist()[:7]})")
    return np.unique(np.concatenate([labels, np.asarray(names, dtype=labels.dtype)]))


def check_distribution(P, classes, n_samples: int) -> np.ndarray:
    """Validate ``P`` and return it as float32 rows over ``classes`` that sum to 1.

    Parameters
    ----------
    P : array-like of shape (n_samples, n_classes) or DataFrame
        Non-negative weights per class (vote counts or probabilities); each row is
        divided by its sum.  A plain array's columns are in the order of ``classes``
        (scikit-learn's sorted order, ``np.unique(y)``); a DataFrame's columns are
        matched to ``classes`` by name.
    classes : ndarray
        The estimator's ``classes_``.
    n_samples : int
        Number of images in ``X``.
    """
    names = _columns(P)
    arr = np.asarray(P, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"target_distribution must be 2-D (n_samples, n_classes), got shape "
                         f"{arr.shape}")
    if len(arr) != n_samples:
        raise ValueError(f"target_distribution has {len(arr)} rows but X has {n_samples} "
                         "images")
    if names is not None:
        index = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
        unknown = [c for c in names if c not in index]
        if unknown:
            raise ValueError(f"target_distribution has column(s) {unknown} that are not "
                             f"classes; classes are {list(index)}")
        out = np.zeros((len(arr), len(index)))
        out[:, [index[c] for c in names]] = arr
        arr = out
    elif arr.shape[1] != len(classes):
        raise ValueError(
            f"target_distribution has {arr.shape[1]} columns but y has {len(classes)} classes "
            f"({list(np.asarray(classes))}); pass one column per class in that (sorted) "
            "order, or a DataFrame whose column names are the classes")
    if not np.isfinite(arr).all():
        raise ValueError("target_distribution contains NaN or infinity")
    if (arr < 0).any():
        raise ValueError("target_distribution contains negative values")
    total = arr.sum(axis=1)
    empty = np.flatnonzero(total <= 0)
    if len(empty):
        raise ValueError(f"target_distribution rows {empty[:5].tolist()} sum to 0; every "
                         "image needs some probability")
    return (arr / total[:, None]).astype(np.float32)
