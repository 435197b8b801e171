"""Growing a trained network into a deeper one (fervision.nn.growth)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from fervision.nn.backbones import BACKBONES, create_model, fernet_body
from fervision.nn.growth import grow_weights


def _body(blocks, widths=(8, 16)):
    def build(x, *, weights=None):
        return fernet_body(x, widths=widths, blocks=blocks, stem=8, dropout=0.1)
    return build


def _trained_like(model, seed=0):
    """Random weights everywhere, BatchNorm statistics included, as after training."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, .2, beta.shape),
                               rng.normal(0, .2, mean.shape), rng.uniform(0.5, 2, var.shape)])
        elif layer.weights:
            layer.set_weights([w + rng.normal(0, 0.05, w.shape) for w in layer.get_weights()])
    return model


def _images(n=6, size=24):
    return np.random.default_rng(1).random((n, size, size, 1), dtype=np.float32)


def test_grown_network_predicts_what_the_trained_one_did():
    source = _trained_like(create_model(_body((1, 1)), input_size=24, n_classes=3))
    target = create_model(_body((1, 2)), input_size=24, n_classes=3)
    new = grow_weights(target, source)

    X = _images()
    np.testing.assert_allclose(target.predict(X, verbose=0), source.predict(X, verbose=0),
                               atol=1e-5)
    bns = [target.get_layer(n) for n in new if "batch_normalization" in n]
    # the branch's first normalisation is left as initialised, so gradients reach the
    # block; the one that ends the branch starts at zero, so the block adds nothing
    assert len(bns) == 2
    np.testing.assert_array_equal(bns[0].gamma.numpy(), 1.0)
    np.testing.assert_array_equal(bns[1].gamma.numpy(), 0.0)
    np.testing.assert_array_equal(bns[1].beta.numpy(), 0.0)


def test_training_moves_the_new_block():
    keras.utils.set_random_seed(0)
    source = _trained_like(create_model(_body((1, 1)), input_size=24, n_classes=3))
    target = create_model(_body((1, 2)), input_size=24, n_classes=3)
    new = grow_weights(target, source)
    last_bn = target.get_layer([n for n in new if "batch_normalization" in n][-1])
    target.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    target.train_on_batch(_images(), y)
    assert np.abs(last_bn.gamma.numpy()).max() > 0


@pytest.mark.parametrize(("target_body", "match"), [
    (_body((1, 1), widths=(8, 32)), "has no counterpart"),   # other widths
    (_body((1,), widths=(8,)), "has no counterpart"),        # shallower
])
def test_unrelated_networks_are_refused_naming_the_layer(target_body, match):
    source = create_model(_body((1, 1)), input_size=24, n_classes=3)
    target = create_model(target_body, input_size=24, n_classes=3)
    with pytest.raises(ValueError, match=match):
        grow_weights(target, source)


def test_extra_layers_that_change_the_function_are_refused():
    def with_extra_dense(x, *, weights=None):
        x = fernet_body(x, widths=(8, 16), blocks=(1, 1), stem=8, dropout=0.1)
        return layers.Dense(12, activation="relu")(x)

    source = create_model(_body((1, 1)), input_size=24, n_classes=3)
    target = create_model(with_extra_dense, input_size=24, n_classes=3)
    with pytest.raises(ValueError, match=r"predicts differently|has no counterpart"):
        grow_weights(target, source)


@pytest.mark.parametrize(("family", "deeper", "n_new_blocks"), [
    ("fernet_small", "fernet_small_deep", 1),
    ("fernet", "fernet_deep", 2),
])
def test_fernet_grows_into_its_deeper_variant(family, deeper, n_new_blocks):
    source = _trained_like(create_model(family, input_size=48, n_classes=7))
    target = create_model(deeper, input_size=48, n_classes=7)
    new = grow_weights(target, source)
    assert target.count_params() - source.count_params() == sum(
        target.get_layer(n).count_params() for n in new)
    # each new block: two convolutions, two batch normalisations, the two 1x1
    # convolutions of its squeeze-excitation
    assert len(new) == 6 * n_new_blocks
    X = _images(4, 48)
    np.testing.assert_allclose(target.predict(X, verbose=0), source.predict(X, verbose=0),
                               atol=1e-5)
    assert deeper in BACKBONES
    with pytest.raises(ValueError, match=deeper):  # no ImageNet base to load
        create_model(deeper, input_size=48, n_classes=7, weights="imagenet")
