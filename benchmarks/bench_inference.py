"""Inference speed of the bundled default model.

    python benchmarks/bench_inference.py [--batch 256] [--repeats 20]

Batched throughput (images/s through ``predict_proba`` on 48x48 face crops) and
single-face latency (one crop per call, as in a video loop).  Writes
benchmarks/results/inference.json.  Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from fervision import EmotionClassifier


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--single", type=int, default=200)
    args = p.parse_args(argv)

    clf = EmotionClassifier.from_pretrained()
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
    clf.predict_proba(batch)  # warm-up: traces the graph
    start = time.perf_counter()
    for _ in range(args.repeats):
        clf.predict_proba(batch)
    batched = args.batch * args.repeats / (time.perf_counter() - start)

    one = batch[:1]
    for _ in range(10):
        clf.predict_proba(one)
    times = []
    for _ in range(args.single):
        t = time.perf_counter()
        clf.predict_proba(one)
        times.append((time.perf_counter() - t) * 1000)
    median, p95 = statistics.median(times), float(np.percentile(times, 95))
    print(f"batched ({args.batch}/call): {batched:,.0f} images/s")
    print(f"single face: median {median:.2f} ms, p95 {p95:.2f} ms")
    out = Path(__file__).parent / "results" / "inference.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "batched_images_per_s": batched, "batch": args.batch,
        "single_latency_ms_median": median, "single_latency_ms_p95": p95,
        "cpu_count": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
