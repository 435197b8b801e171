"""Export a fitted classifier for serving without fervision: SavedModel, TFLite, ONNX.

Every exported model takes exactly what the Keras model takes: a float32 batch of shape
``(N, S, S, 1)`` with grayscale pixels in [0, 1] (``S`` is the classifier's
``input_size``), and returns softmax probabilities of shape ``(N, n_classes)``.  A JSON
sidecar written next to the artifact (``<path>.json``) records the class order, the
input size and how to preprocess an image, so a consumer needs only the runtime
(TensorFlow, TFLite/LiteRT or ONNX Runtime) and the sidecar.

Two details make the exports match :meth:`EmotionClassifier.predict_proba`:

* Keras's ``model.export`` traces ``model(x)`` *without* ``training=False``, and Keras 3's
  random augmentation layers default to ``training=True``; exporting the fitted model
  as it is would bake random flips and crops into the served graph.  The model is
  therefore wrapped as ``model(x, training=False)`` before export, which makes
  augmentation identity and BatchNormalization use its moving statistics.
* Models trained under a mixed (bfloat16/float16) dtype policy are rebuilt in float32
  with the same weights: ONNX export requires float32, and float32 is what TFLite and
  most serving runtimes run fastest on a CPU.

Outputs are never left half-written: the artifact and its sidecar are built in a
temporary folder beside the target and moved into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .backbones import walk_layers
from .eval_crop import classifier_crop_pct, crop_layers
from .tta import n_views, resolve_tta

__all__ = ["FORMATS", "PREPROCESSING", "export_model", "inference_model", "metadata_path"]

FORMATS = ("savedmodel", "tflite", "onnx")

#: How to turn an image into model input, written to every sidecar.
PREPROCESSING = (
    "Detect and crop the face; convert to grayscale (RGB with ITU-R BT.601 luma weights "
    "0.299, 0.587, 0.114); resize to input_size x input_size (cv2.INTER_AREA when "
    "shrinking, cv2.INTER_LINEAR when enlarging); scale uint8 0-255 to float32 0-1 "
    "(divide by 255); shape (N, input_size, input_size, 1)."
)

_ONNX_MODULES = ("tf2onnx", "onnx")


def metadata_path(path) -> Path:
    """Where :func:`export_model` writes the JSON sidecar for ``path``: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _require(modules, what: str) -> None:
    missing = []
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ImportError(
            f"{what} needs {', '.join(missing)}, which could not be imported; install "
            "them with: pip install 'fervision[export]'  (or: pip install "
            f"{' '.join(missing)})"
        )


def _unpack(clf, classes):
    """Unpack an estimator or model for export.

    Return (keras model, class names, input size, crop_pct, extra metadata).
    """
    import keras

    if isinstance(clf, keras.Model):
        model = clf
        crop_pct = 1.0
        extra = {}
        if classes is None:
            from ..data.labels import EMOTIONS

            classes = list(EMOTIONS)
    else:
        model = getattr(clf, "model_", None)
        if model is None:
            raise ValueError(
                f"{type(clf).__name__} is not fitted (it has no model_); fit it, load it "
                "with EmotionClassifier.load()/from_pretrained(), or pass a keras.Model"
            )
        if classes is None:
            classes = getattr(clf, "classes_", None)
        if classes is None:
            raise ValueError(f"{type(clf).__name__} has no classes_; pass classes=")
        extra = {"backbone": clf.backbone} if isinstance(getattr(clf, "backbone", None),
                                                          str) else {}
        crop_pct = classifier_crop_pct(clf)
        mode = resolve_tta(getattr(clf, "tta", False))
        if mode is not None:
            extra["test_time_augmentation"] = (
                f"the classifier averages the probabilities over {n_views(mode)} views "
                f"of each image (tta={mode!r}, see fervision.nn.tta.tta_views); the "
                "exported model does not, so run it on those views and average to "
                "reproduce predict_proba"
            )
    classes = [str(c) for c in np.asarray(classes).tolist()]
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[3] != 1 or shape[1] != shape[2] or shape[1] is None:
        raise ValueError(
            f"model input shape is {shape}; fervision models take (N, S, S, 1) grayscale"
        )
    n_out = model.output_shape[-1]
    if n_out != len(classes):
        raise ValueError(f"model has {n_out} outputs but {len(classes)} classes were given")
    if crop_pct < 1:
        extra["center_crop"] = (
            f"the exported graph enlarges each image and keeps its centre {crop_pct:g} "
            "(the classifier's crop_pct, fervision.nn.eval_crop): feed the whole face")
    return model, classes, int(shape[1]), crop_pct, extra


