"""
Train and evaluate a small model
================================

Train an :class:`~fervision.classifier.EmotionClassifier` on a subset of FER2013 (three
of the seven emotions) for a few epochs, then score it on held-out images with
:mod:`fervision.evaluation`: accuracy, macro F1, and a confusion matrix.

The model is deliberately tiny (``backbone="fernet_tiny"``, a few hundred images per
class, a few epochs) so the example runs in about a minute on a laptop CPU; expect an
accuracy above chance (1/3) but far below the pretrained model.  Use all seven classes,
raise ``PER_CLASS`` and ``EPOCHS`` and use ``backbone="fernet"`` for a real model.
"""

# %%
# Data
# ----
# FER2013 as ``<split>/<emotion>/*.jpg`` folders is read from ``../shared/data/fer2013``
# next to the repository (or from ``$FERVISION_SHARED/data/fer2013``).  Without it the
# example falls back to a small synthetic dataset and says so.
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from fervision import EmotionClassifier
from fervision.datasets import load_image_folder
from fervision.evaluation import evaluate, plot_history

try:
    REPO = Path(__file__).resolve().parents[1]
except NameError:  # run interactively from examples/
    REPO = Path.cwd().parent
SHARED = Path(os.environ.get("FERVISION_SHARED", REPO.parent / "shared"))
FER = SHARED / "data" / "fer2013"
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


if (FER / "train").is_dir() and (FER / "test").is_dir():
    X_train, y_train = load_image_folder(FER / "train", CLASSES, max_per_class=PER_CLASS,
                                         random_state=0)
    X_test, y_test = load_image_folder(FER / "test", CLASSES, max_per_class=100,
                                       random_state=0)
    source = f"FER2013 subset from {FER}"
else:
    print(f"FER2013 not found at {FER}: using SYNTHETIC images instead (the numbers "
          "below say nothing about real faces).")
    X_train, y_train = synthetic_faces(600, seed=0)
    X_test, y_test = synthetic_faces(150, seed=1)
    source = "synthetic stand-in data"
print(f"{source}: {len(X_train)} training and {len(X_test)} test images, "
      f"classes {', '.join(sorted(map(str, set(y_train))))}")

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
# Training curves.  :func:`~fervision.evaluation.plot_history` returns a standalone
# matplotlib ``Figure`` (no pyplot state, safe in scripts and servers) to save with
# ``fig.savefig(...)``; in a notebook or this gallery we draw the same curves with pyplot.
history_figure = plot_history(clf.history_)
epochs = range(1, len(clf.history_["loss"]) + 1)
fig, ax = plt.subplots(figsize=(5, 3.5))
for key in ("accuracy", "val_accuracy"):
    ax.plot(epochs, clf.history_[key], marker="o", label=key)
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Evaluate
# --------
# :func:`~fervision.evaluation.evaluate` returns an
# :class:`~fervision.evaluation.EvaluationReport`: overall metrics, a per-class table,
# and the confusion matrix (rows: true class, normalised to recall).
report = evaluate(clf, X_test, y_test)
print(report.to_markdown())
fig, ax = plt.subplots(figsize=(4.5, 4))
report.plot_confusion_matrix(ax=ax)
plt.show()
