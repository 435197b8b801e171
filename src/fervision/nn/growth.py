"""Warm-start a deeper network from a trained shallower one (function-preserving growth).

Net2Net's deepening (Chen et al., 2016) in the form residual networks allow: a network
that adds stride-1 residual blocks to a trained one starts from the trained weights,
and each new block starts as the identity, because the batch normalisation that ends
its residual branch starts with a zero scale and offset (the "zero-init residual" of
Goyal et al., 2017).  The grown network therefore predicts exactly what the trained one
did, and training continues from there instead of from scratch.
"""

from __future__ import annotations

import keras
import numpy as np

from ._keras_compat import following_operations
from .backbones import walk_layers

__all__ = ["grow_weights"]


def _weighted_layers(model):
    return [layer for layer in walk_layers(model)
            if layer.weights and not isinstance(layer, keras.Model)]


def _shapes(layer):
    return [tuple(w.shape) for w in layer.weights]


def _ends_residual_branch(layer) -> bool:
    """Tell whether ``layer`` is a batch normalisation not followed by an activation."""
    if not isinstance(layer, keras.layers.BatchNormalization):
        return False
    following = following_operations(layer)
    return bool(following) and not any(
        isinstance(op, keras.layers.ReLU | keras.layers.Activation) for op in following)


def grow_weights(target: keras.Model, source: keras.Model, *, check_images=None,
                 atol: float = 1e-4) -> list[str]:
    """Copy ``source``'s weights into the deeper ``target``; new blocks start as identity.

    Parameters
    ----------
    target : keras.Model
        The grown network: ``source``'s architecture with extra stride-1 residual blocks
        (same width in and out, e.g. ``fernet_small_deep`` for ``fernet_small``).
    source : keras.Model
        The trained network.
    check_images : array, optional
        Inputs on which both networks must then predict the same (to ``atol``); by
        default 8 random images of the input shape.
    atol : float, default=1e-4

    Returns
    -------
    list of str
        Names of the ``target`` layers that are new (kept at their initial weights,
        except the zeroed batch normalisations).

    Raises
    ------
    ValueError
        If ``source``'s layers do not all appear, in order, in ``target``, or if the grown
        network does not predict what ``source`` predicts (the extra layers are then not
        residual blocks that can start as the identity).
    """
    src = _weighted_layers(source)
    new, i = [], 0
    for layer in _weighted_layers(target):
        if (i < len(src) and type(layer) is type(src[i])
                and _shapes(layer) == _shapes(src[i])):
            layer.set_weights(src[i].get_weights())
            i += 1
            continue
        new.append(layer)
        if _ends_residual_branch(layer):
            # gamma and beta to zero: the branch adds nothing until training moves them
            layer.set_weights([np.zeros_like(w) if k < 2 else w
                               for k, w in enumerate(layer.get_weights())])
    if i != len(src):
        raise ValueError(
            f"source layer {src[i].name!r} (weights {_shapes(src[i])}) has no counterpart "
            f"in {target.name!r}; the target must be the source with extra blocks")
    if check_images is None:
        shape = tuple(source.input_shape[1:])
        check_images = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    before = np.asarray(source(check_images, training=False))
    after = np.asarray(target(check_images, training=False))
    if not np.allclose(before, after, atol=atol):
        raise ValueError(
            f"{target.name!r} grown from {source.name!r} predicts differently (largest "
            f"difference {np.max(np.abs(before - after)):.2g}): its new layers "
            f"{[layer.name for layer in new]} are not residual blocks that start as the "
            "identity")
    return [layer.name for layer in new]
