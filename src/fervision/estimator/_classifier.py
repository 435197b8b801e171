"""``EmotionClassifier``: a scikit-learn classifier over a Keras 3 image model.

It is a :class:`scikeras.wrappers.KerasClassifier` and uses SciKeras's seams rather
than replacing ``fit``/``predict``:

* ``feature_encoder`` -> :class:`fervision.data.preprocessing.ImageEncoder` (the one
  preprocessing path shared with detection, video and the app);
* ``target_encoder`` -> :class:`~fervision.estimator.OneHotTargetEncoder` (always
  one-hot, ``classes_`` in scikit-learn's order, a softmax unit per class even for two
  classes);
* ``_keras_build_fn`` -> :func:`fervision.nn.backbones.create_model` with
  :func:`fervision.nn.augmentation.build_augmentation`, compiled with Adam/AdamW and a
  label-smoothed categorical cross-entropy.  SciKeras routing (``model__``,
  ``optimizer__``, ``callbacks__``, ``fit__``, ``predict__``) keeps working.

The class itself only stores parameters and delegates: parameter checks and tags are
in :mod:`._validation`, building in :mod:`._building`, training in :mod:`._training`,
inference in :mod:`._inference`, persistence in :mod:`._persistence`, and every use
of SciKeras internals (including the overridden hook methods, listed with the reason
in ``_scikeras.OVERRIDDEN``) in :mod:`._scikeras`.
"""

from __future__ import annotations

from ..data.preprocessing import ImageEncoder
from . import _building, _inference, _persistence, _training, _validation
from ._encoders import OneHotTargetEncoder
from ._scikeras import KerasClassifier

__all__ = ["EmotionClassifier"]


