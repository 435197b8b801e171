"""Storage of weights at bfloat16 precision (fervision.nn.precision.round_weights_to_bfloat16)."""

import io
import zipfile

import keras
import ml_dtypes
import numpy as np
import pytest

from fervision.nn.backbones import average_models, create_model, walk_layers
from fervision.nn.precision import round_weights_to_bfloat16


def _model(seed):
    keras.utils.set_random_seed(seed)
    return create_model("fernet_tiny", input_size=48, n_classes=7)


def _batchnorm_ids(model):
    return {id(v) for layer in walk_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization) for v in layer.weights}


def test_rounds_to_nearest_bfloat16_and_keeps_float32():
    model = _model(0)
    before = [np.asarray(v) for v in model.weights]
    n = round_weights_to_bfloat16(model)
    bn = _batchnorm_ids(model)
    assert n > 0
    changed = 0
    for v, old in zip(model.weights, before, strict=True):
        new = np.asarray(v)
        assert new.dtype == np.float32
        if id(v) in bn:
            np.testing.assert_array_equal(new, old)  # statistics stay full precision
            continue
        # exactly bfloat16 values: the low 16 bits are zero...
        assert not (new.view(np.uint32) & 0xFFFF).any()
        # ...and the nearest ones (relative error at most half a bfloat16 ulp: 2**-9)
        np.testing.assert_array_equal(new, old.astype(ml_dtypes.bfloat16).astype(np.float32))
        np.testing.assert_allclose(new, old, rtol=2.0**-8, atol=0)
        changed += int((new != old).sum())
    assert changed > 0  # random float32 weights are almost never bfloat16 already


def test_rejects_what_is_not_a_keras_model():
    with pytest.raises(TypeError, match=r"keras\.Model, got list"):
        round_weights_to_bfloat16([np.zeros(3, np.float32)])


def test_nested_members_of_an_ensemble_are_rounded():
    ensemble = average_models([_model(1), _model(2)])
    round_weights_to_bfloat16(ensemble, skip_batchnorm=False)
    for v in ensemble.weights:
        assert not (np.asarray(v).view(np.uint32) & 0xFFFF).any(), v.path


def test_predictions_barely_move_and_the_file_compresses(tmp_path):
    model = _model(3)
    X = np.random.default_rng(0).random((16, 48, 48, 1), dtype=np.float32)
    p_before = model.predict(X, verbose=0)
    model.save(tmp_path / "full.keras")
    round_weights_to_bfloat16(model)
    model.save(tmp_path / "bf16.keras")
    np.testing.assert_allclose(model.predict(X, verbose=0), p_before, atol=0.02)

    def zipped(path):  # the size it takes inside a wheel
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(path, "m")
        return len(buf.getvalue())

    assert zipped(tmp_path / "bf16.keras") < 0.7 * zipped(tmp_path / "full.keras")
    reloaded = keras.saving.load_model(tmp_path / "bf16.keras", safe_mode=True)
    np.testing.assert_array_equal(reloaded.predict(X, verbose=0), model.predict(X, verbose=0))
