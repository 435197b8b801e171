"""EmotionClassifier: fitting, inputs, bad input, persistence, transfer learning, sklearn."""

from __future__ import annotations

import os
import pickle
import zipfile

import keras
import numpy as np
import pytest
from helpers_estimator import SIZE, _clf, _images, mlp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.class_weight import compute_class_weight

import fervision
from fervision import EmotionClassifier
from fervision.estimator import _scikeras
from fervision.nn.backbones import BACKBONES, BASE_NAME, register_backbone


@pytest.fixture(scope="module")
def data():
    return _images(32)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    # Graph mode, so predict_proba goes through the traced inference function.
    return _clf(epochs=5, learning_rate=0.02, run_eagerly=False).fit(X, y)


# --------------------------------------------------------------------- basics
def test_fit_learns_easy_data_and_sets_attributes(fitted, data):
    X, y = data
    assert list(fitted.classes_) == ["happy", "sad"]
    assert fitted.n_classes_ == 2
    proba = fitted.predict_proba(X)
    assert proba.shape == (32, 2)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert fitted.score(X, y) >= 0.9
    assert set(fitted.history_) >= {"loss", "accuracy"}
    assert len(fitted.history_["loss"]) == 5
    assert isinstance(fitted.model_, keras.Model)
    assert not hasattr(fitted, "n_features_in_")  # image input: no fixed width


def test_integer_labels_and_sklearn_class_order(data):
    X, _ = data
    y = np.array([5, 1, 3, 1] * 8)
    clf = _clf().fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [1, 3, 5])
    assert clf.classes_.dtype.kind == "i"
    assert clf.predict_proba(X[:4]).shape == (4, 3)
    assert set(clf.predict(X)) <= {1, 3, 5}


def test_any_image_layout_gives_the_same_prediction(fitted, data):
    X, _ = data
    ref = fitted.predict_proba(X[:4])
    rgb = np.repeat(X[:4, ..., None], 3, axis=-1)
    big = np.repeat(np.repeat(X[:4], 2, axis=1), 2, axis=2)  # 32x32 -> resized to 16
    np.testing.assert_allclose(fitted.predict_proba(X[:4, ..., None]), ref, atol=1e-6)
    np.testing.assert_allclose(fitted.predict_proba(rgb), ref, atol=1e-2)
    np.testing.assert_allclose(fitted.predict_proba(X[:4] / 255.0), ref, atol=1e-5)
    np.testing.assert_allclose(fitted.predict_proba(list(big)), ref, atol=1e-2)
    ragged = [X[0], np.repeat(X[1], 2, axis=0)]  # 16x16 and 32x16
    assert fitted.predict_proba(ragged).shape == (2, 2)


def test_flattened_input_sets_n_features_in(data):
    X, y = data
    clf = _clf().fit(X.reshape(len(X), -1), y)
    assert clf.n_features_in_ == SIZE * SIZE
    np.testing.assert_allclose(clf.predict_proba(X[:3].reshape(3, -1)),
                               clf.predict_proba(X[:3]), atol=1e-6)
    with pytest.raises(ValueError, match="X has 100 features, but EmotionClassifier is expecting"):
        clf.predict(np.zeros((2, 100)))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.full((4, 8, 8), np.nan), ["a", "b"] * 2, r"X\[0\] contains NaN"),
        (np.full((4, 8, 8), np.inf), ["a", "b"] * 2, "NaN or infinite"),
        (np.empty((0, 8, 8)), [], "empty"),
        (np.zeros((4, 8, 8)), ["a", "b", "a"], "4 images but 3 labels"),
        (np.zeros((4, 8, 8, 3, 1)), ["a", "b"] * 2, "5 dimensions"),
        (np.zeros((4, 8, 8, 2)), ["a", "b"] * 2, "2 channels"),
        (np.zeros((4, 8, 8, 4)), ["a", "b"] * 2, r"RGBA.*X\[\.\.\., :3\]"),
        (np.full((4, 8, 8), "x"), ["a", "b"] * 2, "numeric"),
        (np.zeros((4, 8, 8)), np.zeros((4, 2)), "y must be 1-D"),
        (np.zeros((4, 8, 8)), [0.5, 1.5, 2.5, np.nan], "NaN"),
    ],
)
def test_bad_fit_input_fails_before_building(X, y, match):
    clf = _clf()
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_continuous_target_is_refused():
    with pytest.raises(ValueError, match="Unknown label type"):
        _clf().fit(np.zeros((4, 8, 8)), [0.1, 0.2, 0.3, 0.4])


