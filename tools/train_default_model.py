"""Train fervision's bundled emotion models on FER2013 or FER+ (``--ferplus``).

Reproduce with::

    python tools/train_default_model.py --data ../shared/data/fer2013 --out runs/default

The run is resumable: kill it and start the same command again, and Keras's
``BackupAndRestore`` continues from the last finished epoch (weights, optimizer state,
learning-rate schedule).  Every epoch is also checkpointed to ``OUT/last.keras`` and
logged to ``OUT/history.csv``; ``OUT/wall.json`` sums the wall time over resumptions
(``done.json`` gets the total at the end).  Keras does not checkpoint random-number state, so a
resumed run re-seeds shuffling and augmentation from ``(seed, resume epoch)``, recorded
under ``"resumed"`` in ``OUT/args.json``: with the original seed it would replay the
exact image order and augmentations of the run's first epochs.

Training data is FER2013 ``train/`` (28,709 images); ``test/`` (PublicTest) is only
used for validation curves (on the centre crop the packaged model predicts on,
``crop_pct`` 0.9) and the reported figures, never for choosing weights: the model
shipped is the one after the last epoch of the schedule.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from _common import load_mean_classifier  # tools/ is on sys.path

from fervision.data.datasets import FERPLUS_CLASSES, load_ferplus, load_image_folder
from fervision.data.preprocessing import check_images
from fervision.files import write_json  # whole or not at all: a resumed run reads them back
from fervision.nn.augmentation import (
    DEFAULT_CROP,
    build_augmentation,
    mixup,
    split_augmentation,
)
from fervision.nn.backbones import create_model
from fervision.nn.distillation import _check_alpha, _check_temperature, consistent_targets
from fervision.nn.eval_crop import center_crop
from fervision.nn.growth import grow_weights
from fervision.nn.precision import dtype_policy, resolve_precision

#: ``--view``: the build_augmentation settings each view turns off.  The centre views train
#: on the centre crop the packaged model predicts on, so nothing that moves a pixel may
#: stay; changes of light move none (without them the fine-tune forgets dark faces).
_NO_GEOMETRY = {"rotation": 0, "zoom": 0, "translation": 0, "crop": 0}
VIEWS = {
    "augmented": {},
    "centre": {**_NO_GEOMETRY, "brightness": 0, "contrast": 0},
    "centre-lighting": _NO_GEOMETRY,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--data", default="../shared/data/fer2013",
                   help="FER2013 image folders (train/, test/), or with --ferplus a FER+ "
                        "folder (FER2013Train/, FER2013Valid/)")
    p.add_argument("--ferplus", action="store_true",
                   help="train on FER+ vote distributions (fervision.data.datasets.load_ferplus, "
                        "target='distribution'); validate on FER+ Valid majority labels")
    p.add_argument("--out", default="runs/default")
    p.add_argument("--backbone", default="fernet")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--final-lr-ratio", type=float, default=0.01,
                   help="the cosine schedule ends at this fraction of --lr")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--erasing", type=float, default=0.0, metavar="P",
                   help="random erasing with probability P, 0 = off")
    p.add_argument("--ema", type=float, default=0.0, metavar="MOMENTUM",
                   help="keep an exponential moving average of the weights (Keras "
                        "optimizer use_ema) and end with it; 0 = off")
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                   help="mixup with Beta(ALPHA, ALPHA) coefficients, 0 = off "
                        "(fervision.nn.augmentation.mixup)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="images per class (smoke runs)")
    p.add_argument("--teacher", default=None, metavar="NAME|FILE[+NAME|FILE...]",
                   help="distil from this pretrained model (fervision.weights.list_pretrained) "
                        "or saved classifier (.keras, e.g. a model from the repository's "
                        "history), or from the mean of several joined by '+' "
                        "(fervision.nn.backbones.average_models; each member at its own "
                        "centre crop, except with --consistent): "
                        "its probabilities on the un-augmented training images, computed "
                        "once and cached in OUT/teacher.npz, mixed into the targets "
                        "(fervision.nn.distillation.distillation_targets)")
    p.add_argument("--teacher-tta", default="none", choices=["none", "flip", "crops"],
                   help="the teacher's test-time augmentation; with --consistent only "
                        "flip (the mean over the student's view and its mirror)")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="with --teacher: the teacher's share of each target")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="with --teacher: softening of the teacher's probabilities")
    p.add_argument("--consistent", action="store_true",
                   help="with --teacher: run the teacher on every augmented batch, the very "
                        "view the student sees (consistent teaching), instead of once on "
                        "the plain images; costs a teacher pass per step, nothing cached")
    p.add_argument("--view", default="augmented",
                   choices=list(VIEWS),
                   help="what the student sees: augmented, the random views of "
                        "fervision.nn.augmentation.build_augmentation; centre, the centre "
                        "crop the packaged model predicts on (crop_pct 0.9), randomly "
                        "mirrored and nothing else (--erasing still applies): a short "
                        "fine-tune at the test view, as FixRes (Touvron et al., 2019), where "
                        "a cached --teacher (e.g. with --teacher-tta crops) gives the "
                        "targets of exactly that view; centre-lighting, the same with the "
                        "augmentation's brightness and contrast changes kept, which move "
                        "no pixel and keep the network's robustness to light")
    p.add_argument("--init-from", default=None,
                   help="start from this .keras model's weights (a warm restart: a new "
                        "schedule on top of a finished run); a shallower network of the "
                        "same family (fernet_small for fernet_small_deep) is grown into "
                        "the backbone, its new blocks starting as the identity "
                        "(fervision.nn.growth.grow_weights)")
    return p.parse_args(argv)


def initial_weights(args):
    """Return the weights of ``--init-from``, grown into a deeper backbone when it is one.

    Called before the run folder exists, so that a file that does not fit ``--backbone``
    stops the run with its name and nothing written.  Grown in float32, outside the
    training's dtype policy, so that ``grow_weights`` can check that the grown network
    predicts what the trained one did.
    """
    start = keras.saving.load_model(args.init_from, safe_mode=True, compile=False)
    with dtype_policy("float32"):
        target = create_model(args.backbone, input_size=48, n_classes=start.output_shape[-1],
                              augmentation=student_augmentation(args))
    if start.count_params() == target.count_params():
        return start.get_weights()
    # a deeper backbone of the same family (fernet_small -> fernet_small_deep)
    try:
        new = grow_weights(target, start)
    except ValueError as err:
        raise SystemExit(f"--init-from {args.init_from}: {err}") from None
    print(f"grown from {args.init_from}: new layers {', '.join(new)}, starting as the "
          "identity")
    return target.get_weights()


def student_augmentation(args, seed=None):
    """Return the augmentation block of ``--view`` (``--erasing`` applies to every view)."""
    return build_augmentation(48, erasing=args.erasing, seed=seed, **VIEWS[args.view])


def dataset(X, y, batch_size, shuffle, seed, mixup_alpha=0.0):
    ds = tf.data.Dataset.from_tensor_slices((X, y))
    if shuffle:
        ds = ds.shuffle(len(X), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if mixup_alpha:
        ds = mixup(ds, mixup_alpha, seed=seed)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_data(args):
    """Load the training and validation images with their targets.

    One-hot (FER2013) or vote-share (FER+) targets, columns in ``classes`` order
    (sorted, as ``EmotionClassifier.classes_``).
    """
    if args.ferplus:
        Xtr, Ytr = load_ferplus(Path(args.data) / "FER2013Train", target="distribution")
        Xte, yte = load_ferplus(Path(args.data) / "FER2013Valid", target="majority")
        if args.limit:
            Xtr, Ytr = Xtr[: 7 * args.limit], Ytr[: 7 * args.limit]
            Xte, yte = Xte[: 7 * args.limit], yte[: 7 * args.limit]
        classes = list(FERPLUS_CLASSES)
        index = {c: i for i, c in enumerate(classes)}
        Yte = keras.utils.to_categorical([index[c] for c in yte], len(classes))
        return Xtr, Ytr.astype("float32"), Xte, Yte, classes
    Xtr, ytr = load_image_folder(Path(args.data) / "train", max_per_class=args.limit)
    Xte, yte = load_image_folder(Path(args.data) / "test", max_per_class=args.limit)
    classes = sorted(set(ytr))  # sklearn's order, as EmotionClassifier.classes_
    index = {c: i for i, c in enumerate(classes)}
    Ytr = keras.utils.to_categorical([index[c] for c in ytr], len(classes))
    Yte = keras.utils.to_categorical([index[c] for c in yte], len(classes))
    return Xtr, Ytr, Xte, Yte, classes


def load_teacher(args):
    """Load the ``--teacher`` with its TTA.

    A pretrained name or a saved ``.keras`` file, or the mean of several joined by
    ``+`` (:func:`_common.load_mean_classifier`); exits naming the value that is none of
    these, before the run directory exists.
    """
    # --consistent runs the teacher's network on the student's augmented view, already
    # at training scale: a member cropping it again would see a smaller face than it knows.
    teacher = load_mean_classifier(args.teacher, what="--teacher",
                                   own_crops=not args.consistent)
    return teacher.set_params(tta=False if args.teacher_tta == "none" else args.teacher_tta)


def distilled_targets(args, teacher, out: Path, X, Y, classes):
    """``Y`` mixed with the ``teacher``'s probabilities on the (un-augmented) ``X``.

    The probabilities are cached in ``OUT/teacher.npz`` under a fingerprint of the
    teacher's weights, its TTA and the images, so a resumed run does not compute them
    again and a changed teacher is never mistaken for the cached one.
    """
    from fervision.nn.distillation import distillation_targets, teacher_probabilities

    tta = teacher.tta
    t0 = time.time()
    proba = teacher_probabilities(teacher, X, cache=out / "teacher.npz")
    print(f"teacher {args.teacher} (tta={tta}): probabilities of {len(X)} images in "
          f"{time.time() - t0:.0f} s")
    return distillation_targets(proba, teacher.classes_, classes, target_distribution=Y,
                                alpha=args.alpha, temperature=args.temperature)


def resume_epoch(out: Path) -> int:
    """Return the epochs finished before an interruption (0 for a fresh run).

    As BackupAndRestore recorded them.
    """
    meta = out / "backup" / "training_metadata.json"
    return int(json.loads(meta.read_text())["epoch"]) if meta.is_file() else 0


def run_seed(seed: int, start_epoch: int) -> int:
    """Seed of the random streams (shuffling, augmentation) from ``start_epoch`` on.

    Their state is not in Keras's backup, so with ``seed`` itself a resumed run would
    show the network the very images and augmentations of its first epochs again.
    """
    return seed if start_epoch == 0 else seed + 1000 * start_epoch


def record_args(out: Path, args, start_epoch: int, seed: int) -> None:
    """Write OUT/args.json, keeping the history of earlier resumptions."""
    path = out / "args.json"
    resumed = []
    if start_epoch and path.is_file():
        resumed = json.loads(path.read_text()).get("resumed", [])
    if start_epoch:
        resumed.append({"at_epoch": start_epoch, "seed": seed})
    record = vars(args) | {"policy": resolve_precision(args.precision)}
    if resumed:
        record["resumed"] = resumed
    write_json(path, record)


class WallClock(keras.callbacks.Callback):
    """Keep ``OUT/wall.json`` at the wall time of the epochs finished so far.

    Summed over every start of the run (an interrupted epoch, redone after the resume,
    counts once).
    """

    def __init__(self, path: Path, resumed: bool):
        super().__init__()
        self.path = path
        self.before = 0.0
        if resumed and path.is_file():
            self.before = json.loads(path.read_text())["wall_s"]

    def on_train_begin(self, logs=None):
        self.t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        write_json(self.path, {"wall_s": self.total(), "epochs": epoch + 1})

    def this_start(self) -> float:
        return time.time() - self.t0

    def total(self) -> float:
        return self.before + self.this_start()


class WholeModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's ModelCheckpoint of ``model`` even when a part of it is what is fitted.

    With ``--consistent``: the checkpoint must be a model that takes images.
    """

    def __init__(self, path: str, model: keras.Model):
        super().__init__(path)
        self.whole = model

    def set_model(self, model):
        super().set_model(self.whole)


