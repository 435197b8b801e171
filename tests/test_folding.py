"""Conv -> BatchNorm pairs folded into one convolution for inference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers_estimator import SIZE, _clf, _images

from fervision.estimator._inference import FOLD_FROM, inference_fn
from fervision.nn.backbones import create_model
from fervision.nn.folding import foldable_pairs, folded_model


def _randomise_batchnorm(model, seed=0):
    """Statistics far from the identity, so that a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.3, n).astype("float32"))


def _count(model, cls):
    return sum(type(layer) is cls for layer in model.layers)


@pytest.fixture(scope="module")
def net():
    model = create_model("fernet_tiny", input_size=SIZE, n_classes=3)
    _randomise_batchnorm(model)
    return model


def _probe(n=6, seed=1):
    return np.random.default_rng(seed).random((n, SIZE, SIZE, 1), dtype=np.float32)


def test_fernet_folds_every_conv_bn_pair_and_predicts_the_same(net):
    pairs = foldable_pairs(net)
    assert len(pairs) == _count(net, keras.layers.BatchNormalization) > 0
    folded = folded_model(net)
    assert folded is not net
    assert _count(folded, keras.layers.BatchNormalization) == 0
    X = _probe()
    np.testing.assert_allclose(np.asarray(folded(X, training=False)),
                               np.asarray(net(X, training=False)), atol=1e-5)


def test_the_folded_copy_follows_later_training_of_the_original(net):
    folded = folded_model(net)
    X = _probe(seed=2)
    before = np.asarray(folded(X, training=False))
    _randomise_batchnorm(net, seed=5)  # what fit would do to the statistics
    after = np.asarray(folded(X, training=False))
    assert np.abs(after - before).max() > 1e-3  # it changed ...
    # ... to what the original now gives
    np.testing.assert_allclose(after, np.asarray(net(X, training=False)), atol=1e-5)


def test_pairs_that_do_not_fold_exactly_are_left_alone():
    inp = keras.Input((SIZE, SIZE, 1))
    relu_conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    a = keras.layers.BatchNormalization()(relu_conv)  # conv has an activation
    shared = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(a)
    b = keras.layers.BatchNormalization()(shared)
    c = keras.layers.Add()([b, shared])  # conv output also used elsewhere
    plain = keras.layers.Conv2D(4, 3, padding="same")(c)  # with a bias: folds
    d = keras.layers.BatchNormalization()(plain)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(d))
    model = keras.Model(inp, out)
    _randomise_batchnorm(model)
    assert [conv for conv, _ in foldable_pairs(model)] == [plain._keras_history.operation]
    folded = folded_model(model)
    assert _count(folded, keras.layers.BatchNormalization) == 2
    X = _probe()
    np.testing.assert_allclose(np.asarray(folded(X, training=False)),
                               np.asarray(model(X, training=False)), atol=1e-5)


def test_sequential_and_mixed_precision_models_are_returned_as_they_are():
    seq = keras.Sequential([keras.Input((SIZE, SIZE, 1)),
                            keras.layers.Conv2D(4, 3, use_bias=False),
                            keras.layers.BatchNormalization()])
    assert folded_model(seq) is seq
    inp = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(4, 3, dtype="mixed_bfloat16")(inp)
    model = keras.Model(inp, keras.layers.BatchNormalization()(x))
    assert foldable_pairs(model) == []
    assert folded_model(model) is model


def test_a_model_used_in_another_graph_still_folds(net):
    # An ensemble or export wrapper calls the model again; its own graph is unchanged.
    inp = keras.Input((SIZE, SIZE, 1))
    keras.Model(inp, net(inp))
    assert len(foldable_pairs(net)) == _count(net, keras.layers.BatchNormalization)


def test_classifier_predictions_follow_the_model_through_the_folded_trace():
    X, y = _images(24)
    assert len(X) >= FOLD_FROM > 2  # a batch runs folded, two faces as they are
    clf = _clf(backbone="fernet_tiny", run_eagerly=False, augment=False).fit(X, y)
    _randomise_batchnorm(clf.model_, seed=3)
    Xf = X[..., None].astype("float32") / 255
    expected = np.asarray(clf.model_(Xf, training=False))
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(X[:2]), expected[:2], atol=1e-5)
    fn = inference_fn(clf.model_, folded=True)
    assert fn.experimental_get_tracing_count() == 1  # the batch above ran through it
    _randomise_batchnorm(clf.model_, seed=4)  # trained again: the same trace sees it
    expected = np.asarray(clf.model_(Xf, training=False))
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-5)
    assert inference_fn(clf.model_, folded=True) is fn
    assert fn.experimental_get_tracing_count() == 1
