"""fervision.data.labels: emotion names and their dataset spellings."""

from __future__ import annotations

import pytest

from fervision.data.labels import EMOTIONS, canonical_emotion, ordered_labels


def test_emotions_are_fer2013s_seven_in_its_integer_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize("name", EMOTIONS)
def test_canonical_names_map_to_themselves(name):
    assert canonical_emotion(name) == name


@pytest.mark.parametrize(("spelling", "name"), [
    ("Anger", "angry"), ("mad", "angry"),
    ("Disgusted", "disgust"), ("contempt_disgust", "disgust"),
    ("contempt-disgust", "disgust"), ("Contempt Disgust", "disgust"),
    ("fearful", "fear"), ("AFRAID", "fear"), ("scared", "fear"),
    ("Happiness", "happy"), ("joy", "happy"),
    ("sadness", "sad"), ("Surprised", "surprise"), ("calm", "neutral"),
    ("  Neutral\n", "neutral"),
])
def test_dataset_spellings(spelling, name):
    assert canonical_emotion(spelling) == name


@pytest.mark.parametrize("bad", ["contempt", "happyy", "", 3])
def test_unknown_spelling_is_an_error_that_lists_the_known_ones(bad):
    with pytest.raises(ValueError, match=f"unknown emotion label {bad!r}") as info:
        canonical_emotion(bad)
    assert "angry, disgust, fear, happy, sad, surprise, neutral" in str(info.value)
    assert "happiness" in str(info.value)


def test_ordered_labels_puts_known_emotions_first_in_fer2013_order():
    labels = ["neutral", "zzz", "happy", "angry", "happy", "aaa", "neutral"]
    assert ordered_labels(labels) == ["angry", "happy", "neutral", "aaa", "zzz"]
    assert ordered_labels([]) == []
