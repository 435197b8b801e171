"""``EmotionClassifier``: a scikit-learn classifier over a Keras 3 image model.

It is a :class:`scikeras.wrappers.KerasClassifier` and uses SciKeras's seams rather
than replacing ``fit``/``predict``:

* ``feature_encoder`` -> :class:`fervision.preprocessing.ImageEncoder` (the one
  preprocessing path shared with detection, video and the app);
* ``target_encoder`` -> :class:`LabelEncoder` (always one-hot, ``classes_`` in
  scikit-learn's order, a softmax unit per class even for two classes);
* ``_keras_build_fn`` -> :func:`fervision.backbones.create_model` with
  :func:`fervision.augmentation.build_augmentation`, compiled with Adam/AdamW and a
  label-smoothed categorical cross-entropy.  SciKeras routing (``model__``,
  ``optimizer__``, ``callbacks__``, ``fit__``, ``predict__``) keeps working.

Overridden on purpose (each override says why): ``_validate_data`` (images are not
2-D tabular data), ``_fit_keras_model`` (two transfer-learning phases and the
training callbacks), ``_ensure_compiled_model`` (a loaded model must be compiled
with *our* loss and optimizer, not SciKeras's defaults) and ``_predict_raw`` (fast
small-batch inference without ``Model.predict``'s per-call overhead, and TTA).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import numbers
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
from scikeras._utils import (
    get_optimizer_class,
    route_params,
    try_to_convert_strings_to_classes,
    unflatten_params,
)
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import type_of_target

from .augmentation import build_augmentation
from .backbones import BASE_NAME, create_model
from .callbacks import training_callbacks
from .precision import dtype_policy
from .preprocessing import ImageEncoder, check_images, flat_features
from ._targets import check_distribution, distribution_classes
from .tta import predict_with_tta, resolve_tta

__all__ = ["EmotionClassifier", "LabelEncoder"]

#: Name of the metadata entry ``save`` adds to the ``.keras`` zip archive.
METADATA_ENTRY = "fervision.json"
_FORMAT = "fervision.EmotionClassifier"
_FORMAT_VERSION = 1
#: Weights after the frozen phase of a resumable transfer-learning fit.
PHASE1_WEIGHTS = "phase1-weights.npz"


#: Parameters a loaded model file does not restore: they name places on disk.
_LOCAL_PARAMS = frozenset({"checkpoint_dir", "resume"})


def _bundled_model_path() -> Path:
    """Where the package's default model lives (package data, no network)."""
    return Path(str(importlib.resources.files("fervision") / "models" / "default.keras"))


class LabelEncoder(TransformerMixin, BaseEstimator):
    """One-hot target encoder for :class:`EmotionClassifier` (its ``target_encoder``).

    SciKeras's ``ClassifierLabelEncoder`` encodes two-class targets as a single 0/1
    column; the network always ends in a softmax with one unit per class, so targets
    are always one-hot here.

    Parameters
    ----------
    classes : array-like or None, default=None
        Fixed class order (e.g. the output order of a wrapped Keras model).  ``None``
        takes ``np.unique(y)``, scikit-learn's order.

    Attributes
    ----------
    classes_ : ndarray
        Class labels; column ``i`` of the probabilities is ``classes_[i]``.
    n_classes_ : int
        Number of classes.
    """

    def __init__(self, classes=None):
        self.classes = classes

    def fit(self, y):
        y = np.asarray(y)
        if self.classes is not None:
            self.classes_ = np.asarray(self.classes)
        else:
            target_type = type_of_target(y, input_name="y")
            if target_type not in ("binary", "multiclass"):
                raise ValueError(
                    f"Unknown label type: {target_type!r}. EmotionClassifier needs one class "
                    "label (string or integer) per image."
                )
            self.classes_ = np.unique(y)
        self.n_classes_ = len(self.classes_)
        self._index = {c: i for i, c in enumerate(self.classes_.tolist())}
        return self

    def transform(self, y):
        y = np.asarray(y).tolist()
        try:
            idx = np.fromiter((self._index[v] for v in y), dtype=np.int64, count=len(y))
        except KeyError as err:
            raise ValueError(
                f"y contains label {err.args[0]!r} not seen in fit; known classes: "
                f"{self.classes_.tolist()}"
            ) from None
        onehot = np.zeros((len(y), self.n_classes_), dtype=np.float32)
        onehot[np.arange(len(y)), idx] = 1.0
        return onehot

    def inverse_transform(self, proba, return_proba=False):
        proba = np.asarray(proba)
        if return_proba:
            return proba
        return self.classes_[np.argmax(proba, axis=1)]

    def get_metadata(self):
        """Attributes SciKeras copies onto the classifier after fitting."""
        return {"classes_": self.classes_, "n_classes_": self.n_classes_,
                "n_outputs_expected_": 1}


_FN_ATTR = "_fervision_inference_fn"


def _inference_fn(model):
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


