"""Choosing the Keras dtype policy for training.

On CPUs with AMX or AVX512-BF16 oneDNN runs bfloat16 convolutions natively; on the
2-core AMD EPYC (AVX512-BF16) we develop on, ``mixed_bfloat16`` trained the default
network about 3x faster than float32 (see ``benchmarks/bench_training.py``).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import keras

_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when /proc/cpuinfo lists AMX-BF16 or AVX512-BF16."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return any(f in flags for f in _BF16_CPU_FLAGS)


@functools.lru_cache(maxsize=1)
def gpu_supports_bf16() -> bool:
    """True when a visible GPU has compute capability 8.0 or newer (Ampere+)."""
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            if cc and tuple(cc) >= (8, 0):
                return True
    except Exception:  # noqa: BLE001 - no TF GPU support means no bf16 GPU
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
