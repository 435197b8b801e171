"""fervision.nn.augmentation.mixup on a tf.data pipeline."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from fervision.nn.augmentation import mixup  # noqa: E402


def _batches(n=16, batch=8):
    rng = np.random.default_rng(0)
    X = rng.random((n, 6, 6, 1)).astype("float32")
    Y = np.eye(3, dtype="float32")[np.arange(n) % 3]
    return X, Y, tf.data.Dataset.from_tensor_slices((X, Y)).batch(batch)


def test_mixup_makes_convex_pairs_with_soft_labels():
    X, Y, ds = _batches()
    for (x, y), start in zip(mixup(ds, 0.4, seed=0), (0, 8), strict=True):
        x, y = x.numpy(), y.numpy()
        xb, yb = X[start:start + 8], Y[start:start + 8]
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
        # Each sample is a convex mix of itself and its mirror in the batch.
        for i in range(8):
            j = 7 - i
            # x_i = lam x_i + (1 - lam) x_j for one lam in [0, 1]
            d = xb[i] - xb[j]
            lam = float(((x[i] - xb[j]) * d).sum() / (d * d).sum())
            assert -1e-5 <= lam <= 1 + 1e-5
            np.testing.assert_allclose(x[i], lam * xb[i] + (1 - lam) * xb[j], atol=1e-5)
            np.testing.assert_allclose(y[i], lam * yb[i] + (1 - lam) * yb[j], atol=1e-5)


def test_mixup_is_seeded_and_mixes():
    X, _, ds = _batches()
    a = [x.numpy() for x, _ in mixup(ds, 0.4, seed=3)]
    b = [x.numpy() for x, _ in mixup(ds, 0.4, seed=3)]
    c = [x.numpy() for x, _ in mixup(ds, 0.4, seed=4)]
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])
    assert not np.allclose(a[0], X[:8])


@pytest.mark.parametrize("alpha", [0, -1.0])
def test_mixup_rejects_bad_alpha(alpha):
    _, _, ds = _batches()
    with pytest.raises(ValueError, match="alpha"):
        mixup(ds, alpha)


def test_mixup_draws_new_coefficients_every_epoch():
    # The same batch position must not be mixed with the same coefficients on every
    # pass over the data; a fresh pipeline with the same seed repeats the sequence.
    _X, _, ds = _batches()
    mixed = mixup(ds, 0.4, seed=5)
    epoch1 = [x.numpy() for x, _ in mixed]
    epoch2 = [x.numpy() for x, _ in mixed]
    assert not np.allclose(epoch1[0], epoch2[0])
    again = mixup(ds, 0.4, seed=5)
    again1 = [x.numpy() for x, _ in again]  # whole passes, as for epoch1 and epoch2
    again2 = [x.numpy() for x, _ in again]
    np.testing.assert_array_equal(again1[0], epoch1[0])
    np.testing.assert_array_equal(again2[0], epoch2[0])


def test_random_erasing_erases_in_training_only():
    from fervision.nn.augmentation import build_augmentation

    X = np.full((32, 12, 12, 1), 0.5, dtype="float32")
    only_erasing = dict(rotation=0, zoom=0, flip=False, brightness=0, contrast=0,
                        translation=0, crop=0)
    aug = build_augmentation(12, erasing=1.0, seed=0, **only_erasing)
    assert [type(layer).__name__ for layer in aug.layers] == ["RandomErasing"]
    out = np.asarray(aug(X, training=True))
    changed = (out != X).reshape(len(X), -1).mean(axis=1)
    # With probability 1 every image has a patch replaced, and only a patch.
    assert (changed > 0).all()
    assert (changed < 1).all()
    np.testing.assert_array_equal(np.asarray(aug(X, training=False)), X)
    assert not build_augmentation(12, seed=0, **only_erasing).layers


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_random_erasing_rejects_bad_probability(p):
    from fervision.nn.augmentation import build_augmentation

    with pytest.raises(ValueError, match="erasing"):
        build_augmentation(12, erasing=p)
