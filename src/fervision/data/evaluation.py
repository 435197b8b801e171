"""Evaluate a fitted classifier: metrics report, confusion matrix and training curves.

Everything here is a thin layer over :mod:`sklearn.metrics` so the numbers are exactly
scikit-learn's; what this module adds is one report object that prints as a table,
saves itself (JSON, Markdown, PNG) atomically, and plots.  Figures are built with
:class:`matplotlib.figure.Figure` (no pyplot state), so they are safe on headless
machines and in threads.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.utils.multiclass import unique_labels

from ..files import atomic_write, write_json
from .labels import EMOTIONS

_NORMALIZE = (None, "true", "pred", "all")


# ---------------------------------------------------------------- input checks


def _check_targets(y_true, y_pred, labels=None):
    """Validate predictions against truth; return arrays and the label order."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one label per sample), got shape {arr.shape}")
    if len(y_true) == 0:
        raise ValueError("y_true is empty; need at least one sample to evaluate")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred have different lengths: {len(y_true)} != "
                         f"{len(y_pred)}")
    if labels is None:
        labels = _default_labels(unique_labels(y_true, y_pred))
    else:
        labels = list(np.asarray(labels).tolist())
        if not labels:
            raise ValueError("labels is empty")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels has duplicates: {labels}")
        if not np.isin(y_true, labels).any():
            raise ValueError(f"none of labels {labels} occurs in y_true")
    return y_true, y_pred, labels


def _default_labels(present) -> list:
    """Labels in FER2013 order when they are all emotion names, else sorted."""
    present = list(np.asarray(present).tolist())
    if all(isinstance(p, str) and p in EMOTIONS for p in present):
        return [e for e in EMOTIONS if e in present]
    return present


# ---------------------------------------------------------------- report


@dataclass
class EvaluationReport:
    """Scores of a classifier on one labelled set.

    Attributes
    ----------
    accuracy : float
        Fraction of all samples predicted correctly.
    macro_f1 : float
        Unweighted mean of the per-class F1 scores over ``labels``.
    weighted_f1 : float
        Mean of the per-class F1 scores weighted by support.
    per_class : dict
        ``{str(label): {"precision", "recall", "f1", "support"}}`` in ``labels`` order.
    confusion_matrix : ndarray of shape (n_labels, n_labels), int
        Counts; row = true label, column = predicted label, both in ``labels`` order.
    labels : list
        Class labels, the order of ``per_class`` and of the matrix' rows and columns.
    n_samples : int
        Number of samples evaluated.
    """

    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict
    confusion_matrix: np.ndarray
    labels: list
    n_samples: int = field(default=0)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (the matrix as nested lists)."""
        out = asdict(self)
        out["confusion_matrix"] = np.asarray(self.confusion_matrix).tolist()
        return out

    def to_markdown(self) -> str:
        """Return a Markdown summary and a per-class precision/recall/F1/support table."""
        lines = [
            f"**Accuracy** {self.accuracy:.4f} · **macro F1** {self.macro_f1:.4f} · "
            f"**weighted F1** {self.weighted_f1:.4f} · {self.n_samples} samples",
            "",
            "| class | precision | recall | F1 | support |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in self.per_class.items():
            lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | "
                         f"{row['f1']:.4f} | {row['support']} |")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        """Return the report as Markdown (:meth:`to_markdown`)."""
        return self.to_markdown()

    def plot_confusion_matrix(self, normalize: str | None = "true", ax=None) -> Figure:
        """Plot the stored confusion matrix; see :func:`plot_confusion_matrix`."""
        return _plot_matrix(np.asarray(self.confusion_matrix), self.labels, normalize, ax)

    def save(self, directory) -> dict[str, Path]:
        """Write ``report.json``, ``report.md`` and ``confusion_matrix.png``.

        Each file is written to a temporary file in ``directory`` and then moved into
        place with :func:`os.replace`, so an interrupted save never leaves a half-written
        file behind.

        Parameters
        ----------
        directory : str or path-like
            Created (with parents) if missing.

        Returns
        -------
        dict
            ``{"json": path, "markdown": path, "confusion_matrix": path}``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": directory / "report.json",
            "markdown": directory / "report.md",
            "confusion_matrix": directory / "confusion_matrix.png",
        }
        write_json(paths["json"], self.to_dict())
        atomic_write(paths["markdown"],
                      lambda fh: fh.write(("# Evaluation report\n\n" + self.to_markdown())
                                          .encode()))
        fig = self.plot_confusion_matrix()
        atomic_write(paths["confusion_matrix"],
                      lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"))
        return paths


# ---------------------------------------------------------------- public functions


def classification_report_dict(y_true, y_pred, labels=None) -> dict:
    """:func:`sklearn.metrics.classification_report` as a dict (``zero_division=0``).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    labels : list, optional
        Classes to report, in order; default: those present, in FER2013 order when they
        are emotion names.

    Returns
    -------
    dict
        ``{label: {"precision", "recall", "f1-score", "support"}, "accuracy" (when
        every label is reported), "macro avg": {...}, "weighted avg": {...}}``.
    """
    y_true, y_pred, labels = _check_targets(y_true, y_pred, labels)
    return classification_report(y_true, y_pred, labels=labels,
                                 target_names=[str(lab) for lab in labels],
                                 output_dict=True, zero_division=0)


def report_from_predictions(y_true, y_pred, labels=None) -> EvaluationReport:
    """Build an :class:`EvaluationReport` from true and predicted labels.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    labels : list, optional
        Classes for the per-class scores, macro/weighted F1 and the confusion matrix;
        default: those present in either, in FER2013 order when they are emotion names.
        Accuracy always counts every sample.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    ValueError
        Empty input, different lengths, non-1-D labels, or ``labels`` sharing nothing
        with ``y_true``.
    """
    y_true, y_pred, labels = _check_targets(y_true, y_pred, labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        str(lab): {"precision": float(p), "recall": float(r), "f1": float(f),
                   "support": int(s)}
        for lab, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    return EvaluationReport(
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                zero_division=0)),
        weighted_f1=float(f1_score(y_true, y_pred, labels=labels, average="weighted",
                                   zero_division=0)),
        per_class=per_class,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels),
        labels=labels,
        n_samples=len(y_true),
    )


