"""Choosing the Keras dtype policy for training, and bfloat16-precision weights for storage.

On CPUs with AMX or AVX512-BF16 oneDNN runs bfloat16 convolutions natively, and
``mixed_bfloat16`` trains much faster than float32 there (measure it with
``benchmarks/bench_training.py``).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import keras
import ml_dtypes
import numpy as np

from .backbones import walk_layers

_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@functools.lru_cache(maxsize=1)
def cpu_info() -> tuple[str, frozenset[str]]:
    """Return the first processor's model name and flags from /proc/cpuinfo.

    ``("", frozenset())`` where there is no /proc/cpuinfo (not Linux).
    """
    try:
        first_processor = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
    except OSError:
        return "", frozenset()
    name, flags = "", frozenset()
    for line in first_processor.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = frozenset(value.split())
    return name, flags


def cpu_supports_bf16() -> bool:
    """Return True when /proc/cpuinfo lists AMX-BF16 or AVX512-BF16."""
    return any(f in cpu_info()[1] for f in _BF16_CPU_FLAGS)


@functools.lru_cache(maxsize=1)
def gpu_supports_bf16() -> bool:
    """Return True when a visible GPU has compute capability 8.0 or newer (Ampere+)."""
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            if cc and tuple(cc) >= (8, 0):
                return True
    except Exception:  # no TF GPU support means no bf16 GPU
        return False
    return False


def resolve_precision(precision: str = "auto") -> str:
    """Turn ``precision`` into a Keras dtype policy name.

    Parameters
    ----------
    precision : {"auto", "float32", "mixed_bfloat16", "mixed_float16"}
        ``"auto"`` picks ``mixed_bfloat16`` where the hardware runs it natively and
        ``float32`` elsewhere.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if (gpu_supports_bf16() or cpu_supports_bf16()) else "float32"


@contextlib.contextmanager
def dtype_policy(precision: str = "auto"):
    """Set the global Keras dtype policy inside the block and restore it after."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_precision(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def round_weights_to_bfloat16(model: keras.Model, *, skip_batchnorm: bool = True) -> int:
    """Round a model's float32 weights to the nearest bfloat16 value, in place.

    The weights stay float32 (any CPU runs float32 compute), but each keeps only
    bfloat16's 8-bit mantissa, so the low 16 bits of every value are zero and zip
    (a wheel, a ``.keras`` archive) compresses the weight file to about half.  For a
    network trained under ``mixed_bfloat16`` these are the very values its forward
    passes used: the policy casts the float32 variables to bfloat16 before each layer.

    Parameters
    ----------
    model : keras.Model
        Updated in place (nested models included).
    skip_batchnorm : bool, default=True
        Leave BatchNormalization's statistics and affine weights in full precision:
        they are a tiny share of the bytes, and the moving variance, unlike the other
        weights, was never cast to bfloat16 during training.

    Returns
    -------
    int
        Number of weight values rounded.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    rounded = 0
    skip = set()
    if skip_batchnorm:
        for layer in walk_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                skip.update(id(v) for v in layer.weights)
    for variable in model.weights:
        if id(variable) in skip or keras.backend.standardize_dtype(variable.dtype) != "float32":
            continue
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        # ml_dtypes' cast rounds to nearest, ties to even (as the bfloat16 hardware does).
        variable.assign(value.astype(ml_dtypes.bfloat16).astype(np.float32))
        rounded += value.size
    return rounded
