"""Audit the FER2013 image folders: blanks, duplicates and train/test leakage.

Usage::

    python tools/audit_fer2013.py [--data ../shared/data/fer2013] [--out docs/_static/audit]

Prints the Markdown report and writes to ``--out``:

* ``overview.png``: images per class and example problem pairs;
* ``distance_examples.png``: random pairs at pHash distances 2, 4, 6 and 8, to judge
  where "same photo" ends (this is how the default ``near_threshold=4`` was chosen);
* ``summary.json``: the headline numbers.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from _common import DEFAULT_FER2013, ROOT
from matplotlib.figure import Figure
from PIL import Image

from fervision.data.audit import audit, hamming_pairs, phash
from fervision.data.datasets import load_image_folder
from fervision.files import atomic_write, write_json


def _small_png(fig: Figure, gray: bool):
    """Return a figure as a compact PNG writer: 8-bit gray or a 64-colour palette."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    img = Image.open(buf).convert("RGB")
    img = img.convert("L") if gray else img.quantize(64)
    return lambda fh: img.save(fh, format="PNG", optimize=True)


def distance_examples(data: Path, distances=(2, 4, 6, 8), per_row=6, seed=0) -> Figure:
    """Random image pairs at each exact pHash distance (train and test pooled)."""
    X_train, _ = load_image_folder(data / "train", progress=True)
    X_test, _ = load_image_folder(data / "test", progress=True)
    X = np.concatenate([X_train, X_test])
    hashes = np.array([phash(img) for img in X], dtype=np.uint64)
    pairs = hamming_pairs(hashes, max(distances))
    dist = np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]])
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(2 * per_row, 1.25 * len(distances)), layout="constrained")
    grid = fig.add_gridspec(len(distances), 2 * per_row)
    for r, d in enumerate(distances):
        candidates = pairs[dist == d]
        chosen = candidates[rng.choice(len(candidates), min(per_row, len(candidates)),
                                       replace=False)]
        for c, (i, j) in enumerate(chosen):
            for side, idx in enumerate((i, j)):
                ax = fig.add_subplot(grid[r, 2 * c + side])
                ax.imshow(X[idx], cmap="gray", vmin=0, vmax=255)
                ax.set_axis_off()
                if c == 0 and side == 0:
                    ax.set_title(f"distance {d} ({len(candidates)} pairs)", fontsize=8,
                                 loc="left")
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_FER2013)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/_static/audit")
    parser.add_argument("--near-threshold", type=int, default=4)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    report = audit(args.data / "train", test_root=args.data / "test",
                   near_threshold=args.near_threshold)
    elapsed = time.perf_counter() - start
    print(report.to_markdown())
    print(f"audit took {elapsed:.1f} s")

    summary = {**report.summary(), "seconds": round(elapsed, 1)}
    write_json(args.out / "summary.json", summary)
    fig = report.plot(n_pairs=8)
    atomic_write(args.out / "overview.png", _small_png(fig, gray=False))
    fig = distance_examples(args.data)
    atomic_write(args.out / "distance_examples.png", _small_png(fig, gray=True))
    print(f"figures and summary written to {args.out}")


if __name__ == "__main__":
    main()
