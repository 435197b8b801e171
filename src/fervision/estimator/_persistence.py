"""Persistence of :class:`EmotionClassifier`.

The ``.keras`` file with fervision metadata, wrapping trained Keras models, pretrained
models and export.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np
from sklearn.exceptions import NotFittedError

from . import _scikeras

__all__ = ["METADATA_ENTRY", "load", "metadata", "read_metadata", "save",
           "set_fitted_state"]

#: Name of the metadata entry ``save`` adds to the ``.keras`` zip archive.
METADATA_ENTRY = "fervision.json"
_FORMAT = "fervision.EmotionClassifier"
_FORMAT_VERSION = 1

#: Parameters a loaded model file does not restore: they name places on disk.
_LOCAL_PARAMS = frozenset({"checkpoint_dir", "resume"})


def bundled_model_path() -> Path:
    """Where the package's default model lives (package data, no network)."""
    return pretrained_path("default")


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def set_fitted_state(est, model, classes, n_features_in=None):
    """Make ``est`` a fitted classifier around the trained ``model``."""
    classes = np.asarray(classes)
    est._fixed_classes = classes
    _scikeras.set_random_state(est, est.random_state)
    est.target_encoder_ = est.target_encoder.fit(classes)
    vars(est).update(est.target_encoder_.get_metadata())
    est.feature_encoder_ = est.feature_encoder.fit(np.zeros((1, 1, 1)))
    if n_features_in is not None:
        est.n_features_in_ = int(n_features_in)
    est.target_type_ = "binary" if len(classes) <= 2 else "multiclass"
    est.model_ = model
    est._fresh_model = False
    _scikeras.initialize_callbacks(est)
    return est


def check_keras_model(model, classes, input_size) -> np.ndarray:
    """Check that ``model`` maps ``input_size`` grayscale images to ``classes``."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    classes = np.asarray(classes)
    if classes.ndim != 1 or len(classes) == 0:
        raise ValueError("classes must be a non-empty 1-D sequence of labels")
    if len(np.unique(classes)) != len(classes):
        raise ValueError(f"classes has duplicates: {classes.tolist()}")
    out = model.output_shape
    if isinstance(out, list) or out[-1] != len(classes):
        raise ValueError(
            f"model has output shape {out} but {len(classes)} classes were given"
        )
    in_shape = tuple(model.input_shape[1:])
    if len(in_shape) != 3 or in_shape[-1] != 1:
        raise ValueError(
            f"model input shape {model.input_shape} is not (None, S, S, 1) grayscale"
        )
    if in_shape[0] is not None and in_shape[:2] != (input_size, input_size):
        raise ValueError(
            f"model expects {in_shape[0]}x{in_shape[1]} images but input_size={input_size}"
        )
    return classes


def metadata(est) -> dict:
    """Return the fervision metadata :func:`save` stores beside the Keras model."""
    import fervision

    params = {k: v for k, v in est.get_params().items() if _jsonable(v)}
    backbone = est.backbone if isinstance(est.backbone, str) else getattr(
        est.backbone, "__name__", "custom")
    params["backbone"] = backbone
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "fervision_version": fervision.__version__,
        "classes": est.classes_.tolist(),
        "classes_dtype": est.classes_.dtype.str,
        "input_size": int(est.input_size),
        "backbone": backbone,
        "n_features_in": getattr(est, "n_features_in_", None),
        "params": params,
    }


def save(est, path) -> Path:
    if not hasattr(est, "model_"):
        raise NotFittedError(f"This {type(est).__name__} instance is not fitted yet; "
                             "fit it before saving.")
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"save path must end in .keras, got {path.name!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    meta = json.dumps(est._metadata(), indent=2)
    # Keras writes the model to a path (it needs the .keras suffix), so this is not
    # files.atomic_write: same idea, a temp file beside path renamed into place.
    fd, tmp = tempfile.mkstemp(suffix=".keras", prefix=f".{path.stem}-", dir=path.parent)
    os.close(fd)
    try:
        est.model_.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(METADATA_ENTRY, meta)
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; models are shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def read_metadata(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved EmotionClassifier at {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix.lower() in (".h5", ".hdf5") or head == b"\x89HDF\r\n\x1a\n":
        raise ValueError(
            f"{path} is not a Keras 3 '.keras' archive (Keras 2 HDF5 '.h5' files are "
            "not supported: load it with Keras 2, re-save it as .keras, and wrap it "
            "with EmotionClassifier.from_keras_model)"
        )
    if not zipfile.is_zipfile(path):
        what = ("a truncated or damaged .keras archive (it starts like one but its "
                "end is missing or corrupt); copy or download it again"
                if head.startswith(b"PK") else "not a Keras 3 '.keras' (zip) archive")
        raise ValueError(f"{path} is {what}")
    try:
        with zipfile.ZipFile(path) as zf:
            if METADATA_ENTRY not in zf.namelist():
                raise ValueError(
                    f"{path} is a .keras model without fervision metadata; wrap the "
                    "Keras model with EmotionClassifier.from_keras_model(model, classes)"
                )
            raw = zf.read(METADATA_ENTRY)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path} is a damaged .keras archive: {err}") from err
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{path}: its {METADATA_ENTRY} entry is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its {METADATA_ENTRY} entry is not a JSON object")
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: unknown metadata format {meta.get('format')!r}")
    if int(meta.get("format_version", 0)) > _FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved by fervision {meta.get('fervision_version')} in a newer "
            "format; upgrade fervision"
        )
    missing = [k for k in ("classes", "classes_dtype", "input_size") if k not in meta]
    if missing:
        raise ValueError(f"{path}: {METADATA_ENTRY} lacks {', '.join(missing)}")
    if not isinstance(meta.get("params", {}), dict):
        raise ValueError(f"{path}: 'params' in {METADATA_ENTRY} is not a JSON object")
    return meta


def load(cls, path):
    meta = cls.read_metadata(path)
    try:
        classes = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        input_size = int(meta["input_size"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad classes or input_size in {METADATA_ENTRY}: "
                         f"{err}") from err
    try:
        model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for bad files
        raise ValueError(f"{path}: the Keras model in it could not be loaded "
                         f"({type(err).__name__}: {err})") from err
    params = dict(meta.get("params", {}))
    params["input_size"] = input_size
    names = set(cls().get_params())
    params = {k: v for k, v in params.items()
              if (k in names or "__" in k) and k not in _LOCAL_PARAMS}
    if isinstance(params.get("weights"), str) and params["weights"] != "imagenet":
        params.pop("weights")  # a path on the machine that saved the model
    est = cls(**params)
    return est._set_fitted_state(model, classes, meta.get("n_features_in"))


def pretrained_path(name: str) -> Path:
    """Return the file of the pretrained model ``name`` (bundled or fetched), SHA-256 checked.

    ``name`` is one of :func:`fervision.weights.list_pretrained`; a ``KeyError`` lists
    them otherwise.
    """
    from ..weights import pretrained_file

    return pretrained_file(name)


def pretrained_params(name: str) -> dict:
    """Parameters the registry sets on a loaded pretrained model (e.g. ``tta``)."""
    from ..weights import pretrained_info

    return dict(pretrained_info(name).params)