def test_predict_before_fit_is_not_fitted_error():
    clf = _clf()
    for method in (clf.predict, clf.predict_proba):
        with pytest.raises(NotFittedError):
            method(np.zeros((1, SIZE, SIZE)))
    with pytest.raises(NotFittedError):
        clf.save("never.keras")


def test_bad_predict_input(fitted):
    with pytest.raises(ValueError, match=r"X\[1\] contains NaN"):
        fitted.predict(np.stack([np.zeros((SIZE, SIZE)), np.full((SIZE, SIZE), np.nan)]))
    with pytest.raises(ValueError, match="4 channels"):
        fitted.predict_proba(np.zeros((1, SIZE, SIZE, 4)))


# ------------------------------------------------------------ training options
def test_same_random_state_gives_identical_predictions(data):
    X, y = data
    kw = dict(augment=True, epochs=2)
    a = _clf(**kw).fit(X, y).predict_proba(X)
    b = _clf(**kw).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_augment_options_reach_build_augmentation(data):
    X, y = data
    names = lambda clf: [layer.name for layer in clf.model_.layers]  # noqa: E731
    assert "augmentation" not in names(_clf(augment=False).initialize(X, y))
    on = _clf(augment=True).initialize(X, y).model_.get_layer("augmentation")
    kinds = {type(layer).__name__ for layer in on.layers}
    assert "RandomFlip" in kinds
    custom = _clf(augment={"flip": False, "crop": 0.0}).initialize(X, y)
    kinds = {type(layer).__name__ for layer in custom.model_.get_layer("augmentation").layers}
    assert "RandomFlip" not in kinds
    assert "RandomCrop" not in kinds
    assert "RandomRotation" in kinds
    with pytest.raises(ValueError, match="augment must be"):
        _clf(augment="yes").fit(X, y)


def test_early_stopping_stops_when_loss_does_not_improve(data):
    X, y = data
    # learning_rate=0: the loss never improves, so patience 1 stops after 2 epochs.
    clf = _clf(epochs=10, learning_rate=0.0, early_stopping=1, reduce_lr=False).fit(X, y)
    assert len(clf.history_["loss"]) == 2
    full = _clf(epochs=3, learning_rate=0.0, early_stopping=False, reduce_lr=False).fit(X, y)
    assert len(full.history_["loss"]) == 3
    with pytest.raises(ValueError, match="early_stopping"):
        _clf(early_stopping=-2).fit(X, y)


def test_validation_data_and_split(data):
    X, y = data
    clf = _clf(epochs=2, validation_data=_images(8, seed=1)).fit(X, y)
    assert len(clf.history_["val_loss"]) == 2
    assert "val_accuracy" in clf.history_
    clf = _clf(epochs=1, validation_split=0.25).fit(X, y)
    assert "val_loss" in clf.history_
    with pytest.raises(ValueError, match="validation_data"):
        _clf(validation_data=X).fit(X, y)


def test_validation_split_is_stratified_on_class_sorted_data(data, monkeypatch):
    """Keras's validation_split would take the last rows: here all of one class."""
    X, y = data
    order = np.argsort(y, kind="stable")  # as load_image_folder returns: class by class
    X, y = X[order], y[order]
    seen = {}
    original = _scikeras.KerasClassifier._fit_keras_model

    def spy(self, X_, y_, sample_weight, **kw):
        seen["train"], seen["val"] = y_, kw["validation_data"][1]
        seen["split"] = kw["validation_split"]
        return original(self, X_, y_, sample_weight, **kw)

    monkeypatch.setattr(_scikeras.KerasClassifier, "_fit_keras_model", spy)
    _clf(epochs=1, validation_split=0.25, random_state=0).fit(X, y)
    val_classes = set(np.asarray(seen["val"]).argmax(axis=1))
    assert val_classes == set(range(len(np.unique(y))))  # every class held out
    assert len(seen["train"]) + len(seen["val"]) == len(y)
    assert seen["split"] == 0.0


