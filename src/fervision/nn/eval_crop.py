"""The centre crop a classifier looks through at inference (``crop_pct``).

``crop_pct`` as timm's pretrained configs carry it.

Training's augmentation (:func:`fervision.nn.augmentation.build_augmentation`) cuts a
random square of ``1 - crop`` of the side from every image and resizes it back, so the
network never sees a whole face at scale 1 while it learns; at inference the Keras
crop layer passes the whole image through.  Predicting on the centre ``crop_pct`` of the
face, enlarged back to the input size, shows the network faces at the scale it was
trained on (the train/test resolution discrepancy of Touvron et al., 2019, "Fixing the
train-test resolution discrepancy").  The measured effect on the bundled models is in
``docs/model_card.md``.

The crop is one bilinear resize to ``resize_side(S, crop_pct)`` followed by cutting the
centre ``S x S``.  :meth:`EmotionClassifier.predict_proba` does it inside its traced
inference function (or with :func:`center_crop` before Keras's predict loop), in front
of every network pass, test-time augmentation views included;
:func:`fervision.nn.export.inference_model` does it with Keras's ``Resizing`` and
``CenterCrop`` layers, the same operations, so exported models take the whole face too.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["center_crop", "check_crop_pct", "classifier_crop_pct", "crop_layers",
           "crop_tensor", "resize_side", "resolve_crop_pct"]

# Faces per resize call: bounds the temporary copy (a float32 batch at the enlarged
# side) when a whole dataset is predicted at once.
_CHUNK = 4096


def check_crop_pct(value) -> float:
    """``value`` as a float in (0, 1], or a ``ValueError`` naming it."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not (0 < float(value) <= 1)):
        raise ValueError(f"crop_pct must be 'auto' or a number in (0, 1] (the fraction of "
                         f"the face side kept at inference), got {value!r}")
    return float(value)


def resolve_crop_pct(crop_pct, augment) -> float:
    """Return the fraction of the face a classifier with these parameters predicts on.

    ``"auto"`` matches training's random-resized crop: ``1 - crop`` of the augmentation
    (``augment=True``: :data:`~fervision.nn.augmentation.DEFAULT_CROP`; a dict: its
    ``"crop"``), and 1 (the whole face) without augmentation or with ``crop=0``.
    """
    if not (isinstance(crop_pct, str) and crop_pct == "auto"):
        return check_crop_pct(crop_pct)
    from .augmentation import DEFAULT_CROP

    if augment is True:
        crop = DEFAULT_CROP
    elif isinstance(augment, dict):
        crop = augment.get("crop", DEFAULT_CROP) or 0.0
    else:
        crop = 0.0
    return 1.0 - float(crop) if 0 < crop < 1 else 1.0


def classifier_crop_pct(clf) -> float:
    """Return the fraction of the face ``clf`` predicts on.

    :func:`resolve_crop_pct` of its ``crop_pct`` and ``augment``.  A classifier without
    ``crop_pct`` (pickled before it existed, or not a fervision one) reads as
    ``"auto"``, one without ``augment`` as unaugmented (the whole face).
    """
    return resolve_crop_pct(getattr(clf, "crop_pct", "auto"), getattr(clf, "augment", False))


def resize_side(size: int, crop_pct: float) -> int:
    """Return the side to enlarge an ``size x size`` image to before cutting its centre.

    ``size / crop_pct``, with the margin rounded to whole pixels on each side so that
    the centre ``size x size`` crop stays centred (48 and 0.9 give 54).
    """
    margin = round(float((size / crop_pct - size) / 2))
    return size + 2 * margin


def crop_tensor(x, crop_pct: float):
    """:func:`center_crop` of a batch as Keras ops (a tensor; traceable in a graph)."""
    size = int(x.shape[1])
    big = resize_side(size, crop_pct)
    if big == size:
        return x
    import keras

    m = (big - size) // 2
    x = keras.ops.image.resize(x, (big, big), interpolation="bilinear")
    return x[:, m:m + size, m:m + size, :]


def center_crop(X: np.ndarray, crop_pct: float) -> np.ndarray:
    """Return the centre ``crop_pct`` of each image of a preprocessed batch, resized back.

    Parameters
    ----------
    X : ndarray of shape (N, S, S, C)
        Float images, as :func:`fervision.data.preprocessing.check_images` returns them.
    crop_pct : float in (0, 1]
        Fraction of the side kept; ``1`` (or a value that rounds to no margin) returns
        ``X`` itself.

    Returns
    -------
    ndarray of shape (N, S, S, C), the dtype of ``X``
    """
    if resize_side(X.shape[1], crop_pct) == X.shape[1] or len(X) == 0:
        return X
    out = np.empty_like(X)
    for i in range(0, len(X), _CHUNK):
        out[i:i + _CHUNK] = np.asarray(crop_tensor(X[i:i + _CHUNK], crop_pct))
    return out


def crop_layers(size: int, crop_pct: float) -> list:
    """Keras layers doing :func:`center_crop` inside a model (empty when it is a no-op)."""
    big = resize_side(size, crop_pct)
    if big == size:
        return []
    from keras import layers

    return [layers.Resizing(big, big, interpolation="bilinear", name="crop_resize"),
            layers.CenterCrop(size, size, name="center_crop")]
