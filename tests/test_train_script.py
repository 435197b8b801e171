"""tools/train_default_model.py and the other model tools, end to end.

On a tiny synthetic image folder.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

cv2 = pytest.importorskip("cv2")
keras = pytest.importorskip("keras")

from conftest import ROOT  # noqa: E402


def load_example(name):
    """Import a script of tools/ as a module (tools/ on sys.path, as when run as a script)."""
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_script():
    return load_example("train_default_model")


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for label in ("happy", "sad", "surprise"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(root / split / label / f"{i}.png"),
                            rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return root


def _spy_on_training_sets(train_script, monkeypatch, part):
    """Record the images (``part="X"``) or targets (``"y"``) of every training set built."""
    seen = []
    real_dataset = train_script.dataset

    def spy(X, y, batch_size, shuffle, *args, **kwargs):
        if shuffle:  # the training set
            seen.append(np.array(X if part == "X" else y))
        return real_dataset(X, y, batch_size, shuffle, *args, **kwargs)

    monkeypatch.setattr(train_script, "dataset", spy)
    return seen


def test_ema_run_ends_with_averaged_weights(train_script, image_folders, tmp_path):
    out = tmp_path / "run"
    train_script.main(["--data", str(image_folders), "--out", str(out), "--epochs", "2",
                       "--batch-size", "4", "--warmup-epochs", "1", "--lr", "1e-2",
                       "--backbone", "fernet_tiny", "--precision", "float32",
                       "--ema", "0.9", "--erasing", "0.5", "--final-lr-ratio", "0.5"])
    args = json.loads((out / "args.json").read_text())
    assert (args["ema"], args["erasing"], args["final_lr_ratio"]) == (0.9, 0.5, 0.5)
    assert json.loads((out / "classes.json").read_text()) == ["happy", "sad", "surprise"]
    final = keras.saving.load_model(out / "final.keras", safe_mode=True, compile=False)
    last = keras.saving.load_model(out / "last.keras", safe_mode=True, compile=False)
    # last.keras is the checkpoint of the raw weights after the last epoch; final.keras
    # must hold the moving average that use_ema writes into the model when fit ends.
    differs = [not np.allclose(a, b) for a, b in
               zip(final.get_weights(), last.get_weights(), strict=True)]
    assert any(differs)
    assert "RandomErasing" in {type(layer).__name__
                               for layer in last.get_layer("augmentation").layers}


def test_plain_run_saves_the_last_weights(train_script, image_folders, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # left by an earlier, finished run in the same folder: a fresh run starts from zero
    (out / "wall.json").write_text(json.dumps({"wall_s": 1e6, "epochs": 30}))
    train_script.main(["--data", str(image_folders), "--out", str(out), "--epochs", "1",
                       "--batch-size", "4", "--warmup-epochs", "0", "--backbone", "fernet_tiny",
                       "--precision", "float32"])
    done = json.loads((out / "done.json").read_text())
    assert done["wall_s"] == pytest.approx(done["wall_s_this_run"], abs=1.0)
    final = keras.saving.load_model(out / "final.keras", safe_mode=True, compile=False)
    last = keras.saving.load_model(out / "last.keras", safe_mode=True, compile=False)
    for a, b in zip(final.get_weights(), last.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("teaching", [[], ["--teacher", "default", "--consistent"]],
                         ids=["plain", "consistent"])
def test_interrupted_run_resumes_with_fresh_random_streams(train_script, image_folders,
                                                           tmp_path, monkeypatch, teaching):
    out = tmp_path / "run"
    argv = ["--data", str(image_folders), "--out", str(out), "--epochs", "3",
            "--batch-size", "4", "--warmup-epochs", "0", "--backbone", "fernet_tiny",
            "--precision", "float32", "--seed", "7", *teaching]

    class Interrupted(Exception):
        pass

    class StopAfterTwoEpochs(keras.callbacks.CSVLogger):
        # CSVLogger is the script's last callback: the backup of the epoch is written
        # when this raises, as after a kill between epochs.
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == 1:
                raise Interrupted

    with monkeypatch.context() as m:
        m.setattr(keras.callbacks, "CSVLogger", StopAfterTwoEpochs)
        with pytest.raises(Interrupted):
            train_script.main(argv)
    assert train_script.resume_epoch(out) == 2
    assert not (out / "final.keras").exists()
    first = json.loads((out / "wall.json").read_text())
    assert first["epochs"] == 2
    assert first["wall_s"] > 0

    train_script.main(argv)
    args = json.loads((out / "args.json").read_text())
    # not seed 7 again: that would replay epoch 1's shuffling and augmentation
    assert args["seed"] == 7
    assert args["resumed"] == [{"at_epoch": 2, "seed": 2007}]
    history = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1", "2"]
    assert (out / "final.keras").is_file()
    # wall time over both starts: the first one's two epochs plus this one's
    done = json.loads((out / "done.json").read_text())
    assert json.loads((out / "wall.json").read_text())["epochs"] == 3
    assert done["wall_s"] > first["wall_s"]
    assert done["wall_s"] == pytest.approx(first["wall_s"] + done["wall_s_this_run"], abs=1.0)
    assert load_example("package_default_model").run_wall_s(out) == done["wall_s"]
    final = keras.saving.load_model(out / "final.keras", safe_mode=True, compile=False)
    assert final.get_layer("augmentation").layers[0].seed == 2008  # build_augmentation: seed + 1


def test_run_seed_is_the_given_seed_for_a_fresh_run(train_script):
    assert train_script.run_seed(3, 0) == 3
    assert len({train_script.run_seed(3, e) for e in range(1, 30)} | {3}) == 30


@pytest.fixture(scope="module")
def two_runs(train_script, image_folders, tmp_path_factory):
    """Two finished one-epoch runs of the training script (seeds 1 and 2)."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (1, 2):
        train_script.main(["--data", str(image_folders), "--out", str(root / f"run{seed}"),
                           "--epochs", "1", "--batch-size", "4", "--warmup-epochs", "0",
                           "--backbone", "fernet_tiny", "--precision", "float32",
                           "--seed", str(seed)])
    return [root / "run1", root / "run2"]