def _float32_copy(model):
    """``model`` with every layer's dtype policy set to float32 (same weights)."""
    import keras

    def _f32(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=_f32, recursive=True)
    clone.set_weights(model.get_weights())
    return clone


def inference_model(model, crop_pct: float = 1.0):
    """Wrap ``model`` as a float32 inference-only ``keras.Model``.

    The wrapper calls ``model(x, training=False)``, so augmentation layers are identity
    and dropout/batch-norm behave as in ``predict`` whatever the caller passes; mixed
    precision models are rebuilt in float32 first.

    Parameters
    ----------
    model : keras.Model
        A fervision model, ``(N, S, S, 1)`` float 0-1 -> probabilities.
    crop_pct : float in (0, 1], default=1.0
        Centre crop applied before the network (Keras ``Resizing`` and ``CenterCrop``
        layers, :func:`fervision.nn.eval_crop.crop_layers`), as the classifier's
        ``crop_pct`` does in ``predict_proba``.

    Returns
    -------
    keras.Model
        Single input named ``"image"`` of shape ``(None, S, S, 1)`` float32.
    """
    import keras

    if any(layer.dtype_policy.name != "float32" for layer in walk_layers(model)):
        model = _float32_copy(model)
    inputs = keras.Input(tuple(model.input_shape[1:]), dtype="float32", name="image")
    x = inputs
    for layer in crop_layers(int(model.input_shape[1]), crop_pct):
        x = layer(x)
    outputs = model(x, training=False)
    serving = keras.Model(inputs, outputs, name="fervision_serving")
    # Keras's ONNX export refuses models that were never called.
    serving(np.zeros((1, *model.input_shape[1:]), dtype=np.float32))
    return serving


def _export_savedmodel(model, target: Path) -> None:
    model.export(str(target), format="tf_saved_model", verbose=False)


def _export_tflite(model, target: Path, quantize: bool, workdir: Path) -> None:
    import tensorflow as tf

    saved = workdir / "savedmodel_for_tflite"
    _export_savedmodel(model, saved)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if quantize:
        # Dynamic-range quantization: int8 weights, float activations; ~4x smaller and
        # no calibration data needed.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    target.write_bytes(converter.convert())
    shutil.rmtree(saved, ignore_errors=True)


def _export_onnx(model, target: Path, opset: int | None) -> None:
    with warnings.catch_warnings():
        # Keras's tf2onnx numpy-2 shim probes np.object, which numpy flags as changing.
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        model.export(str(target), format="onnx", verbose=False, opset_version=opset)


