"""Tests for fervision.data.evaluation.

Numbers equal scikit-learn's, figures are real PNGs, saving is atomic, bad input is
refused.
"""

from __future__ import annotations

import csv
import io
import json
from typing import ClassVar

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from fervision.data.evaluation import (
    EvaluationReport,
    classification_report_dict,
    evaluate,
    plot_confusion_matrix,
    plot_history,
    report_from_predictions,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A crafted example with an imbalanced, partly-confused 3-class problem, and a class
# ("sad") that is never predicted so zero_division matters.
Y_TRUE = ["happy", "happy", "happy", "angry", "angry", "sad", "sad", "happy", "angry", "sad"]
Y_PRED = ["happy", "happy", "angry", "angry", "happy", "happy", "angry", "happy", "angry", "happy"]


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_report_matches_sklearn():
    report = report_from_predictions(Y_TRUE, Y_PRED)
    labels = ["angry", "happy", "sad"]  # FER2013 order for emotion names
    assert report.labels == labels
    assert report.n_samples == 10
    assert report.accuracy == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert report.accuracy == pytest.approx(0.5)
    assert report.macro_f1 == pytest.approx(
        f1_score(Y_TRUE, Y_PRED, average="macro", zero_division=0))
    assert report.weighted_f1 == pytest.approx(
        f1_score(Y_TRUE, Y_PRED, average="weighted", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(Y_TRUE, Y_PRED, labels=labels, zero_division=0)
    for i, lab in enumerate(labels):
        row = report.per_class[lab]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i]))
    # Hand check: "happy" precision 3/6, recall 3/4; "sad" never predicted.
    assert report.per_class["happy"]["precision"] == pytest.approx(0.5)
    assert report.per_class["happy"]["recall"] == pytest.approx(0.75)
    assert report.per_class["sad"]["f1"] == 0.0
    np.testing.assert_array_equal(report.confusion_matrix,
                                  confusion_matrix(Y_TRUE, Y_PRED, labels=labels))
    assert report.confusion_matrix.sum() == 10


def test_report_explicit_labels_and_ints():
    report = report_from_predictions([2, 0, 1, 1], [2, 1, 1, 1], labels=[2, 1, 0])
    assert report.labels == [2, 1, 0]
    assert list(report.per_class) == ["2", "1", "0"]
    np.testing.assert_array_equal(report.confusion_matrix, [[1, 0, 0], [0, 2, 0], [0, 1, 0]])


def test_classification_report_dict_matches_sklearn():
    out = classification_report_dict(Y_TRUE, Y_PRED)
    assert set(out) >= {"angry", "happy", "sad", "accuracy", "macro avg", "weighted avg"}
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["macro avg"]["f1-score"] == pytest.approx(
        f1_score(Y_TRUE, Y_PRED, average="macro", zero_division=0))
    assert out["happy"]["support"] == 4


def test_evaluate_with_sklearn_estimator(rng):
    # Two well-separated "image" classes: a logistic regression gets them all right.
    X = np.concatenate([rng.normal(0, 1, (20, 16)), rng.normal(4, 1, (20, 16))])
    y = np.array(["neutral"] * 20 + ["fear"] * 20)
    clf = LogisticRegression().fit(X, y)
    report = evaluate(clf, X, y)
    assert report.accuracy == 1.0
    assert report.macro_f1 == 1.0
    assert report.labels == ["fear", "neutral"]
    dummy = DummyClassifier(strategy="most_frequent").fit(X[:30], y[:30])  # always neutral
    report = evaluate(dummy, X, y)
    assert report.accuracy == pytest.approx(0.5)
    assert report.per_class["fear"]["recall"] == 0.0


def test_evaluate_shows_progress_on_many_samples(rng, capsys):
    X = np.concatenate([rng.normal(0, 1, (150, 4)), rng.normal(3, 1, (150, 4))])
    y = np.array(["happy"] * 150 + ["sad"] * 150)
    clf = LogisticRegression().fit(X, y)
    quiet = evaluate(clf, X, y, progress=False)
    assert capsys.readouterr().err == ""
    report = evaluate(clf, X, y)  # 300 > PROGRESS_MIN_SAMPLES: a bar by default
    err = capsys.readouterr().err
    assert "evaluating" in err
    assert "300/300" in err
    np.testing.assert_array_equal(report.confusion_matrix, quiet.confusion_matrix)  # chunked
    evaluate(clf, X[:20], y[:20])  # few samples: no bar
    assert capsys.readouterr().err == ""
    evaluate(clf, list(X[:20]), list(y[:20]), progress=True)  # lists are chunked too
    assert "20/20" in capsys.readouterr().err


