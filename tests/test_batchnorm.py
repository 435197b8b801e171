"""Precise BatchNorm statistics: the recomputed moving statistics are the data's."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fervision import EmotionClassifier
from fervision.nn.batchnorm import recalibrate_batchnorm


def _bn_model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, use_bias=False, kernel_initializer="identity")(inputs)
    outputs = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, outputs)


def test_moving_statistics_become_the_exact_data_statistics(rng):
    model = _bn_model()
    X = rng.normal(loc=[1.0, -2.0, 3.0, 0.5], scale=[1.0, 2.0, 0.5, 3.0],
                   size=(1000, 4)).astype("float32")
    recalibrate_batchnorm(model, X, batch_size=100, progress=False)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(np.asarray(bn.moving_mean), X.mean(axis=0), rtol=1e-4,
                               atol=1e-4)
    # Mean of per-batch (biased) variances: within a few percent of the data's variance.
    np.testing.assert_allclose(np.asarray(bn.moving_variance), X.var(axis=0), rtol=0.05)
    assert bn.momentum == pytest.approx(0.99)  # restored


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="empty"):
        recalibrate_batchnorm(_bn_model(), np.zeros((0, 4), "float32"), progress=False)


def test_classifier_recalibrates_after_fit_unless_disabled(fer_sample):
    X, y = fer_sample
    kw = dict(backbone="fernet_tiny", epochs=1, batch_size=16, random_state=0,
              precision="float32", early_stopping=False, reduce_lr=False)

    def first_bn_mean(clf):
        bn = next(layer for layer in clf.model_.layers
                  if isinstance(layer, keras.layers.BatchNormalization))
        return np.asarray(bn.moving_mean)

    on = EmotionClassifier(**kw).fit(X, y)
    off = EmotionClassifier(precise_bn=False, **kw).fit(X, y)
    # Same seed, same weights; only the BatchNorm statistics differ.
    assert not np.allclose(first_bn_mean(on), first_bn_mean(off))
    np.testing.assert_allclose(on.model_.layers[2].get_weights()[0],
                               off.model_.layers[2].get_weights()[0])
