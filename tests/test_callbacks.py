"""fervision.nn.callbacks: the Keras callbacks EmotionClassifier adds to every fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fervision.nn.callbacks import RollingCheckpoint, patience, training_callbacks


def _types(cbs):
    return [type(cb) for cb in cbs]


def test_defaults_are_early_stopping_then_a_plateau_schedule():
    es, rl = training_callbacks(monitor="val_loss")
    assert isinstance(es, keras.callbacks.EarlyStopping)
    assert (es.monitor, es.patience, es.restore_best_weights) == ("val_loss", 10, True)
    assert isinstance(rl, keras.callbacks.ReduceLROnPlateau)
    assert (rl.monitor, rl.patience, rl.factor, rl.min_lr) == ("val_loss", 5, 0.5, 1e-6)


def test_integer_patiences_and_monitor():
    es, rl = training_callbacks(monitor="loss", early_stopping=3, reduce_lr=1)
    assert (es.monitor, es.patience) == ("loss", 3)
    assert (rl.monitor, rl.patience) == ("loss", 1)


@pytest.mark.parametrize("off", [False, None])
def test_each_callback_can_be_turned_off(off):
    assert _types(training_callbacks(monitor="loss", early_stopping=off)) == [
        keras.callbacks.ReduceLROnPlateau]
    assert _types(training_callbacks(monitor="loss", reduce_lr=off)) == [
        keras.callbacks.EarlyStopping]
    assert training_callbacks(monitor="loss", early_stopping=off, reduce_lr=off) == []


def test_every_call_builds_fresh_callbacks():
    a, b = training_callbacks(monitor="loss"), training_callbacks(monitor="loss")
    assert all(x is not y for x, y in zip(a, b, strict=True))


def test_checkpoint_dir_adds_a_rolling_checkpoint(tmp_path):
    ck = tmp_path / "ck"
    cbs = training_callbacks(monitor="loss", early_stopping=False, reduce_lr=False,
                             checkpoint_dir=ck, keep_checkpoints=2)
    (rc,) = cbs
    assert isinstance(rc, RollingCheckpoint)
    assert rc.directory == ck
    assert rc.keep == 2
    assert ck.is_dir()
    (rc,) = training_callbacks(monitor="loss", early_stopping=False, reduce_lr=False,
                               checkpoint_dir=str(ck))
    assert rc.keep is None  # keep every epoch by default


def test_resume_adds_backup_and_restore_in_its_own_subdirectory(tmp_path):
    cbs = training_callbacks(monitor="loss", checkpoint_dir=tmp_path, resume=True,
                             backup_name="phase2")
    assert _types(cbs) == [keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau,
                           RollingCheckpoint, keras.callbacks.BackupAndRestore]
    assert cbs[-1].backup_dir == str(tmp_path / "phase2")


def test_resume_needs_a_checkpoint_dir():
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        training_callbacks(monitor="loss", resume=True)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "yes"])
def test_bad_patience_is_an_error(bad):
    with pytest.raises(ValueError, match="early_stopping must be"):
        training_callbacks(monitor="loss", early_stopping=bad)
    with pytest.raises(ValueError, match="reduce_lr must be"):
        training_callbacks(monitor="loss", reduce_lr=bad)


def test_patience():
    assert patience(True, 7, "x") == 7
    assert patience(False, 7, "x") is None
    assert patience(None, 7, "x") is None
    assert patience(np.int64(4), 7, "x") == 4


@pytest.mark.parametrize("bad", [0, -2, True, 2.0, "3"])
def test_bad_keep_checkpoints_is_an_error(bad, tmp_path):
    with pytest.raises(ValueError, match="keep_checkpoints must be None or a positive int"):
        training_callbacks(monitor="loss", checkpoint_dir=tmp_path, keep_checkpoints=bad)


def test_rolling_checkpoint_keeps_the_newest_and_only_removes_its_own_files(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "epoch-best.keras").write_text("not a numbered checkpoint")
    rc = RollingCheckpoint(tmp_path, keep=2)
    rc.set_model(model)
    for epoch in range(4):
        rc.on_epoch_end(epoch, logs={"loss": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch-003.keras", "epoch-004.keras", "epoch-best.keras", "notes.txt"]
    keras.saving.load_model(tmp_path / "epoch-004.keras")  # a whole, loadable model
