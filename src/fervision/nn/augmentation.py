"""Training-time augmentation as Keras preprocessing layers.

The layers live inside the model, so they run only when Keras calls it with
``training=True`` (``fit``) and are identity at inference; a saved model carries them
and loads under ``safe_mode`` because they are all built-in layers.
"""

from __future__ import annotations

import keras
from keras import layers

#: Default ``crop`` of :func:`build_augmentation`; inference's ``crop_pct="auto"`` and
#: the ``"crops"`` test-time views follow it.
DEFAULT_CROP = 0.1


def build_augmentation(
    input_size: int,
    *,
    rotation: float = 0.05,
    zoom: float = 0.1,
    flip: bool = True,
    brightness: float = 0.1,
    contrast: float = 0.1,
    translation: float = 0.1,
    crop: float = DEFAULT_CROP,
    erasing: float = 0.0,
    seed: int | None = None,
    name: str = "augmentation",
) -> keras.Sequential:
    """Build the augmentation block used by every backbone.

    Parameters
    ----------
    input_size : int
        Side of the (square, single-channel, 0-1) images the block receives.
    rotation : float, default=0.05
        Maximum rotation as a fraction of a full turn (0.05 = 18 degrees).
    zoom : float, default=0.1
        Maximum zoom in or out, as a fraction of the image side.
    flip : bool, default=True
        Random horizontal flips (faces are left-right symmetric; vertical flips are not
        used because upside-down faces do not occur).
    brightness, contrast : float, default=0.1
        Maximum brightness shift (fraction of the 0-1 range) and contrast factor.
    translation : float, default=0.1
        Maximum shift as a fraction of the image side.
    crop : float, default=0.1
        Take a random square crop whose side is ``1 - crop`` of the image and resize it
        back to ``input_size`` (a random-resized crop); 0 disables it.  At inference
        Keras's ``RandomCrop`` passes the image through and the resize is a no-op; the
        classifier's ``crop_pct`` then shows the network the centre at training's scale.
    erasing : float, default=0.0
        Probability of random erasing (Zhong et al. 2020, Keras ``RandomErasing``): a
        random rectangle of the image is replaced by noise, so the network cannot lean
        on one facial region alone; 0 disables it.
    seed : int or None
        Seed for the random layers, for reproducible fits.
    name : str
        Name of the returned block.

    Returns
    -------
    keras.Sequential
        Identity at inference time.
    """
    aug: list[layers.Layer] = []

    def _seed(k: int) -> int | None:
        return None if seed is None else int(seed) + k

    # float32 even under a mixed policy: these are cheap and bf16 rounding of pixel
    # coordinates is visible.
    kw = {"dtype": "float32"}
    if flip:
        aug.append(layers.RandomFlip("horizontal", seed=_seed(1), **kw))
    if rotation:
        aug.append(layers.RandomRotation(rotation, fill_mode="reflect", seed=_seed(2), **kw))
    if zoom:
        aug.append(layers.RandomZoom(zoom, fill_mode="reflect", seed=_seed(3), **kw))
    if translation:
        aug.append(
            layers.RandomTranslation(translation, translation, fill_mode="reflect",
                                     seed=_seed(4), **kw)
        )
    side = round(float(input_size * (1.0 - crop))) if crop else input_size
    if 0 < side < input_size:
        aug.append(layers.RandomCrop(side, side, seed=_seed(5), **kw))
        aug.append(layers.Resizing(input_size, input_size, **kw))
    if brightness:
        aug.append(layers.RandomBrightness(brightness, value_range=(0.0, 1.0),
                                           seed=_seed(6), **kw))
    if contrast:
        aug.append(layers.RandomContrast(contrast, seed=_seed(7), **kw))
    if erasing:
        if not 0 < erasing <= 1:
            raise ValueError(f"erasing must be a probability in (0, 1], got {erasing!r}")
        # A (p, p) factor applies it with probability p exactly (a single float would
        # draw the probability itself from [0, p]).
        aug.append(layers.RandomErasing(factor=(erasing, erasing), value_range=(0.0, 1.0),
                                        seed=_seed(8), **kw))
    return keras.Sequential(aug, name=name)


def split_augmentation(model: keras.Model, *, name: str = "augmentation"):
    """Split ``model`` into its augmentation block and the rest of the model after it.

    For training schemes that need the augmented images themselves, e.g. a teacher
    that must see the very view the student sees (consistent distillation): apply the
    block in the input pipeline and fit ``rest`` on its output.  ``rest`` shares every
    layer and variable with ``model``, so fitting it trains ``model``.

    Parameters
    ----------
    model : keras.Model
        A functional model whose input goes straight into the layer ``name`` (as
        :func:`~fervision.nn.backbones.create_model` builds with ``augmentation=``).
    name : str, default="augmentation"
        The augmentation block's layer name.

    Returns
    -------
    augmentation : keras.layers.Layer
        Call it with ``training=True`` for augmented copies.
    rest : keras.Model
        ``model`` from the block's output on.
    """
    try:
        block = model.get_layer(name)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {name!r} to split off") from None
    if len(model.inputs) != 1 or block.input is not model.inputs[0]:
        raise ValueError(f"layer {name!r} of model {model.name!r} is not applied to the "
                         "model's input: the rest of the model would not be its output alone")
    return block, keras.Model(block.output, model.outputs[0], name=f"{model.name}_after_{name}")


def mixup(dataset, alpha: float, *, seed: int | None = None):
    """Mix each batch of a ``tf.data`` dataset with itself reversed (mixup, Zhang et al. 2018).

    Every sample ``i`` becomes ``lam_i * x_i + (1 - lam_i) * x_j`` with soft label
    ``lam_i * y_i + (1 - lam_i) * y_j`` (``j`` the mirror position in the batch,
    ``lam_i ~ Beta(alpha, alpha)``), a regulariser for networks that over-fit.

    Parameters
    ----------
    dataset : tf.data.Dataset
        Batches of ``(images, one_hot_labels)``, images float.
    alpha : float
        Beta distribution parameter, > 0 (0.1-0.4 is usual; larger mixes more).
    seed : int or None
        Seed of the mixing coefficients.

    Returns
    -------
    tf.data.Dataset
        The same batches, mixed.
    """
    import tensorflow as tf

    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha!r}")
    import numpy as np

    # One stateless seed per batch from a seeded stream that is drawn afresh on every
    # pass (epoch) over the data: reproducible with a seed, usable inside tf.data's
    # graph (a Python-side RNG would be frozen at trace time), and no batch position
    # gets the same coefficients every epoch.
    base = int(np.random.SeedSequence(seed).generate_state(1)[0])
    keys = tf.data.Dataset.random(seed=base, rerandomize_each_iteration=True)

    def mix(key, batch):
        x, y = batch
        n = tf.shape(x)[0]
        # Beta(a, a) as G1 / (G1 + G2) with G ~ Gamma(a): tf.random has no Beta.
        g1 = tf.random.stateless_gamma([n], seed=tf.stack([key, 0]), alpha=alpha)
        g2 = tf.random.stateless_gamma([n], seed=tf.stack([key, 1]), alpha=alpha)
        lam = g1 / (g1 + g2)
        lx = tf.cast(tf.reshape(lam, [-1, 1, 1, 1]), x.dtype)
        ly = tf.cast(tf.reshape(lam, [-1, 1]), y.dtype)
        return lx * x + (1 - lx) * tf.reverse(x, [0]), ly * y + (1 - ly) * tf.reverse(y, [0])

    return tf.data.Dataset.zip(keys, dataset).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
