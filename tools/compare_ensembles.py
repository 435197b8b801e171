r"""Compare candidate default models: finished runs, weight soups, and every mean of them.

    python tools/compare_ensembles.py --member runs/restart2 --member runs/restart3 \
        --member runs/restart5 --member runs/restart3+runs/restart5 --out runs/compare

Each ``--member`` is one finished run, or several joined by ``+``: a uniform *soup*, the
element-wise mean of their weights (Wortsman et al. 2022; it only makes sense for runs
warm-started from the same weights).  Every member is prepared as
``package_default_model.py`` prepares a shipped network (BatchNorm statistics recomputed
on the un-augmented training images, float32), its softmax outputs on each of the 12
``tta="crops"`` views of FER2013 PublicTest are computed once, and then every
combination of members is scored as the mean of their probabilities, with no TTA, flip
and crops: the same numbers ``average_models`` + ``EmotionClassifier(tta=...)`` give,
without running each combination again.

Writes ``OUT/<member>.npz`` (probabilities per view, reused when the script runs again),
``OUT/candidates.csv`` and ``OUT/candidates.md``.  This is model selection on PublicTest:
report how many candidates were compared along with the best.
"""

from __future__ import annotations

import argparse
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
from _common import DEFAULT_FER2013, load_soup, prepare_network
from sklearn.metrics import accuracy_score, f1_score

from fervision.data.datasets import load_image_folder
from fervision.data.preprocessing import check_images
from fervision.files import atomic_write
from fervision.nn.tta import tta_views

VIEWS = {"none": 1, "flip": 2, "crops": 12}  # tta_views yields image, mirror, crops...


def member_name(spec: str) -> str:
    """Return a file-name-safe label: run folder names, soups joined by '+'."""
    return "+".join(re.sub(r"[^A-Za-z0-9_.-]", "_", Path(p).name) for p in spec.split("+"))


def markdown(table: pd.DataFrame) -> str:
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
             for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n"


def view_probabilities(spec: str, X_test, X_train, cache: Path):
    """(12, N, K) softmax outputs of one prepared member on the crops views.

    Cached in ``cache``, written whole or not at all, so an interrupted run never
    leaves a truncated file that the next one would trust.
    """
    if cache.is_file():
        with np.load(cache) as f:
            return f["probs"], list(f["classes"])
    runs = [Path(p) for p in spec.split("+")]
    model, classes, backbone = load_soup(runs)
    model = prepare_network(model, runs, X_train, backbone, len(classes),
                                    progress=True)
    probs = np.stack([model.predict(view, batch_size=256, verbose=0)
                      for view in tta_views(X_test, "crops")])
    atomic_write(cache, lambda fh: np.savez(fh, probs=probs, classes=np.array(classes)))
    return probs, classes


def score_combinations(probs: dict[str, np.ndarray], y: np.ndarray) -> pd.DataFrame:
    """Accuracy and macro-F1 of the probability mean of every non-empty subset."""
    rows = []
    names = list(probs)
    # each member's TTA means once, not once per subset it belongs to
    means = {(m, tta): probs[m][:n].mean(axis=0) for m in names for tta, n in VIEWS.items()}
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            row = {"members": " & ".join(combo), "networks": k}
            for tta in VIEWS:
                p = np.mean([means[m, tta] for m in combo], axis=0)
                pred = p.argmax(axis=1)
                row[f"accuracy_{tta}"] = accuracy_score(y, pred)
                row[f"macro_f1_{tta}"] = f1_score(y, pred, average="macro")
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--member", action="append", required=True,
                   help="a run directory, or RUN+RUN+... for a weight soup (repeatable)")
    p.add_argument("--data", default=str(DEFAULT_FER2013))
    p.add_argument("--out", default="runs/compare")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [member_name(spec) for spec in args.member]
    if len(set(names)) != len(names):
        raise SystemExit(f"--member given twice: {names}")

    X, y = load_image_folder(Path(args.data) / "test")
    X_test = check_images(X, 48)
    X_train = None
    probs, classes = {}, None
    for spec, name in zip(args.member, names, strict=True):
        cache = out / f"{name}.npz"
        if X_train is None and not cache.is_file():
            X_train = check_images(load_image_folder(Path(args.data) / "train")[0], 48)
        probs[name], member_classes = view_probabilities(spec, X_test, X_train, cache)
        if classes is not None and member_classes != classes:
            raise SystemExit(f"{spec} predicts {member_classes}, the others {classes}")
        classes = member_classes
        print(f"{name}: crops accuracy "
              f"{accuracy_score(y, np.asarray(classes)[probs[name].mean(0).argmax(1)]):.4f}")
    index = {c: i for i, c in enumerate(classes)}
    table = score_combinations(probs, np.array([index[c] for c in y]))
    table = table.sort_values("accuracy_crops", ascending=False, kind="stable")
    atomic_write(out / "candidates.csv", lambda fh: table.to_csv(fh, index=False))
    atomic_write(out / "candidates.md", lambda fh: fh.write((
        f"{len(table)} candidates from {len(names)} members on {len(y)} PublicTest images\n\n"
        + markdown(table)).encode()))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
