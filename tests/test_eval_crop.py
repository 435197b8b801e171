"""crop_pct: the centre crop a classifier predicts on (fervision.nn.eval_crop).

The same in predict_proba, in exported models and in distillation caches.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from helpers_estimator import SIZE, _clf, _images

from fervision.data.preprocessing import check_images
from fervision.nn import eval_crop
from fervision.nn.eval_crop import (
    center_crop,
    check_crop_pct,
    crop_layers,
    resize_side,
    resolve_crop_pct,
)


@pytest.mark.parametrize(("size", "crop_pct", "side"), [(48, 0.9, 54), (48, 1.0, 48),
                                                        (48, 0.96, 50), (16, 0.9, 18),
                                                        (48, 0.99, 48)])
def test_resize_side_keeps_the_crop_centred(size, crop_pct, side):
    assert resize_side(size, crop_pct) == side
    assert (side - size) % 2 == 0  # the same margin on each side


@pytest.mark.parametrize(("crop_pct", "augment", "expected"), [
    ("auto", True, 0.9),             # build_augmentation's default crop of 0.1
    ("auto", {"crop": 0.2}, 0.8),
    ("auto", {"zoom": 0.2}, 0.9),    # a dict without "crop": the default crop
    ("auto", {"crop": 0}, 1.0),
    ("auto", False, 1.0),
    ("auto", None, 1.0),
    (0.75, False, 0.75),             # a number is used as it is, whatever the augmentation
    (1, True, 1.0),
])
def test_resolve_crop_pct(crop_pct, augment, expected):
    assert resolve_crop_pct(crop_pct, augment) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.01, float("nan"), True, "0.9", "full", None])
def test_bad_crop_pct_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="crop_pct must be 'auto' or a number in"):
        check_crop_pct(bad)


def test_center_crop_enlarges_the_centre():
    # A bright centred square of side 8 in a 16 px image: after keeping the centre 0.8
    # (enlarged 16 -> 20, then the centre 16 cut) it covers 10 px, bilinear edges aside.
    X = np.zeros((2, 16, 16, 1), np.float32)
    X[:, 4:12, 4:12] = 1.0
    out = center_crop(X, 0.8)
    assert out.shape == X.shape
    assert out.dtype == X.dtype
    assert 90 < (out[0, :, :, 0] > 0.5).sum() < 110  # 100 = 10 x 10
    np.testing.assert_allclose(out[..., 0], out[..., 0].transpose(0, 2, 1), atol=1e-6)
    np.testing.assert_allclose(out, out[:, ::-1, ::-1], atol=1e-6)  # still centred
    assert center_crop(X, 1.0) is X
    assert center_crop(X[:0], 0.8).shape == (0, 16, 16, 1)


def test_center_crop_equals_the_keras_layers_and_does_not_depend_on_chunking(monkeypatch):
    X = np.random.default_rng(0).random((7, 16, 16, 1)).astype(np.float32)
    x = X
    for layer in crop_layers(16, 0.8):
        x = layer(x)
    whole = center_crop(X, 0.8)
    np.testing.assert_allclose(whole, np.asarray(x), atol=1e-6)
    monkeypatch.setattr(eval_crop, "_CHUNK", 3)
    np.testing.assert_array_equal(center_crop(X, 0.8), whole)
    assert crop_layers(16, 1.0) == []


@pytest.mark.parametrize("path", [
    {},                                                # eager (the helpers' setting)
    {"run_eagerly": False},                            # the traced inference function
    {"run_eagerly": False, "predict__verbose": 0},     # Keras's Model.predict loop
])
def test_predict_proba_runs_the_network_on_the_centre_crop(path):
    X, y = _images(24)
    clf = _clf(augment=True).fit(X, y)  # crop_pct="auto" -> 0.9 with augmentation
    clf.set_params(**path)
    inputs = check_images(X, SIZE)
    model = clf.model_
    cropped = np.asarray(model(center_crop(inputs, 0.9), training=False))
    whole = np.asarray(model(inputs, training=False))
    assert not np.allclose(cropped, whole, atol=1e-4)  # the crop changes the input
    np.testing.assert_allclose(clf.predict_proba(X), cropped, atol=1e-5)
    clf.set_params(crop_pct=1.0)
    np.testing.assert_allclose(clf.predict_proba(X), whole, atol=1e-5)
    clf.set_params(crop_pct=0.75)
    np.testing.assert_allclose(clf.predict_proba(X),
                               np.asarray(model(center_crop(inputs, 0.75), training=False)),
                               atol=1e-5)


def test_without_augmentation_auto_predicts_on_the_whole_face():
    X, y = _images(16)
    clf = _clf().fit(X, y)  # helpers' classifier: augment=False
    whole = np.asarray(clf.model_(check_images(X, SIZE), training=False))
    np.testing.assert_allclose(clf.predict_proba(X), whole, atol=1e-5)


def test_a_bad_crop_pct_fails_before_training():
    X, y = _images(8)
    clf = _clf(crop_pct=1.5)
    with pytest.raises(ValueError, match="crop_pct must be 'auto' or a number in"):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_an_estimator_pickled_before_crop_pct_existed_reads_as_auto():
    X, y = _images(16)
    clf = _clf(augment=True).fit(X, y)
    expected = clf.predict_proba(X)
    old = pickle.loads(pickle.dumps(clf))
    del old.crop_pct  # what unpickling an estimator from an earlier release gives
    np.testing.assert_allclose(old.predict_proba(X), expected, atol=1e-6)


def test_distillation_cache_tells_crops_apart(tmp_path):
    from fervision.nn.distillation import _fingerprint

    X, y = _images(8)
    clf = _clf().fit(X, y)
    whole = _fingerprint(clf, X)
    assert _fingerprint(clf.set_params(crop_pct=0.8), X) != whole
    # the whole face adds nothing: caches written before crop_pct existed stay valid
    assert _fingerprint(clf.set_params(crop_pct=1.0), X) == whole

