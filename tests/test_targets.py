"""Training on label distributions (FER+ votes, a teacher's probabilities)."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

from fervision import EmotionClassifier

SIZE = 16
CLASSES = np.array(["happy", "sad"])


def mlp(x, *, weights=None):
    return keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))


def _bands(n, seed=0):
    """Images whose true class is where a bright band is, and that class's index."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 90, size=(n, SIZE, SIZE), dtype=np.uint8)
    k = np.arange(n) % 2
    X[k == 0, : SIZE // 2] += 150
    X[k == 1, SIZE // 2 :] += 150
    return X, k


def _clf(**params):
    defaults = dict(backbone=mlp, input_size=SIZE, epochs=25, batch_size=8,
                    learning_rate=5e-3, augment=False, early_stopping=False,
                    reduce_lr=False, precise_bn=False, random_state=0)
    return EmotionClassifier(**(defaults | params))


def test_the_distribution_not_y_is_what_the_network_learns():
    X, k = _bands(48)
    y = CLASSES[k]
    # The hard labels say the band's class; the distribution says the opposite with
    # 90 % of its mass.  A fit that ignored the distribution would learn y.
    P = np.where(k[:, None] == np.arange(2), 0.1, 0.9)
    clf = _clf().fit(X, y, target_distribution=P)
    assert clf.classes_.tolist() == ["happy", "sad"]
    assert (clf.predict(X) == CLASSES[1 - k]).mean() > 0.9
    proba = clf.predict_proba(X)
    assert np.abs(proba - P).mean() < 0.15  # calibrated to the 0.9 / 0.1 targets
    # y still defines score: against the hard labels the model is now wrong
    assert clf.score(X, y) < 0.1
    # no label smoothing on top of a distribution
    assert clf.model_.loss.get_config()["label_smoothing"] == 0.0


def test_hard_label_fit_still_smooths():
    X, k = _bands(16)
    clf = _clf(epochs=1).fit(X, CLASSES[k])
    assert clf.model_.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


def test_grid_search_and_cross_val_score_slice_the_distribution():
    X, k = _bands(40)
    y = CLASSES[k]
    P = np.eye(2)[k] * 0.8 + 0.1
    search = GridSearchCV(_clf(epochs=8), {"learning_rate": [5e-3, 1e-2]}, cv=2)
    search.fit(X, y, target_distribution=P)
    assert search.best_estimator_.classes_.tolist() == ["happy", "sad"]
    assert search.best_score_ > 0.8
    scores = cross_val_score(_clf(epochs=8), X, y, cv=2,
                             params={"target_distribution": P})
    assert scores.shape == (2,)
    assert scores.min() > 0.8


def test_named_columns_keep_a_class_that_y_lacks():
    X, k = _bands(12)
    y = CLASSES[k]
    P = pd.DataFrame({"sad": k * 0.7, "angry": 0.1, "happy": (1 - k) * 0.7 + 0.2})
    clf = _clf(epochs=1).fit(X, y, target_distribution=P)
    assert clf.classes_.tolist() == ["angry", "happy", "sad"]
    assert clf.predict_proba(X).shape == (12, 3)


@pytest.mark.parametrize(("P", "match"), [
    (np.ones((12, 3)), "3 columns but y has 2 classes"),
    (np.ones((11, 2)), "11 rows but X has 12"),
    (np.ones(12), "must be 2-D"),
    (np.c_[np.ones(12), -np.ones(12)], "negative"),
    (np.c_[np.ones(12), np.full(12, np.nan)], "NaN"),
    (np.zeros((12, 2)), "sum to 0"),
    (pd.DataFrame({0: np.ones(12), 1: np.ones(12)}), "same kind as y's"),
])
def test_bad_distributions_are_refused_by_name(P, match):
    X, k = _bands(12)
    with pytest.raises(ValueError, match=match):
        _clf(epochs=1).fit(X, CLASSES[k], target_distribution=P)