def main(argv=None):
    args = parse_args(argv)
    if not 0 <= args.warmup_epochs < args.epochs:
        # before OUT exists; Keras's CosineDecay would fail later, naming decay_steps
        raise SystemExit(f"--warmup-epochs {args.warmup_epochs} must be at least 0 and "
                         f"fewer than --epochs {args.epochs}")
    if args.init_from and not Path(args.init_from).is_file():
        # before OUT exists: a typo must not leave a run directory that looks started
        raise SystemExit(f"--init-from {args.init_from}: no such file")
    if args.teacher:
        # the library's own checks, before OUT exists (they would fail after it otherwise)
        for option, value, check in (("--alpha", args.alpha, _check_alpha),
                                     ("--temperature", args.temperature, _check_temperature)):
            try:
                check(value)
            except ValueError as err:
                raise SystemExit(f"{option} {value}: {err}") from None
    if args.consistent and not args.teacher:
        raise SystemExit("--consistent needs --teacher")
    if args.consistent and args.teacher_tta == "crops":
        raise SystemExit("--teacher-tta crops: with --consistent the teacher sees the "
                         "student's augmented view, already a random crop; use none or flip")
    teacher = load_teacher(args) if args.teacher else None
    init_weights = initial_weights(args) if args.init_from else None
    try:  # before OUT exists: a wrong --data must not leave a run directory behind
        Xtr, Ytr, Xte, Yte, classes = load_data(args)
    except (OSError, ValueError) as err:
        raise SystemExit(f"--data {args.data}: {err}") from None
    Xtr, Xte = check_images(Xtr, 48), check_images(Xte, 48)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start_epoch = resume_epoch(out)
    seed = run_seed(args.seed, start_epoch)
    record_args(out, args, start_epoch, seed)
    keras.utils.set_random_seed(seed)

    if teacher is not None and not args.consistent:
        Ytr = distilled_targets(args, teacher, out, Xtr, Ytr, classes)
    write_json(out / "classes.json", classes)

    steps = int(np.ceil(len(Xtr) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.lr / 20, decay_steps=steps * (args.epochs - args.warmup_epochs),
        warmup_target=args.lr, warmup_steps=steps * args.warmup_epochs,
        alpha=args.final_lr_ratio,
    )
    if args.view != "augmented":
        # after the cached teacher saw the whole faces, as the packaged model's TTA does
        Xtr = center_crop(Xtr, 1.0 - DEFAULT_CROP)
    with dtype_policy(args.precision):
        model = create_model(args.backbone, input_size=48, n_classes=len(classes),
                             augmentation=student_augmentation(args, seed))
        if args.init_from:
            model.set_weights(init_weights)
        train = dataset(Xtr, Ytr, args.batch_size, True, seed, args.mixup)
        fitted = model
        if args.consistent:
            # The augmentation runs in the input pipeline, so the teacher can see its
            # output; the rest of the model (sharing every variable) is what is fitted.
            block, fitted = split_augmentation(model)
            train = consistent_targets(train, block, teacher.model_, teacher.classes_,
                                       classes, alpha=args.alpha,
                                       temperature=args.temperature,
                                       tta=teacher.tta).prefetch(tf.data.AUTOTUNE)
        fitted.compile(
            # With use_ema, Keras's fit ends by writing the averaged weights into the
            # model (optimizer.finalize_variable_values), so final.keras holds them.
            optimizer=keras.optimizers.AdamW(
                schedule, weight_decay=args.weight_decay, use_ema=args.ema > 0,
                ema_momentum=args.ema or 0.99),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
            metrics=["accuracy"],
        )
        print(f"{model.name}: {model.count_params():,} parameters, "
              f"policy {keras.config.dtype_policy().name}")
        wall = WallClock(out / "wall.json", resumed=start_epoch > 0)
        fitted.fit(
            train,
            # validated as the packaged model predicts: on the centre crop at the
            # augmentation's scale (fervision.nn.eval_crop)
            validation_data=dataset(center_crop(Xte, 1.0 - DEFAULT_CROP), Yte, 256, False,
                                    None),
            epochs=args.epochs,
            callbacks=[
                wall,
                keras.callbacks.BackupAndRestore(str(out / "backup")),
                WholeModelCheckpoint(str(out / "last.keras"), model),
                keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
            ],
            verbose=2,
            shuffle=False,  # the tf.data pipeline shuffles (seeded, resumable)
        )
        model.save(out / "final.keras")
    write_json(out / "done.json", {"wall_s_this_run": wall.this_start(),
                                   "wall_s": wall.total()})
    print(f"saved {out / 'final.keras'}")


if __name__ == "__main__":
    main()
