"""
Train and evaluate a small model (FER2013 or synthetic data)
============================================================

Train an :class:`~fervision.estimator.EmotionClassifier` on a subset of FER2013 (three
of the seven emotions) for a few epochs, then score it on held-out images with
:mod:`fervision.data.evaluation`: accuracy, macro F1, and a confusion matrix.

**Which data this page shows.**  The example needs the FER2013 image folders
(``train/`` and ``test/``, see :doc:`/guide/datasets` for where to download them).
Without them it trains on a small **synthetic** data set instead: grey squares told
apart by where a bright band lies.  The printed output and every figure title below say
which one was used.  On synthetic data the scores (usually 100 %) say nothing about
faces; they only show that the code runs.

On FER2013 the model is deliberately tiny (``backbone="fernet_tiny"``, 400 images per
class, 8 epochs) so the example runs in about a minute on a laptop CPU; expect an
accuracy above chance (1/3) but far below the pretrained model.  Use all seven classes,
raise ``PER_CLASS`` and ``EPOCHS`` and use ``backbone="fernet"`` for a real model.
"""

# %%
# Data
# ----
# Set ``FERVISION_FER2013`` to the folder that holds FER2013's ``train/`` and ``test/``
# (the Kaggle ``msambare/fer2013`` download, unpacked).  Without it the example also
# looks in ``../shared/data/fer2013`` next to the repository (where fervision's
# developers keep it), then falls back to synthetic data and says so.
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from fervision import EmotionClassifier
from fervision.data.datasets import load_image_folder
from fervision.data.evaluation import evaluate, plot_history

try:
    REPO = Path(__file__).resolve().parents[1]
except NameError:  # run interactively from examples/
    REPO = Path.cwd().parent
SHARED = Path(os.environ.get("FERVISION_SHARED", REPO.parent / "shared"))
FER = Path(os.environ.get("FERVISION_FER2013", SHARED / "data" / "fer2013"))
PER_CLASS, EPOCHS = 400, 8
# Three of the seven emotions that even a tiny model tells apart after a few epochs.
CLASSES = ["happy", "surprise", "neutral"]


def synthetic_faces(n, seed):
    """Stand-in data: three 'emotions' told apart by where a bright band is."""
    rng = np.random.default_rng(seed)
    y = np.array(["angry", "happy", "sad"])[rng.integers(0, 3, n)]
    X = rng.integers(0, 100, size=(n, 48, 48), dtype=np.uint8)
    rows = {"angry": slice(4, 16), "happy": slice(18, 30), "sad": slice(32, 44)}
    for i, label in enumerate(y):
        X[i, rows[label]] += 120
    return X, y


SYNTHETIC = not ((FER / "train").is_dir() and (FER / "test").is_dir())
if not SYNTHETIC:
    X_train, y_train = load_image_folder(FER / "train", CLASSES, max_per_class=PER_CLASS,
                                         random_state=0)
    X_test, y_test = load_image_folder(FER / "test", CLASSES, max_per_class=100,
                                       random_state=0)
    DATA = "FER2013 subset"
    print(f"Data: {DATA} from {FER}")
else:
    X_train, y_train = synthetic_faces(600, seed=0)
    X_test, y_test = synthetic_faces(150, seed=1)
    DATA = "SYNTHETIC data, not faces"
    print("!" * 64)
    print(f"!! FER2013 not found at {FER}.")
    print("!! This run uses SYNTHETIC images (bright bands on noise),")
    print("!! not faces: the scores below only show that the code runs.")
    print("!! Set FERVISION_FER2013 to the folder with FER2013's train/")
    print("!! and test/ to train on real faces.")
    print("!" * 64)
print(f"{DATA}: {len(X_train)} training and {len(X_test)} test images, "
      f"classes {', '.join(sorted(map(str, set(y_train))))}")


def mark_synthetic(ax):
    """Stamp a figure made from synthetic data so that it cannot be mistaken."""
    if SYNTHETIC:
        ax.text(0.5, 0.5, "SYNTHETIC DATA", transform=ax.transAxes, ha="center",
                va="center", fontsize=22, color="red", alpha=0.35, rotation=25,
                fontweight="bold")


# %%
# Train
# -----
clf = EmotionClassifier(
    backbone="fernet_tiny",
    epochs=EPOCHS,
    # Small batches: more steps, so BatchNormalization's moving statistics (used at
    # inference) have converged by the end of a short run.
    batch_size=16,
    learning_rate=1e-3,
    augment=False,  # augmentation helps long runs; for a few epochs it only slows learning
    precision="float32",  # bfloat16 pays off only for larger networks
    validation_split=0.1,
    early_stopping=False,  # few epochs: keep the last weights
    random_state=0,
)
rng = np.random.default_rng(0)
order = rng.permutation(len(X_train))  # Keras validates on the *last* 10%: shuffle first
clf.fit(X_train[order], y_train[order])

# %%
# Training curves.  :func:`~fervision.data.evaluation.plot_history` returns a standalone
# matplotlib ``Figure`` (no pyplot state, safe in scripts and servers) to save with
# ``fig.savefig(...)``; in a notebook or this gallery we draw the same curves with pyplot.
history_figure = plot_history(clf.history_)
epochs = range(1, len(clf.history_["loss"]) + 1)
fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
for key in ("accuracy", "val_accuracy"):
    ax.plot(epochs, clf.history_[key], marker="o", label=key)
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.set_title(f"Training curves ({DATA})")
ax.legend()
mark_synthetic(ax)
plt.show()

# %%
# Evaluate
# --------
# :func:`~fervision.data.evaluation.evaluate` returns an
# :class:`~fervision.data.evaluation.EvaluationReport`: overall metrics, a per-class table,
# and the confusion matrix (rows: true class, normalised to recall).
report = evaluate(clf, X_test, y_test)
print(f"Test set: {DATA}")
print(report.to_markdown())
fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
report.plot_confusion_matrix(ax=ax)
ax.set_title(f"Confusion matrix, {DATA}\n(rows normalised: recall per true class)",
             fontsize=10)
mark_synthetic(ax)
plt.show()
