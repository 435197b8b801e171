"""Knowledge distillation: teacher probabilities computed once, cached, mixed."""

from __future__ import annotations

import numpy as np
import pytest
from test_targets import CLASSES, _bands, _clf

from fervision import EmotionClassifier
from fervision.nn.distillation import (
    distill,
    distillation_targets,
    soften,
    teacher_probabilities,
)


@pytest.fixture(scope="module")
def teacher():
    X, k = _bands(48, seed=1)
    return _clf(epochs=15).fit(X, CLASSES[k])


class Counting:
    """A teacher that counts its predict_proba calls (and predicts from brightness)."""

    classes_ = np.array(["sad", "happy"])  # not sorted: columns are matched by name
    tta = False
    input_size = 16

    def __init__(self):
        self.calls = 0

    def predict_proba(self, X):
        self.calls += 1
        top = np.asarray(X, np.float64)[:, : X.shape[1] // 2].mean(axis=(1, 2)) / 255
        return np.c_[1 - top, top]


def test_teacher_probabilities_are_cached_by_content(tmp_path):
    X, _ = _bands(10)
    t = Counting()
    cache = tmp_path / "teacher.npz"
    first = teacher_probabilities(t, X, cache=cache, batch_size=4)
    assert t.calls == 3 and cache.is_file()
    again = teacher_probabilities(t, X, cache=cache)
    assert t.calls == 3  # read back, not recomputed
    np.testing.assert_array_equal(first, again)
    other = X.copy()
    other[0, 0, 0] ^= 1  # different images: a different fingerprint, recomputed
    teacher_probabilities(t, other, cache=cache)
    assert t.calls == 4


def test_the_teacher_pass_shows_progress_when_asked(capsys):
    X, _ = _bands(10)
    teacher_probabilities(Counting(), X, batch_size=4)  # small: quiet by default
    assert "teacher" not in capsys.readouterr().err
    teacher_probabilities(Counting(), X, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "teacher" in err and "10/10" in err


def test_a_foreign_file_is_never_replaced(tmp_path):
    X, _ = _bands(4)
    cache = tmp_path / "mine.npz"
    cache.write_bytes(b"my notes")
    with pytest.raises(ValueError, match="not a teacher-probabilities file"):
        teacher_probabilities(Counting(), X, cache=cache)
    assert cache.read_bytes() == b"my notes"


def test_soften_and_mix():
    p = np.array([[0.9, 0.1]])
    np.testing.assert_allclose(soften(p, 1.0), p, rtol=1e-6)
    assert soften(p, 4.0)[0, 0] < 0.9 and soften(p, 4.0).sum() == pytest.approx(1)
    with pytest.raises(ValueError, match="temperature"):
        soften(p, 0)
    # teacher columns (sad, happy) are matched to the student's (happy, sad) by name
    mix = distillation_targets(np.array([[0.8, 0.2]]), ["sad", "happy"], ["happy", "sad"],
                               y=["happy"], alpha=0.5)
    np.testing.assert_allclose(mix, [[0.6, 0.4]], rtol=1e-6)
    with pytest.raises(ValueError, match="needs the dataset's targets"):
        distillation_targets(np.array([[0.8, 0.2]]), ["sad", "happy"], ["happy", "sad"],
                             alpha=0.5)


def test_student_learns_from_the_teacher(teacher, tmp_path):
    X, k = _bands(32, seed=2)
    wrong = CLASSES[1 - k]  # labels that contradict the images; alpha=1 ignores them
    student = distill(_clf(epochs=20), teacher, X, wrong, alpha=1.0,
                      cache=tmp_path / "t.npz")
    assert isinstance(student, EmotionClassifier)
    agree = (student.predict(X) == teacher.predict(X)).mean()
    assert agree > 0.9
    assert (tmp_path / "t.npz").is_file()