def test_package_script_ships_an_ensemble_with_bfloat16_weights(two_runs, image_folders,
                                                                tmp_path):
    runs = two_runs
    package = load_example("package_default_model")
    out, card = tmp_path / "pkg" / "default.keras", tmp_path / "card"
    package.main(["--run", *map(str, runs), "--data", str(image_folders), "--out", str(out),
                  "--card", str(card), "--tta", "flip", "--bfloat16-weights"])
    summary = json.loads((card / "summary.json").read_text())
    assert summary["weights"] == "rounded to bfloat16 values"
    assert summary["shipped_tta"] == "flip"
    assert len(summary["members"]) == 2
    assert (card / "confusion_matrix.png").is_file()
    assert (card / "history-1.png").is_file()

    from fervision import EmotionClassifier
    from fervision.nn.backbones import walk_layers

    clf = EmotionClassifier.load(out)
    assert list(clf.classes_) == ["happy", "sad", "surprise"]
    # shipped predicting at the scale training's random-resized crops showed the network
    assert clf.crop_pct == summary["crop_pct"] == 0.9
    model = clf.model_
    assert len(model.weights) > 0
    batchnorm = {id(v) for layer in walk_layers(model)
                 if isinstance(layer, keras.layers.BatchNormalization) for v in layer.weights}
    for v in model.weights:
        value = np.asarray(v)
        if id(v) not in batchnorm and value.dtype == np.float32:
            assert not (value.view(np.uint32) & 0xFFFF).any(), v.path


def test_package_script_keeps_moving_batchnorm_statistics_when_asked(two_runs, image_folders,
                                                                      tmp_path):
    package = load_example("package_default_model")
    out, card = tmp_path / "default.keras", tmp_path / "card"
    package.main(["--run", str(two_runs[0]), "--data", str(image_folders), "--out", str(out),
                  "--card", str(card), "--tta", "none", "--batchnorm", "moving",
                  "--crop-pct", "1"])
    summary = json.loads((card / "summary.json").read_text())
    assert summary["batchnorm"] == "moving"
    assert summary["crop_pct"] == 1.0

    from fervision import EmotionClassifier
    from fervision.nn.backbones import walk_layers

    def moving_stats(model):
        return [np.asarray(v) for layer in walk_layers(model)
                if isinstance(layer, keras.layers.BatchNormalization)
                for v in (layer.moving_mean, layer.moving_variance)]

    trained = keras.saving.load_model(two_runs[0] / "final.keras", compile=False)
    shipped_clf = EmotionClassifier.load(out)
    assert shipped_clf.crop_pct == 1.0
    shipped = shipped_clf.model_
    expected, got = moving_stats(trained), moving_stats(shipped)
    assert expected
    assert len(got) == len(expected)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a.astype(np.float32), b)

    with pytest.raises(SystemExit):  # a crop outside (0, 1], before any work
        package.main(["--run", str(two_runs[0]), "--data", str(image_folders),
                      "--out", str(tmp_path / "bad.keras"), "--card", str(card),
                      "--crop-pct", "1.5"])
    assert not (tmp_path / "bad.keras").exists()



