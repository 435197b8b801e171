"""fervision.nn.tta: the test-time-augmentation views and their mean."""

from __future__ import annotations

import numpy as np
import pytest

from fervision.nn.tta import TTA_MODES, n_views, predict_with_tta, resolve_tta, tta_views


@pytest.mark.parametrize(("tta", "mode"), [(None, None), (False, None), (True, "flip"),
                                           ("flip", "flip"), ("crops", "crops")])
def test_resolve_tta(tta, mode):
    assert resolve_tta(tta) == mode


@pytest.mark.parametrize("bad", ["mirror", "Flip", "", 1, 0, 2.0, ["flip"]])
def test_resolve_tta_rejects_other_values(bad):
    with pytest.raises(ValueError, match="tta must be False, True, 'flip' or 'crops'"):
        resolve_tta(bad)


def test_n_views_matches_the_views_yielded():
    X = np.zeros((2, 16, 16, 1), np.float32)
    assert [n_views(m) for m in (None, *TTA_MODES)] == [1, 2, 12]
    for mode in (None, *TTA_MODES):
        assert len(list(tta_views(X, mode))) == n_views(mode)


def test_views_off_and_flip():
    X = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 1)
    (only,) = tta_views(X, None)
    assert only is X
    same, mirror = tta_views(X, "flip")
    assert same is X
    np.testing.assert_array_equal(mirror[0, :, :, 0], [[2, 1, 0], [5, 4, 3], [8, 7, 6]])


def test_crop_views_are_the_corners_then_the_centre_each_with_its_mirror():
    # Four constant 2x2 quadrants; crop=0.5 of a 4 px side gives 2x2 corner crops, each
    # exactly one quadrant, so each resized corner view is that quadrant's constant.
    q = np.array([[1, 2], [3, 4]], np.float32)  # top-left, top-right / bottom-left, bottom-right
    X = np.kron(q, np.ones((2, 2), np.float32))[None, :, :, None]
    views = list(tta_views(X, "crops", crop=0.5))
    assert len(views) == 12
    assert all(v.shape == X.shape and v.dtype == X.dtype for v in views)
    np.testing.assert_array_equal(views[0], X)
    np.testing.assert_array_equal(views[1], X[:, :, ::-1])
    for k, value in enumerate([1, 2, 3, 4]):  # (0,0), (0,far), (far,0), (far,far)
        np.testing.assert_allclose(views[2 + 2 * k], value, atol=1e-6)
        np.testing.assert_allclose(views[3 + 2 * k], value, atol=1e-6)
    centre, centre_mirror = views[10], views[11]
    np.testing.assert_array_equal(centre_mirror, centre[:, :, ::-1])
    assert centre.min() >= 1 - 1e-6
    assert centre.max() <= 4 + 1e-6
    assert centre[0, 0, 0, 0] < centre[0, -1, -1, 0]  # still top-left dark, bottom-right bright


def test_no_crop_views_when_the_crop_would_be_the_whole_image():
    X = np.zeros((1, 4, 4, 1), np.float32)  # round(4 * 0.9) == 4: nothing to crop
    assert len(list(tta_views(X, "crops"))) == 2


def test_predict_with_tta_off_calls_forward_once_on_the_batch():
    X = np.ones((3, 4, 4, 1), np.float32)
    calls = []
    out = predict_with_tta(lambda v: calls.append(v) or v[:, 0, 0], X, None)
    assert len(calls) == 1
    assert calls[0] is X
    np.testing.assert_array_equal(out, X[:, 0, 0])


def test_tta_crops_on_images_too_small_to_crop():
    X = np.random.default_rng(0).random((3, 4, 4, 1)).astype("float32")
    forward = lambda v: v.reshape(len(v), -1)[:, :2]  # noqa: E731 - a stand-in model
    expected = (forward(X) + forward(X[:, :, ::-1])) / 2  # no crop of a 4 px side exists
    for one_call_below in (100, 1):  # one call, and view by view
        np.testing.assert_allclose(
            predict_with_tta(forward, X, "crops", one_call_below=one_call_below), expected,
            rtol=1e-6)
