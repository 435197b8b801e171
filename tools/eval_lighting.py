"""Robustness to lighting: accuracy on darkened and over-exposed copies of a test set.

    python tools/eval_lighting.py --model default fer2013 --out docs/_static/model_card/lighting

A seed project's open problem was "low light / highly exposed images produce poor
results".  This measures it: every model is scored on FER+ Valid (majority labels, the
rule of :func:`fervision.datasets.ferplus_majority`) as it is and under four lighting
changes, each with and without CLAHE (contrast-limited adaptive histogram equalisation,
:func:`fervision.preprocessing.equalize_lighting`) applied to the faces first.
Writes ``lighting.json`` and ``lighting.png`` (accuracy per condition) and
``lighting-examples.png`` (one face under every condition) to ``--out``.  Models already
in an ``lighting.json`` there (measured on the same test set) keep their rows unless
measured again, so one model can be re-measured without the others.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: name -> function of a uint8 image batch; gamma > 1 darkens, < 1 brightens.
CONDITIONS = {
    "original": lambda X: X,
    "dark (gamma 2.5)": lambda X: _gamma(X, 2.5),
    "very dark (x0.25)": lambda X: np.round(X * 0.25).astype(np.uint8),
    "over-exposed (gamma 0.4)": lambda X: _gamma(X, 0.4),
    "blown out (x2.5)": lambda X: np.clip(np.round(X * 2.5), 0, 255).astype(np.uint8),
}


def _gamma(X: np.ndarray, gamma: float) -> np.ndarray:
    lut = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return lut[X]


def clahe(X: np.ndarray) -> np.ndarray:
    """CLAHE on each face, through the library's preprocessing option."""
    from fervision.data.preprocessing import equalize_lighting

    return np.stack([equalize_lighting(x) for x in X])


def earlier_results(path: Path) -> dict:
    """Return what an earlier run wrote to ``path`` ({} if nothing).

    Read before any model runs, so a file that is not such a record stops the run at
    once and is never replaced.
    """
    if not path.is_file():
        return {}
    try:
        before = json.loads(path.read_text())
        if not isinstance(before, dict) or not isinstance(before.get("results", {}), dict):
            raise ValueError("not a lighting record")
    except (ValueError, UnicodeDecodeError) as err:
        raise SystemExit(f"--out: {path} is not a lighting.json this tool wrote ({err}); "
                         "not replaced: choose another --out") from None
    return before


def merged(before: dict, data: str, images: int, results: dict) -> dict:
    """Return ``results`` merged over the rows of ``before``.

    Over the rows of the models in ``before`` that were not measured again, if
    ``before`` holds figures on the same test set (else ``results`` alone).
    """
    if before.get("data") == data and before.get("images") == images:
        return {**before.get("results", {}), **results}
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["default"],
                   help="pretrained names or .keras files")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ferplus"
                                         / "FER2013Valid"))
    p.add_argument("--out", default=str(ROOT / "docs" / "_static" / "model_card" / "lighting"))
    args = p.parse_args(argv)

    from fervision import EmotionClassifier
    from fervision.data.datasets import load_ferplus
    from fervision.files import write_json

    out = Path(args.out)
    before = earlier_results(out / "lighting.json")
    X, y = load_ferplus(args.data, progress=False)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.model:
        clf = (EmotionClassifier.load(name) if name.endswith(".keras")
               else EmotionClassifier.from_pretrained(name))
        clf.set_params(tta=False)
        rows = {}
        for cond, fn in CONDITIONS.items():
            Xc = fn(X)
            rows[cond] = {
                "plain": float((clf.predict(Xc) == y).mean()),
                "clahe": float((clf.predict(clahe(Xc)) == y).mean()),
            }
            print(f"{name} {cond}: {rows[cond]['plain']:.4f} (CLAHE {rows[cond]['clahe']:.4f})",
                  flush=True)
        results[name] = rows
    data, images = Path(args.data).name, len(y)
    results = merged(before, data, images, results)
    write_json(out / "lighting.json", {"data": data, "images": images, "results": results})

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False,
                             constrained_layout=True)
    for ax, (name, rows) in zip(axes[0], results.items(), strict=True):
        pos = np.arange(len(rows))
        ax.bar(pos - 0.2, [r["plain"] for r in rows.values()], 0.4, label="as is")
        ax.bar(pos + 0.2, [r["clahe"] for r in rows.values()], 0.4, label="CLAHE first")
        ax.set_xticks(pos, list(rows), rotation=20, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy (FER+ Valid, majority)")
        ax.set_title(f"model: {name}")
        ax.legend(loc="lower left")
    fig.savefig(out / "lighting.png", dpi=100)

    face = X[int(np.flatnonzero(y == "happy")[0])][None]
    fig, axes = plt.subplots(2, len(CONDITIONS), figsize=(2 * len(CONDITIONS), 4.4),
                             constrained_layout=True)
    for j, (cond, fn) in enumerate(CONDITIONS.items()):
        img = fn(face)
        axes[0, j].imshow(img[0], cmap="gray", vmin=0, vmax=255)
        axes[0, j].set_title(cond, fontsize=8)
        axes[1, j].imshow(clahe(img)[0], cmap="gray", vmin=0, vmax=255)
        axes[1, j].set_title("CLAHE", fontsize=8)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.savefig(out / "lighting-examples.png", dpi=100)
    print(f"wrote {out / 'lighting.json'}")


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()
