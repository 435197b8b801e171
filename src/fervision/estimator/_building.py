"""Building and compiling the network of :class:`EmotionClassifier`."""

from __future__ import annotations

import contextlib
import numbers

import keras

from ..nn.augmentation import build_augmentation
from ..nn.backbones import BASE_NAME, create_model
from ..nn.precision import dtype_policy
from . import _scikeras

__all__ = ["base_layer", "build_model", "compile_model", "resolve_strategy",
           "strategy_scope"]


def resolve_strategy(strategy):
    """``None``, a ``tf.distribute.Strategy``, or one named by a string."""
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
            return resolve_strategy(tf.distribute.MultiWorkerMirroredStrategy())
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
        from ..nn._keras_compat import patch_multiworker_fit

        patch_multiworker_fit()  # Keras 3's fit fails with several workers otherwise
    return strategy


def strategy_scope(est):
    if getattr(est, "_strategy", None) is None:
        est._strategy = resolve_strategy(est.distribution_strategy)
    if est._strategy is None:
        return contextlib.nullcontext()
    return est._strategy.scope()


def make_optimizer(est, learning_rate):
    opt = est.optimizer
    if isinstance(opt, keras.optimizers.Optimizer):
        # Never share an optimizer instance (its state) between models or phases.
        config = opt.get_config()
        config["learning_rate"] = float(learning_rate)
        return type(opt).from_config(config)
    return _scikeras.make_optimizer(est, opt, learning_rate)


def compile_model(est, model, learning_rate) -> None:
    loss = est.loss
    if loss is None:
        # Soft targets are already a distribution: smoothing them again would only
        # blur what the taggers or the teacher said.
        soft = getattr(est, "_soft_targets", None) is not None
        loss = keras.losses.CategoricalCrossentropy(
            label_smoothing=0.0 if soft else est.label_smoothing)
    metrics = est.metrics if est.metrics is not None else ["accuracy"]
    with strategy_scope(est):
        # run_eagerly reaches Keras here: SciKeras would pass it to compile, but this
        # compile is ours, and without it the parameter only changed inference.
        model.compile(optimizer=make_optimizer(est, learning_rate), loss=loss,
                      metrics=list(metrics), run_eagerly=bool(est.run_eagerly))


def augmentation(est, seed):
    if est.augment is False or est.augment is None:
        return None
    if est.augment is True:
        options = {}
    elif isinstance(est.augment, dict):
        options = dict(est.augment)
    else:
        raise ValueError(f"augment must be True, False or a dict, got {est.augment!r}")
    options.setdefault("seed", seed)
    return build_augmentation(est.input_size, **options)


def build_model(est, **model_kwargs):
    """Build and compile the network; ``model__*`` parameters go to ``create_model``."""
    for key in ("meta", "params"):
        model_kwargs.pop(key, None)
    seed = _scikeras.random_state(est)
    seed = seed if isinstance(seed, numbers.Integral) else None
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    n_classes = int(est.n_classes_)
    est._strategy = resolve_strategy(est.distribution_strategy)
    with dtype_policy(est.precision), strategy_scope(est):
        model = create_model(
            est.backbone,
            input_size=int(est.input_size),
            n_classes=n_classes,
            weights=est.weights,
            augmentation=augmentation(est, seed),
            **model_kwargs,
        )
        compile_model(est, model, est.learning_rate)
    est._fresh_model = True
    return model


def base_layer(model):
    """Return the pretrained ``"base"`` sub-model of ``model``, or None."""
    try:
        base = model.get_layer(BASE_NAME)
    except ValueError:
        return None
    return base if isinstance(base, keras.Model) else None
