"""Inference of :class:`EmotionClassifier`.

One traced function for small batches, ``Model.predict`` for large ones, and
test-time augmentation.
"""

from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError

from ..nn.eval_crop import center_crop, classifier_crop_pct, crop_tensor, resize_side
from ..nn.folding import folded_model
from ..nn.tta import predict_with_tta, resolve_tta
from . import _scikeras

__all__ = ["FOLD_FROM", "inference_batch_size", "inference_fn", "one_trace_per_model",
           "predict_raw"]

_FN_ATTR = "_fervision_inference_fn"

#: Calls with at least this many faces run the model with batch normalisation folded
#: into its convolutions (:func:`fervision.nn.folding.folded_model`).  Folding costs a
#: fixed time per call (the weights are folded inside it), which pays off on batches
#: and not on a face or two per video frame (``benchmarks/bench_inference.py``).
FOLD_FROM = 16


def one_trace_per_model(fn, depth: int = 3):
    """Mark the ``tf.function`` objects in ``fn`` as traced once per model; return ``fn``.

    The objects: ``fn`` itself, its ``__wrapped__`` and its closure.

    TensorFlow counts traces per Python *code object*, across every function object made
    from it, and warns ("5 out of the last 5 calls to ... triggered tf.function
    retracing") after five.  Keras makes new train/test/predict functions for each new
    model, and so does :func:`inference_fn`; a scikit-learn session (``cross_val_score``,
    ``GridSearchCV``: a new clone, so a new model, per fit) traces each of them once per
    model, which cannot be shared (each model has its own variables), and TensorFlow
    reported those first traces as retracing.  Within one model the functions do not
    retrace for new batch sizes (Keras's ``reduce_retracing=True``; our input signature
    with a free batch dimension).  This sets the flag TensorFlow itself sets on restored
    functions for the same reason; genuine retracing of one function object still counts
    as before for any other code.
    """
    stack, seen = [(fn, 0)], set()
    while stack:
        obj, level = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if hasattr(obj, "_omit_frequent_tracing_warning"):  # a tf.function
            obj._omit_frequent_tracing_warning = True
        if level >= depth:
            continue
        stack.append((getattr(obj, "__wrapped__", None), level + 1))
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                stack.append((cell.cell_contents, level + 1))
            except ValueError:  # an empty cell
                pass
    return fn


def _one_trace_callback():
    import keras

    class OneTracePerModel(keras.callbacks.Callback):
        """Apply :func:`one_trace_per_model` to the functions Keras made for this run.

        The functions of this fit, evaluation or prediction, before their first call.
        """

        def _mark(self, *names):
            for name in names:
                one_trace_per_model(getattr(self.model, name, None))

        def on_train_begin(self, logs=None):
            self._mark("train_function")

        def on_test_begin(self, logs=None):
            self._mark("test_function")

        def on_predict_begin(self, logs=None):
            self._mark("predict_function")

    return OneTracePerModel


def __getattr__(name):  # a Keras class, defined once Keras is needed
    if name == "OneTracePerModel":
        globals()[name] = cls = _one_trace_callback()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inference_fn(model, crop_pct: float = 1.0, *, folded: bool = False):
    """Return a traced ``model(x, training=False)`` behind the centre crop ``crop_pct``.

    The crop is :func:`fervision.nn.eval_crop.center_crop`, the same ops inside the
    graph.  Cached on the model itself, one per crop and ``folded``; with ``folded=True``
    the model runs with its convolutions and batch normalisations folded together
    (:func:`fervision.nn.folding.folded_model`, the same outputs to float32 round-off).

    Cached on the model (not the estimator) so that ``predict`` leaves the estimator's
    ``__dict__`` unchanged (scikit-learn checks this) and a new ``model_`` never reuses
    a stale trace.  Variables are captured by reference, so training the same model
    later needs no retrace.  One input signature with a free batch dimension means one
    trace for any number of faces per frame.  The crop inside the traced function costs
    far less than an eager resize per call (one face per video frame).
    """
    size = int(model.input_shape[1])
    big = resize_side(size, crop_pct)
    fns = model.__dict__.get(_FN_ATTR)
    if fns is None:
        fns = {}
        object.__setattr__(model, _FN_ATTR, fns)  # bypass Keras attribute tracking
    fn = fns.get((big, folded))
    if fn is None:
        import tensorflow as tf

        # Conv -> BatchNorm pairs folded into one convolution (same variables, folded
        # inside each call, so later training of ``model`` is seen): less work per face.
        net = fns.get("folded") if folded else model
        if net is None:
            net = fns["folded"] = folded_model(model)
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = fns[big, folded] = tf.function(
            lambda x: net(crop_tensor(x, crop_pct), training=False), input_signature=[spec])
        one_trace_per_model(fn)
    return fn


def inference_batch_size(est, n: int) -> int:
    """Return the batch size of inference: ``predict__batch_size``, else ``batch_size``.

    SciKeras's ``-1`` means one batch.
    """
    size = est.get_params().get("predict__batch_size", est.batch_size)
    return max(int(n), 1) if size == -1 else (size or 32)


def predict_raw(est, X, **kwargs):
    """Return the probabilities for raw images ``X``.

    The mean over the test-time augmentation views, each seen through the centre crop
    (``crop_pct``) as the exported graph does.
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
    """One forward pass over already-encoded images, through the centre crop.

    ``Model.predict`` costs a data adapter and a predict loop per call: ~30 ms, which
    would dominate one face per video frame, and about half the throughput on batches
    of 48x48 faces.  So images go through :func:`inference_fn` in batches of
    :func:`inference_batch_size`; ``Model.predict`` runs only when something asks for
    its loop (keyword arguments, predict callbacks, routed ``predict__`` parameters).
    """
    crop_pct = classifier_crop_pct(est)
    if kwargs or _scikeras.predict_needs_keras_loop(est):
        X = center_crop(X, crop_pct)
        if not est.run_eagerly:  # made now, so that it is marked before its first trace
            est.model_.make_predict_function()
            one_trace_per_model(est.model_.predict_function)
        args = _scikeras.predict_arguments(est, len(X), **kwargs)
        if "verbose" not in kwargs and "predict__verbose" not in est.get_params():
            args["verbose"] = 0  # ``verbose`` is fit's progress; predict__verbose asks here
        return est.model_.predict(X, **args)
    model = est.model_
    size = inference_batch_size(est, len(X))
    call = ((lambda v: model(center_crop(v, crop_pct), training=False)) if est.run_eagerly
            else inference_fn(model, crop_pct, folded=min(size, len(X)) >= FOLD_FROM))
    parts = [np.asarray(call(X[i:i + size]), dtype=np.float32)
             for i in range(0, len(X), size)]
    if not parts:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
