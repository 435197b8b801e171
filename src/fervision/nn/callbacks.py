"""The Keras callbacks ``EmotionClassifier`` adds to every fit.

They are plain Keras callbacks (early stopping, learning-rate plateaus, per-epoch
checkpoints, ``BackupAndRestore``), built here from the estimator's parameters so the
estimator itself stays a thin layer over SciKeras.  A user's own callbacks go through
``callbacks=`` / ``callbacks__`` and run before these.
"""

from __future__ import annotations

import numbers
import re
from pathlib import Path

import keras

__all__ = ["RollingCheckpoint", "patience", "training_callbacks"]

#: File name pattern of the per-epoch checkpoints.
CHECKPOINT_PATTERN = "epoch-{epoch:03d}.keras"
_CHECKPOINT_RE = re.compile(r"^epoch-(\d+)\.keras$")


def patience(value, default: int, name: str) -> int | None:
    """Read a patience parameter: True -> ``default``, False/None -> off, int -> itself."""
    if value is None or value is False:
        return None
    if value is True:
        return default
    if isinstance(value, numbers.Integral) and value >= 1:
        return int(value)
    raise ValueError(f"{name} must be True, False or a positive int patience, got {value!r}")


def check_keep(keep) -> int | None:
    """Validate ``keep_checkpoints``: None (keep all) or a positive int."""
    if keep is None:
        return None
    if isinstance(keep, numbers.Integral) and not isinstance(keep, bool) and keep >= 1:
        return int(keep)
    raise ValueError(f"keep_checkpoints must be None or a positive int, got {keep!r}")


class RollingCheckpoint(keras.callbacks.ModelCheckpoint):
    """Save ``directory/epoch-NNN.keras`` after every epoch, keeping the newest ``keep``.

    A checkpoint of a full model carries the optimizer state (about 60 MB for the
    default backbone), so a long run that keeps every epoch fills a disk; ``keep=None``
    keeps them all.  Only files that match the checkpoint pattern are ever removed.

    Parameters
    ----------
    directory : str or Path
        Where the checkpoints are written (created if missing).
    keep : int or None, default=None
        How many of the newest checkpoints to keep; ``None`` keeps every epoch.
    """

    def __init__(self, directory, keep=None):
        self.directory = Path(directory)
        self.keep = check_keep(keep)
        self.directory.mkdir(parents=True, exist_ok=True)
        super().__init__(str(self.directory / CHECKPOINT_PATTERN), save_freq="epoch")

    def on_epoch_end(self, epoch, logs=None):
        """Save this epoch's checkpoint, then remove all but the newest ``keep``."""
        super().on_epoch_end(epoch, logs)
        if self.keep is None:
            return
        # Prune only after the new file is written, so a crash never leaves fewer
        # than ``keep`` good checkpoints behind.
        numbered = sorted(
            (int(m.group(1)), p) for p in self.directory.iterdir()
            if (m := _CHECKPOINT_RE.match(p.name))
        )
        for _, path in numbered[: max(0, len(numbered) - self.keep)]:
            path.unlink(missing_ok=True)


def training_callbacks(
    *,
    monitor: str,
    early_stopping=True,
    reduce_lr=True,
    checkpoint_dir=None,
    keep_checkpoints=None,
    resume=False,
    backup_name: str = "backup",
) -> list[keras.callbacks.Callback]:
    """Build the callbacks for one (phase of a) fit.

    Parameters
    ----------
    monitor : str
        Quantity watched by early stopping and the plateau schedule (``"val_loss"``
        when there is validation data, else ``"loss"``).
    early_stopping, reduce_lr : bool or int
        Patience in epochs (True = 10 and 5); False/None turns them off.
    checkpoint_dir : str, Path or None
        Directory of the per-epoch checkpoints (and of the resume state).
    keep_checkpoints : int or None
        Newest checkpoints to keep (:class:`RollingCheckpoint`); None keeps all.
    resume : bool
        Add :class:`keras.callbacks.BackupAndRestore` in ``checkpoint_dir/backup_name``.
    backup_name : str, default="backup"
        Sub-directory of the resume state; each phase of a transfer-learning fit uses
        its own, because Keras deletes a backup when its fit ends.

    Returns
    -------
    list of keras.callbacks.Callback
        Fresh objects: early stopping and the plateau schedule keep state, so every
        fit (and every phase) gets new ones.
    """
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (where the backup is kept)")
    keep = check_keep(keep_checkpoints)
    cbs: list[keras.callbacks.Callback] = []
    es = patience(early_stopping, 10, "early_stopping")
    if es is not None:
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=es,
                                                 restore_best_weights=True))
    rl = patience(reduce_lr, 5, "reduce_lr")
    if rl is not None:
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                                     patience=rl, min_lr=1e-6))
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir)
        cbs.append(RollingCheckpoint(ckpt, keep=keep))
        if resume:
            cbs.append(keras.callbacks.BackupAndRestore(str(ckpt / backup_name)))
    return cbs
