"""Knowledge distillation: train a student classifier on a teacher's probabilities.

The teacher (any fitted classifier with ``predict_proba`` and ``classes_``, e.g. an
ensemble with 12-view test-time augmentation) is run **once** over the training images;
its probabilities are cached on disk, keyed by the images and the teacher, so a second
student or a resumed run does not pay for the teacher again.  The student then fits on a
mixture of the teacher's (optionally temperature-softened) probabilities and the
dataset's own targets, through :meth:`EmotionClassifier.fit`'s ``target_distribution``::

    from fervision.nn.distillation import distill
    student = distill(EmotionClassifier(backbone="fernet_tiny"), teacher, X, y,
                      alpha=0.7, cache="teacher-train.npz")

``alpha`` is the teacher's share of the target (1 = pure distillation, 0 = the labels
alone); the dataset's targets may be hard labels or a distribution such as FER+ votes.

A cached teacher has seen each face once, un-augmented, while the student learns from
augmented copies: the target does not follow the view.  :func:`consistent_targets` runs
the teacher on each augmented batch instead ("consistent teaching", Beyer et al. 2022),
at the cost of a teacher pass per training step.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..estimator._encoders import check_distribution
from ..files import atomic_write
from .eval_crop import classifier_crop_pct

__all__ = ["consistent_targets", "distill", "distillation_targets", "soften",
           "teacher_probabilities"]

_CACHE_FORMAT = "fervision.teacher_probabilities.v1"


def _fingerprint(teacher, X) -> str:
    """sha256 over the images and everything about the teacher that changes its output."""
    h = hashlib.sha256()
    arr = np.ascontiguousarray(X) if isinstance(X, np.ndarray) else None
    if arr is None:  # a list of images of different sizes
        for img in X:
            a = np.ascontiguousarray(img)
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(a.tobytes())
    else:
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(arr.tobytes())
    h.update(repr(np.asarray(teacher.classes_).tolist()).encode())
    h.update(repr({k: getattr(teacher, k, None) for k in ("tta", "input_size")}).encode())
    crop_pct = classifier_crop_pct(teacher)  # the centre crop it predicts on; the whole
    if crop_pct != 1.0:  # face adds nothing, so caches from before crop_pct stay valid
        h.update(f"crop_pct={crop_pct!r}".encode())
    model = getattr(teacher, "model_", None)
    if model is not None:
        for w in model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
    else:  # not a Keras-backed classifier: its pickle-free repr is the best we have
        h.update(repr(teacher).encode())
    return h.hexdigest()


def teacher_probabilities(teacher, X, *, cache=None, batch_size: int = 256,
                          progress=None) -> np.ndarray:
    """Return the teacher's ``predict_proba(X)``, computed once and cached.

    Parameters
    ----------
    teacher : fitted classifier
        Anything with ``predict_proba`` and ``classes_`` (its ``tta`` setting applies).
    X : array-like or list of images
        The student's training images.
    cache : str or path-like, optional
        An ``.npz`` file.  If it holds the probabilities of this teacher on these images
        (same sha256 fingerprint of images, classes, TTA setting, centre crop and
        weights) they are read from it; otherwise they are computed and the file is
        written (whole or not at all).  A file that is not such a cache is never replaced.
    batch_size : int, default=256
        Images per ``predict_proba`` call.
    progress : bool, optional
        Show a tqdm progress bar on stderr while the teacher runs (default: for more
        than 2,000 images; a many-view teacher takes minutes over a training set).

    Returns
    -------
    ndarray of shape (n_samples, n_teacher_classes), float32
        Columns in the order of ``teacher.classes_``.
    """
    key = _fingerprint(teacher, X) if cache is not None else None
    path = Path(cache) if cache is not None else None
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt, stored_key = str(data["format"]), str(data["key"])
                proba = data["proba"]
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"cache {str(path)!r} is not a teacher-probabilities file "
                             f"({err}); not replaced: choose another path") from None
        if fmt != _CACHE_FORMAT:
            raise ValueError(f"cache {str(path)!r} is not a teacher-probabilities file; not "
                             "replaced: choose another path")
        if stored_key == key:
            return proba.astype(np.float32)
    n = len(X)
    show = progress if progress is not None else n > 2000
    parts = []
    with tqdm(total=n, desc="teacher", unit="img", disable=not show,
              file=sys.stderr) as bar:
        for i in range(0, n, batch_size):
            parts.append(np.asarray(teacher.predict_proba(X[i:i + batch_size]),
                                    dtype=np.float32))
            bar.update(len(parts[-1]))
    proba = np.concatenate(parts) if parts else np.zeros((0, len(teacher.classes_)),
                                                         np.float32)
    if path is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, format=_CACHE_FORMAT, key=key, proba=proba,
                            classes=np.asarray(teacher.classes_).astype(str))
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return proba


def _check_alpha(alpha) -> None:
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")


def _check_temperature(temperature) -> None:
    if not (isinstance(temperature, int | float) and np.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


def soften(proba, temperature: float = 1.0) -> np.ndarray:
    """Raise probabilities to ``1 / temperature`` and renormalise (Hinton et al., 2015).

    ``temperature > 1`` flattens the distribution, showing the student which wrong
    classes the teacher found plausible; 1 leaves it unchanged.
    """
    _check_temperature(temperature)
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-12, None)
    logp = np.log(p) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _class_map(teacher_classes, classes) -> np.ndarray:
    """(n_teacher, n_student) 0/1 matrix sending teacher columns to the student's by name."""
    classes = np.asarray(classes).tolist()
    teacher_classes = np.asarray(teacher_classes).tolist()
    if not set(classes) & set(teacher_classes):
        raise ValueError(f"the teacher's classes {teacher_classes} share none with "
                         f"{classes}")
    return np.array([[float(t == c) for c in classes] for t in teacher_classes], np.float32)