def _describe(fmt: str, classes, input_size: int, quantize: bool, extra: dict,
              opset: int | None) -> dict:
    from .. import __version__

    runtime = {
        "savedmodel": (
            "tf.saved_model.load(path).serve(x)  (signature 'serving_default', "
            "input 'image')"
        ),
        "tflite": (
            "tf.lite.Interpreter / ai_edge_litert Interpreter; resize_tensor_input to "
            "(N, S, S, 1) before allocate_tensors for batches other than 1"
        ),
        "onnx": "onnxruntime.InferenceSession(path).run(None, {'image': x})",
    }[fmt]
    meta = {
        "format": fmt,
        "classes": list(classes),
        "input_size": input_size,
        "input": {
            "name": "image",
            "shape": [None, input_size, input_size, 1],
            "dtype": "float32",
            "value_range": [0.0, 1.0],
            "color": "grayscale",
        },
        "output": {
            "shape": [None, len(classes)],
            "dtype": "float32",
            "meaning": "softmax probabilities, columns in the order of 'classes'",
        },
        "preprocessing": PREPROCESSING,
        "runtime": runtime,
        "quantized": bool(quantize),
        "quantization": "dynamic-range (int8 weights)" if quantize else None,
        "fervision_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if fmt == "onnx":
        meta["opset"] = opset
    meta.update(extra)
    return meta


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _move_into_place(items: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Move built ``(src, dst)`` pairs into place; replaced files are restored on failure."""
    backups: list[tuple[Path, Path]] = []
    moved: list[Path] = []
    try:
        for src, dst in items:
            if dst.exists() or dst.is_symlink():
                if not overwrite:  # re-checked here: something may have appeared
                    raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")
                backup = src.with_name(src.name + ".old")
                os.replace(dst, backup)
                backups.append((backup, dst))
            os.replace(src, dst)
            moved.append(dst)
    except BaseException:
        for dst in moved:
            _remove(dst)
        for backup, dst in backups:
            os.replace(backup, dst)
        raise


def export_model(clf, path, format: str = "savedmodel", *, quantize: bool = False,
                 overwrite: bool = False, classes=None, opset: int | None = None) -> Path:
    """Export a fitted classifier's network for use outside fervision.

    Parameters
    ----------
    clf : EmotionClassifier or keras.Model
        A fitted classifier (its ``model_`` and ``classes_`` are used), or a bare
        fervision ``keras.Model`` (then ``classes`` defaults to
        :data:`fervision.data.labels.EMOTIONS`).
    path : str or path-like
        Target.  A folder for ``"savedmodel"``; a file (conventionally ``.tflite`` /
        ``.onnx``) for the others.  The JSON sidecar goes to ``<path>.json``.
    format : {"savedmodel", "tflite", "onnx"}, default="savedmodel"
        * ``"savedmodel"``: TensorFlow SavedModel via Keras ``model.export(...,
          format="tf_saved_model")``; endpoint ``serve`` / signature
          ``serving_default``.  For TF Serving and ``tf.saved_model.load``.
        * ``"tflite"``: ``tf.lite.TFLiteConverter.from_saved_model``; for mobile and
          embedded devices.
        * ``"onnx"``: Keras ``model.export(..., format="onnx")`` (tf2onnx); for ONNX
          Runtime and other ONNX consumers.  Needs ``pip install 'fervision[export]'``.
    quantize : bool, default=False
        TFLite only: dynamic-range quantization (int8 weights, float activations),
        about 4x smaller, for mobile.  Probabilities move slightly (typically by less
        than 0.05); the predicted class almost always stays the same.
    overwrite : bool, default=False
        Replace an existing ``path`` (and its sidecar).  Without it an existing target
        raises :class:`FileExistsError` and nothing is written.
    classes : sequence of str, optional
        Class names in output order; only needed for a bare ``keras.Model``.
    opset : int, optional
        ONNX opset version; tf2onnx's default when None.

    Returns
    -------
    pathlib.Path
        The written artifact (the sidecar is :func:`metadata_path` of it).

    Raises
    ------
    ValueError
        Unknown ``format``, ``quantize`` with a format other than TFLite, an unfitted
        classifier or a model that does not take ``(N, S, S, 1)`` input.
    FileExistsError
        ``path`` or its sidecar exists and ``overwrite`` is False.
    ImportError
        ONNX export without ``tf2onnx``/``onnx`` installed.

    Examples
    --------
    >>> clf = EmotionClassifier.from_pretrained()                   # doctest: +SKIP
    >>> export_model(clf, "emotion.tflite", "tflite", quantize=True)  # doctest: +SKIP
    PosixPath('emotion.tflite')
    """
    fmt = str(format).lower().replace("_", "").replace("-", "")
    aliases = {"savedmodel": "savedmodel", "tfsavedmodel": "savedmodel", "tf": "savedmodel",
               "tflite": "tflite", "onnx": "onnx"}
    if fmt not in aliases:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    fmt = aliases[fmt]
    if quantize and fmt != "tflite":
        raise ValueError(
            f"quantize=True is only supported for format='tflite' (got {format!r}); for "
            "ONNX use onnxruntime.quantization on the exported file"
        )
    if opset is not None and fmt != "onnx":
        raise ValueError("opset only applies to format='onnx'")
    if fmt == "onnx":
        _require(_ONNX_MODULES, "ONNX export")

    path = Path(os.fspath(path)).expanduser()
    sidecar = metadata_path(path)
    if not overwrite:
        for p in (path, sidecar):
            if p.exists() or p.is_symlink():
                raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")

    model, class_names, input_size, crop_pct, extra = _unpack(clf, classes)
    serving = inference_model(model, crop_pct)

    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        built = tmp / path.name
        if fmt == "savedmodel":
            _export_savedmodel(serving, built)
        elif fmt == "tflite":
            _export_tflite(serving, built, quantize, tmp)
        else:
            _export_onnx(serving, built, opset)
        if not built.exists():
            raise RuntimeError(f"{fmt} export finished but wrote nothing at {built}")
        meta = _describe(fmt, class_names, input_size, quantize, extra, opset)
        built_sidecar = tmp / sidecar.name
        built_sidecar.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        _move_into_place([(built, path), (built_sidecar, sidecar)], overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
