"""Batch normalisation folded into the convolution before it, for inference.

At inference a ``Conv2D -> BatchNormalization`` pair is one affine map: the convolution
with its kernel scaled per output channel by ``gamma / sqrt(moving_variance + epsilon)``
and a bias of ``beta - moving_mean * scale``.  Keras runs the two as separate ops, the
normalisation a second pass over every activation; on a CPU that pass is a large share
of a small network's time (``benchmarks/bench_inference.py`` measures both forms).

:func:`folded_model` returns a model that **shares the original's variables** and folds
them inside every call, so it never goes stale when the original trains again
(``warm_start``, fine-tuning, a :mod:`fervision.nn.batchnorm` recomputation): only
its graph differs.  It is checked against the original on a probe batch when it is
made, and the original is returned unchanged whenever anything does not fold cleanly
(no pair, a layer called more than once, mixed precision, a subclassed model, or a probe
that disagrees).  :func:`fervision.estimator._inference.inference_fn` runs batches of
``FOLD_FROM`` faces or more through it (folding costs a fixed time per call).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["foldable_pairs", "folded_model"]

# Probabilities of the folded and the original graph differ by float32 round-off only.
_PROBE_ATOL = 1e-4


def _graph_nodes(model) -> list:
    """Return the calls (Keras ``Node`` objects) that make up a functional model's graph.

    Keras 3 keeps them in ``Function._nodes_by_depth``; a layer's ``_inbound_nodes`` would
    also list its calls in *other* graphs (an ensemble, an export wrapper, an earlier
    folded copy), which must not count here.
    """
    by_depth = getattr(model, "_nodes_by_depth", None)
    if not isinstance(by_depth, dict):
        return []
    return [node for nodes in by_depth.values() for node in nodes]


def foldable_pairs(model) -> list:
    """``(conv, bn)`` pairs of a functional Keras model that fold exactly.

    A pair is a ``Conv2D`` (linear activation, channels-last, float32) whose output goes
    to nothing but a ``BatchNormalization`` over its channel axis (float32), each layer
    called once in the model's graph.  Layers inside nested models are left alone.
    """
    import keras

    if isinstance(model, keras.Sequential):
        return []
    nodes = _graph_nodes(model)
    calls: dict[int, int] = {}
    consumers: dict[int, list] = {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    pairs = []
    for node in nodes:
        conv = node.operation
        if (type(conv) is not keras.layers.Conv2D or calls[id(conv)] != 1
                or conv.data_format != "channels_last"
                or conv.activation is not keras.activations.linear
                or len(node.output_tensors) != 1):
            continue
        out = node.output_tensors[0]
        users = consumers.get(id(out), [])
        if len(users) != 1:
            continue
        bn = users[0].operation
        if (not isinstance(bn, keras.layers.BatchNormalization) or calls[id(bn)] != 1
                or len(users[0].input_tensors) != 1
                or bn.axis not in (-1, len(out.shape) - 1)):
            continue
        if conv.dtype_policy.name != "float32" or bn.dtype_policy.name != "float32":
            continue
        pairs.append((conv, bn))
    return pairs


@functools.cache  # defined once, when Keras is first needed
def _layer_classes():
    import keras

    class FoldedConv(keras.layers.Layer):
        """``bn(conv(x))`` at inference as one convolution.

        Folded from the live variables of both layers on every call.
        """

        def __init__(self, conv, bn, **kwargs):
            super().__init__(name=f"{conv.name}_folded", **kwargs)
            self.conv, self.bn = conv, bn

        def call(self, x, training=None):
            conv, bn, ops = self.conv, self.bn, keras.ops
            scale = ops.rsqrt(bn.moving_variance + bn.epsilon)
            if bn.scale:
                scale = scale * bn.gamma
            shift = -bn.moving_mean * scale
            if bn.center:
                shift = shift + bn.beta
            if conv.use_bias:
                shift = shift + conv.bias * scale
            return conv.convolution_op(x, conv.kernel * scale) + shift

        def compute_output_shape(self, input_shape):
            return self.conv.compute_output_shape(input_shape)

    class FoldedAway(keras.layers.Layer):
        """Where the folded normalisation was: passes its input through."""

        def call(self, x, training=None, mask=None):
            return x

        def compute_output_shape(self, input_shape):
            return input_shape

    return FoldedConv, FoldedAway


def folded_model(model):
    """Return an inference copy of ``model`` with its Conv2D + BatchNormalization folded.

    The copy has its ``Conv2D -> BatchNormalization`` pairs folded and shares the
    variables of ``model``; ``model`` itself is returned when nothing folds.

    Parameters
    ----------
    model : keras.Model
        A built model (functional; anything else is returned as it is).

    Returns
    -------
    keras.Model
        Call it with ``training=False`` only: the folded pairs always use the moving
        statistics.
    """
    import keras

    pairs = foldable_pairs(model)
    if not pairs:
        return model
    FoldedConv, FoldedAway = _layer_classes()
    conv_to_bn = {id(conv): bn for conv, bn in pairs}
    folded_bns = {id(bn) for _, bn in pairs}

    def replace(layer):
        if id(layer) in conv_to_bn:
            return FoldedConv(layer, conv_to_bn[id(layer)])
        if id(layer) in folded_bns:
            return FoldedAway(name=f"{layer.name}_folded")
        return layer  # shared, not copied: same variables

    try:
        folded = keras.models.clone_model(model, clone_function=replace)
    except (TypeError, ValueError):  # a graph clone_model cannot rebuild: do not fold
        return model
    return folded if _agrees(model, folded) else model


def _agrees(model, folded) -> bool:
    """Tell whether the two give the same outputs on a probe batch (fixed seed, float32)."""
    import keras

    shape = model.input_shape
    if not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
        return False
    probe = np.random.default_rng(0).random((2, *shape[1:]), dtype=np.float32)
    a = keras.ops.convert_to_numpy(model(probe, training=False))
    b = keras.ops.convert_to_numpy(folded(probe, training=False))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-3, atol=_PROBE_ATOL))
