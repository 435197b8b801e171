"""Wrap finished training runs as the bundled default model and measure it.

    python tools/package_default_model.py --run runs/default
    python tools/package_default_model.py --run runs/a runs/b   # ship their average
    python tools/package_default_model.py --run runs/a runs/b --soup   # one network

Loads ``RUN/final.keras`` (the weights after the last epoch of the schedule; PublicTest
was not used to pick them; a run started with ``--init-from`` is recorded together with
the runs it continues), recomputes its BatchNorm statistics on the un-augmented
training images (:func:`fervision.nn.batchnorm.recalibrate_batchnorm`; ``--batchnorm
moving`` keeps the training run's moving averages instead), wraps it with
:meth:`EmotionClassifier.from_keras_model` predicting on the centre ``--crop-pct`` of each
face (the scale of training's random-resized crops), measures accuracy, macro-F1 and
per-class F1 on FER2013 PublicTest with each test-time augmentation (none, flip, crops),
and writes
(several runs: each is prepared and measured alone, then they are shipped as one model
averaging their probabilities, :func:`fervision.nn.backbones.average_models`; with
``--soup`` they are shipped as one network whose weights are the mean of theirs, a
uniform soup, one pass per face):

With ``--bfloat16-weights`` each member's weights are rounded to bfloat16 values
(:func:`fervision.nn.precision.round_weights_to_bfloat16`) before anything is measured, so
the figures are those of the shipped weights, which take half the space in the wheel.

* ``src/fervision/models/default.keras`` — the shipped model (no optimizer state);
* ``docs/_static/model_card/`` — report.json/.md, confusion_matrix.png, summary.json,
  history.png (history-1.png ... for further members).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


from _common import (  # tools/ is on sys.path when run as a script
    DEFAULT_FER2013,
    ROOT,
    chained_history,
    check_finished_run,
    is_restored,
    load_soup,
    prepare_network,
    run_chain,
    run_wall_s,
)

from fervision import EmotionClassifier
from fervision.data.datasets import load_ferplus, load_image_folder
from fervision.data.evaluation import evaluate, plot_history
from fervision.files import atomic_write, write_json
from fervision.nn.augmentation import DEFAULT_CROP
from fervision.nn.backbones import average_models
from fervision.nn.eval_crop import check_crop_pct
from fervision.nn.precision import round_weights_to_bfloat16


def load_member(runs: list[Path], X, y, X_train, bfloat16_weights=False,
                batchnorm="precise"):
    """Load a run's final weights, BatchNorm recalibrated, float32, and what that changed.

    Several runs give their soup (``_common.load_soup``).  The accuracy with the
    training's moving BatchNorm statistics is measured for one trained run only: None
    for a soup, and for a restored run (:func:`is_restored`), whose file no longer has
    them.
    """
    # compile=False (in load_soup) drops the optimizer state: the file holds weights only.
    model, classes, backbone = load_soup(runs)
    acc_moving = None
    if len(runs) == 1 and is_restored(runs[0]):
        restored_from = json.loads((runs[0] / "args.json").read_text())["restored_from"]
        print(f"{runs[0]}: restored from {restored_from}, used as shipped")
    elif len(runs) == 1:
        before = EmotionClassifier.from_keras_model(model, classes, input_size=48,
                                                    crop_pct=TEST_SET["crop_pct"])
        acc_moving = evaluate(before, X, y).accuracy
        print(f"{runs[0]}: {TEST_SET['name']} accuracy with the training run's moving "
              f"BatchNorm statistics: {acc_moving:.4f}")
    model = prepare_network(model, runs, X_train, backbone, len(classes),
                            batchnorm=batchnorm)
    if bfloat16_weights:
        round_weights_to_bfloat16(model)
    return model, classes, acc_moving, backbone


#: The test set figures are measured on (FER2013 PublicTest, or FER+ Valid with --ferplus),
#: the test-time augmentations measured, and the centre crop predicted on (--crop-pct).
TEST_SET = {"name": "PublicTest", "modes": ("none", "flip", "crops"),
            "crop_pct": 1.0 - DEFAULT_CROP}


def measure(model, classes, backbone, X, y, label):
    """Test-set report of ``model`` under each test-time augmentation measured."""
    results = {}
    for tta in TEST_SET["modes"]:
        clf = EmotionClassifier.from_keras_model(
            model, classes, input_size=48, backbone=backbone,
            tta=False if tta == "none" else tta, crop_pct=TEST_SET["crop_pct"])
        t = time.perf_counter()
        report = evaluate(clf, X, y)
        results[tta] = (clf, report, time.perf_counter() - t)
        print(f"{label} {TEST_SET['name']} tta={tta}: accuracy {report.accuracy:.4f}, "
              f"macro-F1 {report.macro_f1:.4f} ({len(X)} images)")
    return results


def deflate_archive(path: Path) -> None:
    """Rewrite a .keras zip with every entry deflate-compressed, atomically.

    Keras stores its entries uncompressed; weights rounded to bfloat16 values have 16
    zero bits per float32, which deflate removes, so the shipped file is about half as
    large and loads the same way (zip readers inflate transparently).
    """
    import zipfile

    def write(fh):
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(
                fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info.filename))

    atomic_write(path, write)


def run_record(run: Path, acc_moving, results):
    """Provenance of one member: every run of its warm-restart chain, oldest first."""
    chain = run_chain(run)
    history = chained_history(chain)
    return history, {
        "run": str(run),
        "accuracy_before_bn_recalibration": acc_moving,
        "accuracy": {k: r[1].accuracy for k, r in results.items()},
        "macro_f1": {k: r[1].macro_f1 for k, r in results.items()},
        "runs": [{"args": json.loads((r / "args.json").read_text()),
                  "wall_s": run_wall_s(r),
                  "epochs_logged": int((history["run"] == i).sum())}
                 for i, r in enumerate(chain)],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs="+", default=["runs/default"],
                   help="one run directory, or several: their average is shipped")
    p.add_argument("--soup", action="store_true",
                   help="ship the runs' element-wise mean weights as one network (a "
                        "uniform soup of runs warm-started from the same weights) "
                        "instead of the mean of their probabilities")
    p.add_argument("--data", default=str(DEFAULT_FER2013))
    p.add_argument("--tta", choices=["auto", "none", "flip", "crops"], default="auto",
                   help="test-time augmentation to ship with; auto: the most accurate")
    p.add_argument("--out", default=str(ROOT / "src" / "fervision" / "models" / "default.keras"))
    p.add_argument("--bfloat16-weights", action="store_true",
                   help="ship weights rounded to bfloat16 values (half the wheel space)")
    p.add_argument("--card", default=str(ROOT / "docs" / "_static" / "model_card"))
    p.add_argument("--ferplus", metavar="DIR", default=None,
                   help="a FER+ folder (FER2013Train/, FER2013Valid/): recalibrate BatchNorm "
                        "on its training images and measure on FER2013Valid's majority "
                        "labels (fervision.datasets.load_ferplus) instead of --data")
    p.add_argument("--batchnorm", choices=["precise", "moving"], default="precise",
                   help="precise: recompute BatchNorm statistics on the un-augmented "
                        "training images; moving: keep the training run's moving averages "
                        "(a soup: their mean; with a weight EMA they can be the better ones)")
    p.add_argument("--crop-pct", type=float, default=TEST_SET["crop_pct"],
                   metavar="FRACTION",
                   help="centre crop the model predicts on (EmotionClassifier crop_pct); "
                        "default: 1 - the crop of train_default_model's augmentation, "
                        "the scale the network was trained at")
    p.add_argument("--deflate", action="store_true",
                   help="store the .keras archive deflate-compressed (Keras stores it "
                        "uncompressed; with --bfloat16-weights this halves the file)")
    args = p.parse_args(argv)
    if args.tta != "auto":  # only the shipped mode is measured
        TEST_SET["modes"] = (args.tta,)
    try:
        TEST_SET["crop_pct"] = check_crop_pct(args.crop_pct)
    except ValueError as err:
        p.error(f"--crop-pct {args.crop_pct}: {err}")
    runs = [Path(r) for r in args.run]
    if args.soup and len(runs) < 2:
        p.error(f"--soup needs two or more --run, got {len(runs)}")
    for run in runs:  # before the minutes of loading and measuring
        check_finished_run(run)
    class_lists = [json.loads((run / "classes.json").read_text()) for run in runs]
    if any(c != class_lists[0] for c in class_lists):
        raise SystemExit("the runs were trained on different class lists: " + "; ".join(
            f"{run}: {c}" for run, c in zip(runs, class_lists, strict=True)))
    # Output folders too, before the minutes of work (a missing one failed at the save).
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.card).mkdir(parents=True, exist_ok=True)

    if args.ferplus:
        TEST_SET["name"] = "FER+ Valid (majority)"
        X, y = load_ferplus(Path(args.ferplus) / "FER2013Valid")
        X_train, _ = load_ferplus(Path(args.ferplus) / "FER2013Train", target="votes")
    else:
        X, y = load_image_folder(Path(args.data) / "test")
        X_train, _ = load_image_folder(Path(args.data) / "train")
    if args.soup:  # one network; its runs are recorded, not measured alone
        model, classes, _, backbone = load_member(runs, X, y, X_train,
                                                  args.bfloat16_weights, args.batchnorm)
        results = measure(model, classes, backbone, X, y, "soup")
        provenance = [(run, None, {}) for run in runs]
    else:
        loaded = [(run, *load_member([run], X, y, X_train, args.bfloat16_weights,
                                     args.batchnorm))
                  for run in runs]
        classes = loaded[0][2]
        if len(runs) == 1:
            _, model, _, _, backbone = loaded[0]
            results = measure(model, classes, backbone, X, y, str(runs[0]))
            member_results = [results]
        else:  # each member on its own too, for the model card
            member_results = [measure(m, classes, b, X, y, f"member {i} ({run})")
                              for i, (run, m, _, _, b) in enumerate(loaded)]
            model = average_models([m for _, m, _, _, _ in loaded])
            # One architecture -> its name, so that clone(clf).fit(...) trains one such
            # network; mixed architectures have no single builder to name.
            backbone = "+".join(dict.fromkeys(b for _, _, _, _, b in loaded))
            results = measure(model, classes, backbone, X, y, "ensemble")
        provenance = [(run, acc_moving, res) for (run, _, _, acc_moving, _), res
                      in zip(loaded, member_results, strict=True)]
    histories, records = zip(*(run_record(*member) for member in provenance), strict=True)
    use_tta = args.tta
    if use_tta == "auto":  # the one decision PublicTest makes, stated in the model card
        use_tta = max(results, key=lambda k: results[k][1].accuracy)
    clf, report, _ = results[use_tta]

    out = Path(args.out)
    clf.save(out)
    if args.deflate:
        deflate_archive(out)
    print(f"saved {out} ({out.stat().st_size / 1e6:.1f} MB), tta={use_tta}")
    reloaded = EmotionClassifier.load(out)
    assert (reloaded.predict(X[:64]) == clf.predict(X[:64])).all()

    card = Path(args.card)
    for old in [*card.glob("history*.png"), *card.glob("history*.csv")]:
        old.unlink()  # a previous model's members
    report.save(card)
    for i, history in enumerate(histories):
        stem = "history" if i == 0 else f"history-{i}"
        if len(history):  # an unpacked soup's own run has no epochs to draw
            fig = plot_history({k: history[k].tolist() for k in history.columns
                                if k not in ("epoch", "run")})
            for boundary in history.index[history["run"].diff() == 1]:
                for ax in fig.axes:  # mark where a warm restart began
                    ax.axvline(boundary + 0.5, color="grey", lw=0.8, ls=":")
            if len(histories) > 1:
                fig.suptitle(f"member {i}: {runs[i].name}")
            atomic_write(card / f"{stem}.png", lambda fh, fig=fig: fig.savefig(
                fh, format="png", dpi=110, bbox_inches="tight"))
        atomic_write(card / f"{stem}.csv",
                     lambda fh, history=history: history.to_csv(fh, index=False))
    summary = {
        "test_set": TEST_SET["name"],
        "test_images": len(X),
        "shipped_tta": use_tta,
        "crop_pct": TEST_SET["crop_pct"],
        "accuracy": {k: r[1].accuracy for k, r in results.items()},
        "macro_f1": {k: r[1].macro_f1 for k, r in results.items()},
        "evaluation_s": {k: round(r[2], 1) for k, r in results.items()},
        "parameters": int(model.count_params()),
        "weights": "rounded to bfloat16 values" if args.bfloat16_weights else "float32",
        "batchnorm": args.batchnorm,
        "soup": args.soup,
        "members": records,
    }
    write_json(card / "summary.json", summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