def _resolve_strategy(strategy):
    if strategy is None:
        return None
    import tensorflow as tf

    if isinstance(strategy, str):
        key = strategy.lower()
        if key == "default":
            return tf.distribute.get_strategy()
        if key == "mirrored":
            return tf.distribute.MirroredStrategy()
        if key == "multiworker":
            # Works only if no TensorFlow op has run yet in this process (collective
            # ops are configured at start-up); a script can create the strategy first.
            return _resolve_strategy(tf.distribute.MultiWorkerMirroredStrategy())
        raise ValueError(
            f"distribution_strategy={strategy!r}: expected None, 'default', 'mirrored', "
            "'multiworker' or a tf.distribute.Strategy"
        )
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            f"distribution_strategy must be a tf.distribute.Strategy or a string, got "
            f"{type(strategy).__name__}"
        )
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from ._keras_compat import patch_multiworker_fit

        patch_multiworker_fit()  # Keras 3's fit fails with several workers otherwise
    return strategy


def _save_weights_atomic(model, path: Path) -> None:
    # The model's variables only (Model.save_weights would add the optimizer of the
    # phase that just ended, which does not fit the next phase's).  Written beside
    # the target and renamed, so an interruption never leaves a truncated file that a
    # resume would trust.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, *model.get_weights())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_weights(model, path: Path) -> None:
    with np.load(path, allow_pickle=False) as saved:
        model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])


@contextlib.contextmanager
def _process_state_kept():
    """Leave process-wide random and numeric state as it was before the block.

    A seeded fit seeds Python's, NumPy's, TensorFlow's and Keras's global generators
    and, through SciKeras, turns on TensorFlow op determinism.  SciKeras restores
    determinism only when it saw it off, and it asks after setting
    ``TF_DETERMINISTIC_OPS=1``: TensorFlow reads that variable the first time it is
    asked, so in a fresh process SciKeras sees determinism "already on" and leaves it
    on, and every later unseeded fit fails with "Random ops require a seed".  Asking
    here first records the real state, which is restored afterwards together with the
    seeds and the Keras dtype policy.
    """
    import random

    import tensorflow as tf
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config as tf_config

    keras_keys = (GLOBAL_RANDOM_SEED, GLOBAL_SEED_GENERATOR)
    saved_env = os.environ.get("TF_DETERMINISTIC_OPS")
    determinism = tf_config.is_op_determinism_enabled()
    py_state, np_state = random.getstate(), np.random.get_state()
    tf_seed = context.global_seed()
    keras_state = {k: global_state.get_global_attribute(k) for k in keras_keys}
    policy = keras.config.dtype_policy()
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("TF_DETERMINISTIC_OPS", None)
        else:
            os.environ["TF_DETERMINISTIC_OPS"] = saved_env
        if tf_config.is_op_determinism_enabled() != determinism:
            if determinism:
                tf_config.enable_op_determinism()
            else:
                tf_config.disable_op_determinism()
        random.setstate(py_state)
        np.random.set_state(np_state)
        if tf_seed != context.global_seed():
            tf.random.set_seed(tf_seed)
        for key, value in keras_state.items():
            global_state.set_global_attribute(key, value)
        keras.config.set_dtype_policy(policy)