def test_class_weight_balanced_becomes_sample_weights(data, monkeypatch):
    X, y = data
    X, y = X[:20], y[:20].copy()
    y[:14] = "happy"  # 14 happy, 6 sad
    seen = {}
    original = _scikeras.KerasClassifier._fit_keras_model

    def spy(self, X_, y_, sample_weight, **kw):
        seen["w"] = sample_weight
        return original(self, X_, y_, sample_weight, **kw)

    monkeypatch.setattr(_scikeras.KerasClassifier, "_fit_keras_model", spy)
    _clf(class_weight="balanced").fit(X, y)
    cw = dict(zip(["happy", "sad"], compute_class_weight("balanced", classes=np.array(
        ["happy", "sad"]), y=y), strict=True))
    np.testing.assert_allclose(seen["w"], [cw[v] for v in y], rtol=1e-6)
    sw = np.ones(20)
    _clf(class_weight="balanced").fit(X, y, sample_weight=sw)
    np.testing.assert_array_equal(sw, 1.0)  # the caller's array is not modified


def test_checkpoint_every_epoch_and_loadable(data, tmp_path):
    X, y = data
    _clf(epochs=2, checkpoint_dir=tmp_path / "ck").fit(X, y)
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert files == ["epoch-001.keras", "epoch-002.keras"]
    model = keras.saving.load_model(tmp_path / "ck" / "epoch-002.keras", safe_mode=True)
    assert model.output_shape == (None, 2)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash")


def test_resume_continues_an_interrupted_fit(data, tmp_path):
    X, y = data
    with pytest.raises(ValueError, match="checkpoint_dir"):
        _clf(resume=True).fit(X, y)
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        _clf(epochs=4, resume=True, checkpoint_dir=ck, callbacks=[_Interrupt()]).fit(X, y)
    assert (ck / "backup").is_dir()
    clf = _clf(epochs=4, resume=True, checkpoint_dir=ck).fit(X, y)
    # The crash came in epoch 2's end-of-epoch callbacks, before its backup: epoch 1
    # is restored and only epochs 2-4 run now.
    assert len(clf.history_["loss"]) == 3
    assert (ck / "epoch-004.keras").is_file()


def test_keep_checkpoints_keeps_the_newest(data, tmp_path):
    X, y = data
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "notes.txt").write_text("mine")
    _clf(epochs=4, checkpoint_dir=ck, keep_checkpoints=2).fit(X, y)
    assert sorted(p.name for p in ck.iterdir()) == [
        "epoch-003.keras", "epoch-004.keras", "notes.txt"]
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="keep_checkpoints"):
            _clf(checkpoint_dir=ck, keep_checkpoints=bad).fit(X, y)


def test_warm_start_keeps_training_the_same_model(data):
    X, y = data
    clf = _clf(warm_start=True, learning_rate=0.02).fit(X, y)
    model = clf.model_
    before = [w.copy() for w in model.get_weights()]
    clf.fit(X, y)
    assert clf.model_ is model
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(),
                                                        strict=True))
    cold = _clf().fit(X, y)
    model2 = cold.model_
    cold.fit(X, y)
    assert cold.model_ is not model2


def test_precision_policy_is_applied_only_while_building(data):
    X, y = data
    before = keras.config.dtype_policy().name
    clf = _clf(backbone="fernet_tiny", precision="mixed_bfloat16").initialize(X, y)
    assert keras.config.dtype_policy().name == before
    conv = next(layer for layer in clf.model_.layers if "conv" in layer.name)
    assert conv.dtype_policy.name == "mixed_bfloat16"
    assert clf.predict_proba(X[:2]).dtype == np.float32
    f32 = _clf(backbone="fernet_tiny", precision="float32").initialize(X, y)
    assert all(layer.dtype_policy.name == "float32" for layer in f32.model_.layers)
    with pytest.raises(ValueError, match="precision"):
        _clf(precision="half").fit(X, y)
    assert keras.config.dtype_policy().name == before