#: ``evaluate`` predicts in chunks of this many samples, one progress-bar step each.
PROGRESS_CHUNK = 128
#: ``evaluate``'s progress bar shows by default for more samples than this.
PROGRESS_MIN_SAMPLES = 256


def evaluate(estimator, X, y, labels=None, progress: bool | None = None) -> EvaluationReport:
    """Score a fitted classifier on ``(X, y)``.

    Parameters
    ----------
    estimator : fitted classifier
        Anything with ``predict`` (an :class:`~fervision.EmotionClassifier` or any
        scikit-learn classifier).
    X : array-like
        Inputs the estimator accepts.
    y : array-like of shape (n_samples,)
        True labels.
    labels : list, optional
        Class order; default: the estimator's ``classes_`` (then any other label seen in
        ``y`` or the predictions), else as in :func:`report_from_predictions`.
    progress : bool, optional
        Show a tqdm progress bar on stderr while predicting (in chunks of
        :data:`PROGRESS_CHUNK` samples); default: for more than
        :data:`PROGRESS_MIN_SAMPLES` samples.  The predictions are the same either way.

    Returns
    -------
    EvaluationReport

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> clf = DummyClassifier(strategy="most_frequent").fit([[0], [1], [2]], ["a", "b", "b"])
    >>> evaluate(clf, [[0], [1]], ["a", "b"]).accuracy
    0.5
    """
    if not hasattr(estimator, "predict"):
        raise TypeError(f"estimator {type(estimator).__name__} has no predict method")
    n_x = X.shape[0] if hasattr(X, "shape") else len(X)
    y = np.asarray(y)
    if n_x == 0 or len(y) == 0:
        raise ValueError("X and y must not be empty; need at least one sample to evaluate")
    if n_x != len(y):
        raise ValueError(f"X and y have different numbers of samples: {n_x} != {len(y)}")
    y_pred = _predict_with_progress(estimator, X, n_x, progress)
    if labels is None and hasattr(estimator, "classes_"):
        classes = list(np.asarray(estimator.classes_).tolist())
        extra = [lab for lab in unique_labels(y, y_pred).tolist() if lab not in classes]
        labels = _default_labels(classes) + extra
    return report_from_predictions(y, y_pred, labels=labels)


def _predict_with_progress(estimator, X, n: int, progress: bool | None) -> np.ndarray:
    show = progress if progress is not None else n > PROGRESS_MIN_SAMPLES
    if not show:
        return np.asarray(estimator.predict(X))
    import sys

    from sklearn.utils import _safe_indexing
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=n, desc="evaluating", unit="img", file=sys.stderr) as bar:
        for start in range(0, n, PROGRESS_CHUNK):
            rows = np.arange(start, min(start + PROGRESS_CHUNK, n))
            parts.append(np.asarray(estimator.predict(_safe_indexing(X, rows))))
            bar.update(len(rows))
    return np.concatenate(parts)


