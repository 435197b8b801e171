"""Precise BatchNorm statistics (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021).

During training, BatchNormalization keeps exponential moving averages of each batch's
mean and variance.  Those averages lag the weights (and are taken on augmented images),
so at the end of a run they can describe a network that no longer exists.  Recomputing
them on the (un-augmented) training images changes no weight; what it gained for the
default model is recorded in ``docs/model_card.md``.
"""

from __future__ import annotations

import keras
import numpy as np
from tqdm.auto import tqdm

from .backbones import walk_layers


def recalibrate_batchnorm(model: keras.Model, X, *, batch_size: int = 256,
                          augmentation_layer: str | None = "augmentation",
                          progress: bool = True, seed: int = 0) -> keras.Model:
    """Replace every BatchNorm layer's moving statistics by their exact average on ``X``.

    Parameters
    ----------
    model : keras.Model
        A functional model; its BatchNormalization layers are updated in place.
    X : ndarray of shape (N, ...)
        Model input (for fervision models: ``check_images`` output), usually the
        training images.  Not augmented: the statistics should describe the images the
        model will see at inference.
    batch_size : int, default=256
    augmentation_layer : str or None, default="augmentation"
        Name of a layer to bypass (fervision puts its random augmentation there);
        None or a missing name runs the whole model.
    progress : bool, default=True
        Show a tqdm bar.
    seed : int, default=0
        Seed of the batch order.

    Returns
    -------
    keras.Model
        ``model`` itself.
    """
    X = np.asarray(X)
    if len(X) == 0:
        raise ValueError("X is empty: BatchNorm statistics need at least one image")
    bns = [layer for layer in walk_layers(model)
           if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return model
    names = {layer.name for layer in model.layers}
    body = model
    if augmentation_layer and augmentation_layer in names:
        body = keras.Model(model.get_layer(augmentation_layer).output, model.output)
    momenta = [layer.momentum for layer in bns]
    order = np.random.default_rng(seed).permutation(len(X))
    starts = range(0, len(X), batch_size)
    try:
        for k, start in enumerate(tqdm(starts, desc="BatchNorm statistics",
                                       disable=not progress, unit="batch")):
            # momentum k/(k+1) turns the moving average into the running mean of the
            # per-batch statistics over all batches so far.
            for layer in bns:
                layer.momentum = k / (k + 1.0)
            body(X[order[start:start + batch_size]], training=True)
    finally:
        for layer, momentum in zip(bns, momenta, strict=True):
            layer.momentum = momentum
    return model
