"""Export to SavedModel / TFLite / ONNX.

Each artifact, run through its own runtime, reproduces the Keras classifier's
probabilities; outputs are atomic.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

from fervision.data.preprocessing import check_images
from fervision.nn.export import PREPROCESSING, export_model, metadata_path

SIZE = 24


def _images(rng, n):
    """Class-dependent synthetic faces: a bright band at the top, middle or bottom."""
    X = rng.integers(0, 90, size=(n, 48, 48), dtype=np.uint8)
    y = np.array(["angry", "happy", "sad"])[np.arange(n) % 3]
    for i, label in enumerate(y):
        band = {"angry": slice(0, 16), "happy": slice(16, 32), "sad": slice(32, 48)}[label]
        X[i, band] += 150
    return X, y


@pytest.fixture(scope="module")
def fitted():
    from fervision import estimator as classifier

    rng = np.random.default_rng(0)
    X, y = _images(rng, 30)
    clf = classifier.EmotionClassifier(
        backbone="fernet_tiny", input_size=SIZE, epochs=1, batch_size=8, learning_rate=1e-2,
        precision="float32", random_state=0, verbose=0,
    ).fit(X, y)
    X_test, _ = _images(np.random.default_rng(1), 12)
    return clf, X_test


def _reference(clf, X):
    proba = clf.predict_proba(X)
    inputs = check_images(X, SIZE)  # the documented preprocessing: (N, S, S, 1) float 0-1
    assert inputs.shape == (len(X), SIZE, SIZE, 1)
    assert inputs.dtype == np.float32
    return proba, inputs


def _check_sidecar(path, clf, fmt, quantized=False):
    meta = json.loads(metadata_path(path).read_text())
    assert meta["format"] == fmt
    assert meta["classes"] == clf.classes_.tolist()
    assert meta["input_size"] == SIZE
    assert meta["input"]["shape"] == [None, SIZE, SIZE, 1]
    assert meta["preprocessing"] == PREPROCESSING
    assert meta["quantized"] is quantized
    return meta


def _same_classes(proba, ref):
    """Argmax must agree wherever the Keras top-2 margin is not a near-tie."""
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-3
    assert clear.sum() >= len(ref) // 2, "reference predictions are all near-ties"
    np.testing.assert_array_equal(proba.argmax(1)[clear], ref.argmax(1)[clear])


def _tflite_run(path, inputs):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter deprecation notice
        interp = tf.lite.Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], inputs.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], inputs)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory):
    """Each format exported once (exports take seconds each)."""
    clf, _ = fitted
    root = tmp_path_factory.mktemp("exports")
    out = {
        # through the classifier's thin method, and through export_model directly
        "savedmodel": clf.export(root / "sm", format="savedmodel"),
        "tflite": export_model(clf, root / "m.tflite", "tflite"),
        "tflite_q": export_model(clf, root / "q.tflite", "tflite", quantize=True),
    }
    return root, out


def test_savedmodel_matches_keras(fitted, exported):
    import tensorflow as tf

    clf, X = fitted
    ref, inputs = _reference(clf, X)
    out = exported[1]["savedmodel"]
    assert out.name == "sm"
    assert (out / "saved_model.pb").is_file()
    meta = _check_sidecar(out, clf, "savedmodel")
    assert meta["backbone"] == "fernet_tiny"
    # augment=True, crop_pct="auto": the graph crops, so consumers feed the whole face
    assert "centre 0.9" in meta["center_crop"]

    loaded = tf.saved_model.load(str(out))
    proba = loaded.serve(tf.constant(inputs)).numpy()
    np.testing.assert_allclose(proba, ref, atol=1e-5)
    _same_classes(proba, ref)
    # Augmentation is identity in the served graph: repeated calls are deterministic.
    np.testing.assert_array_equal(loaded.serve(tf.constant(inputs)).numpy(), proba)
    sig = loaded.signatures["serving_default"]
    (result,) = sig(image=tf.constant(inputs)).values()
    np.testing.assert_allclose(result.numpy(), ref, atol=1e-5)


def test_tflite_matches_keras(fitted, exported):
    clf, X = fitted
    ref, inputs = _reference(clf, X)
    root, paths = exported
    _check_sidecar(paths["tflite"], clf, "tflite")
    proba = _tflite_run(paths["tflite"], inputs)
    np.testing.assert_allclose(proba, ref, atol=1e-5)
    _same_classes(proba, ref)
    assert not list(root.glob(".*tmp-*")), "temporary export folder left behind"


def test_tflite_quantized(fitted, exported):
    clf, X = fitted
    ref, inputs = _reference(clf, X)
    plain, quant = exported[1]["tflite"], exported[1]["tflite_q"]
    meta = _check_sidecar(quant, clf, "tflite", quantized=True)
    assert "dynamic-range" in meta["quantization"]
    assert quant.stat().st_size < plain.stat().st_size
    proba = _tflite_run(quant, inputs)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-4)
    np.testing.assert_allclose(proba, ref, atol=0.1)
    assert (proba.argmax(1) == ref.argmax(1)).mean() >= 0.75


def test_onnx_matches_keras(fitted, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    clf, X = fitted
    ref, inputs = _reference(clf, X)
    out = clf.export(tmp_path / "m.onnx", format="onnx")
    _check_sidecar(out, clf, "onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "image"
    assert inp.shape[1:] == [SIZE, SIZE, 1]
    proba = session.run(None, {"image": inputs})[0]
    np.testing.assert_allclose(proba, ref, atol=1e-5)
    _same_classes(proba, ref)


def test_onnx_without_toolchain_is_a_clear_error(fitted, tmp_path, monkeypatch):
    clf, _ = fitted
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"tf2onnx.*fervision\[export\]"):
        export_model(clf, tmp_path / "m.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []


def test_existing_target_needs_overwrite(fitted, tmp_path, monkeypatch):
    from fervision.nn import export

    clf, _ = fitted
    target = tmp_path / "m.tflite"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_model(clf, target, "tflite")
    assert target.read_bytes() == b"old"
    assert not metadata_path(target).exists()

    # The conversion itself is tested above; here only replacing matters, so a fast
    # stand-in converter writes the new file.
    monkeypatch.setattr(export, "_export_tflite",
                        lambda model, path, quantize, workdir: path.write_bytes(b"new"))
    assert export_model(clf, target, "tflite", overwrite=True) == target
    assert target.read_bytes() == b"new"
    assert json.loads(metadata_path(target).read_text())["format"] == "tflite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m.tflite.json"]


@pytest.mark.parametrize(("tta", "views"), [(True, 2), ("crops", 12)])
def test_sidecar_states_the_test_time_augmentation(fitted, tmp_path, monkeypatch, tta, views):
    from sklearn.base import clone

    from fervision.nn import export

    clf, _ = fitted
    with_tta = clone(clf).set_params(tta=tta)
    with_tta._set_fitted_state(clf.model_, clf.classes_)
    monkeypatch.setattr(export, "_export_tflite",
                        lambda model, path, quantize, workdir: path.write_bytes(b"x"))
    export_model(with_tta, tmp_path / "m.tflite", "tflite")
    note = json.loads(metadata_path(tmp_path / "m.tflite").read_text())[
        "test_time_augmentation"]
    assert f"over {views} views" in note
    export_model(clf, tmp_path / "plain.tflite", "tflite")
    assert "test_time_augmentation" not in json.loads(
        metadata_path(tmp_path / "plain.tflite").read_text())


def test_failed_export_leaves_nothing(fitted, tmp_path, monkeypatch):
    from fervision.nn import export

    clf, _ = fitted
    target = tmp_path / "sm"

    def boom(model, path):
        path.mkdir()
        (path / "partial.pb").write_bytes(b"half")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(export, "_export_savedmodel", boom)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_model(clf, target)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(fitted, tmp_path):
    from fervision.estimator import EmotionClassifier

    clf, _ = fitted
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(clf, tmp_path / "m.pt", "torchscript")
    with pytest.raises(ValueError, match="only supported for format='tflite'"):
        export_model(clf, tmp_path / "sm", "savedmodel", quantize=True)
    with pytest.raises(ValueError, match="not fitted"):
        export_model(EmotionClassifier(), tmp_path / "sm")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_model(clf, tmp_path / "missing" / "m.tflite", "tflite")
    assert list(tmp_path.iterdir()) == []
