"""Synthetic data and a tiny classifier for estimator tests (shared by test modules)."""

from __future__ import annotations

import keras
import numpy as np

from fervision import EmotionClassifier

SIZE = 16


def _images(n, seed=0, size=SIZE):
    """Synthetic faces whose class is where a bright band is: easy to learn."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 90, size=(n, size, size), dtype=np.uint8)
    y = np.array(["happy", "sad"])[np.arange(n) % 2]
    X[y == "happy", : size // 2] += 150
    X[y == "sad", size // 2 :] += 150
    return X, y


def mlp(x, *, weights=None):
    """Build a two-layer backbone: traces and trains in a fraction of fernet_tiny's time."""
    return keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))


def _clf(**kw):
    # run_eagerly: these fits are a few steps each, cheaper than tracing a train step.
    params = dict(backbone=mlp, input_size=SIZE, epochs=1, batch_size=16, augment=False,
                  precision="float32", random_state=0, verbose=0, run_eagerly=True)
    params.update(kw)
    return EmotionClassifier(**params)
