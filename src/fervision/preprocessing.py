"""The one preprocessing path: anything a user calls an image batch -> model input.

The classifier (as its SciKeras ``feature_encoder``), the face detector, video
processing and the app all end here, so a face crop is turned into network input in
exactly one way: grayscale, ``input_size`` x ``input_size``, float32 in [0, 1], shape
``(N, S, S, 1)``.

Rules
-----
* ``(N, H, W)`` and ``(N, H, W, 1)`` are grayscale; ``(N, H, W, 3)`` is RGB and is
  converted with ITU-R BT.601 luma weights.  2 channels or 4+ channels are refused
  (for RGBA pass ``X[..., :3]``).
* ``(N, D)`` is a batch of flattened grayscale images, as in FER2013's ``pixels``
  column.  When ``D`` is not a perfect square it is zero-padded at the end to the next
  square (``D=2000`` -> 45 x 45 = 2025 values), so any width is accepted and the same
  width always maps to the same layout.
* Integer dtypes are 0-255 and are divided by 255; float dtypes are taken as 0-1 and
  used as they are.
* A list of images of different sizes is accepted; each is resized on its own.
"""

from __future__ import annotations

import math
import numbers
import warnings

import cv2
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB weights (BT.601)

#: Version of the preprocessing rules above.  Saved with every model; bump it when a
#: change would make an old model see different input for the same image.
PREPROCESSING_VERSION = 1


def _check_dtype(arr: np.ndarray, where: str) -> None:
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(
            f"Complex data not supported: {where} has dtype {arr.dtype}; images must be "
            "real-valued (uint8 0-255 or float 0-1)"
        )
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(
            f"{where} has dtype {arr.dtype}; images must be numeric "
            "(uint8 0-255 or float 0-1)"
        )


def _to_float01(img: np.ndarray) -> np.ndarray:
    if np.issubdtype(img.dtype, np.integer):
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32, copy=False)


def _to_gray(img: np.ndarray, where: str) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) float -> (H, W) float."""
    if img.ndim == 2:
        return img
    if img.ndim != 3:
        raise ValueError(f"{where} has shape {img.shape}; expected (H, W) or (H, W, C)")
    channels = img.shape[-1]
    if channels == 1:
        return img[..., 0]
    if channels == 3:
        return img @ _LUMA
    if channels == 4:
        raise ValueError(
            f"{where} has 4 channels (shape {img.shape}); RGBA is not accepted: drop the "
            "alpha channel with X[..., :3] (or convert to grayscale) first"
        )
    raise ValueError(
        f"{where} has {channels} channels (shape {img.shape}); expected 1 (grayscale) "
        "or 3 (RGB)"
    )


def read_image(path, *, grayscale: bool = False, name: str | None = None) -> np.ndarray:
    """Read an image file: BGR ``(H, W, 3)`` uint8, or ``(H, W)`` with ``grayscale``.

    ``np.fromfile`` + ``cv2.imdecode`` rather than ``cv2.imread``: imread returns None
    for every failure alike and cannot open non-ASCII paths on Windows.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a readable image (a folder, empty, corrupt, unknown format).
    """
    from pathlib import Path

    path = Path(path)
    prefix = f"{name}: " if name else ""
    if not path.exists():
        raise FileNotFoundError(f"{prefix}image file not found: {str(path)!r}")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"{prefix}cannot read image file {str(path)!r}: {err}") from None
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise ValueError(
            f"{prefix}cannot decode image file {str(path)!r} (empty, corrupt or not an image)"
        )
    return img


def resize_gray(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D float image to ``size`` x ``size`` (area when shrinking)."""
    if img.shape == (size, size):
        return img
    shrink = img.shape[0] >= size and img.shape[1] >= size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def flat_side(n_features: int) -> int:
    """Side of the square a flattened image of ``n_features`` values is padded to."""
    return math.isqrt(n_features - 1) + 1 if n_features > 0 else 0


def _unflatten(X: np.ndarray) -> np.ndarray:
    n, d = X.shape
    side = flat_side(d)
    if side * side != d:
        X = np.concatenate([X, np.zeros((n, side * side - d), dtype=X.dtype)], axis=1)
    return X.reshape(n, side, side)


def _check_finite(batch: np.ndarray, name: str, offset: int = 0) -> None:
    if np.issubdtype(batch.dtype, np.floating):
        bad = ~np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
        if bad.any():
            idx = int(np.flatnonzero(bad)[0]) + offset
            raise ValueError(
                f"{name}[{idx}] contains NaN or infinite pixel values "
                f"({int(bad.sum())} image(s) affected); clean or drop them first"
            )


def _warn_range(batch: np.ndarray, name: str) -> None:
    if np.issubdtype(batch.dtype, np.floating) and batch.size and float(batch.max()) > 1.5:
        warnings.warn(
            f"{name} is float with values up to {float(batch.max()):.3g}; float images are "
            "taken as 0-1. Pass uint8 for 0-255 data, or divide by 255.",
            UserWarning,
            stacklevel=3,
        )


def _is_sparse(X) -> bool:
    return hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse")