def _plot_matrix(cm: np.ndarray, labels, normalize, ax) -> Figure:
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    values = cm
    if normalize is not None:
        values = cm.astype(float)
        axis = {"true": 1, "pred": 0}.get(normalize)
        totals = values.sum() if axis is None else values.sum(axis=axis, keepdims=True)
        # A class with no samples gets a row (or column) of zeros, not NaN.
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals != 0)
    if ax is None:
        fig = Figure(figsize=(1.0 + 0.75 * len(labels), 0.6 + 0.7 * len(labels)),
                     layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    display = ConfusionMatrixDisplay(values, display_labels=[str(lab) for lab in labels])
    display.plot(ax=ax, cmap="Blues", colorbar=True, xticks_rotation=45,
                 values_format=".2f" if normalize is not None else "d")
    title = {None: "counts", "true": "normalized over true labels (recall)",
             "pred": "normalized over predictions (precision)", "all": "fraction of all"}
    ax.set_title(f"Confusion matrix ({title[normalize]})")
    return fig


def plot_confusion_matrix(y_true, y_pred, labels=None, normalize: str | None = "true",
                          ax=None) -> Figure:
    """Plot a confusion matrix with :class:`sklearn.metrics.ConfusionMatrixDisplay`.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    labels : list, optional
        Row/column order; default as in :func:`report_from_predictions`.
    normalize : {"true", "pred", "all"} or None, default="true"
        Divide counts by row totals (recall), column totals (precision), the grand
        total, or show raw counts.
    ax : matplotlib Axes, optional
        Draw into this Axes; default: a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    y_true, y_pred, labels = _check_targets(y_true, y_pred, labels)
    return _plot_matrix(confusion_matrix(y_true, y_pred, labels=labels), labels, normalize, ax)


def _history_dict(history) -> dict[str, list[float]]:
    if hasattr(history, "history") and isinstance(history.history, dict):  # keras History
        history = history.history
    if isinstance(history, (str, os.PathLike)):
        path = Path(history)
        if not path.is_file():
            raise FileNotFoundError(f"history CSV {str(path)!r} does not exist")
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise ValueError(f"history CSV {str(path)!r} has no rows")
        try:
            return {key: [float(r[key]) for r in rows] for key in rows[0] if key != "epoch"}
        except (TypeError, ValueError) as err:
            raise ValueError(f"history CSV {str(path)!r} has a non-numeric value: {err}") from None
    if isinstance(history, dict):
        return {str(k): [float(v) for v in vals] for k, vals in history.items()}
    raise TypeError("history must be a keras History, a dict of lists or a path to a "
                    f"CSVLogger file, got {type(history).__name__}")


def plot_history(history) -> Figure:
    """Plot training curves: loss and accuracy, training vs validation, per epoch.

    Parameters
    ----------
    history : keras.callbacks.History, dict or path-like
        ``model.fit``'s return value, a dict of per-epoch lists (e.g. an
        :class:`~fervision.EmotionClassifier`'s ``history_``) or the CSV written by
        :class:`keras.callbacks.CSVLogger`.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric found (``loss``, ``accuracy``/``acc``), each with its
        ``val_`` counterpart when recorded.

    Raises
    ------
    ValueError
        If the history is empty or records neither loss nor accuracy.
    """
    hist = _history_dict(history)
    chosen = []  # (panel title, history key); "accuracy" preferred over legacy "acc"
    for name, keys in (("loss", ("loss",)), ("accuracy", ("accuracy", "acc"))):
        key = next((k for k in keys if hist.get(k) or hist.get(f"val_{k}")), None)
        if key is not None:
            chosen.append((name, key))
    if not chosen:
        raise ValueError("history records neither loss nor accuracy; found keys "
                         f"{sorted(hist)}")
    fig = Figure(figsize=(5 * len(chosen), 3.6), layout="constrained")
    for i, (name, key) in enumerate(chosen, start=1):
        ax = fig.add_subplot(1, len(chosen), i)
        for series, style in ((key, "-o"), (f"val_{key}", "--s")):
            values = hist.get(series)
            if values:
                epochs = np.arange(1, len(values) + 1)
                label = "validation" if series.startswith("val_") else "training"
                ax.plot(epochs, values, style, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


__all__ = [
    "EvaluationReport",
    "classification_report_dict",
    "evaluate",
    "plot_confusion_matrix",
    "plot_history",
    "report_from_predictions",
]
