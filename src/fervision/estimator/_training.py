"""Training of :class:`EmotionClassifier`.

Class weights, soft targets, callbacks, the stratified validation split, two-phase
transfer learning and the NaN-loss check.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from ..data.preprocessing import check_images
from ..files import atomic_write
from ..nn.callbacks import training_callbacks
from . import _inference, _scikeras
from ._building import base_layer, compile_model
from ._encoders import check_distribution, distribution_classes
from ._inference import inference_batch_size
from ._state import process_state_kept
from ._validation import check_y, validate_params

__all__ = ["PHASE1_WEIGHTS", "fit", "fit_keras_model", "fit_wrapped", "initialize"]

#: Weights after the frozen phase of a resumable transfer-learning fit.
PHASE1_WEIGHTS = "phase1-weights.npz"


def fit(est, X, y, sample_weight=None, target_distribution=None, **kwargs):
    """``EmotionClassifier.fit``: class weights and soft targets, then SciKeras's fit.

    SciKeras multiplies the caller's ``sample_weight`` array in place and cannot do
    "balanced" from unique labels consistently with ``compute_class_weight``.
    """
    est._fixed_classes = None
    validate_params(est)
    if y is None:
        raise ValueError(
            f"{type(est).__name__} requires y to be passed, but the target y is None"
        )
    if target_distribution is not None:
        est._fixed_classes = distribution_classes(target_distribution, check_y(y))
    if est.class_weight is not None:
        y_arr = check_y(y)
        classes = np.unique(y_arr)
        cw = compute_class_weight(est.class_weight, classes=classes, y=y_arr)
        per_sample = cw[np.searchsorted(classes, y_arr)]
        sample_weight = per_sample if sample_weight is None else (
            np.asarray(sample_weight, dtype=np.float64) * per_sample)
    est.classes_ = None
    kwargs["epochs"] = kwargs.get("epochs", getattr(est, "fit__epochs", est.epochs))
    kwargs["initial_epoch"] = kwargs.get("initial_epoch", 0)
    # Read by fit_keras_model (after SciKeras has encoded y) and compile_model.
    est._soft_targets = target_distribution
    try:
        est._fit(X=X, y=y, sample_weight=sample_weight, warm_start=est.warm_start,
                 **kwargs)
    finally:
        est._soft_targets = None
    return est


def fit_wrapped(est, X, y, **kwargs):
    """Run SciKeras's ``_fit`` (``fit`` and ``partial_fit`` both land there).

    After the parameter checks, and leaving process-wide seeds, determinism and policy
    as found.
    """
    validate_params(est)
    with process_state_kept():
        return _scikeras.parent_fit(est, X, y, **kwargs)


def initialize(est, X, y):
    validate_params(est)
    with process_state_kept():
        return _scikeras.parent_initialize(est, X, y)


def check_finite_loss(est) -> None:
    """Leave the estimator unfitted when the loss became NaN.

    TerminateOnNaN stops Keras at the first non-finite batch loss; the weights are then
    NaN and every prediction would be argmax(NaN) = the first class.
    """
    losses = np.asarray(getattr(est, "history_", {}).get("loss", []), dtype=float)
    if np.isfinite(losses).all():
        return
    epoch = int(np.argmin(np.isfinite(losses))) + 1
    for attr in ("model_", "history_"):
        est.__dict__.pop(attr, None)
    raise FloatingPointError(
        f"training diverged: the loss became NaN or infinite in epoch {epoch} "
        f"(learning_rate={est.learning_rate!r}); the model is discarded and the "
        "estimator is not fitted.  Lower learning_rate, and check the images and "
        "sample_weight for NaN or infinite values."
    )


def _monitor(est):
    has_val = est.validation_data is not None or (est.validation_split or 0) > 0
    return "val_loss" if has_val else "loss"


def _callbacks(est, backup_name="backup"):
    # TerminateOnNaN first: no checkpoint or backup of NaN weights after it fires.
    # OneTracePerModel: no "tf.function retracing" warning for a new model's first trace.
    return [keras.callbacks.TerminateOnNaN(), _inference.OneTracePerModel(), *training_callbacks(
        monitor=_monitor(est), early_stopping=est.early_stopping,
        reduce_lr=est.reduce_lr, checkpoint_dir=est.checkpoint_dir,
        keep_checkpoints=est.keep_checkpoints, resume=est.resume,
        backup_name=backup_name)]


def _encoded_validation_data(est):
    if est.validation_data is None:
        return None
    try:
        X_val, y_val = est.validation_data
    except (TypeError, ValueError):
        raise ValueError("validation_data must be a tuple (X_val, y_val)") from None
    Xv = check_images(X_val, est.input_size, name="validation_data X")
    yv = check_y(y_val)
    if len(Xv) != len(yv):
        raise ValueError(f"validation_data has {len(Xv)} images but {len(yv)} labels")
    return Xv, est.target_encoder_.transform(yv)


def _keras_fit(est, X, y, sample_weight, **kwargs):
    _scikeras.parent_fit_keras_model(est, X, y, sample_weight=sample_weight, **kwargs)
    check_finite_loss(est)


def fit_keras_model(est, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs):
    """Run SciKeras's ``_fit_keras_model`` with the training callbacks and validation data.

    Split into two phases for transfer learning; then precise BatchNorm statistics.

    Each phase is SciKeras's own ``_fit_keras_model``, so ``history_`` and
    ``random_state`` handling stay SciKeras's.
    """
    soft = getattr(est, "_soft_targets", None)
    if soft is not None:  # the fit's label distribution replaces the one-hot y
        y = check_distribution(soft, est.classes_, len(X))
    user_callbacks = _scikeras.fit_callbacks(est)
    _scikeras.set_fit_callbacks(est, user_callbacks + _callbacks(est))
    val = _encoded_validation_data(est)
    if val is not None:
        kwargs["validation_data"] = val
    elif (est.validation_split or 0) > 0:
        X, y, sample_weight, kwargs["validation_data"] = stratified_split(
            est, X, y, sample_weight)
    # Keras's own validation_split takes the *last* samples: with image folders
    # loaded class by class that is one or two classes only, so it is never used.
    kwargs["validation_split"] = 0.0
    base = base_layer(est.model_)
    fresh = getattr(est, "_fresh_model", False)
    est._fresh_model = False
    try:
        if base is None or est.weights is None or not fresh:
            _keras_fit(est, X, y, sample_weight, warm_start=warm_start, epochs=epochs,
                       initial_epoch=initial_epoch, **kwargs)
        else:
            _fit_two_phases(est, X, y, sample_weight, warm_start, epochs, initial_epoch,
                            base, user_callbacks, **kwargs)
        if est.precise_bn:
            from ..nn.batchnorm import recalibrate_batchnorm

            recalibrate_batchnorm(est.model_, X,
                                  batch_size=max(inference_batch_size(est, len(X)), 64),
                                  progress=bool(est.verbose), seed=0)
    finally:
        _scikeras.set_fit_callbacks(est, user_callbacks)


def _save_weights(model, path: Path) -> None:
    # The model's variables only (Model.save_weights would add the optimizer of the
    # phase that just ended, which does not fit the next phase's), written whole or
    # not at all, so an interruption never leaves a truncated file a resume would trust.
    weights = model.get_weights()
    atomic_write(path, lambda f: np.savez(f, *weights))


def _load_weights(model, path: Path) -> None:
    with np.load(path, allow_pickle=False) as saved:
        model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])


def _fit_two_phases(est, X, y, sample_weight, warm_start, epochs, initial_epoch, base,
                    user_callbacks, **kwargs):
    """Transfer learning: head with the base frozen, then the top of the base.

    With ``resume=True`` each phase keeps its own Keras backup (Keras deletes a backup
    when its fit ends), and the weights after the frozen phase are kept in
    ``checkpoint_dir/phase1-weights.npz`` until the whole fit ends: an interruption in
    the fine-tuning phase resumes there instead of training the head again.
    """
    n1 = epochs // 2 if est.freeze_epochs is None else int(est.freeze_epochs)
    n1 = max(0, min(n1, epochs))
    phase1 = Path(est.checkpoint_dir) / PHASE1_WEIGHTS if est.resume else None
    if n1 and phase1 is not None and phase1.is_file():
        _load_weights(est.model_, phase1)
    elif n1:
        base.trainable = False
        compile_model(est, est.model_, est.learning_rate)
        _scikeras.set_fit_callbacks(est, user_callbacks + _callbacks(est, "backup-phase1"))
        _keras_fit(est, X, y, sample_weight, warm_start=warm_start, epochs=n1,
                   initial_epoch=initial_epoch, **kwargs)
        if phase1 is not None:
            _save_weights(est.model_, phase1)
    if epochs - n1:
        unfreeze_top(base, est.fine_tune_layers)
        lr = est.fine_tune_learning_rate
        lr = est.learning_rate / 10 if lr is None else lr
        compile_model(est, est.model_, lr)
        # Fresh callback objects: EarlyStopping/ReduceLROnPlateau keep state.
        _scikeras.set_fit_callbacks(est, user_callbacks + _callbacks(est, "backup-phase2"))
        _keras_fit(est, X, y, sample_weight, warm_start=bool(n1) or warm_start,
                   epochs=epochs - n1, initial_epoch=initial_epoch + n1, **kwargs)
    if phase1 is not None:
        phase1.unlink(missing_ok=True)


def stratified_split(est, X, y, sample_weight):
    """Hold out ``validation_split`` of the samples, stratified by class."""
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    strata = y.argmax(axis=1) if y.ndim == 2 else y
    index = np.arange(len(X))
    try:
        train, val = train_test_split(index, test_size=est.validation_split,
                                      random_state=est.random_state, stratify=strata)
    except ValueError:  # a class with a single sample cannot be stratified
        train, val = train_test_split(index, test_size=est.validation_split,
                                      random_state=est.random_state)
    weights = None if sample_weight is None else np.asarray(sample_weight)[train]
    return X[train], y[train], weights, (X[val], y[val])


def unfreeze_top(base, n) -> None:
    """Make the top ``n`` (or ``"all"``) layers of ``base`` trainable."""
    base.trainable = True
    layers = base.layers
    if n == "all":
        n = len(layers)
    if not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"fine_tune_layers must be a non-negative int or 'all', got {n!r}")
    cut = len(layers) - int(n)
    for i, layer in enumerate(layers):
        # BatchNormalization stays in inference mode: updating its statistics on a
        # small dataset destroys what the pretrained base learned.
        layer.trainable = i >= cut and not isinstance(
            layer, keras.layers.BatchNormalization)
    if n == 0:
        base.trainable = False