def test_default_distribution_strategy(data):
    import tensorflow as tf

    X, y = data
    clf = _clf(distribution_strategy="default").fit(X, y)
    assert clf.predict(X[:2]).shape == (2,)
    strat = tf.distribute.get_strategy()
    assert _clf(distribution_strategy=strat).fit(X, y).score(X, y) >= 0
    with pytest.raises(ValueError, match="distribution_strategy"):
        _clf(distribution_strategy="tpu-pod").fit(X, y)


# ------------------------------------------------------------------ inference
def test_prediction_skips_model_predict_unless_its_loop_is_asked_for(fitted, data,
                                                                      monkeypatch):
    X, _ = data
    calls = []
    real_predict = fitted.model_.predict

    def counting_predict(*a, **k):
        calls.append(k)
        return real_predict(*a, **k)

    monkeypatch.setattr(fitted.model_, "predict", counting_predict)
    small = fitted.predict_proba(X[:5])
    large = fitted.predict_proba(X)  # 32 > batch_size=16: two batches of the traced call
    assert calls == []
    np.testing.assert_allclose(small, large[:5], atol=1e-5)
    # Keyword arguments and routed predict__ parameters are Model.predict's: its loop runs.
    np.testing.assert_allclose(fitted.predict_proba(X, batch_size=8), large, atol=1e-5)
    assert len(calls) == 1
    assert calls[0]["batch_size"] == 8
    verbose = clone(fitted).set_params(predict__verbose=0)
    verbose._set_fitted_state(fitted.model_, fitted.classes_)
    np.testing.assert_allclose(verbose.predict_proba(X), large, atol=1e-5)
    assert len(calls) == 2
    assert calls[1]["verbose"] == 0


def test_predict_batch_size_sets_the_inference_batches(fitted, data, monkeypatch):
    from fervision.estimator import _inference

    X, _ = data
    clf = clone(fitted).set_params(predict__batch_size=5)
    clf._set_fitted_state(fitted.model_, fitted.classes_)
    sizes = []
    real_fn = _inference.inference_fn(fitted.model_)
    monkeypatch.setattr(_inference, "inference_fn",
                        lambda model, crop_pct, **kw: lambda x: sizes.append(len(x)) or real_fn(x))
    np.testing.assert_allclose(clf.predict_proba(X), fitted.predict_proba(X), atol=1e-5)
    assert sizes[:7] == [5, 5, 5, 5, 5, 5, 2]


def test_tta_averages_image_and_flip(fitted, data):
    X, _ = data
    plain = fitted.predict_proba(X[:6])
    flipped = fitted.predict_proba(X[:6, :, ::-1])
    tta = clone(fitted).set_params(tta=True)
    tta._set_fitted_state(fitted.model_, fitted.classes_)
    np.testing.assert_allclose(tta.predict_proba(X[:6]), (plain + flipped) / 2, atol=1e-6)


