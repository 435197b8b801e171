"""tools/eval_pretrained.py: every model x crop x TTA x test set, one JSON row each."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from test_train_script import load_example

from fervision.data.labels import EMOTIONS


@pytest.fixture
def test_sets(tmp_path):
    """A FER+ Valid folder (label.csv with votes) and a FER2013 test/ folder."""
    rng = np.random.default_rng(0)
    valid = tmp_path / "ferplus" / "FER2013Valid"
    valid.mkdir(parents=True)
    lines = []
    for i in range(6):  # votes: neutral, happy, surprise, sad, angry, disgust, fear, ...
        votes = [0] * 10
        votes[i % 4] = 8
        votes[8] = 2
        cv2.imwrite(str(valid / f"{i}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
        lines.append(f'{i}.png,"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (valid / "label.csv").write_text("\n".join(lines) + "\n")
    for label in ("happy", "sad"):
        folder = tmp_path / "fer2013" / "test" / label
        folder.mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(folder / f"{i}.png"),
                        rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return tmp_path


def test_rows_for_each_crop_and_set(test_sets, tiny_model_path, tmp_path):
    tool = load_example("eval_pretrained")
    out = tmp_path / "rows.json"
    tool.main(["--model", str(tiny_model_path), "--crop-pct", "1", "model",
               "--ferplus", str(test_sets / "ferplus"), "--fer2013", str(test_sets / "fer2013"),
               "--out", str(out), "--card", str(tmp_path / "card")])
    rows = json.loads(out.read_text())
    assert [(r["crop_pct"], r["test_set"]) for r in rows] == [
        (1.0, "FER+ Valid (majority)"), (1.0, "FER2013 PublicTest"),
        (0.9, "FER+ Valid (majority)"), (0.9, "FER2013 PublicTest")]  # "auto": 0.9
    assert [r["images"] for r in rows] == [6, 6, 6, 6]
    assert all(0 <= r["accuracy"] <= 1 and r["tta"] == "none" for r in rows)
    assert set(rows[0]["per_class_f1"]) <= set(EMOTIONS) | {"macro avg", "weighted avg"}
    assert not (tmp_path / "card").exists()  # a file has no home test set: no card


def test_each_pretrained_model_is_reported_on_the_labels_it_learned():
    tool = load_example("eval_pretrained")
    assert tool.home_set("default") == tool.home_set("ferplus-large") == "FER+ Valid (majority)"
    assert tool.home_set("fer2013") == "FER2013 PublicTest"
    assert tool.home_set("mine.keras") is None


def test_a_mean_of_models_is_scored_as_one_teacher(test_sets, tiny_model_path, tmp_path):
    from fervision import EmotionClassifier
    from fervision.data.datasets import load_ferplus

    tool = load_example("eval_pretrained")
    X, y = load_ferplus(test_sets / "ferplus" / "FER2013Valid", progress=False)
    first = EmotionClassifier.load(tiny_model_path)
    # A second member, same classes and crop, sure of the class the first finds least
    # likely: the mean then differs from each member whatever the tiny model learned.
    other = EmotionClassifier.load(tiny_model_path)
    least = int(first.predict_proba(X).mean(axis=0).argmin())
    dense = other.model_.layers[-1]
    kernel, bias = dense.get_weights()
    confident = np.full_like(bias, np.log(0.01 / (len(bias) - 1)))
    confident[least] = np.log(0.99)
    dense.set_weights([np.zeros_like(kernel), confident])
    other_path = tmp_path / "other.keras"
    other.save(other_path)
    spec = f"{tiny_model_path}+{other_path}"

    members = [first, EmotionClassifier.load(other_path)]
    probas = [m.predict_proba(X) for m in members]
    mean = np.mean(probas, axis=0)
    averaged = tool.load_mean_classifier(spec, what="--model").predict_proba(X)
    np.testing.assert_allclose(averaged, mean, atol=1e-5)
    assert not any(np.allclose(averaged, p, atol=1e-3) for p in probas)

    out = tmp_path / "rows.json"
    tool.main(["--model", spec, "--ferplus", str(test_sets / "ferplus"),
               "--fer2013", str(test_sets / "fer2013"), "--out", str(out),
               "--card", str(tmp_path / "card")])
    rows = json.loads(out.read_text())
    assert [(r["model"], r["test_set"]) for r in rows] == [
        (spec, "FER+ Valid (majority)"), (spec, "FER2013 PublicTest")]
    expected = np.mean(first.classes_[mean.argmax(axis=1)] == np.asarray(y))
    assert rows[0]["accuracy"] == pytest.approx(expected)  # the mean, not one member
    assert tool.home_set(spec) is None
    assert not (tmp_path / "card").exists()


def test_an_unknown_member_of_a_mean_is_named(test_sets, tmp_path):
    tool = load_example("eval_pretrained")
    out = tmp_path / "rows.json"
    with pytest.raises(SystemExit, match=r"--model nope: not a pretrained model"):
        tool.main(["--model", "default+nope", "--ferplus", str(test_sets / "ferplus"),
                   "--fer2013", str(test_sets / "fer2013"), "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("spec", ["default+", "+default", "default++fer2013"])
def test_an_empty_member_of_a_mean_is_refused(spec, tmp_path):
    tool = load_example("eval_pretrained")
    out = tmp_path / "rows.json"
    with pytest.raises(SystemExit, match=rf"--model {re.escape(spec)}: an empty model name"):
        tool.main(["--model", spec, "--ferplus", str(tmp_path), "--fer2013", str(tmp_path),
                   "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("bad", ["1.5", "0", "half"])
def test_a_bad_crop_is_refused_before_any_work(bad, tmp_path, capsys):
    tool = load_example("eval_pretrained")
    out = tmp_path / "rows.json"
    with pytest.raises(SystemExit):
        tool.main(["--model", "nope.keras", "--crop-pct", bad, "--ferplus", str(tmp_path),
                   "--fer2013", str(tmp_path), "--out", str(out)])
    assert f"--crop-pct {bad}" in capsys.readouterr().err
    assert not out.exists()


def test_lighting_keeps_the_rows_of_models_not_measured_again(test_sets, tiny_model_path,
                                                              tmp_path):
    tool = load_example("eval_lighting")
    out = tmp_path / "lighting"
    out.mkdir()
    valid = test_sets / "ferplus" / "FER2013Valid"
    other = {"original": {"plain": 0.5, "clahe": 0.4}}
    (out / "lighting.json").write_text(json.dumps(
        {"data": "FER2013Valid", "images": 6,
         "results": {"other": other, str(tiny_model_path): {"original": {}}}}))
    tool.main(["--model", str(tiny_model_path), "--data", str(valid), "--out", str(out)])
    saved = json.loads((out / "lighting.json").read_text())
    assert list(saved["results"]) == ["other", str(tiny_model_path)]
    assert saved["results"]["other"] == other  # kept
    rows = saved["results"][str(tiny_model_path)]  # measured again
    assert set(rows) == set(tool.CONDITIONS)
    assert all(0 <= r["plain"] <= 1 and 0 <= r["clahe"] <= 1 for r in rows.values())
    assert (out / "lighting.png").is_file()
    assert (out / "lighting-examples.png").is_file()
    # figures on another test set are not mixed in
    (out / "lighting.json").write_text(json.dumps(
        {"data": "FER2013Valid", "images": 99, "results": {"other": other}}))
    tool.main(["--model", str(tiny_model_path), "--data", str(valid), "--out", str(out)])
    assert list(json.loads((out / "lighting.json").read_text())["results"]) == [
        str(tiny_model_path)]


def test_lighting_refuses_an_out_file_it_did_not_write(tmp_path):
    tool = load_example("eval_lighting")
    out = tmp_path / "lighting"
    out.mkdir()
    (out / "lighting.json").write_text("my notes, not JSON")
    with pytest.raises(SystemExit, match=r"not a lighting\.json"):
        tool.main(["--model", "default", "--data", str(tmp_path / "nowhere"),
                   "--out", str(out)])
    assert (out / "lighting.json").read_text() == "my notes, not JSON"


def test_members_that_see_different_crops_are_averaged_each_at_its_own(tiny_model_path,
                                                                      tmp_path):
    # The former whole-face "fer2013" ensemble beside a crop-0.9 network as one teacher:
    # each member must see the view it predicts on alone, not the mean's.
    from fervision import EmotionClassifier

    tool = load_example("eval_pretrained")
    cropped = EmotionClassifier.load(tiny_model_path).set_params(crop_pct=0.9)
    whole = EmotionClassifier.load(tiny_model_path).set_params(crop_pct=1.0)
    paths = [tmp_path / "cropped.keras", tmp_path / "whole.keras"]
    cropped.save(paths[0])
    whole.save(paths[1])
    X = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    p_crop, p_whole = cropped.predict_proba(X), whole.predict_proba(X)
    assert not np.allclose(p_crop, p_whole, atol=1e-4)  # the crop changes the answer

    mean = tool.load_mean_classifier(f"{paths[0]}+{paths[1]}", what="--model")
    np.testing.assert_allclose(mean.predict_proba(X), (p_crop + p_whole) / 2, atol=1e-5)
    for tta in ("flip", "crops"):  # every view is cropped again in front of each member
        expected = (cropped.set_params(tta=tta).predict_proba(X)
                    + whole.set_params(tta=tta).predict_proba(X)) / 2
        np.testing.assert_allclose(mean.set_params(tta=tta).predict_proba(X), expected,
                                   atol=1e-5)


def test_members_over_different_classes_are_not_averaged(tiny_model_path, tmp_path):
    from fervision import EmotionClassifier

    tool = load_example("eval_pretrained")
    clf = EmotionClassifier.load(tiny_model_path)
    renamed = EmotionClassifier.from_keras_model(clf.model_, list(clf.classes_)[::-1])
    other = tmp_path / "reversed.keras"
    renamed.save(other)
    with pytest.raises(SystemExit, match=r"--model .*reversed\.keras: the models differ "
                                          r"in classes"):
        tool.load_mean_classifier(f"{tiny_model_path}+{other}", what="--model")
