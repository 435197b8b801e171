"""Inference speed of the bundled default model.

    python benchmarks/bench_inference.py [--batch 256] [--repeats 20]

Batched throughput (images/s through ``predict_proba`` on 48x48 face crops) and
single-face latency (one crop per call, as in a video loop), for each test-time
augmentation mode (none, flip, crops); the top-level figures are the shipped mode's.

``folding``: the traced network pass of ``predict_proba``
(``fervision.estimator._inference.inference_fn``) with batch-norm folded into the
convolutions (``fervision.nn.folding``; what batches of ``FOLD_FROM`` faces or more run)
and without (what fewer faces run), on the same batch, interleaved round by round.

Writes benchmarks/results/inference.json.  Run it on an otherwise idle machine.
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
from fervision.nn.tta import resolve_tta


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--single", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5, help="rounds of the folding comparison")
    args = p.parse_args(argv)

    clf = EmotionClassifier.from_pretrained()
    shipped = resolve_tta(clf.tta) or "none"
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
    results = {}
    for mode in ("none", "flip", "crops"):
        clf.set_params(tta=False if mode == "none" else mode)
        results[mode] = measure(clf, batch, args.repeats, args.single)
        r = results[mode]
        print(f"tta={mode}{' (shipped)' if mode == shipped else ''}: batched "
              f"({args.batch}/call) {r['batched_images_per_s']:,.0f} images/s; single face "
              f"median {r['single_latency_ms_median']:.2f} ms, "
              f"p95 {r['single_latency_ms_p95']:.2f} ms")
    folding = compare_folding(clf, batch, args.rounds)
    print(f"network pass, {args.batch} faces: folded {folding['folded_images_per_s']:,.0f} "
          f"vs unfolded {folding['unfolded_images_per_s']:,.0f} images/s "
          f"({folding['ratio']:.2f}x)")
    out = Path(__file__).parent / "results" / "inference.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"shipped_tta": shipped, "batch": args.batch, **results[shipped],
                               "by_tta": results, "folding": folding,
                               "cpu_count": os.cpu_count()}, indent=2))


def compare_folding(clf, batch, rounds, seconds=2.0):
    """Images/s of the traced pass with and without batch-norm folding (medians)."""
    import tensorflow as tf

    from fervision.data.preprocessing import check_images
    from fervision.estimator._inference import inference_fn
    from fervision.nn.eval_crop import classifier_crop_pct

    model, crop = clf.model_, classifier_crop_pct(clf)
    x = tf.constant(check_images(batch, model.input_shape[1]))
    fns = {"folded": inference_fn(model, crop, folded=True),
           "unfolded": inference_fn(model, crop, folded=False)}
    worst = float(np.abs(np.asarray(fns["folded"](x)) - np.asarray(fns["unfolded"](x))).max())
    rates = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                fn(x)
                n += len(batch)
            rates[name].append(n / (time.perf_counter() - start))
    folded, unfolded = (statistics.median(rates[k]) for k in ("folded", "unfolded"))
    return {"folded_images_per_s": folded, "unfolded_images_per_s": unfolded,
            "ratio": folded / unfolded,
            "round_ratios": [a / b for a, b in zip(rates["folded"], rates["unfolded"],
                                                   strict=True)],
            "max_abs_difference": worst, "rounds": rounds, "seconds_per_round": seconds}


def measure(clf, batch, repeats, single):
    """Batched images/s and single-face latency (ms) of one configuration."""
    clf.predict_proba(batch)  # warm-up: traces the graph
    start = time.perf_counter()
    for _ in range(repeats):
        clf.predict_proba(batch)
    batched = len(batch) * repeats / (time.perf_counter() - start)
    one = batch[:1]
    for _ in range(10):
        clf.predict_proba(one)
    times = []
    for _ in range(single):
        t = time.perf_counter()
        clf.predict_proba(one)
        times.append((time.perf_counter() - t) * 1000)
    return {"batched_images_per_s": batched,
            "single_latency_ms_median": statistics.median(times),
            "single_latency_ms_p95": float(np.percentile(times, 95))}

if __name__ == "__main__":
    main()
