"""Backbone registry and model builders."""

import keras
import numpy as np
import pytest

from fervision import EmotionClassifier
from fervision.nn.backbones import average_models, create_model, n_members


def _small(seed):
    keras.utils.set_random_seed(seed)
    return create_model("cnn", input_size=24, n_classes=3)


def test_average_models_averages_member_probabilities(tmp_path):
    a, b = _small(0), _small(1)
    X = np.random.default_rng(0).random((5, 24, 24, 1), dtype=np.float32)
    ens = average_models([a, b])
    expected = (a.predict(X, verbose=0) + b.predict(X, verbose=0)) / 2
    np.testing.assert_allclose(ens.predict(X, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in ens.layers][1:3] == ["member_0", "member_1"]
    assert n_members(ens) == 2
    assert n_members(a) == 1

    # Wrapped as a classifier it saves and reloads under safe_mode with the same output.
    clf = EmotionClassifier.from_keras_model(ens, ["x", "y", "z"], input_size=24)
    clf.save(tmp_path / "ens.keras")
    again = EmotionClassifier.load(tmp_path / "ens.keras")
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-5,
                               atol=1e-6)
    assert n_members(again.model_) == 2


def test_average_models_rejects_bad_members():
    a = _small(0)
    with pytest.raises(ValueError, match="at least two"):
        average_models([a])
    with pytest.raises(TypeError, match=r"models\[1\] is a str"):
        average_models([a, "b"])
    other = create_model("cnn", input_size=24, n_classes=4)
    with pytest.raises(ValueError, match=r"models\[1\] has output_shape"):
        average_models([a, other])


def test_default_classifier_is_from_pretrained_as_registered(monkeypatch):
    from fervision.faces import analysis

    model = average_models([_small(0), _small(1)])
    monkeypatch.delenv(analysis.MODEL_ENV, raising=False)
    monkeypatch.setattr(EmotionClassifier, "from_pretrained", classmethod(
        lambda cls, *args, **kwargs: cls.from_keras_model(model, ["x", "y", "z"],
                                                          input_size=24, tta=False)))
    # every path uses the registered settings; realtime no longer changes them
    assert analysis.load_default_classifier().tta is False
    assert analysis.load_default_classifier(realtime=False).tta is False


def test_fernet_small_is_fernet_at_half_width():
    from fervision.nn.backbones import create_model

    small = create_model("fernet_small", input_size=48, n_classes=7)
    full = create_model("fernet", input_size=48, n_classes=7)
    assert small.output_shape == full.output_shape == (None, 7)
    # halving every width quarters the convolution weights
    assert 0.2 < small.count_params() / full.count_params() < 0.3
    with pytest.raises(ValueError, match="fernet_small"):
        create_model("fernet_small", input_size=48, n_classes=7, weights="imagenet")


def test_fernet_72_is_fernet_on_the_enlarged_face(tmp_path):
    # Same weights as fernet, run on the input enlarged to 72x72: a trained fernet's
    # weights load into it, and it predicts what that fernet predicts on a face
    # enlarged by the same bilinear resize; saved and reloaded (safe_mode, BatchNorm
    # folded for inference) it predicts the same.
    keras.utils.set_random_seed(3)
    fernet = create_model("fernet", input_size=48, n_classes=7)
    at72 = create_model("fernet_72", input_size=48, n_classes=7)
    assert at72.count_params() == fernet.count_params()
    at72.set_weights(fernet.get_weights())
    assert at72.get_layer("enlarge").output.shape[1:3] == (72, 72)
    fernet_on_72 = create_model("fernet", input_size=72, n_classes=7)
    fernet_on_72.set_weights(fernet.get_weights())
    X = np.random.default_rng(0).random((6, 48, 48, 1), dtype=np.float32)
    enlarged = keras.ops.convert_to_numpy(
        keras.ops.image.resize(X, (72, 72), interpolation="bilinear"))
    predicted = at72.predict(X, verbose=0)
    np.testing.assert_allclose(predicted, fernet_on_72.predict(enlarged, verbose=0),
                               atol=1e-5)
    # and not what fernet predicts on the 48x48 face: the scale changed
    assert not np.allclose(predicted, fernet.predict(X, verbose=0), atol=1e-3)
    clf = EmotionClassifier.from_keras_model(at72, classes=list("abcdefg"),
                                             backbone="fernet_72")
    clf.save(tmp_path / "m.keras")
    again = EmotionClassifier.load(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-5)
    with pytest.raises(ValueError, match="fernet_72"):
        create_model("fernet_72", input_size=48, n_classes=7, weights="imagenet")
