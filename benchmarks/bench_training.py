"""Training throughput of the default network in float32 vs mixed_bfloat16.

    python benchmarks/bench_training.py [--backbone fernet] [--steps 30]

Prints images/s for each policy and their ratio, and writes
benchmarks/results/training.json.  Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np

from fervision.nn.augmentation import build_augmentation
from fervision.nn.backbones import create_model
from fervision.nn.precision import cpu_supports_bf16, dtype_policy


def images_per_second(backbone: str, policy: str, steps: int, batch_size: int) -> float:
    with dtype_policy(policy):
        model = create_model(backbone, augmentation=build_augmentation(48, seed=0))
        model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    n = batch_size * steps
    x = rng.random((n, 48, 48, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 7, n), 7)
    model.fit(x[: batch_size * 3], y[: batch_size * 3], batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return n / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="fernet")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    results = {
        policy: images_per_second(args.backbone, policy, args.steps, args.batch_size)
        for policy in ("float32", "mixed_bfloat16")
    }
    ratio = results["mixed_bfloat16"] / results["float32"]
    print(f"{'policy':<16}{'train img/s':>12}")
    for policy, ips in results.items():
        print(f"{policy:<16}{ips:>12.1f}")
    print(f"bf16 / float32 = {ratio:.2f}x  (CPU bf16 support: {cpu_supports_bf16()})")
    out = Path(__file__).parent / "results" / "training.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "backbone": args.backbone, "batch_size": args.batch_size, "steps": args.steps,
        "images_per_s": results, "ratio_bf16_over_fp32": ratio,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "keras": keras.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