def test_evaluate_labels_include_unpredicted_classes(rng):
    X = rng.normal(size=(6, 3))
    y = np.array(["happy", "sad"] * 3)
    clf = DummyClassifier(strategy="constant", constant="happy").fit(X, y)
    report = evaluate(clf, X, y)
    assert report.labels == ["happy", "sad"]
    assert report.confusion_matrix.tolist() == [[3, 0], [3, 0]]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [([], [], "empty"), (["a", "b"], ["a"], "different lengths: 2 != 1"),
     ([["a"]], [["a"]], "1-D")],
)
def test_bad_predictions(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        report_from_predictions(y_true, y_pred)
    with pytest.raises(ValueError, match=message):
        plot_confusion_matrix(y_true, y_pred)


def test_bad_labels():
    with pytest.raises(ValueError, match="duplicates"):
        report_from_predictions(["a", "b"], ["a", "b"], labels=["a", "a"])
    with pytest.raises(ValueError, match="none of labels"):
        report_from_predictions(["a", "b"], ["a", "b"], labels=["c"])


def test_evaluate_bad_input(rng):
    clf = DummyClassifier().fit(rng.normal(size=(4, 2)), ["a", "b", "a", "b"])
    with pytest.raises(ValueError, match="different numbers of samples: 3 != 2"):
        evaluate(clf, rng.normal(size=(3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        evaluate(clf, np.zeros((0, 2)), [])
    with pytest.raises(TypeError, match="no predict"):
        evaluate(object(), [[0]], ["a"])


def test_markdown_and_str():
    report = report_from_predictions(Y_TRUE, Y_PRED)
    md = report.to_markdown()
    assert "| class | precision | recall | F1 | support |" in md
    assert "| happy | 0.5000 | 0.7500 | 0.6000 | 4 |" in md
    assert "**Accuracy** 0.5000" in md
    assert str(report) == md


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_plot_confusion_matrix_png(normalize):
    fig = plot_confusion_matrix(Y_TRUE, Y_PRED, normalize=normalize)
    data = _png_bytes(fig)
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    if normalize == "true":
        assert "0.75" in texts  # happy recall on the diagonal
    elif normalize is None:
        assert "3" in texts


def test_plot_confusion_matrix_into_ax_and_bad_normalize():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_confusion_matrix(Y_TRUE, Y_PRED, ax=ax) is fig
    with pytest.raises(ValueError, match="normalize"):
        plot_confusion_matrix(Y_TRUE, Y_PRED, normalize="rows")


def test_save_writes_three_files_atomically(tmp_path):
    report = report_from_predictions(Y_TRUE, Y_PRED)
    out = tmp_path / "nested" / "eval"
    paths = report.save(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_matrix.png", "report.json", "report.md"]  # no temp files left
    data = json.loads(paths["json"].read_text())
    assert data["accuracy"] == pytest.approx(0.5)
    assert data["confusion_matrix"] == report.confusion_matrix.tolist()
    assert EvaluationReport(**{**data, "confusion_matrix": np.array(data["confusion_matrix"])}
                            ).to_markdown() == report.to_markdown()
    assert "| sad |" in paths["markdown"].read_text()
    png = paths["confusion_matrix"].read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 1000


def test_save_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    report = report_from_predictions(Y_TRUE, Y_PRED)
    report.save(tmp_path)
    before = (tmp_path / "confusion_matrix.png").read_bytes()

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        report.save(tmp_path)
    # The old PNG is intact and no temp file is left behind.
    assert (tmp_path / "confusion_matrix.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "confusion_matrix.png", "report.json", "report.md"]


HISTORY = {"loss": [1.2, 0.9, 0.7], "val_loss": [1.3, 1.0, 0.95],
           "accuracy": [0.4, 0.55, 0.62], "val_accuracy": [0.38, 0.5, 0.52]}


def _lines(fig):
    return {ax.get_title(): [(line.get_label(), list(line.get_ydata())) for line in ax.lines]
            for ax in fig.axes}


def test_plot_history_dict():
    fig = plot_history(HISTORY)
    lines = _lines(fig)
    assert lines["loss"] == [("training", HISTORY["loss"]), ("validation", HISTORY["val_loss"])]
    assert lines["accuracy"][1] == ("validation", HISTORY["val_accuracy"])
    assert _png_bytes(fig).startswith(PNG_MAGIC)


def test_plot_history_keras_history_and_csv(tmp_path):
    class History:  # what keras.callbacks.History exposes
        history: ClassVar[dict[str, list[float]]] = {"loss": [1.0, 0.5], "acc": [0.3, 0.6]}

    assert _lines(plot_history(History()))["accuracy"] == [("training", [0.3, 0.6])]
    path = tmp_path / "log.csv"
    with open(path, "w", newline="") as fh:  # CSVLogger layout
        writer = csv.writer(fh)
        writer.writerow(["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
        for i in range(3):
            writer.writerow([i, HISTORY["accuracy"][i], HISTORY["loss"][i],
                             HISTORY["val_accuracy"][i], HISTORY["val_loss"][i]])
    assert _lines(plot_history(path)) == _lines(plot_history(HISTORY))


def test_plot_history_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"neither loss nor accuracy.*mae"):
        plot_history({"mae": [1.0]})
    with pytest.raises(ValueError, match="neither loss nor accuracy"):
        plot_history({})
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        plot_history(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n0,oops\n")
    with pytest.raises(ValueError, match="non-numeric"):
        plot_history(bad)
    with pytest.raises(TypeError, match="History"):
        plot_history(42)
