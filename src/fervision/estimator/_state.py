"""Process-wide random and numeric state, left as a fit found it."""

from __future__ import annotations

import contextlib
import os

import keras
import numpy as np

__all__ = ["process_state_kept"]


@contextlib.contextmanager
def process_state_kept():
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