class EmotionClassifier(KerasClassifier):
    """Facial-emotion classifier: scikit-learn API over a Keras 3 CNN.

    Images go through :func:`fervision.data.preprocessing.check_images`: grayscale, resized to
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
        A name from :func:`fervision.nn.backbones.list_backbones` (``"fernet"``,
        ``"fernet_tiny"``, ``"cnn"``, ``"resnet50"``, ``"efficientnetb0"``, ...) or a
        builder ``builder(x, *, weights=None) -> tensor``.
    input_size : int, default=48
        Side of the square grayscale images the network sees.  ImageNet backbones
        (``"resnet50"``, ...) upsample smaller images to
        :data:`fervision.nn.backbones.APPLICATION_MIN_SIDE` (96) inside the model, the
        smallest size at which their pretrained filters transfer well.
    weights : None, "imagenet" or path, default=None
        Initial weights of the pretrained ``"base"`` of application backbones
        (``"imagenet"`` downloads through Keras into ``~/.keras/models`` on first use,
        and fails with a clear error offline; a path is a ``.weights.h5`` file of the
        base).  ``None`` with an application backbone trains it from scratch, which
        rarely works on small faces and warns.  With weights, fitting first trains the
        head with the base frozen, then fine-tunes the top of the base (see
        ``freeze_epochs``).
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
        :func:`fervision.nn.augmentation.build_augmentation` (``rotation``, ``zoom``,
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
        Test-time augmentation (:mod:`fervision.nn.tta`): ``True``/``"flip"`` averages
        ``predict_proba`` over the image and its mirror; ``"crops"`` also over the four
        corner and the centre 90 % crops and their mirrors (12 views, about 6x the
        inference cost of ``"flip"``; measured gains are in ``docs/model_card.md``).
    crop_pct : "auto" or float in (0, 1], default="auto"
        Predict on the centre ``crop_pct`` of each face enlarged back, the scale
        training's random-resized crops showed the network (:mod:`fervision.nn.eval_crop`).
        ``"auto"``: ``1 - crop`` of the augmentation (0.9), 1 without augmentation.
    precise_bn : bool, default=True
        After training, replace the BatchNorm layers' moving averages by exact
        statistics over the (un-augmented) training images
        (:func:`fervision.nn.batchnorm.recalibrate_batchnorm`): the moving averages lag the
        weights, which costs accuracy and can make a short fit predict a single class.
        Costs one forward pass over the data.
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
    verbose : int, default=1
        Progress of ``fit`` (scikit-learn's convention; SciKeras's and Keras's default):
        ``1`` Keras's progress bar, one line per epoch (with loss and metrics) when
        output is not a terminal; ``2`` one line per epoch; ``0`` silent.  Prediction
        stays silent whatever the value (``predict__verbose=1`` shows Keras's bar for
        inputs larger than ``batch_size``).
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
    target_encoder_ : OneHotTargetEncoder
        The fitted one-hot target encoder.

    Examples
    --------
    >>> import numpy as np
    >>> from fervision import EmotionClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, size=(16, 48, 48), dtype=np.uint8)
    >>> y = np.array(["happy", "sad"] * 8)
    >>> clf = EmotionClassifier(backbone="fernet_tiny", epochs=1, random_state=0,
    ...                         verbose=0)  # default 1: Keras's per-epoch progress
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
        crop_pct="auto",
        precise_bn=True,
        distribution_strategy=None,
        metrics=None,
        loss=None,
        callbacks=None,
        verbose=1,
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
        self.crop_pct = crop_pct
        self.precise_bn = precise_bn
        self.distribution_strategy = distribution_strategy

    # ------------------------------------------------------------------ sklearn glue
    def __sklearn_tags__(self):
        return _validation.set_tags(super().__sklearn_tags__())

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def __getstate__(self):
        # A distribution strategy is process-local; it is recreated on demand.
        state = dict(super().__getstate__() if hasattr(super(), "__getstate__")
                     else self.__dict__)
        state.pop("_strategy", None)
        return state

    @property
    def feature_encoder(self):
        """A fresh :class:`~fervision.data.preprocessing.ImageEncoder` for ``input_size``."""
        return ImageEncoder(self.input_size)

    @property
    def target_encoder(self):
        """A fresh :class:`OneHotTargetEncoder` (one softmax unit per class)."""
        return OneHotTargetEncoder(classes=getattr(self, "_fixed_classes", None))

    # ------------------------------------------------- SciKeras hooks (see _scikeras)
    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        return _validation.validate_data(self, X, y, reset=reset)

    def _keras_build_fn(self, compile_kwargs=None, **model_kwargs):
        # SciKeras's model-building seam; ``model__*`` parameters go to create_model.
        return _building.build_model(self, **model_kwargs)

    def _ensure_compiled_model(self):
        # SciKeras would compile an uncompiled (loaded / wrapped) model with its own
        # defaults (rmsprop, no loss); use this estimator's loss and optimizer.
        if not self.model_.compiled:
            _building.compile_model(self, self.model_, self.learning_rate)

    def _fit(self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs):
        return _training.fit_wrapped(self, X, y, sample_weight=sample_weight,
                                     warm_start=warm_start, epochs=epochs,
                                     initial_epoch=initial_epoch, **kwargs)

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch,
                         **kwargs):
        _training.fit_keras_model(self, X, y, sample_weight, warm_start, epochs,
                                  initial_epoch, **kwargs)

    def _predict_raw(self, X, **kwargs):
        return _inference.predict_raw(self, X, **kwargs)

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
            vote shares (:func:`fervision.data.datasets.load_ferplus` with
            ``target="distribution"``, the FER+ paper's cross-entropy mode) or a
            teacher's probabilities (:mod:`fervision.nn.distillation`).  Rows are
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
        return _training.fit(self, X, y, sample_weight=sample_weight,
                             target_distribution=target_distribution, **kwargs)

    def initialize(self, X, y):
        """Build the model for images ``X`` and labels ``y`` without training it.

        SciKeras's ``initialize``; returns ``self``.
        """
        return _training.initialize(self, X, y)

    # ----------------------------------------------------------------- inference
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

    # ---------------------------------------------------------- fitted state
    def _set_fitted_state(self, model, classes, n_features_in=None):
        return _persistence.set_fitted_state(self, model, classes, n_features_in)

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
            Other constructor parameters (``backbone``, ``batch_size``, ...);
            ``crop_pct`` defaults to 1 (the whole face) for a model trained elsewhere.

        Returns
        -------
        EmotionClassifier
            Fitted: ``predict``, ``save`` and (with ``warm_start=True``) ``fit`` work.
        """
        classes = _persistence.check_keras_model(model, classes, input_size)
        params.setdefault("crop_pct", 1.0)
        return cls(input_size=input_size, **params)._set_fitted_state(model, classes)

    # -------------------------------------------------------------- persistence
    def _metadata(self):
        return _persistence.metadata(self)

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
        return _persistence.save(self, path)

    @classmethod
    def read_metadata(cls, path):
        """Return the fervision metadata dict stored in a saved ``.keras`` file."""
        return _persistence.read_metadata(path)

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
        return _persistence.load(cls, path)

    @classmethod
    def from_pretrained(cls, name="default", **params):
        """Return a trained classifier from fervision's registry of pretrained models.

        Parameters
        ----------
        name : str, default="default"
            One of :func:`fervision.weights.list_pretrained` (``"default"``, used by
            every path, ``"ferplus-large"`` and ``"fer2013"`` are bundled: no
            network); what each was trained on:
            :func:`fervision.weights.pretrained_info`.  An unknown name raises
            ``KeyError`` listing the names.
        **params
            Parameters set after loading, e.g. ``tta="crops"`` (TTA is off by default).

        Returns
        -------
        EmotionClassifier
        """
        clf = cls.load(_persistence.pretrained_path(name))
        return clf.set_params(**(_persistence.pretrained_params(name) | params))

    def export(self, path, format="savedmodel", **kwargs):
        """Export the fitted model for serving; see :func:`fervision.nn.export.export_model`.

        Parameters
        ----------
        path : str or path-like
        format : str, default="savedmodel"
        **kwargs
            Format-specific options.
        """
        from ..nn.export import export_model

        return export_model(self, path, format, **kwargs)