def consistent_targets(dataset, augmentation, teacher_model, teacher_classes, classes, *,
                       alpha: float = 0.5, temperature: float = 1.0, tta=False):
    """Augment each batch and make its targets from the teacher on that very view.

    Parameters
    ----------
    dataset : tf.data.Dataset
        Batches of ``(images, targets)``, targets one-hot or distributions over
        ``classes``.
    augmentation : keras layer
        Called with ``training=True`` on each batch (e.g. the block
        :func:`~fervision.nn.augmentation.split_augmentation` takes off the student).
    teacher_model : keras.Model
        Maps images to probabilities over ``teacher_classes``; run in inference mode on
        the augmented images as they are (no centre crop: the augmentation already shows
        faces at the scale the networks were trained on).
    teacher_classes, classes : array-like
        Column names of the teacher's output and of ``targets``; teacher columns are
        matched by name, a student class the teacher does not know gets none.
    alpha : float in [0, 1], default=0.5
        The teacher's share of each target.
    temperature : float, default=1.0
        Softening of the teacher's probabilities (see :func:`soften`).
    tta : bool or "flip", default=False
        ``True``/``"flip"``: the teacher's probabilities are the mean over the view and
        its mirror (:mod:`fervision.nn.tta`), a second teacher pass per step.  ``"crops"``
        is refused: the view is already a random crop.

    Returns
    -------
    tf.data.Dataset
        Batches of ``(augmented images, alpha * teacher + (1 - alpha) * targets)``, to fit
        the student's layers after its augmentation block on.
    """
    import tensorflow as tf

    from .tta import resolve_tta

    _check_alpha(alpha)
    _check_temperature(temperature)
    mode = resolve_tta(tta)
    mirror = mode is not None
    if mode == "crops":
        raise ValueError("tta='crops' does not apply to consistent teaching: the student's "
                         "view is already a random crop; use False or 'flip'")
    class_map = tf.constant(_class_map(teacher_classes, classes))
    inv_t = 1.0 / float(temperature)

    def teach(x, y):
        x = augmentation(x, training=True)
        if mirror:
            # one teacher call on view and mirror together (as predict_with_tta does for
            # small batches), then the mean of the two halves
            both = tf.cast(teacher_model(tf.concat([x, tf.reverse(x, axis=[2])], 0),
                                         training=False), tf.float32)
            p = tf.reduce_mean(tf.reshape(both, [2, -1, tf.shape(both)[-1]]), axis=0)
        else:
            p = tf.cast(teacher_model(x, training=False), tf.float32)
        if inv_t != 1.0:
            p = tf.nn.softmax(inv_t * tf.math.log(tf.maximum(p, 1e-12)), axis=-1)
        p = tf.matmul(p, class_map)
        p /= tf.maximum(tf.reduce_sum(p, axis=-1, keepdims=True), 1e-12)
        y = tf.cast(y, tf.float32)
        return x, alpha * p + (1.0 - alpha) * y

    # Sequential map: the random layers' seed state advances batch by batch, and the
    # teacher's pass already uses every core.
    return dataset.map(teach)


