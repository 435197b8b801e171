"""Test-time augmentation: the views ``EmotionClassifier(tta=...)`` averages.

``"flip"`` averages an image and its mirror.  ``"crops"`` adds the five crops that
training's random-resized-crop augmentation draws from (four corners and the centre,
each ``1 - crop`` of the side, resized back) and their mirrors: 12 views.  Views are
built from the already-preprocessed (N, S, S, C) float batch, so every caller of the
classifier (detector pipeline, video, app) gets the same views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import keras
import numpy as np

from .augmentation import DEFAULT_CROP

__all__ = ["TTA_MODES", "predict_with_tta", "resolve_tta", "tta_views"]

#: Accepted values of ``tta`` (besides True = "flip" and False/None = off).
TTA_MODES = ("flip", "crops")

#: Crop fraction of the "crops" views: training's ``build_augmentation(crop=0.1)``.
CROP = DEFAULT_CROP


def resolve_tta(tta) -> str | None:
    """Normalise a ``tta`` parameter: None (off), ``"flip"`` or ``"crops"``."""
    if tta is None or tta is False:
        return None
    if tta is True:
        return "flip"
    if isinstance(tta, str) and tta in TTA_MODES:
        return tta
    raise ValueError(f"tta must be False, True, 'flip' or 'crops', got {tta!r}")


def n_views(mode: str | None) -> int:
    """Return the number of views a mode averages (1 when off)."""
    return {None: 1, "flip": 2, "crops": 12}[mode]


def _crops(X: np.ndarray, crop: float) -> list[np.ndarray]:
    size = X.shape[1]
    side = round(float(size * (1.0 - crop)))
    if not 0 < side < size:
        return []
    far = size - side
    corners = ((0, 0), (0, far), (far, 0), (far, far), (far // 2, far // 2))
    patches = np.concatenate([X[:, oy:oy + side, ox:ox + side, :] for oy, ox in corners])
    # One bilinear resize for all five (as the Resizing layer that follows RandomCrop
    # in training): a resize call costs more than the arithmetic on a few faces.
    resized = np.asarray(keras.ops.image.resize(patches, (size, size),
                                                interpolation="bilinear"), dtype=X.dtype)
    return np.split(resized, len(corners))


def tta_views(X: np.ndarray, mode: str | None, crop: float = CROP) -> Iterator[np.ndarray]:
    """Yield the views of a preprocessed batch (N, S, S, C) for one TTA mode.

    Parameters
    ----------
    X : ndarray of shape (N, S, S, C)
        Output of :func:`fervision.data.preprocessing.check_images`.
    mode : {None, "flip", "crops"}
        See :func:`resolve_tta`.
    crop : float, default=0.1
        For ``"crops"``: each crop's side is ``1 - crop`` of the image side.

    Yields
    ------
    ndarray of shape (N, S, S, C)
        The image itself first, then its mirror, then each crop and its mirror.
    """
    yield X
    if mode is None:
        return
    yield X[:, :, ::-1, :]
    if mode == "crops":
        for view in _crops(X, crop):
            yield view
            yield view[:, :, ::-1, :]


def predict_with_tta(forward: Callable[[np.ndarray], np.ndarray], X: np.ndarray,
                     mode: str | None, *, one_call_below: int = 32) -> np.ndarray:
    """Mean of ``forward`` over the views of ``X``.

    Small batches (``len(X) * views <= one_call_below``, e.g. one face per video frame)
    go through ``forward`` in a single call, since per-call overhead dominates there;
    larger ones view by view, so memory stays that of one view.
    """
    if mode is None:
        return forward(X)
    if len(X) * n_views(mode) <= one_call_below:
        views = list(tta_views(X, mode))
        out = forward(np.concatenate(views))
        return out.reshape(len(views), len(X), *out.shape[1:]).mean(axis=0)
    total, k = None, 0
    for view in tta_views(X, mode):
        p = np.asarray(forward(np.ascontiguousarray(view)), dtype=np.float64)
        total = p if total is None else total + p
        k += 1
    # k, not n_views(mode): images too small to crop (side <= 4 px) get no crop views.
    return (total / k).astype(np.float32)
