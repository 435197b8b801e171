"""fervision.compat.FER: fer's interface and result shapes on fervision's models."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from fervision.compat import FER
from fervision.data.labels import EMOTIONS

PHOTO = Path(__file__).parent / "data" / "astronaut.jpg"
# fer's documented label order (fer.FER._get_labels)
FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def fer():
    return FER()


def test_detect_emotions_has_fers_shape(fer):
    result = fer.detect_emotions(cv2.imread(str(PHOTO)))
    assert isinstance(result, list)
    assert len(result) >= 1
    face = result[0]
    assert set(face) == {"box", "emotions"}
    assert len(face["box"]) == 4
    assert all(type(v) is int for v in face["box"])
    assert list(face["emotions"]) == FER_LABELS == list(EMOTIONS)
    for v in face["emotions"].values():
        assert type(v) is float
        assert v == round(v, 2)
        assert 0 <= v <= 1
    assert sum(face["emotions"].values()) == pytest.approx(1, abs=0.05)
    assert fer.emotions == result  # fer keeps the last result


def test_top_emotion_and_no_face(fer):
    name, score = fer.top_emotion(str(PHOTO))
    scores = fer.detect_emotions(str(PHOTO))[0]["emotions"]
    assert name == max(scores, key=scores.get)
    assert score == scores[name]
    blank = np.full((240, 320, 3), 127, np.uint8)
    assert fer.detect_emotions(blank) == []
    assert fer.top_emotion(blank) == (None, None)


def test_inputs_fer_accepts(fer):
    by_path = fer.detect_emotions(str(PHOTO))
    uri = "data:image/jpeg;base64," + base64.b64encode(PHOTO.read_bytes()).decode()
    assert fer.detect_emotions(uri) == by_path
    assert fer.batch_detect_emotions([str(PHOTO), uri]) == [by_path, by_path]
    with pytest.raises(ValueError, match="base64"):
        fer.detect_emotions("data:image/jpeg;base64,@@@")


def test_given_face_rectangles_are_classified(fer):
    box = fer.detect_emotions(str(PHOTO))[0]["box"]
    again = fer.detect_emotions(str(PHOTO), face_rectangles=[box])
    assert [f["box"] for f in again] == [box]
    assert list(again[0]["emotions"]) == FER_LABELS


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"scale_factor": 1.0}, "scale_factor"),
    ({"min_face_size": 0}, "min_face_size"),
    ({"min_neighbors": -1}, "min_neighbors"),
    ({"offsets": (1,)}, "offsets"),
    ({"cascade_file": "x.xml"}, "cascade_file"),
    ({"tfserving": True}, "tfserving"),
])
def test_fers_parameter_checks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FER(**kwargs)


def test_min_face_size_filters_faces():
    big = FER(min_face_size=10_000)
    assert big.detect_emotions(str(PHOTO)) == []


@pytest.mark.skipif(importlib.util.find_spec("fer") is None, reason="fer not installed")
def test_same_shape_as_the_real_fer_package():
    try:
        from fer.fer import FER as RealFER
    except Exception as err:  # fer needs pkg_resources (setuptools < 81)
        pytest.skip(f"fer does not import here: {err}")
    img = cv2.imread(str(PHOTO))
    theirs, ours = RealFER().detect_emotions(img), FER().detect_emotions(img)
    assert theirs
    assert ours
    assert list(theirs[0]["emotions"]) == list(ours[0]["emotions"])
    assert len(theirs[0]["box"]) == len(ours[0]["box"]) == 4