def test_tta_crops_averages_twelve_views(fitted, data):
    import keras as _k

    X, _ = data
    Xf = X[:6].astype("float32")[..., None] / 255.0
    views = [Xf, Xf[:, :, ::-1]]
    side = round(SIZE * 0.9)
    far = SIZE - side
    for oy, ox in ((0, 0), (0, far), (far, 0), (far, far), (far // 2, far // 2)):
        c = np.asarray(_k.ops.image.resize(Xf[:, oy:oy + side, ox:ox + side], (SIZE, SIZE)))
        views += [c, c[:, :, ::-1]]
    expected = np.mean([np.asarray(fitted.model_(v, training=False)) for v in views], axis=0)
    crops = clone(fitted).set_params(tta="crops")
    crops._set_fitted_state(fitted.model_, fitted.classes_)
    np.testing.assert_allclose(crops.predict_proba(X[:6]), expected, atol=1e-5)
    # One call for a few faces, view by view for many: the same numbers.
    crops.set_params(batch_size=4)
    np.testing.assert_allclose(crops.predict_proba(X[:6]), expected, atol=1e-5)
    assert crops.predict(X[:6]).shape == (6,)


@pytest.mark.parametrize("bad", ["mirror", 2, "Flip"])
def test_tta_rejects_unknown_modes(fitted, data, bad):
    clf = clone(fitted).set_params(tta=bad)
    clf._set_fitted_state(fitted.model_, fitted.classes_)
    with pytest.raises(ValueError, match="tta must be"):
        clf.predict(data[0][:2])
    with pytest.raises(ValueError, match="tta must be"):
        _clf(tta=bad).fit(*data)


# ----------------------------------------------------------------- persistence
@pytest.mark.parametrize("labels", [np.array(["happy", "sad"]), np.array([3, 7])])
def test_save_load_roundtrip(data, tmp_path, labels):
    X, y = data
    y = labels[(y == "sad").astype(int)]
    clf = _clf(batch_size=8).fit(X, y)
    path = clf.save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == ["m.keras"]  # no temp files left behind
    if os.name == "posix":  # readable by others, like any file (mkstemp makes 0600)
        assert path.stat().st_mode & 0o777 == 0o644
    meta = EmotionClassifier.read_metadata(path)
    assert meta["input_size"] == SIZE
    assert meta["backbone"] == "mlp"
    assert meta["fervision_version"] == fervision.__version__
    loaded = EmotionClassifier.load(path)
    assert loaded.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert loaded.input_size == SIZE
    assert loaded.batch_size == 8
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_save_refuses_bad_path_and_never_leaves_half_files(fitted, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"\.keras"):
        fitted.save(tmp_path / "m.h5")
    with pytest.raises(FileNotFoundError):
        fitted.save(tmp_path / "missing" / "m.keras")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


def test_load_errors(fitted, tmp_path):
    with pytest.raises(FileNotFoundError):
        EmotionClassifier.load(tmp_path / "nope.keras")
    plain = tmp_path / "plain.keras"
    fitted.model_.save(plain)
    with pytest.raises(ValueError, match=r"without fervision metadata.*from_keras_model"):
        EmotionClassifier.load(plain)
    h5 = tmp_path / "old.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match="Keras 2 HDF5"):
        EmotionClassifier.load(h5)


def test_from_keras_model_keeps_output_order(fitted, data, tmp_path):
    X, _ = data
    wrapped = EmotionClassifier.from_keras_model(fitted.model_, ["sad", "happy"],
                                                 input_size=SIZE, batch_size=4)
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(wrapped.predict_proba(X), proba, atol=1e-6)
    np.testing.assert_array_equal(wrapped.predict(X),
                                  np.array(["sad", "happy"])[proba.argmax(axis=1)])
    loaded = EmotionClassifier.load(wrapped.save(tmp_path / "w.keras"))
    np.testing.assert_array_equal(loaded.classes_, ["sad", "happy"])
    with pytest.raises(ValueError, match="3 classes"):
        EmotionClassifier.from_keras_model(fitted.model_, ["a", "b", "c"], input_size=SIZE)
    with pytest.raises(ValueError, match="input_size=48"):
        EmotionClassifier.from_keras_model(fitted.model_, ["a", "b"])
    with pytest.raises(TypeError):
        EmotionClassifier.from_keras_model("model.keras", ["a", "b"])


def test_from_pretrained_bundled_and_fetched(fitted, tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    import fervision.weights
    from fervision.weights import PretrainedModel

    path = fitted.save(tmp_path / "mine.keras")
    monkeypatch.setattr(fervision.weights, "_PRETRAINED", {})
    fervision.weights.register_pretrained(PretrainedModel(
        "bundled", "test data", "a tiny model", file="absent.keras", sha256="0" * 64))
    with pytest.raises(FileNotFoundError, match="bundled model 'bundled' is missing"):
        EmotionClassifier.from_pretrained("bundled")
    monkeypatch.setitem(fervision.weights._REGISTRY, "fer-resnet",
                        fervision.weights.WeightEntry(
                            "fer-resnet", "http://127.0.0.1/x.keras",
                            hashlib.sha256(path.read_bytes()).hexdigest(), "x.keras"))
    fervision.weights.register_pretrained(PretrainedModel(
        "fer-resnet", "test data", "a tiny model", weights="fer-resnet",
        params={"tta": "flip"}))
    asked = []
    monkeypatch.setattr(fervision.weights, "fetch", lambda name: asked.append(name) or path)
    other = EmotionClassifier.from_pretrained("fer-resnet")
    assert asked == ["fer-resnet"]
    assert other.input_size == SIZE
    np.testing.assert_array_equal(other.classes_, fitted.classes_)
    assert other.tta == "flip"  # the registry's settings
    assert EmotionClassifier.from_pretrained("fer-resnet", tta=False).tta is False
    assert dataclasses.asdict(fervision.weights.pretrained_info("fer-resnet"))["params"]


def test_export_delegates_to_export_module(fitted, monkeypatch, tmp_path):
    import fervision.nn.export

    seen = {}

    def fake(clf, path, format, **kw):
        seen.update(clf=clf, path=path, format=format, kw=kw)
        return path

    monkeypatch.setattr(fervision.nn.export, "export_model", fake)
    assert fitted.export(tmp_path / "x", "onnx", opset=17) == tmp_path / "x"
    assert seen == {"clf": fitted, "path": tmp_path / "x", "format": "onnx",
                    "kw": {"opset": 17}}


# ----------------------------------------------------------- transfer learning
def _tiny_base_builder(x, *, weights=None):
    inp = keras.Input(x.shape[1:])
    h = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Conv2D(4, 3, padding="same", name="c2")(h)
    base = keras.Model(inp, h, name=BASE_NAME)
    if weights is not None:
        base.load_weights(str(weights))
    return keras.layers.GlobalAveragePooling2D()(base(x))


@pytest.fixture
def tiny_base(tmp_path):
    register_backbone("tiny_base_test", _tiny_base_builder)
    keras.utils.set_random_seed(1)
    # Save a "pretrained" base with known weights.
    inp = keras.Input((SIZE, SIZE, 1))
    probe = keras.Model(inp, _tiny_base_builder(inp))
    src = probe.get_layer(BASE_NAME)
    path = tmp_path / "base.weights.h5"
    src.save_weights(path)
    yield path
    BACKBONES.pop("tiny_base_test", None)


class _Snapshot(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.after = {}
        self.lr = {}

    def on_epoch_end(self, epoch, logs=None):
        self.lr[epoch] = float(np.asarray(self.model.optimizer.learning_rate))
        base = self.model.get_layer(BASE_NAME)
        self.after[epoch] = {layer.name: [w.numpy().copy() for w in layer.weights]
                             for layer in base.layers if layer.weights}


def test_two_phase_transfer_learning(data, tiny_base):
    X, y = data
    path = tiny_base
    snap = _Snapshot()
    clf = _clf(backbone="tiny_base_test", weights=path, epochs=2, freeze_epochs=1,
               fine_tune_layers=2, learning_rate=0.05, callbacks=[snap],
               early_stopping=False, reduce_lr=False)
    clf.fit(X, y)
    ref = keras.models.clone_model(clf.model_.get_layer(BASE_NAME))
    ref.load_weights(path)
    pretrained = {layer.name: [w.numpy() for w in layer.weights]
                  for layer in ref.layers if layer.weights}
    # Phase 1: the whole base stays at the pretrained weights.
    for name, ws in pretrained.items():
        for a, b in zip(snap.after[0][name], ws, strict=True):
            np.testing.assert_array_equal(a, b)
    # Phase 2: the top 2 layers (bn, c2) are unfrozen, but BatchNorm stays frozen.
    assert not np.array_equal(snap.after[1]["c2"][0], pretrained["c2"][0])
    for name in ("c1", "bn"):
        for a, b in zip(snap.after[1][name], pretrained[name], strict=True):
            np.testing.assert_array_equal(a, b)
    assert snap.lr[0] == pytest.approx(0.05)
    assert snap.lr[1] == pytest.approx(0.005)
    assert len(clf.history_["loss"]) == 2


class _InterruptAt(keras.callbacks.Callback):
    """Record weights, and crash at the end of one epoch (absolute epoch index)."""

    def __init__(self, at=None):
        super().__init__()
        self.at = at
        self.epochs = []
        self.weights_at_end = {}
        self.weights_at_begin = []

    def on_train_begin(self, logs=None):
        self.weights_at_begin.append([w.copy() for w in self.model.get_weights()])

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.weights_at_end[epoch] = [w.copy() for w in self.model.get_weights()]
        if epoch == self.at:
            raise KeyboardInterrupt("simulated crash")


def _resumable_transfer(path, ck, callback):
    return _clf(backbone="tiny_base_test", weights=path, epochs=4, freeze_epochs=2,
                fine_tune_layers=2, learning_rate=0.05, early_stopping=False,
                reduce_lr=False, precise_bn=False, checkpoint_dir=ck, resume=True,
                callbacks=[callback])


def test_resume_in_fine_tuning_phase_skips_the_frozen_phase(data, tiny_base, tmp_path):
    X, y = data
    ck = tmp_path / "ck"
    first = _InterruptAt(at=2)  # the first fine-tuning epoch, before its backup
    with pytest.raises(KeyboardInterrupt):
        _resumable_transfer(tiny_base, ck, first).fit(X, y)
    assert (ck / "phase1-weights.npz").is_file()
    second = _InterruptAt(at=None)
    clf = _resumable_transfer(tiny_base, ck, second).fit(X, y)
    # Only the fine-tuning phase ran again, starting from the frozen phase's weights.
    assert second.epochs == [2, 3]
    assert len(second.weights_at_begin) == 1
    for a, b in zip(second.weights_at_begin[0], first.weights_at_end[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(clf.history_["loss"]) == 2
    # A finished fit leaves no resume state behind: the next fit starts afresh.
    assert not (ck / "phase1-weights.npz").exists()
    assert not any(p.name.startswith("backup") for p in ck.iterdir())
    assert (ck / "epoch-004.keras").is_file()


def test_resume_inside_fine_tuning_phase_uses_its_backup(data, tiny_base, tmp_path):
    X, y = data
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        _resumable_transfer(tiny_base, ck, _InterruptAt(at=3)).fit(X, y)
    second = _InterruptAt(at=None)
    _resumable_transfer(tiny_base, ck, second).fit(X, y)
    assert second.epochs == [3]  # epoch index 2 was backed up, only the last one runs


def test_without_weights_nothing_is_frozen(data, tiny_base):
    X, y = data
    snap = _Snapshot()
    clf = _clf(backbone="tiny_base_test", epochs=1, learning_rate=0.05, callbacks=[snap])
    clf.fit(X, y)
    first = clf.model_.get_layer(BASE_NAME)
    assert first.trainable
    assert all(layer.trainable for layer in first.layers)


@pytest.mark.slow
def test_real_application_backbone_fits(tmp_path):
    X, y = _images(8, size=32)
    # run_eagerly: one step; tracing EfficientNet's train step would cost most of the test.
    clf = EmotionClassifier(backbone="efficientnetb0", input_size=32, epochs=1, batch_size=8,
                            augment=False, precision="float32", random_state=0,
                            run_eagerly=True)
    clf.fit(X, y)
    assert clf.model_.get_layer(BASE_NAME).count_params() > 1_000_000
    assert clf.predict_proba(X[:2]).shape == (2, 2)


# --------------------------------------------------------------- scikit-learn
def test_clone_get_set_params(fitted):
    params = fitted.get_params()
    assert params["backbone"] is mlp
    assert params["input_size"] == SIZE
    c = clone(fitted)
    assert not hasattr(c, "model_")
    assert c.get_params()["learning_rate"] == 0.02
    c.set_params(epochs=3, optimizer__weight_decay=0.1, optimizer="adamw")
    assert c.epochs == 3
    assert c.get_params()["optimizer__weight_decay"] == 0.1
    assert clone(c).get_params()["optimizer__weight_decay"] == 0.1


@pytest.mark.parametrize("eager", [True, False])
def test_run_eagerly_reaches_training(data, eager):
    # It once changed only inference: fit compiled without it, so a user debugging a
    # train step with run_eagerly=True still got a traced graph.
    X, y = data
    clf = _clf(run_eagerly=eager, epochs=1).fit(X, y)
    assert clf.model_.run_eagerly is eager


def test_optimizer_routing(data):
    X, y = data
    clf = _clf(optimizer="adamw", optimizer__weight_decay=0.123, learning_rate=0.004)
    clf.fit(X, y)
    opt = clf.model_.optimizer
    assert type(opt).__name__ == "AdamW"
    assert opt.weight_decay == pytest.approx(0.123)
    assert float(opt.learning_rate.numpy()) == pytest.approx(0.004)


def test_pickle_roundtrip(fitted, data):
    X, _ = data
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.predict_proba(X), fitted.predict_proba(X), atol=1e-6)


def test_grid_search_cross_val_and_pipeline(data):
    X, y = data
    search = GridSearchCV(_clf(), {"learning_rate": [1e-3, 2e-2]}, cv=2).fit(X, y)
    assert search.best_params_["learning_rate"] in (1e-3, 2e-2)
    assert search.predict(X[:3]).shape == (3,)
    scores = cross_val_score(_clf(), X, y, cv=2)
    assert scores.shape == (2,)
    assert np.all((scores >= 0) & (scores <= 1))
    pipe = Pipeline([("scale", FunctionTransformer(lambda a: a / 255.0)), ("clf", _clf())])
    pipe.set_params(clf__epochs=2).fit(X, y)
    assert len(pipe.named_steps["clf"].history_["loss"]) == 2
    assert pipe.predict(X[:4]).shape == (4,)


def test_fit_shows_epoch_progress_by_default(data, capsys):
    X, y = data
    assert EmotionClassifier().verbose == 1  # scikit-learn's convention: progress on
    params = {k: v for k, v in _clf().get_params().items() if k != "verbose"}
    clf = EmotionClassifier(**{**params, "epochs": 2, "batch_size": 8}).fit(X, y)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out
    assert "Epoch 2/2" in out
    assert "loss" in out
    clf.predict(X)  # larger than batch_size: Model.predict, still silent
    clf.predict(X[:2])
    assert capsys.readouterr().out == ""
    _clf(epochs=2, verbose=0).fit(X, y).predict(X)
    assert capsys.readouterr().out == ""


def test_no_retracing_warning_in_a_scikit_learn_session(data):
    """Graph mode (traced train/test/predict functions), a new model per clone.

    No "tf.function retracing" message on the tensorflow logger, and no retrace within
    one model for new batch sizes.
    """
    import logging
    import warnings

    from fervision.estimator._inference import inference_fn

    X, y = data
    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # the CLI's tests may have raised it to ERROR
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # batch_size=4: test folds larger than a batch run as several calls of
            # the one traced inference function.
            clf = _clf(run_eagerly=False, batch_size=4, validation_split=0.25)
            cross_val_score(clf, X, y, cv=3)
            search = GridSearchCV(clf, {"learning_rate": [1e-3, 2e-2]}, cv=2).fit(X, y)
            best = search.best_estimator_
            for n in (1, 3, 2, 4):  # new batch sizes: one trace of the inference function
                best.predict(X[:n])
            best.predict(X)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    messages = [r.getMessage() for r in records] + [str(w.message) for w in caught]
    assert not [m for m in messages if "retracing" in m], messages
    assert inference_fn(best.model_).experimental_get_tracing_count() == 1
    assert best.model_.predict_function is None  # Keras's predict loop never ran