def test_package_script_ships_a_soup_as_one_network(two_runs, image_folders, tmp_path,
                                                    capsys):
    package = load_example("package_default_model")
    out, card = tmp_path / "soup.keras", tmp_path / "card"
    package.main(["--run", *map(str, two_runs), "--soup", "--data", str(image_folders),
                  "--out", str(out), "--card", str(card), "--tta", "none",
                  "--batchnorm", "moving"])
    summary = json.loads((card / "summary.json").read_text())
    assert summary["soup"] is True
    assert [m["run"] for m in summary["members"]] == list(map(str, two_runs))

    from fervision import EmotionClassifier

    trained = [keras.saving.load_model(r / "final.keras", compile=False) for r in two_runs]
    shipped = EmotionClassifier.load(out).model_
    # one network, not a mean of two: the parameters of one run
    assert shipped.count_params() == trained[0].count_params()
    # every weight is the mean of the runs', BatchNorm's moving statistics included
    for a, b, got in zip(trained[0].get_weights(), trained[1].get_weights(),
                         shipped.get_weights(), strict=True):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6, atol=1e-7)

    # unpacked: each run's folder without weights, the soup's own folder with them,
    # which the packager takes again as a finished (restored) run
    unpack = load_example("unpack_default_model")
    unpacked = tmp_path / "unpacked"
    unpack.main(["--model", str(out), "--card", str(card), "--out", str(unpacked)])
    assert sorted(p.name for p in unpacked.iterdir()) == ["run1", "run1+run2", "run2"]
    assert not (unpacked / "run1" / "final.keras").exists()
    args = json.loads((unpacked / "run1+run2" / "args.json").read_text())
    assert args["soup_of"] == ["run1", "run2"]
    restored = keras.saving.load_model(unpacked / "run1+run2" / "final.keras", compile=False)
    for a, b in zip(restored.get_weights(), shipped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # a card that does not describe the file (two members, no soup) is refused, naming
    # both, before any run folder is written
    wrong = tmp_path / "wrong-card"
    wrong.mkdir()
    (wrong / "summary.json").write_text(json.dumps(dict(summary, soup=False)))
    with pytest.raises(SystemExit, match=r"averages 1 networks but .* records 2 members"):
        unpack.main(["--model", str(out), "--card", str(wrong),
                     "--out", str(tmp_path / "not-written")])
    assert not (tmp_path / "not-written").exists()
    # a card whose recorded run folder would leave OUT is refused, naming it
    escaping = json.loads(json.dumps(summary))
    escaping["members"][1]["runs"][-1]["args"]["out"] = "/somewhere/.."
    (wrong / "summary.json").write_text(json.dumps(escaping))
    for f in ("history.csv", "history-1.csv"):
        (wrong / f).write_bytes((card / f).read_bytes())
    with pytest.raises(SystemExit, match=r"recorded at '/somewhere/\.\.' has no folder"):
        unpack.main(["--model", str(out), "--card", str(wrong),
                     "--out", str(tmp_path / "not-written")])
    assert not (tmp_path / "not-written").exists()
    again = tmp_path / "again.keras"
    package.main(["--run", str(unpacked / "run1+run2"), "--data", str(image_folders),
                  "--out", str(again), "--card", str(tmp_path / "card2"), "--tta", "none"])
    X, _ = package.load_image_folder(image_folders / "test")
    np.testing.assert_allclose(EmotionClassifier.load(again).predict_proba(X),
                               EmotionClassifier.load(out).predict_proba(X), atol=1e-6)

    # runs trained on other classes: named, before any output folder or data loading
    other = tmp_path / "other"
    other.mkdir()
    for f in ("final.keras", "args.json"):
        (other / f).write_bytes((two_runs[0] / f).read_bytes())
    (other / "classes.json").write_text(json.dumps(["happy", "sad"]))
    with pytest.raises(SystemExit, match=f"different class lists: .*{other}"):
        package.main(["--run", str(two_runs[0]), str(other), "--soup",
                      "--data", str(tmp_path / "no-data"),
                      "--out", str(tmp_path / "o" / "x.keras"),
                      "--card", str(tmp_path / "c0")])
    assert not (tmp_path / "o").exists()
    assert not (tmp_path / "c0").exists()

    capsys.readouterr()
    with pytest.raises(SystemExit):
        package.main(["--run", str(two_runs[0]), "--soup", "--data", str(image_folders),
                      "--out", str(tmp_path / "one.keras"), "--card", str(tmp_path / "c1")])
    assert "--soup needs two or more --run, got 1" in capsys.readouterr().err
    assert not (tmp_path / "one.keras").exists()
    assert not (tmp_path / "c1").exists()


def test_compare_ensembles_scores_runs_soups_and_their_means(two_runs, image_folders,
                                                             tmp_path):
    runs = two_runs
    compare = load_example("compare_ensembles")
    out = tmp_path / "compare"
    argv = ["--data", str(image_folders), "--out", str(out), "--member", str(runs[0]),
            "--member", str(runs[1]), "--member", f"{runs[0]}+{runs[1]}"]
    compare.main(argv)
    table = pd.read_csv(out / "candidates.csv")
    assert len(table) == 7  # every non-empty subset of three members
    assert set(table["members"]) >= {"run1", "run2", "run1+run2", "run1 & run2 & run1+run2"}
    assert table["accuracy_crops"].between(0, 1).all()
    assert (out / "candidates.md").read_text().startswith("7 candidates from 3 members")

    # A single member's row is that network's own accuracy with the crops views
    from fervision import EmotionClassifier
    from fervision.nn.batchnorm import recalibrate_batchnorm

    model = keras.saving.load_model(runs[0] / "final.keras", safe_mode=True, compile=False)
    X_train, _ = compare.load_image_folder(image_folders / "train")
    recalibrate_batchnorm(model, compare.check_images(X_train, 48), progress=False)
    X, y = compare.load_image_folder(image_folders / "test")
    clf = EmotionClassifier.from_keras_model(model, ["happy", "sad", "surprise"], tta="crops")
    row = table.set_index("members").loc["run1"]
    assert row["accuracy_crops"] == pytest.approx(clf.score(X, y))

    # the soup really is the mean of the weights
    soup, _, _ = compare.load_soup(runs)
    first, second = (keras.saving.load_model(r / "final.keras", compile=False) for r in runs)
    np.testing.assert_allclose(soup.get_weights()[0],
                               (first.get_weights()[0] + second.get_weights()[0]) / 2,
                               rtol=1e-6)

    # probabilities are cached: a second call with a different member list reuses them
    mtime = (out / "run1.npz").stat().st_mtime_ns
    compare.main(argv[:8])  # the two runs, without the soup
    assert (out / "run1.npz").stat().st_mtime_ns == mtime
    assert len(pd.read_csv(out / "candidates.csv")) == 3

    # a soup of networks that differ is refused, naming both runs
    other = tmp_path / "wide"
    other.mkdir()
    for f in ("classes.json", "args.json"):
        (other / f).write_text((runs[0] / f).read_text())
    keras.utils.set_random_seed(0)
    from fervision.nn.backbones import create_model

    create_model("cnn", input_size=48, n_classes=3).save(other / "final.keras")
    with pytest.raises(SystemExit, match=f"{other} and {runs[0]} have different"):
        compare.load_soup([runs[0], other])

    with pytest.raises(SystemExit, match="not a finished training run"):
        compare.main(["--data", str(image_folders), "--out", str(out),
                      "--member", str(tmp_path / "missing")])


def test_unpacked_default_model_is_a_set_of_runs_the_scripts_take_again(
        two_runs, train_script, image_folders, tmp_path):
    # a member with a warm-restart chain: run3 continues run1
    run3 = tmp_path / "runs" / "run3"
    train_script.main(["--data", str(image_folders), "--out", str(run3), "--epochs", "1",
                       "--batch-size", "4", "--warmup-epochs", "0", "--backbone",
                       "fernet_tiny", "--precision", "float32", "--seed", "3",
                       "--init-from", str(two_runs[0] / "final.keras")])
    package, unpack = load_example("package_default_model"), load_example("unpack_default_model")
    model, card = tmp_path / "default.keras", tmp_path / "card"
    package.main(["--run", str(run3), str(two_runs[1]), "--data", str(image_folders),
                  "--out", str(model), "--card", str(card), "--tta", "none"])

    out = tmp_path / "unpacked"
    unpack.main(["--model", str(model), "--card", str(card), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["run1", "run2", "run3"]
    assert not (out / "run1" / "final.keras").exists()  # only shipped networks come back
    args = json.loads((out / "run3" / "args.json").read_text())
    assert args["init_from"] == str(out / "run1" / "final.keras")
    assert args["restored_from"] == str(model)
    assert args["seed"] == 3
    assert json.loads((out / "run2" / "classes.json").read_text()) == ["happy", "sad",
                                                                        "surprise"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "run3" / "history.csv"),
                                  pd.read_csv(run3 / "history.csv"), check_exact=False)

    shipped = keras.saving.load_model(model, safe_mode=True, compile=False)
    for i, run in enumerate(("run3", "run2")):
        net = keras.saving.load_model(out / run / "final.keras", safe_mode=True, compile=False)
        for a, b in zip(net.get_weights(), shipped.get_layer(f"member_{i}").get_weights(),
                        strict=True):
            np.testing.assert_array_equal(a, b)

    # package_default_model follows the restored chain and ships the same model again
    again = tmp_path / "again.keras"
    package.main(["--run", str(out / "run3"), str(out / "run2"), "--data",
                  str(image_folders), "--out", str(again), "--card", str(tmp_path / "card2"),
                  "--tta", "none"])
    summary = json.loads((tmp_path / "card2" / "summary.json").read_text())
    assert [len(m["runs"]) for m in summary["members"]] == [2, 1]
    assert [m["accuracy_before_bn_recalibration"] for m in summary["members"]] == [None, None]
    # restored networks are used as shipped (no second BatchNorm pass): same weights
    shipped_again = keras.saving.load_model(again, safe_mode=True, compile=False)
    for a, b in zip(shipped_again.get_weights(), shipped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(SystemExit, match="not overwriting"):
        unpack.main(["--model", str(model), "--card", str(card), "--out", str(out)])

    # a failure half-way leaves no run directory and no staging folder behind
    calls = []

    def fail_on_second(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(*args)

    real_write = unpack._write_run
    unpack._write_run = fail_on_second
    try:
        with pytest.raises(OSError, match="disk full"):
            unpack.main(["--model", str(model), "--card", str(card),
                         "--out", str(tmp_path / "partial")])
    finally:
        unpack._write_run = real_write
    assert list((tmp_path / "partial").iterdir()) == []


def test_unpack_names_missing_inputs(tmp_path):
    unpack = load_example("unpack_default_model")
    with pytest.raises(SystemExit, match=r"nope\.keras"):
        unpack.main(["--model", str(tmp_path / "nope.keras"), "--card", str(tmp_path),
                     "--out", str(tmp_path / "out")])
    (tmp_path / "m.keras").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"summary\.json"):
        unpack.main(["--model", str(tmp_path / "m.keras"), "--card", str(tmp_path),
                     "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_init_from_a_shallower_network_grows_it(two_runs, train_script, image_folders,
                                               tmp_path, monkeypatch, capsys):
    from fervision.nn.backbones import BACKBONES, fernet_body

    # fernet_tiny with a second block in its last stage, as fernet_small_deep is to
    # fernet_small; registered for this test only
    monkeypatch.setitem(BACKBONES, "fernet_tiny_deep", lambda x, *, weights=None: fernet_body(
        x, widths=(8, 16), blocks=(1, 2), stem=8, dropout=0.1, se=False))
    out = tmp_path / "grown"
    train_script.main(["--data", str(image_folders), "--out", str(out), "--epochs", "1",
                       "--batch-size", "4", "--warmup-epochs", "0", "--backbone",
                       "fernet_tiny_deep", "--precision", "float32", "--lr", "1e-9",
                       "--init-from", str(two_runs[0] / "final.keras")])
    assert "starting as the identity" in capsys.readouterr().out
    start = keras.saving.load_model(two_runs[0] / "final.keras", compile=False)
    grown = keras.saving.load_model(out / "final.keras", compile=False)
    assert grown.count_params() > start.count_params()
    # one epoch at a negligible learning rate: the stem and the classifier are still
    # the trained network's (a fresh initialisation would differ)
    def stem_and_head(model):
        stem = next(la for la in model.layers if isinstance(la, keras.layers.Conv2D))
        return stem.get_weights()[0], model.get_layer("predictions").get_weights()[0]

    for after, before in zip(stem_and_head(grown), stem_and_head(start), strict=True):
        np.testing.assert_allclose(after, before, atol=1e-6)


def test_init_from_a_network_that_does_not_fit_is_named_before_anything_is_written(
        two_runs, train_script, image_folders, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"--init-from .*final\.keras: .*no counterpart"):
        train_script.main(["--data", str(image_folders), "--out", str(out), "--epochs", "1",
                           "--warmup-epochs", "0", "--backbone", "cnn", "--precision",
                           "float32",
                           "--init-from", str(two_runs[0] / "final.keras")])
    assert not out.exists()


def test_missing_init_from_is_named_before_anything_is_written(train_script, tmp_path):
    with pytest.raises(SystemExit, match=r"--init-from .*nope\.keras: no such file"):
        train_script.main(["--data", str(tmp_path), "--out", str(tmp_path / "run"),
                           "--init-from", str(tmp_path / "nope.keras")])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("ferplus", [[], ["--ferplus"]], ids=["fer2013", "ferplus"])
def test_wrong_data_folder_is_named_before_anything_is_written(train_script, tmp_path,
                                                               ferplus):
    data = tmp_path / "not-the-data"
    (data / "train").mkdir(parents=True)  # a half-right layout still fails cleanly
    with pytest.raises(SystemExit, match=r"--data .*not-the-data: "):
        train_script.main(["--data", str(data), "--out", str(tmp_path / "run"),
                           "--epochs", "1", "--warmup-epochs", "0", *ferplus])
    assert not (tmp_path / "run").exists()


def test_deflate_archive_halves_bfloat16_weights_and_loads_the_same(tmp_path):
    import keras

    from fervision import EmotionClassifier
    from fervision.nn.backbones import create_model
    from fervision.nn.precision import round_weights_to_bfloat16

    package = load_example("package_default_model")
    model = create_model("fernet_tiny", input_size=24, n_classes=3)
    round_weights_to_bfloat16(model)
    clf = EmotionClassifier.from_keras_model(model, ["a", "b", "c"], input_size=24)
    path = clf.save(tmp_path / "m.keras")
    before = path.stat().st_size
    package.deflate_archive(path)
    assert path.stat().st_size < 0.75 * before
    assert not list(tmp_path.glob(".m.keras.*"))  # no temp file left
    X = np.random.default_rng(0).integers(0, 256, (4, 24, 24), dtype=np.uint8)
    reloaded = EmotionClassifier.load(path)
    np.testing.assert_allclose(reloaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert isinstance(reloaded.model_, keras.Model)


def test_teacher_run_trains_on_mixed_targets_and_caches_the_teacher(
        train_script, image_folders, tmp_path, monkeypatch):
    from fervision import EmotionClassifier

    seen = _spy_on_training_sets(train_script, monkeypatch, "y")
    out = tmp_path / "run"
    argv = ["--data", str(image_folders), "--out", str(out), "--epochs", "1",
            "--batch-size", "4", "--warmup-epochs", "0", "--backbone", "fernet_tiny",
            "--precision", "float32", "--teacher", "default", "--alpha", "0.25"]
    train_script.main(argv)
    assert json.loads((out / "args.json").read_text())["teacher"] == "default"
    with np.load(out / "teacher.npz") as cache:
        proba, teacher_classes = cache["proba"], cache["classes"].tolist()
    assert proba.shape == (12, 7)  # 4 training images of 3 classes, 7 teacher classes
    # the student's three columns of the teacher's probabilities, renormalised, a quarter
    # of each target; the one-hot label (image folders sorted by class) three quarters
    cols = [teacher_classes.index(c) for c in ("happy", "sad", "surprise")]
    mapped = proba[:, cols] / proba[:, cols].sum(axis=1, keepdims=True)
    onehot = np.repeat(np.eye(3), 4, axis=0)
    np.testing.assert_allclose(seen[0], 0.25 * mapped + 0.75 * onehot, rtol=1e-5)

    # a second start reads the cached probabilities: the teacher does not run again
    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(EmotionClassifier, "predict_proba", no_teacher)
    train_script.main(argv)
    np.testing.assert_allclose(seen[1], seen[0])


def test_teacher_can_be_a_saved_classifier_file(train_script, image_folders, tmp_path):
    from fervision.weights import pretrained_file

    common = ["--data", str(image_folders), "--epochs", "1", "--batch-size", "4",
              "--warmup-epochs", "0", "--backbone", "fernet_tiny", "--precision", "float32"]
    by_name, by_file = tmp_path / "by_name", tmp_path / "by_file"
    train_script.main([*common, "--out", str(by_name), "--teacher", "fer2013"])
    train_script.main([*common, "--out", str(by_file), "--teacher",
                       str(pretrained_file("fer2013"))])
    with np.load(by_name / "teacher.npz") as a, np.load(by_file / "teacher.npz") as b:
        np.testing.assert_allclose(a["proba"], b["proba"], rtol=1e-6)


def test_teacher_can_be_the_mean_of_several_models(train_script, image_folders, tmp_path):
    common = ["--data", str(image_folders), "--epochs", "1", "--batch-size", "4",
              "--warmup-epochs", "0", "--backbone", "fernet_tiny", "--precision", "float32"]
    for name in ("default", "ferplus-large"):
        train_script.main([*common, "--out", str(tmp_path / name), "--teacher", name])
    both = tmp_path / "both"
    train_script.main([*common, "--out", str(both), "--teacher", "default+ferplus-large"])
    assert json.loads((both / "args.json").read_text())["teacher"] == "default+ferplus-large"
    with (np.load(tmp_path / "default" / "teacher.npz") as a,
          np.load(tmp_path / "ferplus-large" / "teacher.npz") as b,
          np.load(both / "teacher.npz") as mean):
        assert a["classes"].tolist() == b["classes"].tolist() == mean["classes"].tolist()
        np.testing.assert_allclose(mean["proba"], (a["proba"] + b["proba"]) / 2, atol=1e-6)


def test_bad_teachers_are_named_before_the_run_starts(train_script, image_folders,
                                                     tmp_path):
    from fervision import EmotionClassifier

    whole_face = tmp_path / "whole_face.keras"
    EmotionClassifier.from_pretrained("default").set_params(crop_pct=1.0).save(whole_face)
    out = tmp_path / "run"
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    for teacher, extra, error in [
            ("default+nope", [], "--teacher nope: not a pretrained model"),
            (f"default+{junk}", [], r"junk\.keras: .*junk\.keras is not a Keras"),
            # a consistent teacher sees the augmented view: no member crops it
            (f"default+{whole_face}", ["--consistent"],
             r"differ in centre crop \(crop_pct \[0\.9, 1\.0\]\)")]:
        with pytest.raises(SystemExit, match=error):
            train_script.main(["--data", str(image_folders), "--out", str(out),
                               "--teacher", teacher, *extra])
        assert not out.exists()


def test_warmup_longer_than_the_run_is_refused_before_it_starts(train_script,
                                                               image_folders, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit,
                       match=r"--warmup-epochs 2 must be .* fewer than --epochs 1"):
        train_script.main(["--data", str(image_folders), "--out", str(out),
                           "--epochs", "1"])
    assert not out.exists()


def test_unknown_teacher_is_refused_before_the_run_starts(train_script, image_folders,
                                                         tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit,
                       match=r"--teacher nope: not a pretrained model .* nor a \.keras file"):
        train_script.main(["--data", str(image_folders), "--out", str(out),
                           "--teacher", "nope"])
    assert not out.exists()
    missing = tmp_path / "gone.keras"
    with pytest.raises(SystemExit, match=r"gone\.keras: not a pretrained model"):
        train_script.main(["--data", str(image_folders), "--out", str(out),
                           "--teacher", str(missing)])
    assert not out.exists()


@pytest.mark.parametrize(("teacher_tta", "passed"), [([], False),
                                                   (["--teacher-tta", "flip"], "flip")],
                         ids=["one-view", "flip"])
def test_consistent_teacher_run_trains_the_whole_model_and_caches_nothing(
        train_script, image_folders, tmp_path, monkeypatch, teacher_tta, passed):
    calls = []
    real = train_script.consistent_targets

    def spy(ds, block, teacher_model, teacher_classes, classes, **kwargs):
        calls.append((block.name, list(teacher_classes), list(classes), kwargs))
        return real(ds, block, teacher_model, teacher_classes, classes, **kwargs)

    monkeypatch.setattr(train_script, "consistent_targets", spy)
    out = tmp_path / "run"
    train_script.main(["--data", str(image_folders), "--out", str(out), "--epochs", "1",
                       "--batch-size", "4", "--warmup-epochs", "0", "--backbone",
                       "fernet_tiny", "--precision", "float32", "--teacher", "default",
                       "--alpha", "0.6", "--consistent", *teacher_tta])
    # the student's own augmentation block feeds the teacher, the columns matched by name
    assert calls == [("augmentation", sorted(calls[0][1]), ["happy", "sad", "surprise"],
                      {"alpha": 0.6, "temperature": 1.0, "tta": passed})]
    assert len(calls[0][1]) == 7
    assert not (out / "teacher.npz").exists()  # the teacher ran per batch, nothing kept
    assert json.loads((out / "args.json").read_text())["consistent"] is True
    for name in ("last.keras", "final.keras"):  # whole models: images in, augmentation kept
        model = keras.saving.load_model(out / name, safe_mode=True, compile=False)
        assert model.input_shape == (None, 48, 48, 1)
        assert model.get_layer("augmentation") is not None


@pytest.mark.parametrize(("view", "augmentation"), [
    ("centre", ["RandomFlip"]),
    ("centre-lighting", ["RandomFlip", "RandomBrightness", "RandomContrast"]),
])
def test_centre_view_run_sees_the_predicted_crop_with_a_teacher_of_the_whole_face(
        train_script, image_folders, tmp_path, monkeypatch, view, augmentation):
    from fervision import EmotionClassifier
    from fervision.data.datasets import load_image_folder
    from fervision.data.preprocessing import check_images
    from fervision.nn.eval_crop import center_crop

    seen = _spy_on_training_sets(train_script, monkeypatch, "X")
    out = tmp_path / "run"
    train_script.main(["--data", str(image_folders), "--out", str(out), "--epochs", "1",
                       "--batch-size", "4", "--warmup-epochs", "0", "--backbone",
                       "fernet_tiny", "--precision", "float32", "--teacher", "default",
                       "--teacher-tta", "crops", "--alpha", "0.5", "--view", view])
    whole = check_images(load_image_folder(image_folders / "train")[0], 48)
    # the student trains on the centre crop the packaged model predicts on ...
    np.testing.assert_allclose(seen[0], center_crop(whole, 0.9))
    assert not np.allclose(seen[0], whole)
    # ... with the teacher's probabilities cached from its views of the whole face
    teacher = EmotionClassifier.from_pretrained("default", tta="crops")
    with np.load(out / "teacher.npz") as cache:
        np.testing.assert_allclose(cache["proba"], teacher.predict_proba(whole), atol=1e-5)
    # and nothing that moves a pixel is left of the augmentation
    model = keras.saving.load_model(out / "final.keras", safe_mode=True, compile=False)
    layers = [type(layer).__name__ for layer in model.get_layer("augmentation").layers]
    assert layers == augmentation
    assert json.loads((out / "args.json").read_text())["view"] == view


def test_unknown_view_is_named_before_anything_is_written(train_script, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        train_script.main(["--out", str(out), "--view", "center"])
    assert "argument --view: invalid choice: 'center'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--consistent"], "--consistent needs --teacher"),
    (["--consistent", "--teacher", "default", "--teacher-tta", "crops"], "--teacher-tta crops"),
    (["--teacher", "default", "--alpha", "1.5"], "--alpha 1.5"),
    (["--teacher", "default", "--temperature", "0"], "--temperature 0.0"),
])
def test_consistent_options_are_checked_before_the_run_starts(train_script, tmp_path,
                                                              extra, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=message):
        train_script.main(["--out", str(out), *extra])
    assert not out.exists()


def test_a_run_started_from_a_packaged_file_says_how_to_record_its_provenance(tmp_path):
    common = load_example("_common")
    run, shipped = tmp_path / "run", tmp_path / "models" / "default.keras"
    run.mkdir()
    (run / "args.json").write_text(json.dumps({"init_from": str(shipped)}))
    with pytest.raises(SystemExit, match=r"cannot record its provenance.*unpack_default_model"):
        common.run_chain(run)
