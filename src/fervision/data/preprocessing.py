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
* Integer dtypes are 0-255 and are divided by 255; values outside 0-255 (a 16-bit
  image, say) are refused rather than silently clipped or rescaled.  Float dtypes are
  taken as 0-1 and used as they are; float data that is clearly 0-255 (maximum above
  1.5) gets a warning here (scikit-learn estimators accept any float) and is refused by
  :func:`as_uint8`, the converter :func:`fervision.analyze` uses, which cannot
  represent it.
* A list of images of different sizes is accepted; each is resized on its own.

Image files
-----------
:func:`read_image` (files) and :func:`decode_image` (encoded bytes) are the one reader
used by :func:`fervision.analyze`, the command-line tool, the app and the dataset
loaders.  Every failure to read one file is a ``ValueError`` naming it (or
``FileNotFoundError``), so a batch can report it and go on.  An image whose header
declares more than :data:`MAX_IMAGE_PIXELS` pixels (``$FERVISION_MAX_IMAGE_PIXELS``
when set, or the ``max_pixels`` argument) is refused before it is decoded: a 600 KB
PNG can declare 25,000 x 25,000 pixels and take gigabytes once decoded.
"""

from __future__ import annotations

import io
import math
import numbers
import re
import warnings

import cv2
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._env import param_or_env

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB weights (BT.601)

#: Version of the preprocessing rules above (not stored in saved models yet); bump it
#: when a change would make an old model see different input for the same image.
PREPROCESSING_VERSION = 1

#: Default largest image :func:`read_image` and :func:`decode_image` decode, in pixels
#: (width x height, as declared by the file's header): 100 megapixels, 300 MB as BGR.
#: Override with ``$FERVISION_MAX_IMAGE_PIXELS`` or the ``max_pixels`` argument.
MAX_IMAGE_PIXELS = 100_000_000
#: Environment variable overriding :data:`MAX_IMAGE_PIXELS`.
MAX_IMAGE_PIXELS_ENV = "FERVISION_MAX_IMAGE_PIXELS"


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


def max_image_pixels(max_pixels=None) -> int:
    """Return the pixel limit in force.

    ``max_pixels``, else ``$FERVISION_MAX_IMAGE_PIXELS``, else :data:`MAX_IMAGE_PIXELS`.

    Raises
    ------
    ValueError
        The value (argument or environment variable) is not a positive integer.
    """
    source, value = param_or_env(
        max_pixels, "max_pixels", MAX_IMAGE_PIXELS_ENV,
        # "100000000", "100_000_000" and "1e8" all mean the same
        lambda env: int(env) if env.lstrip("+").replace("_", "").isdigit() else float(env))
    if source is None:
        return MAX_IMAGE_PIXELS
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{source} must be a positive integer (pixels), got {value!r}")
    return int(value)


def _header_pixels(data: np.ndarray) -> tuple[int, bool] | None:
    """Width x height declared by an encoded image's header, read without decoding.

    PIL's ``Image.open`` is lazy: it parses the header only.  Returns ``(pixels,
    exact)``; ``exact`` is False when ``pixels`` is only a lower bound.  ``None`` when
    PIL does not know the format or cannot parse the header (OpenCV then decides, within
    its own ``CV_IO_MAX_IMAGE_PIXELS`` limit of 2**30 pixels).
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning: we apply our own limit
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except Image.DecompressionBombError as err:
            # PIL refuses more than 2 * Image.MAX_IMAGE_PIXELS at open time, before the
            # size can be read; its message has the count ("Image size (N pixels)"), else
            # that bound is a lower bound of the real size.
            found = re.search(r"\((\d+) pixels\)", str(err))
            if found:
                return int(found.group(1)), True
            return (2 * int(Image.MAX_IMAGE_PIXELS), False) if Image.MAX_IMAGE_PIXELS else None
        except Exception:  # unknown format or a corrupt header: OpenCV decides
            return None
    return int(width) * int(height), True


def _cv2_message(err: Exception) -> str:
    # cv2.error's str() is several lines with the source path; .err is the reason alone.
    return getattr(err, "err", None) or str(err).strip().splitlines()[-1]


