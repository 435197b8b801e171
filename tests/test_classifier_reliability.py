"""EmotionClassifier under faults (issue 15).

Global state, oneDNN crash, bad parameters, diverging training, ImageNet backbones
offline, and hostile or damaged model files.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest
from helpers_estimator import SIZE, _clf, _images
from sklearn.exceptions import NotFittedError

from fervision import EmotionClassifier
from fervision.nn.backbones import BASE_NAME, create_model, walk_layers


def _run_fresh_python(code, timeout=300):
    """Run ``code`` in a fresh interpreter with the user's environment (oneDNN on)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _op_determinism():
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()


# ------------------------------------------------------------ process-wide state
def test_seeded_fit_leaves_a_fresh_process_usable():
    # Must be a fresh process: TensorFlow reads TF_DETERMINISTIC_OPS the first time
    # determinism is queried, which is where SciKeras's restore went wrong.
    result = _run_fresh_python("""
        import numpy as np, keras
        from sklearn.model_selection import cross_val_score
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer
        from tensorflow.python.framework import config
        from fervision import EmotionClassifier

        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, size=(12, 16, 16), dtype=np.uint8)
        y = np.array(["a", "b"] * 6)
        kw = dict(backbone="cnn", input_size=16, epochs=1, batch_size=4, precise_bn=False)
        EmotionClassifier(random_state=0, **kw).fit(X, y)
        assert not config.is_op_determinism_enabled(), "determinism left on"
        assert keras.config.dtype_policy().name == "float32", keras.config.dtype_policy()
        EmotionClassifier(**kw).fit(X, y)
        pipe = Pipeline([("id", FunctionTransformer()), ("clf", EmotionClassifier(**kw))])
        print("scores", cross_val_score(pipe, X, y, cv=2).shape)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scores (2,)" in result.stdout


@pytest.mark.parametrize("precision", ["auto", "mixed_bfloat16"])
def test_fit_restores_global_state(precision):
    X, y = _images(16)
    keras.config.set_dtype_policy("float32")
    determinism = _op_determinism()
    random.seed(123)
    np.random.seed(123)
    py_next, np_next = random.getstate(), np.random.get_state()[1].copy()
    _clf(precision=precision, random_state=7).fit(X, y)
    assert keras.config.dtype_policy().name == "float32"
    assert _op_determinism() == determinism
    assert os.environ.get("TF_DETERMINISTIC_OPS") is None
    assert random.getstate() == py_next
    np.testing.assert_array_equal(np.random.get_state()[1], np_next)


# ----------------------------------------------------------------- oneDNN crash
def test_strided_1x1_convolutions_are_subsample_then_convolution():
    # TF 2.21's oneDNN weight gradient of a strided 1x1 Conv2D corrupts the heap on odd
    # batches; the backbones build the same function without that op.
    model = create_model("fernet_tiny", input_size=24, n_classes=3)
    convs = [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    assert convs
    assert not any(c.kernel_size == (1, 1) and c.strides != (1, 1) for c in convs)

    x = np.random.default_rng(0).random((3, 47, 47, 4), dtype=np.float32)
    strided = keras.layers.Conv2D(6, 1, strides=2, padding="same", use_bias=False)
    expected = strided(x)
    sub = keras.layers.MaxPooling2D(1, strides=2, padding="same")(x)
    same = keras.layers.Conv2D(6, 1, padding="same", use_bias=False)
    same.build(sub.shape)
    same.set_weights(strided.get_weights())
    np.testing.assert_allclose(same(sub), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_fernet_tiny_on_odd_numbers_of_images_with_onednn():
    # Was "double free or corruption" / "munmap_chunk(): invalid pointer" / SIGSEGV.
    result = _run_fresh_python("""
        import numpy as np
        from fervision import EmotionClassifier
        rng = np.random.default_rng(0)
        for n, batch_size in ((101, 64), (203, 32)):
            X = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
            y = np.array(["a", "b", "c"])[np.arange(n) % 3]
            clf = EmotionClassifier(backbone="fernet_tiny", epochs=1, batch_size=batch_size,
                                    augment=False, precise_bn=False)
            print(n, clf.fit(X, y).predict(X[:2]).shape, flush=True)
    """)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert "203 (2,)" in result.stdout


# -------------------------------------------------------------- batch_size=-1
def test_batch_size_minus_one_means_one_batch_for_predict_too():
    X, y = _images(24)
    clf = _clf(batch_size=-1).fit(X, y)
    assert clf.predict(X).shape == (24,)
    assert clf.predict_proba(X[:3]).shape == (3, 2)
    clf.set_params(run_eagerly=False, predict__batch_size=-1)
    assert clf.predict_proba(X).shape == (24, 2)


# ------------------------------------------------------------- bad parameters
@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -1e-3, "fast", None])
def test_learning_rate_must_be_finite_and_non_negative(lr):
    X, y = _images(8)
    clf = _clf(learning_rate=lr)
    with pytest.raises(ValueError, match="learning_rate must be a finite non-negative number"):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_fine_tune_learning_rate_is_checked():
    X, y = _images(8)
    with pytest.raises(ValueError, match="fine_tune_learning_rate"):
        _clf(fine_tune_learning_rate=float("nan")).fit(X, y)


@pytest.mark.parametrize("size", [0, -48, 2.5, "48", True])
def test_input_size_must_be_a_positive_int(size):
    X, y = _images(8)
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        _clf(input_size=size).fit(X, y)
    with pytest.raises(ValueError, match="input_size"):
        _clf(input_size=size).initialize(X, y)


@pytest.mark.parametrize("bs", [0, -2, 3.5])
def test_batch_size_is_checked(bs):
    X, y = _images(8)
    with pytest.raises(ValueError, match="batch_size must be"):
        _clf(batch_size=bs).fit(X, y)


@pytest.mark.parametrize("eager", ["no", 0, None])
def test_run_eagerly_must_be_a_bool(eager):
    X, y = _images(8)
    clf = _clf(run_eagerly=eager)
    with pytest.raises(ValueError, match=r"run_eagerly must be True or False, got"):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


@pytest.mark.parametrize("as_array", [False, True])
def test_labels_mixing_strings_and_numbers_are_refused(as_array):
    X, _ = _images(4)
    y = ["happy", 1, "sad", 2]
    if as_array:
        y = np.array(y, dtype=object)
    with pytest.raises(ValueError, match=r"y mixes string and numeric labels.*'happy'.*1"):
        _clf().fit(X, y)


# -------------------------------------------------------------- diverging fit
def _nan_loss(y_true, y_pred):
    return keras.ops.mean(y_pred) * float("nan")


def test_loss_becoming_nan_stops_training_with_a_clear_error():
    X, y = _images(32)
    clf = _clf(epochs=3, batch_size=8, loss=_nan_loss, early_stopping=False, reduce_lr=False)
    with pytest.raises(FloatingPointError, match=r"loss became NaN.*epoch 1.*learning_rate"):
        clf.fit(X, y)
    assert not hasattr(clf, "history_")
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_nan_in_fine_tuning_phase_is_caught(tmp_path):
    from test_classifier import _tiny_base_builder

    from fervision.nn.backbones import BACKBONES, register_backbone

    register_backbone("tiny_base_nan", _tiny_base_builder)
    try:
        inp = keras.Input((SIZE, SIZE, 1))
        path = tmp_path / "base.weights.h5"
        keras.Model(inp, _tiny_base_builder(inp)).get_layer(BASE_NAME).save_weights(path)
        X, y = _images(16)
        clf = _clf(backbone="tiny_base_nan", weights=str(path), epochs=2, loss=_nan_loss)
        with pytest.raises(FloatingPointError, match="loss became NaN"):
            clf.fit(X, y)
        assert not hasattr(clf, "model_")
    finally:
        BACKBONES.pop("tiny_base_nan", None)


# ------------------------------------------------------------ ImageNet backbones
def test_imagenet_architecture_from_scratch_warns_and_runs_the_base_at_96px():
    with pytest.warns(UserWarning, match=r"'resnet50' with weights=None.*from scratch.*48x48"):
        model = create_model("resnet50", input_size=48, n_classes=3, weights=None)
    assert model.get_layer(BASE_NAME).input_shape == (None, 96, 96, 3)
    assert model.input_shape == (None, 48, 48, 1)


def test_imagenet_weights_offline_give_a_clear_error(monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname, origin=None, *args, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    X, y = _images(4, size=32)
    clf = EmotionClassifier(backbone="resnet50", weights="imagenet", input_size=32, epochs=1)
    with pytest.raises(RuntimeError, match=r"backbone 'resnet50'.*ImageNet weights.*could "
                                           r"not be fetched.*~/.keras/models.*weights=None"):
        clf.fit(X, y)


# ------------------------------------------------------------------ model files
def _rewrite_entry(src, dst, entry, data):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, data if name == entry else zin.read(name))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X, y = _images(16)
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    return _clf().fit(X, y).save(path)


def test_loaded_metadata_does_not_choose_paths(saved, tmp_path):
    meta = EmotionClassifier.read_metadata(saved)
    evil = tmp_path / "chosen-by-the-file"
    meta["params"].update(checkpoint_dir=str(evil), resume=True, warm_start=True,
                          weights=str(tmp_path / "base.weights.h5"), epochs=1)
    crafted = tmp_path / "crafted.keras"
    _rewrite_entry(saved, crafted, "fervision.json", json.dumps(meta))
    clf = EmotionClassifier.load(crafted)
    assert clf.checkpoint_dir is None
    assert clf.resume is False
    assert clf.weights is None
    assert clf.warm_start is True  # other parameters are still restored
    X, y = _images(16)
    clf.set_params(run_eagerly=True).fit(X, y)
    assert not evil.exists()


def test_truncated_model_file_names_the_file(saved, tmp_path):
    data = saved.read_bytes()
    bad = tmp_path / "truncated.keras"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.keras is a truncated or damaged"):
        EmotionClassifier.load(bad)


@pytest.mark.parametrize(("content", "match"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"format": "fervision.EmotionClassifier", "format_version": 1}', "lacks classes"),
])
def test_bad_metadata_names_the_file(saved, tmp_path, content, match):
    bad = tmp_path / "badmeta.keras"
    _rewrite_entry(saved, bad, "fervision.json", content)
    with pytest.raises(ValueError, match=rf"badmeta\.keras.*{match}"):
        EmotionClassifier.load(bad)


def test_damaged_weights_name_the_file(saved, tmp_path):
    bad = tmp_path / "badweights.keras"
    _rewrite_entry(saved, bad, "model.weights.h5", b"garbage")
    with pytest.raises(ValueError, match=r"badweights\.keras.*could not be loaded"):
        EmotionClassifier.load(bad)
