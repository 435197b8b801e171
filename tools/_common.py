"""Helpers shared by the maintainer tools.

Imported as ``_common``: each tool is run as ``python tools/<name>.py``, which puts this
folder on ``sys.path``.

The layout of a training run folder written by ``train_default_model.py``
(``final.keras``, ``classes.json``, ``args.json``, ``history.csv``, ``done.json``), and
how a trained network is made ready to ship.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from fervision.data.preprocessing import check_images
from fervision.nn.augmentation import build_augmentation
from fervision.nn.backbones import create_model
from fervision.nn.batchnorm import recalibrate_batchnorm
from fervision.nn.precision import dtype_policy

#: The source repository (tools/ lives at its root).
ROOT = Path(__file__).resolve().parents[1]
#: Where the FER2013 image folders are expected by default.
DEFAULT_FER2013 = ROOT.parent / "shared" / "data" / "fer2013"


def as_float32(model, backbone, n_classes):
    """Return the same network under the float32 policy.

    Training ran in mixed_bfloat16, and a saved layer keeps its dtype policy; bf16
    compute is fast only on CPUs with AVX512-BF16/AMX, so the shipped model is float32
    (mixed-precision variables are float32 already, so the weights copy over exactly).
    """
    with dtype_policy("float32"):
        clean = create_model(backbone, input_size=48, n_classes=n_classes,
                             augmentation=build_augmentation(48, seed=0))
    clean.set_weights(model.get_weights())
    return clean


def check_finished_run(run: Path) -> None:
    """Exit naming the run and the files it lacks unless train_default_model finished it."""
    missing = [f for f in ("final.keras", "classes.json", "args.json")
               if not (run / f).is_file()]
    if missing:
        raise SystemExit(f"{run} is not a finished training run: no {', '.join(missing)}")


def load_soup(runs: list[Path]) -> tuple[keras.Model, list[str], str]:
    """Load the runs' final weights averaged element-wise (one run: its own weights).

    A uniform *soup* (Wortsman et al. 2022): it only makes sense for runs warm-started
    from the same weights.  Every weight is averaged, BatchNorm's moving statistics too.
    Exits naming the runs when they differ in classes or architecture.
    """
    for run in runs:
        check_finished_run(run)
    classes = [json.loads((r / "classes.json").read_text()) for r in runs]
    if any(c != classes[0] for c in classes):
        raise SystemExit(f"{' + '.join(map(str, runs))}: runs trained on different classes")
    models = [keras.saving.load_model(r / "final.keras", safe_mode=True, compile=False)
              for r in runs]
    model = models[0]
    if len(models) > 1:
        weights = [m.get_weights() for m in models]
        for i, m in enumerate(weights[1:], 1):
            if [w.shape for w in m] != [w.shape for w in weights[0]]:
                raise SystemExit(f"{runs[i]} and {runs[0]} have different architectures: "
                                 "a soup needs identical networks")
        model.set_weights([np.mean(ws, axis=0).astype(ws[0].dtype)
                           for ws in zip(*weights, strict=True)])
    backbone = json.loads((runs[0] / "args.json").read_text())["backbone"]
    return model, classes[0], backbone


def run_chain(run: Path) -> list[Path]:
    """Return the run and the runs it was warm-started from (``--init-from``), oldest first."""
    chain = [run]
    while True:
        init = json.loads((chain[0] / "args.json").read_text()).get("init_from")
        if not init:
            return chain
        parent = Path(init).parent
        if parent in chain or not (parent / "args.json").is_file():
            raise SystemExit(f"{chain[0]} starts from {init}, whose run directory "
                             f"{parent} has no args.json: cannot record its provenance "
                             "(for a packaged model, train from the run folder "
                             "tools/unpack_default_model.py makes of it, or point "
                             "init_from in args.json at that folder's final.keras)")
        chain.insert(0, parent)


def chained_history(chain: list[Path]) -> pd.DataFrame:
    """history.csv of every run in the chain, one row per epoch, renumbered."""
    parts = []
    for i, run in enumerate(chain):
        h = pd.read_csv(run / "history.csv")
        h["run"] = i
        parts.append(h)
    hist = pd.concat(parts, ignore_index=True)
    hist["epoch"] = range(len(hist))
    return hist


def is_restored(run: Path) -> bool:
    """Whether ``run`` was restored from a packaged model (unpack_default_model.py).

    Its ``final.keras`` is a network as shipped: BatchNorm already recalibrated, float32.
    Recalibrating it again (now in float32, where the original pass ran under the
    training's bfloat16 policy) would move its figures by a few images, so it is used
    as it is.
    """
    return "restored_from" in json.loads((run / "args.json").read_text())


def prepare_network(model, runs: list[Path], X_train, backbone, n_classes, progress=False,
                    batchnorm="precise"):
    """Make a trained network (one run's, or a soup of runs') ready to ship.

    With ``batchnorm="precise"`` the BatchNorm statistics are recomputed on ``X_train``
    (un-augmented training images); ``"moving"`` keeps the training run's moving
    averages (for a soup, :func:`load_soup`, the mean of its runs' moving averages).
    Then the network is copied into a float32 model.  One restored run
    (:func:`is_restored`) is ready as it is and skips the recalibration.
    """
    if batchnorm not in ("precise", "moving"):
        raise ValueError(f"batchnorm must be 'precise' or 'moving', got {batchnorm!r}")
    if batchnorm == "precise" and not (len(runs) == 1 and is_restored(runs[0])):
        recalibrate_batchnorm(model, check_images(X_train, 48), progress=progress)
    return as_float32(model, backbone, n_classes)


def run_wall_s(run: Path) -> float | None:
    """Wall time of a finished run over all its starts (older runs: their last start)."""
    if not (run / "done.json").is_file():
        return None
    done = json.loads((run / "done.json").read_text())
    return done.get("wall_s", done.get("wall_s_this_run"))


def load_mean_classifier(spec: str, what: str, *, own_crops: bool = True):
    """Load a pretrained name or a saved ``.keras`` file, or the mean of several joined by ``+``.

    The mean is one classifier over one Keras model averaging the members'
    probabilities, so a training cache fingerprint covers every member's weights and one
    ``predict`` scores the mean as a teacher gives it.  Exits naming ``what`` and the
    member that is neither, or members that differ in classes.  ``own_crops=False``
    refuses members that differ in centre crop instead of cropping each in the mean
    (for a teacher that sees the student's augmented view, already at training scale).
    """
    from fervision.faces.analysis import load_classifier
    from fervision.weights import list_pretrained

    names = spec.split("+")
    if not all(name.strip() for name in names):  # "a+", "+b", "a++b": before any loading
        raise SystemExit(f"{what} {spec}: an empty model name beside a '+'")
    members = []
    for member in names:
        try:
            members.append(load_classifier(member, what=what))
        except (KeyError, FileNotFoundError):
            raise SystemExit(f"{what} {member}: not a pretrained model "
                             f"({', '.join(list_pretrained())}) nor a .keras file") from None
        except ValueError as err:  # a file that is not a saved classifier
            raise SystemExit(f"{what} {member}: {err}") from None
    if len(members) == 1:
        return members[0]
    return average_classifiers(spec, members, what, own_crops=own_crops)


def average_classifiers(spec: str, members, what: str, *, own_crops: bool = True):
    """Return one classifier averaging the members' probabilities.

    The members must agree on classes.  Members that agree on their centre crop share
    it as the mean's ``crop_pct``; members that differ each see their own crop, made by
    Keras layers in front of the member inside the mean model (the same operations as
    ``crop_pct``, :func:`fervision.nn.eval_crop.crop_layers`), and the mean takes the
    whole face.  Either way each member predicts on the view it predicts on alone.
    ``own_crops=False`` refuses members that differ in centre crop.
    """
    from fervision import EmotionClassifier
    from fervision.nn.backbones import average_models
    from fervision.nn.eval_crop import classifier_crop_pct

    classes = list(members[0].classes_)
    if any(list(m.classes_) != classes for m in members):
        raise SystemExit(f"{what} {spec}: the models differ in classes "
                         f"({[list(m.classes_) for m in members]}); only models over the "
                         "same classes can be averaged")
    crops = [classifier_crop_pct(m) for m in members]
    if len(set(crops)) > 1 and not own_crops:
        raise SystemExit(f"{what} {spec}: the models differ in centre crop (crop_pct "
                         f"{sorted(set(crops))}); a teacher that sees the student's "
                         "augmented view must be models alike in crop")
    alike = len(set(crops)) == 1  # then the crop stays outside, as before: same caches
    networks = [m.model_ if alike else cropping_model(m.model_, crop)
                for m, crop in zip(members, crops, strict=True)]
    return EmotionClassifier.from_keras_model(average_models(networks), classes,
                                              crop_pct=crops[0] if alike else 1.0)


def cropping_model(model, crop_pct: float):
    """``model`` behind Keras layers that cut its centre ``crop_pct`` from the whole face."""
    import keras

    from fervision.nn.eval_crop import crop_layers

    inputs = keras.Input(model.input_shape[1:])
    x = inputs
    for layer in crop_layers(int(model.input_shape[1]), crop_pct):
        x = layer(x)
    return keras.Model(inputs, model(x))