def _check_label_types(y) -> None:
    """Refuse labels that mix strings and numbers (their order is undefined)."""
    text = number = None
    for value in y.ravel():
        if isinstance(value, str | bytes):
            text = value if text is None else text
        elif isinstance(value, numbers.Number) and not (
                isinstance(value, float) and value != value):  # NaN is reported later
            number = value if number is None else number
    if text is not None and number is not None:
        raise ValueError(
            f"y mixes string and numeric labels (e.g. {text!r} and {number!r}); use one "
            "type for every label, e.g. all class names or all integers"
        )


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class EmotionClassifier(KerasClassifier):
    """Facial-emotion classifier: scikit-learn API over a Keras 3 CNN.

    Images go through :func:`fervision.preprocessing.check_images`: grayscale, resized to
    ``input_size`` x ``input_size``, float in [0, 1].  Accepted ``X``:

    * ``(N, H, W)``, ``(N, H, W, 1)`` (grayscale) or ``(N, H, W, 3)`` (RGB) arrays of
      any size, uint8 0-255 or float 0-1, or a list of such images of different sizes;
    * ``(N, D)``: each row is a *flattened grayscale image* (FER2013's ``pixels``
      column).  When ``D`` is not a perfect square the row is zero-padded at the end to
      the next square (``D = 2000`` -> 45 x 45).  Tabular data therefore works (this is
      how scikit-learn's estimator checks drive it) but is treated as a tiny image.

    Labels may be strings or integers; ``classes_`` is sorted as scikit-learn sorts it.

    Parameters
    ----------
    backbone : str or callable, default="fernet"
        A name from :func:`fervision.backbones.list_backbones` (``"fernet"``,
        ``"fernet_tiny"``, ``"cnn"``, ``"resnet50"``, ``"efficientnetb0"``, ...) or a
        builder ``builder(x, *, weights=None) -> tensor``.
    input_size : int, default=48
        Side of the square grayscale images the network sees.  ImageNet backbones
        (``"resnet50"``, ...) upsample smaller images to
        :data:`fervision.backbones.APPLICATION_MIN_SIDE` (96) inside the model, the
        smallest size at which their pretrained filters transfer well.
    weights : None, "imagenet" or path, default=None
        Initial weights of the pretrained ``"base"`` of application backbones
        (``"imagenet"`` downloads through Keras into ``~/.keras/models`` on first use,
        and fails with a clear error offline; a path is a ``.weights.h5`` file of the
        base).  ``None`` with an application backbone trains it from scratch, which
        rarely works on small faces and warns.  With weights, fitting first trains the head with the base frozen, then
        fine-tunes the top of the base (see ``freeze_epochs``).
    freeze_epochs : int or None, default=None
        Phase-1 epochs (base frozen) when the model has a pretrained base; the remaining
        ``epochs - freeze_epochs`` epochs fine-tune.  ``None`` means ``epochs // 2``.
        Ignored (no freezing) when ``weights`` is None or the model has no ``"base"``.
    fine_tune_layers : int or "all", default=20
        How many of the base's top layers are unfrozen in phase 2 (BatchNormalization
        layers stay frozen, as in Keras's transfer-learning guide).  0 keeps the whole
        base frozen.
    fine_tune_learning_rate : float or None, default=None
        Learning rate of phase 2; ``None`` means ``learning_rate / 10``.
    augment : bool or dict, default=True
        Training-time augmentation layers (identity at inference).  A dict is passed to
        :func:`fervision.augmentation.build_augmentation` (``rotation``, ``zoom``,
        ``flip``, ...).  ``False`` turns augmentation off.
    epochs : int, default=30
        Training epochs.
    batch_size : int, default=64
        Training batch size; prediction batches up to this size call the Keras model
        directly (no ``Model.predict`` overhead).  ``-1`` puts all samples in one batch.
    learning_rate : float, default=1e-3
        Initial learning rate (finite, >= 0).  A fit whose loss becomes NaN stops and
        raises ``FloatingPointError``, leaving the estimator unfitted.
    optimizer : {"adam", "adamw"}, str, class or instance, default="adam"
        Keras optimizer; ``optimizer__<name>`` parameters are passed to its constructor
        (e.g. ``optimizer__weight_decay=1e-4`` with ``"adamw"``).
    label_smoothing : float, default=0.1
        Label smoothing of the categorical cross-entropy.
    validation_split : float, default=0.0
        Fraction of the training data held out for validation (Keras takes the *last*
        samples; shuffle beforehand).
    validation_data : tuple (X_val, y_val) or None, default=None
        Validation images and labels (raw, like ``X``/``y``); overrides
        ``validation_split``.
    early_stopping : bool or int, default=True
        Stop when the monitored loss (``val_loss`` with validation data, else ``loss``)
        has not improved for this many epochs (``True`` = 10) and restore the best
        weights.
    reduce_lr : bool or int, default=True
        Halve the learning rate when the monitored loss plateaus for this many epochs
        (``True`` = 5).
    checkpoint_dir : str, path or None, default=None
        Save the model (``epoch-NNN.keras``, with optimizer state) there after every
        epoch.
    keep_checkpoints : int or None, default=None
        Keep only this many of the newest epoch checkpoints (a checkpoint of the
        default backbone is about 60 MB); ``None`` keeps every epoch.
    resume : bool, default=False
        Resume an interrupted fit from ``checkpoint_dir`` (Keras ``BackupAndRestore``
        state in ``checkpoint_dir/backup``).  A transfer-learning fit resumes inside
        the phase it was in: a finished frozen phase is not run again.
    class_weight : "balanced", dict or None, default=None
        Class weights; ``"balanced"`` uses :func:`sklearn.utils.class_weight.
        compute_class_weight`.
    random_state : int or None, default=None
        Seed for weight initialisation, shuffling and augmentation; two fits with the same
        ``random_state`` give identical predictions.
    warm_start : bool, default=False
        Keep training the fitted model on ``fit`` instead of rebuilding it.
    precision : {"auto", "float32", "mixed_bfloat16", "mixed_float16"}, default="auto"
        Keras dtype policy used while building the model.  ``"auto"`` picks
        ``mixed_bfloat16`` on CPUs with AMX/AVX512-BF16 and on bf16 GPUs.  The global
        policy is restored afterwards.
    tta : bool or {"flip", "crops"}, default=False
        Test-time augmentation (:mod:`fervision.tta`): ``True``/``"flip"`` averages
        ``predict_proba`` over the image and its mirror; ``"crops"`` also over the four
        corner and the centre 90 % crops and their mirrors (12 views: 70.05 % against
        67.40 % on FER2013 PublicTest for the default model, at about 6x the batched
        inference cost of ``"flip"``).
    precise_bn : bool, default=True
        After training, replace the BatchNorm layers' moving averages by exact
        statistics over the (un-augmented) training images
        (:func:`fervision.batchnorm.recalibrate_batchnorm`): the moving averages lag the
        weights, which cost the default model 5.5 points of accuracy and can make a
        short fit predict a single class.  Costs one forward pass over the data.
    distribution_strategy : None, str or tf.distribute.Strategy, default=None
        Build and compile the model under this strategy's scope (``"default"``,
        ``"mirrored"``, ``"multiworker"``).
    metrics : list or None, default=None
        Keras metrics; ``None`` means ``["accuracy"]``.
    loss : keras loss or None, default=None
        ``None`` means ``CategoricalCrossentropy(label_smoothing=label_smoothing)``.  A
        custom loss receives one-hot targets.
    callbacks : list or None, default=None
        Extra Keras callbacks (SciKeras routing: ``callbacks__...``).
    verbose : int, default=0
        Keras verbosity.
    **kwargs
        SciKeras-routed parameters (``model__``, ``optimizer__``, ``fit__``, ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of ``predict_proba``'s columns.
    n_classes_ : int
        Number of classes.
    model_ : keras.Model
        The trained network: ``(N, S, S, 1)`` float 0-1 -> softmax.
    history_ : dict of lists
        Per-epoch ``loss``, ``accuracy``, ``val_*`` ... of the training run(s).
    n_features_in_ : int
        Values per sample, only when fitted on 2-D (flattened) ``X``.
    feature_encoder_ : ImageEncoder
        The fitted image encoder.
    target_encoder_ : LabelEncoder
        The fitted label encoder.

    Examples
    --------
    >>> import numpy as np
    >>> from fervision import EmotionClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, size=(16, 48, 48), dtype=np.uint8)
    >>> y = np.array(["happy", "sad"] * 8)
    >>> clf = EmotionClassifier(backbone="fernet_tiny", epochs=1, random_state=0)
    >>> clf.fit(X, y).predict(X[:2]).shape
    (2,)
    >>> clf.classes_
    array(['happy', 'sad'], dtype='<U5')
    """

    def __init__(
        self,
        backbone="fernet",
        *,
        input_size=48,
        weights=None,
        freeze_epochs=None,
        fine_tune_layers=20,
        fine_tune_learning_rate=None,
        augment=True,
        epochs=30,
        batch_size=64,
        learning_rate=1e-3,
        optimizer="adam",
        label_smoothing=0.1,
        validation_split=0.0,
        validation_data=None,
        early_stopping=True,
        reduce_lr=True,
        checkpoint_dir=None,
        keep_checkpoints=None,
        resume=False,
        class_weight=None,
        random_state=None,
        warm_start=False,
        precision="auto",
        tta=False,
        precise_bn=True,
        distribution_strategy=None,
        metrics=None,
        loss=None,
        callbacks=None,
        verbose=0,
        **kwargs,
    ):
        super().__init__(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            batch_size=batch_size,
            verbose=verbose,
            callbacks=callbacks,
            validation_split=validation_split,
            epochs=epochs,
            class_weight=class_weight,
            random_state=random_state,
            warm_start=warm_start,
            **kwargs,
        )
        self.backbone = backbone
        self.input_size = input_size
        self.weights = weights
        self.freeze_epochs = freeze_epochs
        self.fine_tune_layers = fine_tune_layers
        self.fine_tune_learning_rate = fine_tune_learning_rate
        self.augment = augment
        self.learning_rate = learning_rate
        self.label_smoothing = label_smoothing
        self.validation_data = validation_data
        self.early_stopping = early_stopping
        self.reduce_lr = reduce_lr
        self.checkpoint_dir = checkpoint_dir
        self.keep_checkpoints = keep_checkpoints
        self.resume = resume
        self.precision = precision
        self.tta = tta
        self.precise_bn = precise_bn
        self.distribution_strategy = distribution_strategy

    # ------------------------------------------------------------------ sklearn glue
    def __sklearn_tags__(self):
        # SciKeras 0.13 still describes itself with the removed ``_more_tags`` dict and
        # lists ``BaseEstimator`` before ``ClassifierMixin`` (so the mixin's tags are
        # never reached); state the tags explicitly instead.
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        if tags.classifier_tags is None:
            from sklearn.utils import ClassifierTags

            tags.classifier_tags = ClassifierTags()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.classifier_tags.poor_score = False
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else dict(
            self.__dict__)
        state = dict(state)
        # A distribution strategy is process-local; it is recreated on demand.
        state.pop("_strategy", None)
        return state

    @property
    def feature_encoder(self):
        """A fresh :class:`~fervision.preprocessing.ImageEncoder` for ``input_size``."""
        return ImageEncoder(self.input_size)

    @property
    def target_encoder(self):
        """A fresh :class:`LabelEncoder` (one-hot, one softmax unit per class)."""
        return LabelEncoder(classes=getattr(self, "_fixed_classes", None))

    # --------------------------------------------------------------- validation
    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        # Overridden: SciKeras runs sklearn's check_X_y, which rejects ragged lists of
        # images and knows nothing about channels or pixel ranges.  Here every check of
        # the one preprocessing path runs before any model is built, and 2-D (flattened)
        # X keeps scikit-learn's n_features_in_ contract.
        if X is not None:
            X = self._check_X(X, reset=reset)
        if y is not None:
            y = self._check_y(y)
            if X is not None and len(X) != len(y):
                raise ValueError(
                    f"X and y have inconsistent numbers of samples: {len(X)} images but "
                    f"{len(y)} labels"
                )
            if reset:
                self.target_type_ = type_of_target(y, input_name="y")
        return X, y

    def _check_X(self, X, reset):
        arr = X if isinstance(X, np.ndarray) else None
        if arr is None and not isinstance(X, list | tuple) and hasattr(X, "__array__"):
            arr = np.asarray(X)  # DataFrames, memmaps, ... (lists may be ragged)
            X = arr
        if arr is not None and np.iscomplexobj(arr):
            raise ValueError("Complex data not supported; images must be real-valued")
        width = flat_features(X)  # rows of flattened images (arrays or lists of lists)
        if reset:
            if width is not None:
                self.n_features_in_ = width
            elif "n_features_in_" in self.__dict__:
                del self.n_features_in_
        elif width is not None and hasattr(self, "n_features_in_") and (
                width != self.n_features_in_):
            raise ValueError(
                f"X has {width} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return check_images(X, self.input_size)

    @staticmethod
    def _check_y(y):
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        if isinstance(y, list | tuple):
            # np.asarray(["happy", 1]) silently turns 1 into the string "1"; look at
            # the labels as given first.
            _check_label_types(np.asarray(y, dtype=object))
        y = np.asarray(y)
        if y.dtype.kind == "O":
            _check_label_types(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=4,
            )
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per image), got shape {y.shape}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity.")
        if y.dtype.kind == "O" and any(v is None or (isinstance(v, float) and v != v)
                                       for v in y):
            raise ValueError("Input y contains NaN or None.")
        return y

    # ------------------------------------------------------------------ building
    def _make_optimizer(self, learning_rate):
        opt = self.optimizer
        if isinstance(opt, keras.optimizers.Optimizer):
            # Never share an optimizer instance (its state) between models or phases.
            config = opt.get_config()
            config["learning_rate"] = float(learning_rate)
            return type(opt).from_config(config)
        cls = try_to_convert_strings_to_classes(opt, get_optimizer_class)
        routed = route_params(self.get_params(), destination="optimizer",
                              pass_filter=set(), strict=True)
        routed.setdefault("learning_rate", float(learning_rate))
        return unflatten_params(items=cls, params=routed)

    def _compile(self, model, learning_rate):
        loss = self.loss
        if loss is None:
            # Soft targets are already a distribution: smoothing them again would only
            # blur what the taggers or the teacher said.
            soft = getattr(self, "_soft_targets", None) is not None
            loss = keras.losses.CategoricalCrossentropy(
                label_smoothing=0.0 if soft else self.label_smoothing)
        metrics = self.metrics if self.metrics is not None else ["accuracy"]
        with self._strategy_scope():
            model.compile(optimizer=self._make_optimizer(learning_rate), loss=loss,
                          metrics=list(metrics))

    def _strategy_scope(self):
        if getattr(self, "_strategy", None) is None:
            self._strategy = _resolve_strategy(self.distribution_strategy)
        if self._strategy is None:
            return contextlib.nullcontext()
        return self._strategy.scope()

    def _augmentation(self, seed):
        if self.augment is False or self.augment is None:
            return None
        if self.augment is True:
            options = {}
        elif isinstance(self.augment, dict):
            options = dict(self.augment)
        else:
            raise ValueError(f"augment must be True, False or a dict, got {self.augment!r}")
        options.setdefault("seed", seed)
        return build_augmentation(self.input_size, **options)

    def _keras_build_fn(self, compile_kwargs=None, **model_kwargs):
        """Build and compile the network (SciKeras's model-building seam).

        ``model__*`` parameters arrive in ``model_kwargs`` and are passed to
        :func:`fervision.backbones.create_model`.
        """
        for key in ("meta", "params"):
            model_kwargs.pop(key, None)
        seed = self._random_state if isinstance(self._random_state, numbers.Integral) else None
        if seed is not None:
            keras.utils.set_random_seed(int(seed))
        n_classes = int(self.n_classes_)
        self._strategy = _resolve_strategy(self.distribution_strategy)
        with dtype_policy(self.precision), self._strategy_scope():
            model = create_model(
                self.backbone,
                input_size=int(self.input_size),
                n_classes=n_classes,
                weights=self.weights,
                augmentation=self._augmentation(seed),
                **model_kwargs,
            )
            self._compile(model, self.learning_rate)
        self._fresh_model = True
        return model

    def _ensure_compiled_model(self):
        # Overridden: SciKeras would compile an uncompiled (loaded / wrapped) model with
        # its own defaults (rmsprop, no loss); use this estimator's loss and optimizer.
        if not self.model_.compiled:
            self._compile(self.model_, self.learning_rate)

    # ------------------------------------------------------------------ training
    def fit(self, X, y, sample_weight=None, target_distribution=None, **kwargs):
        """Fit the network to images ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like or list of images
            See the class docstring for accepted shapes.
        y : array-like of shape (n_samples,)
            String or integer labels.
        sample_weight : array-like of shape (n_samples,), optional
            Per-image weights (multiplied by ``class_weight``'s).
        target_distribution : array-like of shape (n_samples, n_classes), optional
            Train on a label distribution per image instead of one-hot labels: FER+
            vote shares (:func:`fervision.datasets.load_ferplus` with
            ``target="distribution"``, the FER+ paper's cross-entropy mode) or a
            teacher's probabilities (:mod:`fervision.distillation`).  Rows are
            normalised to sum to 1; a plain array's columns follow ``classes_``
            (sorted labels), a DataFrame's are matched by name.  ``y`` still holds one
            hard label per image (e.g. the distribution's most likely class): it sets
            ``classes_`` and what ``score`` and scorers compare with, so
            ``GridSearchCV`` and ``cross_val_score`` work unchanged and slice this
            parameter with the folds.  ``label_smoothing`` is not applied on top.
        **kwargs
            Passed to ``keras.Model.fit`` (prefer ``fit__`` parameters).

        Returns
        -------
        self : EmotionClassifier
        """
        # Overridden only for class weights: SciKeras multiplies the caller's
        # sample_weight array in place and cannot do "balanced" from unique labels
        # consistently with compute_class_weight; the rest is SciKeras's fit.
        self._fixed_classes = None
        self._check_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        if target_distribution is not None:
            self._fixed_classes = distribution_classes(target_distribution, self._check_y(y))
        if self.class_weight is not None:
            y_arr = self._check_y(y)
            classes = np.unique(y_arr)
            cw = compute_class_weight(self.class_weight, classes=classes, y=y_arr)
            per_sample = cw[np.searchsorted(classes, y_arr)]
            sample_weight = per_sample if sample_weight is None else (
                np.asarray(sample_weight, dtype=np.float64) * per_sample)
        self.classes_ = None
        kwargs["epochs"] = kwargs.get("epochs", getattr(self, "fit__epochs", self.epochs))
        kwargs["initial_epoch"] = kwargs.get("initial_epoch", 0)
        # Read by _fit_keras_model (after SciKeras has encoded y) and _compile.
        self._soft_targets = target_distribution
        try:
            self._fit(X=X, y=y, sample_weight=sample_weight, warm_start=self.warm_start,
                      **kwargs)
        finally:
            self._soft_targets = None
        return self

    def _fit(self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs):
        # Overridden (fit and partial_fit both land here) to check the parameters first
        # and to leave process-wide seeds, op determinism and dtype policy as found.
        self._check_params()
        with _process_state_kept():
            return super()._fit(X, y, sample_weight=sample_weight, warm_start=warm_start,
                                epochs=epochs, initial_epoch=initial_epoch, **kwargs)

    def initialize(self, X, y):
        """Build the model without training it (SciKeras's ``initialize``).

        Parameters
        ----------
        X : array-like or list of images
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : EmotionClassifier
        """
        self._check_params()
        with _process_state_kept():
            return super().initialize(X, y)

    def _check_params(self):
        """Validate the parameters a fit depends on, before any work is done."""
        resolve_tta(self.tta)  # a bad tta fails now, not after hours of training
        size = self.input_size
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"input_size must be a positive int (the side of the square "
                             f"images the network sees), got {size!r}")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            lr = getattr(self, name)
            if lr is None and name == "fine_tune_learning_rate":
                continue
            # 0 is allowed: it trains nothing, but says so (tests use it to freeze).
            if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (
                    np.isfinite(lr) and lr >= 0):
                raise ValueError(f"{name} must be a finite non-negative number, got {lr!r}")
        bs = self.batch_size
        if bs is not None and (isinstance(bs, bool) or not isinstance(bs, numbers.Integral)
                               or not (bs > 0 or bs == -1)):
            raise ValueError(f"batch_size must be a positive int, -1 (all samples in one "
                             f"batch) or None, got {bs!r}")

    def _check_finite_loss(self):
        # TerminateOnNaN stops Keras at the first non-finite batch loss; the weights are
        # then NaN and every prediction would be argmax(NaN) = the first class, so the
        # estimator is left unfitted instead.
        losses = np.asarray(getattr(self, "history_", {}).get("loss", []), dtype=float)
        if np.isfinite(losses).all():
            return
        epoch = int(np.argmin(np.isfinite(losses))) + 1
        for attr in ("model_", "history_"):
            self.__dict__.pop(attr, None)
        raise FloatingPointError(
            f"training diverged: the loss became NaN or infinite in epoch {epoch} "
            f"(learning_rate={self.learning_rate!r}); the model is discarded and the "
            "estimator is not fitted.  Lower learning_rate, and check the images and "
            "sample_weight for NaN or infinite values."
        )

    def _monitor(self):
        has_val = self.validation_data is not None or (self.validation_split or 0) > 0
        return "val_loss" if has_val else "loss"

    def _training_callbacks(self, backup_name="backup"):
        # TerminateOnNaN first: no checkpoint or backup of NaN weights after it fires.
        return [keras.callbacks.TerminateOnNaN()] + training_callbacks(
            monitor=self._monitor(), early_stopping=self.early_stopping,
            reduce_lr=self.reduce_lr, checkpoint_dir=self.checkpoint_dir,
            keep_checkpoints=self.keep_checkpoints, resume=self.resume,
            backup_name=backup_name)

    def _encoded_validation_data(self):
        if self.validation_data is None:
            return None
        try:
            X_val, y_val = self.validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a tuple (X_val, y_val)") from None
        Xv = check_images(X_val, self.input_size, name="validation_data X")
        yv = self._check_y(y_val)
        if len(Xv) != len(yv):
            raise ValueError(f"validation_data has {len(Xv)} images but {len(yv)} labels")
        return Xv, self.target_encoder_.transform(yv)

    def _base_layer(self):
        try:
            base = self.model_.get_layer(BASE_NAME)
        except ValueError:
            return None
        return base if isinstance(base, keras.Model) else None

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch,
                         **kwargs):
        # Overridden to add the training callbacks and validation_data, and to split a
        # transfer-learning fit into two SciKeras fits: head only (base frozen), then the
        # top of the base at a lower learning rate.  Each phase is SciKeras's own
        # _fit_keras_model, so history_ and random_state handling stay SciKeras's.
        soft = getattr(self, "_soft_targets", None)
        if soft is not None:  # the fit's label distribution replaces the one-hot y
            y = check_distribution(soft, self.classes_, len(X))
        user_callbacks = list(self._fit_callbacks)
        self._fit_callbacks = user_callbacks + self._training_callbacks()
        val = self._encoded_validation_data()
        if val is not None:
            kwargs["validation_data"] = val
        elif (self.validation_split or 0) > 0:
            X, y, sample_weight, kwargs["validation_data"] = self._stratified_split(
                X, y, sample_weight)
        # Keras's own validation_split takes the *last* samples: with image folders
        # loaded class by class that is one or two classes only, so it is never used.
        kwargs["validation_split"] = 0.0
        base = self._base_layer()
        fresh = getattr(self, "_fresh_model", False)
        self._fresh_model = False
        try:
            if base is None or self.weights is None or not fresh:
                super()._fit_keras_model(X, y, sample_weight=sample_weight,
                                         warm_start=warm_start, epochs=epochs,
                                         initial_epoch=initial_epoch, **kwargs)
                self._check_finite_loss()
            else:
                self._fit_two_phases(X, y, sample_weight, warm_start, epochs,
                                     initial_epoch, base, user_callbacks, **kwargs)
            if self.precise_bn:
                from .batchnorm import recalibrate_batchnorm

                recalibrate_batchnorm(self.model_, X,
                                      batch_size=max(self._inference_batch_size(len(X)), 64),
                                      progress=bool(self.verbose), seed=0)
        finally:
            self._fit_callbacks = user_callbacks

    def _fit_two_phases(self, X, y, sample_weight, warm_start, epochs, initial_epoch, base,
                        user_callbacks, **kwargs):
        """Transfer learning: head with the base frozen, then the top of the base.

        With ``resume=True`` each phase keeps its own Keras backup (Keras deletes a
        backup when its fit ends), and the weights after the frozen phase are kept in
        ``checkpoint_dir/phase1-weights.npz`` until the whole fit ends: an interruption
        in the fine-tuning phase resumes there instead of training the head again.
        """
        n1 = epochs // 2 if self.freeze_epochs is None else int(self.freeze_epochs)
        n1 = max(0, min(n1, epochs))
        phase1 = Path(self.checkpoint_dir) / PHASE1_WEIGHTS if self.resume else None
        if n1 and phase1 is not None and phase1.is_file():
            _load_weights(self.model_, phase1)
        elif n1:
            base.trainable = False
            self._compile(self.model_, self.learning_rate)
            self._fit_callbacks = user_callbacks + self._training_callbacks("backup-phase1")
            super()._fit_keras_model(X, y, sample_weight=sample_weight,
                                     warm_start=warm_start, epochs=n1,
                                     initial_epoch=initial_epoch, **kwargs)
            self._check_finite_loss()
            if phase1 is not None:
                _save_weights_atomic(self.model_, phase1)
        if epochs - n1:
            self._unfreeze_top(base)
            lr = self.fine_tune_learning_rate
            lr = self.learning_rate / 10 if lr is None else lr
            self._compile(self.model_, lr)
            # Fresh callback objects: EarlyStopping/ReduceLROnPlateau keep state.
            self._fit_callbacks = user_callbacks + self._training_callbacks("backup-phase2")
            super()._fit_keras_model(X, y, sample_weight=sample_weight,
                                     warm_start=bool(n1) or warm_start,
                                     epochs=epochs - n1,
                                     initial_epoch=initial_epoch + n1, **kwargs)
            self._check_finite_loss()
        if phase1 is not None:
            phase1.unlink(missing_ok=True)

    def _stratified_split(self, X, y, sample_weight):
        """Hold out ``validation_split`` of the samples, stratified by class."""
        from sklearn.model_selection import train_test_split

        y = np.asarray(y)
        strata = y.argmax(axis=1) if y.ndim == 2 else y
        index = np.arange(len(X))
        try:
            train, val = train_test_split(index, test_size=self.validation_split,
                                          random_state=self.random_state, stratify=strata)
        except ValueError:  # a class with a single sample cannot be stratified
            train, val = train_test_split(index, test_size=self.validation_split,
                                          random_state=self.random_state)
        weights = None if sample_weight is None else np.asarray(sample_weight)[train]
        return X[train], y[train], weights, (X[val], y[val])

    def _unfreeze_top(self, base):
        n = self.fine_tune_layers
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

    # ----------------------------------------------------------------- inference
    def _predict_raw(self, X, **kwargs):
        # Overridden: Model.predict costs ~30 ms per call (building a data adapter and
        # a predict loop), which dominates one face per video frame.  Batches up to
        # batch_size go through one traced tf.function of the model instead; larger
        # inputs still use Model.predict.  Also applies test-time augmentation.
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )
        mode = resolve_tta(self.tta)
        X, _ = self._validate_data(X=X, y=None)
        X = self.feature_encoder_.transform(X)
        return predict_with_tta(lambda v: self._forward(v, **kwargs), X, mode,
                                one_call_below=self._inference_batch_size(len(X)))

    def _inference_batch_size(self, n):
        # SciKeras's batch_size=-1 means "all samples in one batch".
        return max(int(n), 1) if self.batch_size == -1 else (self.batch_size or 32)

    def _forward(self, X, **kwargs):
        small = len(X) <= self._inference_batch_size(len(X))
        if small and not kwargs:
            if self.run_eagerly:
                return np.asarray(self.model_(X, training=False), dtype=np.float32)
            return np.asarray(_inference_fn(self.model_)(X), dtype=np.float32)
        params = self.get_params()
        pred_args = route_params(params, destination="predict",
                                 pass_filter=self._predict_kwargs, strict=True)
        pred_args = {k: v for k, v in pred_args.items() if not k.startswith("callbacks")}
        pred_args["callbacks"] = self._predict_callbacks
        pred_args.update(kwargs)
        if pred_args.get("batch_size") == -1:
            pred_args["batch_size"] = max(len(X), 1)
        return self.model_.predict(X, **pred_args)

    def predict_proba(self, X, **kwargs):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like or list of images
            See the class docstring.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float32
        """
        return super().predict_proba(X, **kwargs)

    # ---------------------------------------------------------- fitted state helpers
    def _set_fitted_state(self, model, classes, n_features_in=None):
        classes = np.asarray(classes)
        self._fixed_classes = classes
        self._random_state = self.random_state
        self.target_encoder_ = self.target_encoder.fit(classes)
        vars(self).update(self.target_encoder_.get_metadata())
        self.feature_encoder_ = self.feature_encoder.fit(np.zeros((1, 1, 1)))
        if n_features_in is not None:
            self.n_features_in_ = int(n_features_in)
        self.target_type_ = "binary" if len(classes) <= 2 else "multiclass"
        self.model_ = model
        self._fresh_model = False
        self._initialize_callbacks()
        return self

    @classmethod
    def from_keras_model(cls, model, classes, input_size=48, **params):
        """Wrap an already-trained Keras model as a fitted classifier.

        Parameters
        ----------
        model : keras.Model
            Maps ``(N, input_size, input_size, 1)`` float 0-1 to softmax probabilities.
        classes : sequence
            Label of each output unit, in output order (e.g. ``fervision.EMOTIONS``).
        input_size : int, default=48
            Side of the model's input images.
        **params
            Other constructor parameters (``backbone``, ``batch_size``, ...).

        Returns
        -------
        EmotionClassifier
            Fitted: ``predict``, ``save`` and (with ``warm_start=True``) ``fit`` work.
        """
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
        return cls(input_size=input_size, **params)._set_fitted_state(model, classes)

    # -------------------------------------------------------------- persistence
    def _metadata(self):
        import fervision

        params = {k: v for k, v in self.get_params().items() if _jsonable(v)}
        backbone = self.backbone if isinstance(self.backbone, str) else getattr(
            self.backbone, "__name__", "custom")
        params["backbone"] = backbone
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "fervision_version": fervision.__version__,
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "input_size": int(self.input_size),
            "backbone": backbone,
            "n_features_in": getattr(self, "n_features_in_", None),
            "params": params,
        }

    def save(self, path):
        """Save to a native ``.keras`` file with fervision metadata inside.

        The file is written next to ``path`` under a temporary name and moved into place
        only when complete, so ``path`` is never half-written.

        Parameters
        ----------
        path : str or path-like
            Destination; must end in ``.keras``.

        Returns
        -------
        pathlib.Path
            The written file.
        """
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; "
                                 "fit it before saving.")
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"save path must end in .keras, got {path.name!r}")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"directory {path.parent} does not exist")
        meta = json.dumps(self._metadata(), indent=2)
        fd, tmp = tempfile.mkstemp(suffix=".keras", prefix=f".{path.stem}-",
                                   dir=path.parent)
        os.close(fd)
        try:
            self.model_.save(tmp)
            with zipfile.ZipFile(tmp, "a") as zf:
                zf.writestr(METADATA_ENTRY, meta)
            os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; models are shared
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return path

    @classmethod
    def read_metadata(cls, path):
        """Return the fervision metadata dict stored in a saved ``.keras`` file."""
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

    @classmethod
    def load(cls, path):
        """Load a classifier written by :meth:`save` (``safe_mode=True``, no pickle).

        The file's stored parameters are restored except those that name places on
        disk (``checkpoint_dir``, ``resume``, a path as ``weights``): a model file must
        not choose where a later ``fit`` writes or what it reads, so these keep their
        defaults; set them again with ``set_params`` when needed.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        EmotionClassifier
            Fitted and ready to predict.
        """
        meta = cls.read_metadata(path)
        try:
            classes = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
            input_size = int(meta["input_size"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: bad classes or input_size in {METADATA_ENTRY}: "
                             f"{err}") from err
        try:
            model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
        except Exception as err:  # noqa: BLE001 - Keras raises many types for bad files
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

    @classmethod
    def from_pretrained(cls, name="default"):
        """A trained classifier, without network access for the bundled default.

        Parameters
        ----------
        name : str, default="default"
            ``"default"`` is the model shipped in the package
            (``fervision/models/default.keras``); other names are downloaded and
            verified with :func:`fervision.weights.fetch`.

        Returns
        -------
        EmotionClassifier
        """
        if name == "default":
            path = _bundled_model_path()
            if not path.is_file():
                raise FileNotFoundError(
                    f"the bundled default model is missing ({path}); train it with "
                    "examples/train_default_model.py or reinstall fervision"
                )
            return cls.load(path)
        from .weights import fetch

        return cls.load(fetch(name))

    def export(self, path, format="savedmodel", **kwargs):
        """Export the fitted model for serving; see :func:`fervision.export.export_model`.

        Parameters
        ----------
        path : str or path-like
        format : str, default="savedmodel"
        **kwargs
            Format-specific options.
        """
        from .export import export_model

        return export_model(self, path, format, **kwargs)
