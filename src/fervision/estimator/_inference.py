"""Inference of :class:`EmotionClassifier`: one traced function for small batches,
``Model.predict`` for large ones, and test-time augmentation."""

from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError

from ..nn.tta import predict_with_tta, resolve_tta
from . import _scikeras

__all__ = ["inference_batch_size", "inference_fn", "predict_raw"]

_FN_ATTR = "_fervision_inference_fn"


def inference_fn(model):
    """A traced ``model(x, training=False)``, cached on the model itself.

    Cached on the model (not the estimator) so that ``predict`` leaves the estimator's
    ``__dict__`` unchanged (scikit-learn checks this) and a new ``model_`` never reuses
    a stale trace.  Variables are captured by reference, so training the same model
    later needs no retrace.  One input signature with a free batch dimension means one
    trace for any number of faces per frame.
    """
    fn = model.__dict__.get(_FN_ATTR)
    if fn is None:
        import tensorflow as tf

        fn = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)],
        )
        object.__setattr__(model, _FN_ATTR, fn)  # bypass Keras attribute tracking
    return fn


def inference_batch_size(est, n: int) -> int:
    """Batch size of inference; SciKeras's ``batch_size=-1`` means one batch."""
    return max(int(n), 1) if est.batch_size == -1 else (est.batch_size or 32)


def predict_raw(est, X, **kwargs):
    """Probabilities for raw images ``X``, with test-time augmentation.

    ``Model.predict`` costs ~30 ms per call (a data adapter and a predict loop), which
    would dominate one face per video frame: batches up to ``batch_size`` go through
    :func:`inference_fn` instead; larger inputs still use ``Model.predict``.
    """
    if not hasattr(est, "model_"):
        raise NotFittedError(
            f"This {type(est).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )
    mode = resolve_tta(est.tta)
    X, _ = est._validate_data(X=X, y=None)
    X = est.feature_encoder_.transform(X)
    return predict_with_tta(lambda v: forward(est, v, **kwargs), X, mode,
                            one_call_below=inference_batch_size(est, len(X)))


def forward(est, X, **kwargs):
    """One forward pass over already-encoded images."""
    small = len(X) <= inference_batch_size(est, len(X))
    if small and not kwargs:
        if est.run_eagerly:
            return np.asarray(est.model_(X, training=False), dtype=np.float32)
        return np.asarray(inference_fn(est.model_)(X), dtype=np.float32)
    return est.model_.predict(X, **_scikeras.predict_arguments(est, len(X), **kwargs))