def _decode(data: np.ndarray, grayscale: bool, what: str, max_pixels,
            prefix: str = "") -> np.ndarray:
    """Decode encoded image bytes; every failure is a ``ValueError`` naming ``what``."""
    if data.size == 0:
        raise ValueError(f"{prefix}cannot decode {what} (empty, corrupt or not an image)")
    limit = max_image_pixels(max_pixels)
    header = _header_pixels(data)
    if header is not None and header[0] >= limit and (header[0] > limit or not header[1]):
        declared = f"{header[0]:,}" if header[1] else f"more than {header[0]:,}"
        raise ValueError(
            f"{prefix}{what} is too large: its header declares {declared} pixels, more than "
            f"the limit of {limit:,}. Raise the limit with ${MAX_IMAGE_PIXELS_ENV} or "
            "max_pixels= if the image is trusted, or scale it down first."
        )
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error as err:  # a corrupt header, OpenCV's own size limit, ...
        raise ValueError(f"{prefix}cannot decode {what}: {_cv2_message(err)}") from None
    if img is None or img.size == 0:
        raise ValueError(f"{prefix}cannot decode {what} (empty, corrupt or not an image)")
    if img.shape[0] * img.shape[1] > limit:  # a format whose header PIL could not read
        raise ValueError(
            f"{prefix}{what} is too large: {img.shape[1]} x {img.shape[0]} pixels, more than "
            f"the limit of {limit:,} (${MAX_IMAGE_PIXELS_ENV} or max_pixels= raise it)"
        )
    return img


def decode_image(data, *, grayscale: bool = False, name: str = "image bytes",
                 max_pixels: int | None = None) -> np.ndarray:
    """Decode an encoded image (the bytes of a JPG, PNG, ... file).

    Parameters
    ----------
    data : bytes, bytearray, memoryview or 1-D uint8 ndarray
        The file's content.
    grayscale : bool, default=False
        Return ``(H, W)`` gray instead of ``(H, W, 3)`` BGR.
    name : str, default="image bytes"
        What to call the input in error messages (an upload's file name, say).
    max_pixels : int, optional
        Refuse images whose header declares more pixels than this; default
        ``$FERVISION_MAX_IMAGE_PIXELS``, else :data:`MAX_IMAGE_PIXELS`.

    Returns
    -------
    ndarray of shape (H, W, 3) or (H, W), uint8

    Raises
    ------
    ValueError
        Empty, corrupt, not an image, or larger than the pixel limit; the message names
        ``name``.
    """
    if isinstance(data, np.ndarray):
        buf = data.reshape(-1).view(np.uint8) if data.dtype == np.uint8 else None
    elif isinstance(data, bytes | bytearray | memoryview):
        buf = np.frombuffer(data, dtype=np.uint8)
    else:
        buf = None
    if buf is None:
        raise TypeError(
            f"{name} must be bytes (an encoded image file), got {type(data).__name__}"
        )
    return _decode(buf, grayscale, name, max_pixels)


