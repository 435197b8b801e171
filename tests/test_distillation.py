"""Knowledge distillation: teacher probabilities computed once, cached, mixed."""

from __future__ import annotations

import numpy as np
import pytest
from test_targets import CLASSES, _bands, _clf

from fervision import EmotionClassifier
from fervision.nn.distillation import (
    consistent_targets,
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
    assert t.calls == 3
    assert cache.is_file()
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
    assert "teacher" in err
    assert "10/10" in err


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
    assert soften(p, 4.0)[0, 0] < 0.9
    assert soften(p, 4.0).sum() == pytest.approx(1)
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


def _tiny(augmentation=None, n_classes=3, seed=0):
    import keras

    from fervision.nn.backbones import create_model

    keras.utils.set_random_seed(seed)
    return create_model("fernet_tiny", input_size=16, n_classes=n_classes,
                        augmentation=augmentation)


def test_split_augmentation_shares_the_models_variables():
    from fervision.nn.augmentation import build_augmentation, split_augmentation

    model = _tiny(build_augmentation(16, seed=3))
    block, rest = split_augmentation(model)
    assert block is model.get_layer("augmentation")
    x = np.random.default_rng(0).random((4, 16, 16, 1), np.float32)
    np.testing.assert_allclose(rest.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    # fitting the rest trains the model itself
    before = model.get_layer("predictions").get_weights()[0].copy()
    rest.compile("sgd", "categorical_crossentropy")
    rest.fit(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], epochs=1, verbose=0)
    assert not np.allclose(before, model.get_layer("predictions").get_weights()[0])
    np.testing.assert_allclose(rest.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_split_augmentation_refuses_a_model_without_the_block():
    from fervision.nn.augmentation import split_augmentation

    with pytest.raises(ValueError, match="no layer 'augmentation'"):
        split_augmentation(_tiny())
    import keras

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Rescaling(2.0)(inputs)
    x = keras.layers.Identity(name="augmentation")(x)
    late = keras.Model(inputs, keras.layers.Flatten()(x))
    with pytest.raises(ValueError, match="not applied to the model's input"):
        split_augmentation(late)


def _faces_and_teacher(n, *, seed, teacher_seed, batch):
    """``n`` random 16x16 faces with one-hot targets over 3 classes, batched, and a teacher."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 16, 1), np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    return x, y, ds, _tiny(n_classes=3, seed=teacher_seed)


def test_consistent_targets_follow_the_augmented_view():
    import keras

    from fervision.nn.augmentation import build_augmentation

    x, y, ds, teacher = _faces_and_teacher(8, seed=1, teacher_seed=5, batch=4)
    classes = ["a", "b", "c"]
    teacher_classes = ["c", "a", "b"]  # another column order: matched by name
    aug = build_augmentation(16, seed=2)
    out = consistent_targets(ds, aug, teacher, teacher_classes, classes, alpha=0.7)
    batches = [(a.numpy(), t.numpy()) for a, t in out]
    seen = np.concatenate([a for a, _ in batches])
    targets = np.concatenate([t for _, t in batches])
    assert seen.shape == x.shape
    assert not np.allclose(seen, x)  # augmented
    p = teacher.predict(seen, verbose=0)[:, [1, 2, 0]]  # the teacher on that very view
    np.testing.assert_allclose(targets, 0.7 * p + 0.3 * y, atol=1e-5)
    # a second pass draws new views, and new targets with them
    seen2 = np.concatenate([a.numpy() for a, _ in out])
    assert not np.allclose(seen, seen2)
    # temperature flattens the teacher's share
    hot = consistent_targets(ds, keras.layers.Identity(), teacher, teacher_classes, classes,
                             alpha=1.0, temperature=4.0)
    flat = np.concatenate([t.numpy() for _, t in hot])
    np.testing.assert_allclose(flat, soften(teacher.predict(x, verbose=0)[:, [1, 2, 0]], 4.0),
                               atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        consistent_targets(ds, aug, teacher, teacher_classes, classes, alpha=1.5)
    with pytest.raises(ValueError, match="share none"):
        consistent_targets(ds, aug, teacher, ["x", "y", "z"], classes)
    with pytest.raises(ValueError, match="temperature"):
        consistent_targets(ds, aug, teacher, teacher_classes, classes, temperature=0)
    with pytest.raises(ValueError, match="tta='crops'"):
        consistent_targets(ds, aug, teacher, teacher_classes, classes, tta="crops")
    with pytest.raises(ValueError, match="tta must be"):
        consistent_targets(ds, aug, teacher, teacher_classes, classes, tta="mirror")


def test_consistent_targets_with_flip_average_the_view_and_its_mirror():
    import keras

    # an odd batch size: the mean must pair each view with its own mirror
    x, y, ds, teacher = _faces_and_teacher(6, seed=3, teacher_seed=7, batch=5)
    classes = ["a", "b", "c"]
    out = consistent_targets(ds, keras.layers.Identity(), teacher, classes, classes,
                             alpha=0.6, tta="flip")
    targets = np.concatenate([t.numpy() for _, t in out])
    plain = teacher.predict(x, verbose=0)
    mirrored = teacher.predict(x[:, :, ::-1, :], verbose=0)
    assert not np.allclose(plain, mirrored)  # the mirror is a different view to this teacher
    np.testing.assert_allclose(targets, 0.6 * (plain + mirrored) / 2 + 0.4 * y, atol=1e-5)