def distillation_targets(teacher_proba, teacher_classes, classes, *, y=None,
                         target_distribution=None, alpha: float = 0.5,
                         temperature: float = 1.0) -> np.ndarray:
    """Mix a teacher's probabilities with the dataset's targets.

    Parameters
    ----------
    teacher_proba : ndarray of shape (n_samples, n_teacher_classes)
        From :func:`teacher_probabilities`.
    teacher_classes : array-like
        The teacher's ``classes_`` (column names of ``teacher_proba``).
    classes : array-like
        The student's classes (sorted labels); teacher columns are matched by name, and
        a student class the teacher does not know gets no teacher probability.
    y : array-like of shape (n_samples,), optional
        Hard labels (one-hot in the mixture).
    target_distribution : array-like of shape (n_samples, n_classes), optional
        A label distribution (e.g. FER+ votes) used instead of ``y``.
    alpha : float in [0, 1], default=0.5
        The teacher's share.
    temperature : float, default=1.0
        Passed to :func:`soften`.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), float32; rows sum to 1.
    """
    _check_alpha(alpha)
    classes = np.asarray(classes)
    mapped = soften(teacher_proba, temperature) @ _class_map(teacher_classes, classes)
    mapped /= np.clip(mapped.sum(axis=1, keepdims=True), 1e-12, None)
    if alpha == 1.0:
        return mapped
    if target_distribution is not None:
        own = check_distribution(target_distribution, classes, len(mapped))
    elif y is not None:
        y = np.asarray(y)
        index = {c: i for i, c in enumerate(classes.tolist())}
        own = np.zeros_like(mapped)
        own[np.arange(len(y)), [index[v] for v in y.tolist()]] = 1.0
    else:
        raise ValueError("alpha < 1 needs the dataset's targets: pass y or "
                         "target_distribution")
    return (alpha * mapped + (1.0 - alpha) * own).astype(np.float32)


def distill(student, teacher, X, y, *, target_distribution=None, alpha: float = 0.5,
            temperature: float = 1.0, cache=None, **fit_params):
    """Fit ``student`` on ``X`` with targets mixed from ``teacher`` and the dataset.

    Parameters
    ----------
    student : EmotionClassifier
        Unfitted (or ``warm_start``) student.
    teacher : fitted classifier
        See :func:`teacher_probabilities`.
    X : array-like or list of images
    y : array-like of shape (n_samples,)
        Hard labels: they set the student's ``classes_`` and what its ``score``
        compares with.
    target_distribution : array-like, optional
        The dataset's label distribution, used in the mixture instead of ``y``.
    alpha, temperature : float
        See :func:`distillation_targets`.
    cache : str or path-like, optional
        See :func:`teacher_probabilities`.
    **fit_params
        Passed to ``student.fit``.

    Returns
    -------
    student : the fitted student.
    """
    from ..estimator._encoders import distribution_classes

    proba = teacher_probabilities(teacher, X, cache=cache)
    classes = distribution_classes(target_distribution, y) if target_distribution is not None \
        else None
    classes = np.unique(np.asarray(y)) if classes is None else classes
    targets = distillation_targets(proba, teacher.classes_, classes, y=y,
                                   target_distribution=target_distribution, alpha=alpha,
                                   temperature=temperature)
    if len(classes) != len(np.unique(np.asarray(y))):
        import pandas as pd  # named columns keep the classes y lacks (a CV fold)

        targets = pd.DataFrame(targets, columns=classes)
    return student.fit(X, y, target_distribution=targets, **fit_params)