def check_images(X, input_size: int = 48, *, name: str = "X") -> np.ndarray:
    """Validate a batch of images and convert it to model input.

    Parameters
    ----------
    X : array-like or list of array-like
        Shapes ``(N, H, W)``, ``(N, H, W, 1)``, ``(N, H, W, 3)`` or ``(N, D)``; a list
        may hold images of different sizes.  uint8 (0-255) or float (0-1).
    input_size : int, default=48
        Side of the square output images.
    name : str, default="X"
        What to call the input in error messages.

    Returns
    -------
    ndarray of shape (N, input_size, input_size, 1), float32

    Raises
    ------
    ValueError
        Empty input, wrong number of dimensions or channels, non-numeric dtype, or NaN/inf
        values; the message names the offending image's index.
    TypeError
        Sparse input.
    """
    if _is_sparse(X):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required. "
            "Use '.toarray()' to convert to a dense numpy array."
        )
    if isinstance(X, list | tuple):
        if len(X) == 0:
            raise ValueError(f"{name} is empty: at least one image is required")
        try:
            arr = np.asarray(X)
        except ValueError:  # ragged list: images of different sizes
            return _check_list(list(X), input_size, name)
    else:
        arr = np.asarray(X)
    if arr.dtype == object:
        if arr.ndim == 1:  # a sequence of images (of different sizes)
            return _check_list(list(arr), input_size, name)
        # A numeric table held as Python objects (e.g. a DataFrame of mixed columns):
        # convert like numpy does; a non-number raises numpy's TypeError naming it.
        arr = arr.astype(np.float64)
    return _check_array(arr, input_size, name)


def flat_features(X) -> int | None:
    """Number of values per sample when ``X`` is a 2-D batch of flattened images.

    Returns ``None`` for image-shaped input (3-D/4-D arrays, lists of 2-D images) and
    for input :func:`check_images` would reject anyway.
    """
    if _is_sparse(X):
        return None
    shape = getattr(X, "shape", None)
    if shape is not None:
        return int(shape[1]) if len(shape) == 2 else None
    if isinstance(X, list | tuple) and len(X) > 0:
        try:
            first = np.ndim(X[0])
        except ValueError:  # a ragged first element
            return None
        if first == 1:
            return len(X[0])
    return None


def _check_array(arr: np.ndarray, size: int, name: str) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[0] > 0 and arr.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
            "required: each row must hold a flattened image"
        )
    if arr.ndim == 0 or arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): at least one image is required")
    _check_dtype(arr, name)
    if arr.ndim == 2:
        arr = _unflatten(arr)
    elif arr.ndim == 4:
        if arr.shape[-1] not in (1, 3):
            _to_gray(arr[0], f"{name}[0]")  # raises the channel message
    elif arr.ndim != 3:
        hint = ""
        if arr.ndim == 1:  # scikit-learn's wording, which its estimator checks look for
            hint = (". Reshape your data: X.reshape(1, -1) for a single flattened image, "
                    "X[None] for a single (H, W) image")
        raise ValueError(
            f"{name} has {arr.ndim} dimensions (shape {arr.shape}); expected (N, H, W), "
            f"(N, H, W, 1), (N, H, W, 3) or flattened (N, D){hint}"
        )
    _check_finite(arr, name)
    _warn_range(arr, name)
    arr = _to_float01(arr)
    if arr.ndim == 4:
        arr = arr[..., 0] if arr.shape[-1] == 1 else arr @ _LUMA
    if arr.shape[1:] != (size, size):
        arr = np.stack([resize_gray(img, size) for img in arr])
    return np.ascontiguousarray(arr[..., None], dtype=np.float32)


def _check_list(items: list, size: int, name: str) -> np.ndarray:
    if len(items) == 0:
        raise ValueError(f"{name} is empty: at least one image is required")
    out = np.empty((len(items), size, size, 1), dtype=np.float32)
    converted = []
    for i, item in enumerate(items):  # validate all before converting any
        where = f"{name}[{i}]"
        if isinstance(item, numbers.Number) or item is None:
            raise ValueError(f"{where} is {item!r}, not an image")
        img = np.asarray(item)
        _check_dtype(img, where)
        if img.ndim not in (2, 3) or img.size == 0:
            raise ValueError(
                f"{where} has shape {img.shape}; each image must be (H, W), (H, W, 1) "
                "or (H, W, 3)"
            )
        if img.ndim == 3:
            _to_gray(img[:1, :1], where)  # channel check only
        _check_finite(img[None], name, offset=i)
        converted.append(img)
    for i, img in enumerate(converted):
        out[i, ..., 0] = resize_gray(_to_gray(_to_float01(img), f"{name}[{i}]"), size)
    return out


class ImageEncoder(TransformerMixin, BaseEstimator):
    """Turn image batches into network input (the classifier's ``feature_encoder``).

    Parameters
    ----------
    input_size : int, default=48
        Side of the square grayscale images the network sees.

    Attributes
    ----------
    n_features_in_ : int
        Number of values per sample seen in ``fit`` when ``X`` was 2-D (flattened
        images); image-shaped input is resized, so no width is enforced for it.
    """

    def __init__(self, input_size: int = 48):
        self.input_size = input_size

    def fit(self, X, y=None):
        arr = X if isinstance(X, np.ndarray) else None
        if arr is not None and arr.ndim == 2:
            self.n_features_in_ = arr.shape[1]
        self.fitted_ = True
        return self

    def transform(self, X):
        check_is_fitted(self, "fitted_")
        if isinstance(X, np.ndarray) and X.ndim == 2 and hasattr(self, "n_features_in_"):
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        return check_images(X, self.input_size)
