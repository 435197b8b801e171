"""Work-arounds for Keras bugs that fervision users would otherwise hit.

``MultiWorkerMirroredStrategy`` + ``Model.fit`` (Keras 3, TensorFlow backend): before
training, ``fit`` builds the model symbolically from one batch, which it gets by
``strategy.reduce("MEAN", batch, axis=None)`` on the whole ``(x, y, sample_weight)``
structure of per-replica values; with several workers that raises "Attempt to
convert a value (PerReplica...) to a Tensor" (keras-team/keras#20585, open at Keras
3.15).  The build only needs the shapes and dtypes of one replica's batch, so
:func:`patch_multiworker_fit` hands it the first local replica's values instead.
"""

from __future__ import annotations

import threading

__all__ = ["following_operations", "patch_multiworker_fit"]

_LOCK = threading.Lock()
_PATCHED = False


def patch_multiworker_fit() -> None:
    """Make ``Model.fit`` work under ``MultiWorkerMirroredStrategy`` (idempotent).

    Other strategies keep Keras's own code path untouched.
    """
    global _PATCHED
    with _LOCK:
        if _PATCHED:
            return
        import tensorflow as tf
        from keras.src import tree
        from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

        original = TensorFlowTrainer._maybe_symbolic_build

        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            strategy = getattr(self, "_distribute_strategy", None)
            if iterator is None or not isinstance(
                    strategy, tf.distribute.MultiWorkerMirroredStrategy):
                return original(self, iterator=iterator, data_batch=data_batch)
            batch = None
            for _, _, it in iterator:
                batch = next(it)
                break

            def local(value):
                if isinstance(value, tf.distribute.DistributedValues):
                    return strategy.experimental_local_results(value)[0]
                return value

            return original(self, iterator=None, data_batch=tree.map_structure(local, batch))

        TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build

        # The train step's logs (scalars) are then averaged over the workers with
        # strategy.reduce("MEAN", v, axis=0), which fails on a scalar; axis=None is
        # the same mean for a scalar.  Looked up as a module global at call time.
        from keras.src.backend.tensorflow import trainer as tf_trainer

        original_reduce = tf_trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                    and reduction in ("auto", "mean")):
                return original_reduce(values, strategy, reduction)

            def mean(v):
                if not isinstance(v, tf.distribute.DistributedValues):
                    return v
                rank = strategy.experimental_local_results(v)[0].shape.rank
                return strategy.reduce("MEAN", v, axis=0 if rank else None)

            return tree.map_structure(mean, values)

        tf_trainer.reduce_per_replica = reduce_per_replica
        _PATCHED = True


def following_operations(layer) -> list:
    """Return the operations that take ``layer``'s output in a functional model.

    Keras 3 has no public API for a layer's consumers; this is the one place fervision
    reads its private ``_outbound_nodes``.
    """
    return [node.operation for node in layer._outbound_nodes]
