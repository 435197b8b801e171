"""Images per second over a folder: one image at a time against the batched pipeline.

Today's one-image-at-a-time loop against the batched pipeline of
:func:`fervision.analyze_files`, on the same folder, in the same process and run.

The loop is what ``fervision predict`` without ``--output`` does: read an image, then
``analyze`` it (detect, then one network call for that image's faces).  The pipeline
reads and detects in a pool of threads while the network classifies the faces of many
images per call.  Both use the default detector and the bundled model, built (and the
network traced) before timing; the two are timed in alternation, ``--rounds`` times
each, and the best round of each is reported (the least disturbed by other load).

The folder: ``--images`` variants of tests/data/astronaut.jpg (sizes 256-512 px, most
with one face, every fifth without), made by tests/helpers_collections.py, plus its two
unreadable files.

Usage::

    python benchmarks/bench_batch.py [--images 200] [--rounds 2] [--note TEXT]

Prints the figures and writes ``benchmarks/results/batch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def loop(paths, detector, classifier):
    from fervision.faces.analysis import analyze, read_image

    for path in paths:
        try:
            analyze(read_image(path), detector, classifier)
        except (OSError, ValueError):
            pass


def pipeline(paths, detector, classifier, batch_size, n_threads):
    import fervision

    for _ in fervision.analyze_files(paths, detector=detector, classifier=classifier,
                                     batch_size=batch_size, n_threads=n_threads):
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "batch.json"))
    args = parser.parse_args(argv)

    from helpers_collections import make_image_tree

    from fervision.faces._batch import _default_threads
    from fervision.faces._collections import expand_paths
    from fervision.faces.analysis import default_classifier, default_detector

    with tempfile.TemporaryDirectory() as tmp:
        make_image_tree(tmp, args.images)
        paths = expand_paths([tmp])
        detector, classifier = default_detector(), default_classifier()
        # Warm-up: model loaded, both code paths traced, files in the page cache.
        loop(paths[:4], detector, classifier)
        pipeline(paths[:8], detector, classifier, args.batch_size, args.threads)
        pipeline(paths, detector, classifier, args.batch_size, args.threads)
        times = {"loop": [], "pipeline": []}
        for _ in range(args.rounds):
            t = time.perf_counter()
            loop(paths, detector, classifier)
            times["loop"].append(time.perf_counter() - t)
            t = time.perf_counter()
            pipeline(paths, detector, classifier, args.batch_size, args.threads)
            times["pipeline"].append(time.perf_counter() - t)
    n = len(paths)
    rate = {k: n / min(v) for k, v in times.items()}
    result = {
        "benchmark": "benchmarks/bench_batch.py",
        "images": n,
        "unreadable": 2,
        "rounds": args.rounds,
        "seconds": times,
        "images_per_s": {k: round(v, 2) for k, v in rate.items()},
        "speedup": round(rate["pipeline"] / rate["loop"], 2),
        "batch_size": args.batch_size or getattr(classifier, "batch_size", None),
        "threads": args.threads or _default_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "note": args.note,
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
