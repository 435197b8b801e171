"""Score the pretrained models on FER+ Valid and FER2013 PublicTest, side by side.

    python tools/eval_pretrained.py --out docs/_static/model_card/pretrained.json

For each model of :func:`fervision.weights.list_pretrained` (or ``--model NAME/PATH``;
``A+B+...`` scores the mean of their probabilities, a distillation teacher as
``train_default_model.py --teacher`` gives it)
and each test-time augmentation in ``--tta`` and centre crop in ``--crop-pct``: accuracy
and macro-F1 on

* FER+ Valid with majority labels (:func:`fervision.datasets.load_ferplus`: ties,
  contempt, unknown and not-a-face left out; 7 classes), and
* FER2013 PublicTest with the original labels (the image folders' ``test/``).

Both are the PublicTest faces; neither split was used to train these models, but both
informed choices (see the model card).  Writes one JSON file and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from _common import DEFAULT_FER2013, ROOT, load_mean_classifier  # tools/ is on sys.path

from fervision.data.datasets import load_ferplus, load_image_folder
from fervision.data.evaluation import evaluate
from fervision.files import write_json
from fervision.nn.eval_crop import check_crop_pct, classifier_crop_pct
from fervision.weights import list_pretrained, pretrained_info


def home_set(name: str) -> str | None:
    """Return the test set whose labels a pretrained model was trained on.

    None for a file or a mean of several models (``A+B``): no shipped model, no card.
    """
    if name.endswith(".keras") or "+" in name:
        return None
    trained_on = pretrained_info(name).trained_on
    return "FER+ Valid (majority)" if trained_on.startswith("FER+") else "FER2013 PublicTest"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=None,
                   help="pretrained names or .keras files, or the mean of several joined "
                        "by '+' (as train_default_model.py --teacher) "
                        "(default: every pretrained name)")
    p.add_argument("--tta", nargs="+", default=["none"], choices=["none", "flip", "crops"])
    p.add_argument("--crop-pct", nargs="+", default=["model"], metavar="FRACTION|model",
                   help="centre crop(s) to predict on (EmotionClassifier crop_pct); "
                        "'model': the model's own setting, 1: the whole face")
    p.add_argument("--ferplus", default=str(ROOT.parent / "shared" / "data" / "ferplus"))
    p.add_argument("--fer2013", default=str(DEFAULT_FER2013))
    p.add_argument("--out", default=None, help="JSON file to write")
    p.add_argument("--card", default=None, metavar="DIR",
                   help="also write each pretrained model's report (report.json/.md, "
                        "confusion_matrix.png) at its shipped setting (no TTA, its own "
                        "crop) on the test set of its labels to DIR/NAME/")
    args = p.parse_args(argv)
    for value in args.crop_pct:  # before the test sets load and the models run
        try:
            if value != "model":
                check_crop_pct(float(value))
        except ValueError as err:
            p.error(f"--crop-pct {value}: {err}")

    # every --model loads (and a bad one is named) before the test sets load
    models = [(name, load_mean_classifier(name, what="--model"))
              for name in args.model or list_pretrained()]
    sets = {
        "FER+ Valid (majority)": load_ferplus(Path(args.ferplus) / "FER2013Valid",
                                              progress=False),
        "FER2013 PublicTest": load_image_folder(Path(args.fer2013) / "test"),
    }
    rows = []
    for name, clf in models:
        own_crop = clf.crop_pct
        for crop_pct, tta in itertools.product(args.crop_pct, args.tta):
            clf.set_params(tta=False if tta == "none" else tta,
                           crop_pct=own_crop if crop_pct == "model" else float(crop_pct))
            crop = classifier_crop_pct(clf)
            for set_name, (X, y) in sets.items():
                t = time.perf_counter()
                report = evaluate(clf, X, y)
                rows.append({"model": name, "tta": tta, "crop_pct": crop,
                             "test_set": set_name,
                             "images": len(y), "accuracy": report.accuracy,
                             "macro_f1": report.macro_f1,
                             "per_class_f1": {c: v["f1"] if isinstance(v, dict) else v
                                              for c, v in report.per_class.items()},
                             "seconds": round(time.perf_counter() - t, 1)})
                print(f"| {name} | {tta} | {crop:g} | {set_name} | {report.accuracy:.2%} | "
                      f"{report.macro_f1:.3f} |", flush=True)
                if (args.card and tta == "none" and crop_pct == "model"
                        and set_name == home_set(name)):
                    report.save(Path(args.card) / name)
    if args.out:
        write_json(Path(args.out), rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