def read_image(path, *, grayscale: bool = False, name: str | None = None,
               max_pixels: int | None = None) -> np.ndarray:
    """Read an image file: BGR ``(H, W, 3)`` uint8, or ``(H, W)`` with ``grayscale``.

    ``np.fromfile`` + ``cv2.imdecode`` rather than ``cv2.imread``: imread returns None
    for every failure alike and cannot open non-ASCII paths on Windows.

    Parameters
    ----------
    path : str or path-like
    grayscale : bool, default=False
    name : str, optional
        Prefix for error messages (e.g. ``"X[3]"``).
    max_pixels : int, optional
        Refuse images whose header declares more pixels than this, before decoding;
        default ``$FERVISION_MAX_IMAGE_PIXELS``, else :data:`MAX_IMAGE_PIXELS`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a readable image (a folder, empty, corrupt, unknown format, or
        larger than the pixel limit); the message names the file.
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
    return _decode(data, grayscale, f"image file {str(path)!r}", max_pixels, prefix)


def resize_gray(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D float image to ``size`` x ``size`` (area when shrinking)."""
    if img.shape == (size, size):
        return img
    shrink = img.shape[0] >= size and img.shape[1] >= size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def equalize_lighting(img, *, clip_limit: float = 2.0, tile_grid: int = 4) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (CLAHE) of a grayscale face.

    Evens out dark, over-exposed and unevenly lit faces before classification
    (OpenCV's ``createCLAHE``).  Whether it helps a given model is measured by
    ``tools/eval_lighting.py`` (figures in the model card).

    Parameters
    ----------
    img : ndarray (H, W) or (H, W, 1)
        Grayscale image, uint8 0-255 (or anything :func:`as_uint8` accepts).
    clip_limit : float, default=2.0
        OpenCV's contrast limit per tile.
    tile_grid : int, default=4
        Tiles per side (4 x 4 tiles of 12 px on a 48 px face).

    Returns
    -------
    ndarray (H, W), uint8
    """
    gray = as_uint8(img)
    if gray.ndim == 3 and gray.shape[-1] == 1:
        gray = gray[..., 0]
    if gray.ndim != 2:
        raise ValueError(f"equalize_lighting needs one grayscale image, got shape {gray.shape}")
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tile_grid, tile_grid))
    return clahe.apply(np.ascontiguousarray(gray))


def read_gray(path, size: int | None = None) -> np.ndarray:
    """Read an image file as grayscale uint8, resized to ``size`` x ``size`` if given."""
    img = read_image(path, grayscale=True)
    return img if size is None else resize_gray(img, size)


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


def _check_range(arr: np.ndarray, where: str, *, strict: bool) -> None:
    """Check ``arr`` with the value-range rule shared by the estimator path and :func:`as_uint8`.

    Integers must be 0-255 in both (a uint16 image is refused, not clipped to white).
    Float data that is clearly 0-255 (maximum above 1.5) warns when ``strict`` is
    False (estimators accept any float, e.g. standardised features) and raises when it
    is True (conversion to uint8 would clip it to white).
    """
    if arr.size == 0 or arr.dtype == np.uint8:
        return
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{where} has dtype {arr.dtype} with values from {lo} to {hi}; integer "
                "images must be 0-255. Convert 16-bit images (0-65535) with "
                "(image // 257).astype(np.uint8); scale other data to uint8 0-255 or "
                "float 0-1."
            )
    elif np.issubdtype(arr.dtype, np.floating):
        hi = float(arr.max())
        if hi > 1.5:
            message = (
                f"{where} is float with values up to {hi:.3g}; float images are taken as "
                "0-1. Pass uint8 for 0-255 data, or divide by 255."
            )
            if strict:
                raise ValueError(message)
            warnings.warn(message, UserWarning, stacklevel=4)


def as_uint8(image, name: str = "image") -> np.ndarray:
    """Convert one image array to uint8 0-255 under the rules of :func:`check_images`.

    uint8 is returned as it is; other integers must be 0-255; floats are 0-1 (slightly
    outside is clipped; clearly 0-255 data, maximum above 1.5, is refused rather than
    clipped to white).  The shape is not checked.

    Raises
    ------
    ValueError
        Non-numeric dtype, NaN/inf, or values outside the ranges above; the message
        names ``name``.
    """
    arr = np.asarray(image)
    _check_dtype(arr, name)
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    _check_range(arr, name, strict=True)
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return arr.astype(np.uint8, copy=False)


def gray_uint8(img, where: str = "image") -> np.ndarray:
    """One RGB or grayscale image as (H, W) uint8, as the dataset audit hashes it.

    Floats are 0-1 (rounded, clipped), integers are taken as uint8, RGB is converted
    with OpenCV's luma weights.  Unlike :func:`as_uint8` it does not refuse
    out-of-range values: the audit reports what is there.
    """
    img = np.asarray(img)
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.integer)
                                 or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"{where} has dtype {img.dtype}; images must be numeric")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise ValueError(f"{where} contains NaN or infinite values")
        img = np.clip(np.rint(img * 255.0), 0, 255)  # floats are 0-1, as everywhere
    img = img.astype(np.uint8) if img.dtype != np.uint8 else img
    if img.ndim == 3 and img.shape[-1] == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"{where} has shape {img.shape}; expected (H, W), (H, W, 1) "
                         "or (H, W, 3)")
    return img


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
    """Return the number of values per sample when ``X`` is a 2-D batch of flat images.

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
    _check_range(arr, name, strict=False)
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
        _check_range(img, where, strict=False)
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
        """Record the width of 2-D ``X`` (flattened images) and return ``self``."""
        arr = X if isinstance(X, np.ndarray) else None
        if arr is not None and arr.ndim == 2:
            self.n_features_in_ = arr.shape[1]
        self.fitted_ = True
        return self

    def transform(self, X):
        """Return ``X`` as network input: :func:`check_images` at ``input_size``."""
        check_is_fitted(self, "fitted_")
        if isinstance(X, np.ndarray) and X.ndim == 2 and hasattr(self, "n_features_in_"):
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        return check_images(X, self.input_size)
