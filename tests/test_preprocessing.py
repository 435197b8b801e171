"""The one preprocessing path: fervision.data.preprocessing.check_images and ImageEncoder."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from fervision.data import preprocessing
from fervision.data.preprocessing import (
    ImageEncoder,
    as_uint8,
    check_images,
    decode_image,
    flat_features,
    flat_side,
    read_image,
    resize_gray,
)


def test_grayscale_shapes_give_the_same_output(rng):
    img = rng.integers(0, 256, size=(2, 48, 48), dtype=np.uint8)
    a = check_images(img)
    b = check_images(img[..., None])
    assert a.shape == (2, 48, 48, 1)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[..., 0], img / 255.0, atol=1e-6)


def test_uint8_is_scaled_and_float_is_kept():
    u8 = np.full((1, 4, 4), 255, np.uint8)
    f = np.full((1, 4, 4), 0.25, np.float64)
    assert check_images(u8, 4).max() == pytest.approx(1.0)
    assert check_images(f, 4).max() == pytest.approx(0.25)


def test_rgb_uses_bt601_luma():
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    out = check_images(rgb, 4)
    np.testing.assert_allclose(out, 0.299, atol=1e-6)


def test_any_size_is_resized(rng):
    out = check_images(rng.random((3, 100, 70)), 48)
    assert out.shape == (3, 48, 48, 1)
    assert 0.0 <= out.min()
    assert out.max() <= 1.0


def test_ragged_list_and_object_array_of_images():
    imgs = [np.zeros((10, 12), np.uint8), np.full((30, 20, 3), 255, np.uint8)]
    out = check_images(imgs, 16)
    assert out.shape == (2, 16, 16, 1)
    assert out[0].max() == 0.0
    assert out[1].min() == pytest.approx(1.0)
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = imgs
    np.testing.assert_array_equal(check_images(obj, 16), out)


def test_flattened_rows_are_zero_padded_to_the_next_square():
    X = np.arange(1, 2001, dtype=np.float32)[None] / 4000.0  # D=2000 -> 45 x 45
    assert flat_side(2000) == 45
    out = check_images(X, 45)
    flat = out[0, ..., 0].ravel()
    np.testing.assert_allclose(flat[:2000], X[0], rtol=1e-6)
    assert not flat[2000:].any()
    # a perfect square is reshaped without padding
    sq = np.arange(16, dtype=np.uint8)[None]
    np.testing.assert_allclose(check_images(sq, 4)[0, ..., 0], np.arange(16).reshape(4, 4) / 255)


def test_object_table_of_numbers_is_converted_and_bad_cell_named_by_numpy():
    X = np.random.default_rng(0).random((4, 9))
    np.testing.assert_array_equal(check_images(X.astype(object), 8), check_images(X, 8))
    bad = X.astype(object)
    bad[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match=r"argument must be .* string.* number"):
        check_images(bad, 8)


def test_flat_features():
    assert flat_features(np.zeros((3, 10))) == 10
    assert flat_features([[1, 2, 3], [4, 5, 6]]) == 3
    assert flat_features(np.zeros((3, 4, 4))) is None
    assert flat_features([np.zeros((4, 4))]) is None
    assert flat_features(sp.csr_matrix(np.eye(3))) is None


def test_resize_gray_keeps_size_and_range():
    img = np.linspace(0, 1, 100 * 80, dtype=np.float32).reshape(100, 80)
    for size in (8, 48, 200):
        out = resize_gray(img, size)
        assert out.shape == (size, size)
        assert out.min() >= -1e-6
        assert out.max() <= 1 + 1e-6


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("bad", "where"), [(np.nan, "X[1]"), (np.inf, "X[1]"), (-np.inf, "X[1]")])
def test_nan_and_inf_name_the_image(bad, where):
    X = np.zeros((3, 5, 5))
    X[1, 2, 2] = bad
    with pytest.raises(ValueError, match=re.escape(where) + ".*NaN or infinite"):
        check_images(X)


def test_nan_in_list_names_its_index():
    imgs = [np.zeros((5, 5)), np.zeros((6, 6)), np.full((4, 4), np.nan)]
    with pytest.raises(ValueError, match=r"X\[2\] contains NaN"):
        check_images(imgs)


@pytest.mark.parametrize("X", [np.empty((0, 48, 48)), np.empty((0, 3)), [], ()])
def test_empty_input(X):
    with pytest.raises(ValueError, match="empty"):
        check_images(X)


def test_zero_features_message_matches_sklearn():
    msg = r"0 feature\(s\) \(shape=\(12, 0\)\) while a minimum of 1 is required"
    with pytest.raises(ValueError, match=msg):
        check_images(np.empty((12, 0)))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 1, 1)])
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(ValueError, match=f"{len(shape)} dimensions"):
        check_images(np.zeros(shape))


def test_two_channels_are_refused():
    with pytest.raises(ValueError, match=r"2 channels.*expected 1 \(grayscale\) or 3 \(RGB\)"):
        check_images(np.zeros((2, 8, 8, 2)))


def test_rgba_message_says_what_to_do():
    with pytest.raises(ValueError, match=re.escape("X[..., :3]")):
        check_images(np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match=r"X\[1\] has 4 channels"):
        check_images([np.zeros((8, 8)), np.zeros((8, 8, 4))])


@pytest.mark.parametrize("X", [np.array([["a", "b"], ["c", "d"]]), np.ones((2, 4, 4), bool)])
def test_non_numeric_dtype(X):
    with pytest.raises(ValueError, match="must be numeric"):
        check_images(X)


def test_complex_is_refused():
    with pytest.raises(ValueError, match="Complex data not supported"):
        check_images(np.ones((2, 4), complex))


def test_sparse_is_refused_with_a_pointer_to_toarray():
    with pytest.raises(TypeError, match=r"Sparse data.*toarray"):
        check_images(sp.csr_matrix(np.eye(4)))


@pytest.mark.parametrize("item", [None, 3.0])
def test_list_with_a_non_image(item):
    with pytest.raises(ValueError, match=r"X\[1\] is .*not an image"):
        check_images([np.zeros((4, 4)), item])


def test_bad_image_in_list_is_found_before_any_conversion():
    imgs = [np.zeros((4, 4)), np.zeros((4,)), np.zeros((4, 4))]
    with pytest.raises(ValueError, match=r"X\[1\] has shape \(4,\)"):
        check_images(imgs)


def test_float_above_one_warns():
    with pytest.warns(UserWarning, match="taken as 0-1"):
        check_images(np.full((1, 4, 4), 200.0))


def test_name_is_used_in_messages():
    with pytest.raises(ValueError, match="validation X is empty"):
        check_images([], name="validation X")


# ----------------------------------------------------------------------- encoder
def test_image_encoder_checks_width_of_flattened_input():
    enc = ImageEncoder(8).fit(np.zeros((2, 10)))
    assert enc.n_features_in_ == 10
    assert enc.transform(np.zeros((3, 10))).shape == (3, 8, 8, 1)
    with pytest.raises(ValueError, match="X has 9 features, but ImageEncoder is expecting 10"):
        enc.transform(np.zeros((3, 9)))
    # image-shaped input is resized, so no width is enforced for it
    assert not hasattr(ImageEncoder(8).fit(np.zeros((2, 5, 5))), "n_features_in_")


def test_image_encoder_must_be_fitted():
    with pytest.raises(NotFittedError):
        ImageEncoder(8).transform(np.zeros((1, 8, 8)))


# ------------------------------------------------------------------ value ranges
@pytest.mark.parametrize("X", [np.full((1, 8, 8), 4000, np.uint16), np.full((1, 8, 8), -3),
                               [np.zeros((8, 8), np.uint8), np.full((9, 9), 300, np.int32)]])
def test_integers_outside_0_255_are_refused_not_rescaled(X):
    # A 16-bit image used to become values up to 257 (or white in analyze), silently.
    with pytest.raises(ValueError, match=r"integer images must be 0-255.*// 257"):
        check_images(X)


def test_float_above_one_warns_in_a_list_too():
    with pytest.warns(UserWarning, match=r"X\[1\] is float with values up to 200"):
        check_images([np.zeros((4, 4)), np.full((5, 5), 200.0)])


def test_as_uint8_shares_the_rules_and_refuses_0_255_floats():
    np.testing.assert_array_equal(as_uint8(np.array([[0.0, 0.5, 1.0]])), [[0, 128, 255]])
    np.testing.assert_array_equal(as_uint8(np.array([[0, 7, 255]], np.int64)), [[0, 7, 255]])
    with pytest.raises(ValueError, match=r"photo is float with values up to 255.*divide by 255"):
        as_uint8(np.full((4, 4), 255.0), "photo")
    with pytest.raises(ValueError, match="integer images must be 0-255"):
        as_uint8(np.full((4, 4), 1000, np.uint16))
    with pytest.raises(ValueError, match="NaN"):
        as_uint8(np.full((4, 4), np.nan))


# ------------------------------------------------------------------- image files
def test_read_image_turns_every_decoder_failure_into_a_value_error(tmp_path):
    from helpers_images import write_bad_images

    bad = write_bad_images(tmp_path)
    for key in ("huge_40000", "corrupt_bmp"):  # were cv2.error
        with pytest.raises(ValueError, match=re.escape(bad[key].name)):
            read_image(bad[key])
    with pytest.raises(ValueError, match=r"X\[3\]: .*corrupt_header.bmp"):
        read_image(bad["corrupt_bmp"], name="X[3]")
    for key in ("wide_2x4000", "wide_8x4000"):  # extreme aspect ratios read fine
        assert read_image(bad[key]).shape[:2] == tuple(
            int(v) for v in key.split("_")[1].split("x"))


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    from helpers_images import big_png

    path = tmp_path / "bomb.png"
    path.write_bytes(big_png(25000, 25000))  # 77 KB on disk, 625 megapixels decoded
    assert path.stat().st_size < 200_000
    monkeypatch.setattr(preprocessing.cv2, "imdecode", lambda *a: pytest.fail("decoded"))
    with pytest.raises(ValueError, match=r"bomb.png.*625,000,000 pixels.*limit of "
                                         r"100,000,000.*FERVISION_MAX_IMAGE_PIXELS"):
        read_image(path)
    with pytest.raises(ValueError, match=r"upload\.png is too large"):
        decode_image(path.read_bytes(), name="upload.png")


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    import cv2

    path = tmp_path / "small.png"
    assert cv2.imwrite(str(path), np.zeros((100, 200, 3), np.uint8))
    assert read_image(path).shape == (100, 200, 3)
    with pytest.raises(ValueError, match=r"20,000 pixels, more than the limit of 19,999"):
        read_image(path, max_pixels=19_999)
    assert read_image(path, max_pixels=20_000).shape == (100, 200, 3)
    monkeypatch.setenv(preprocessing.MAX_IMAGE_PIXELS_ENV, "1e4")
    with pytest.raises(ValueError, match="limit of 10,000"):
        read_image(path)
    assert read_image(path, max_pixels=10**6).shape == (100, 200, 3)  # argument wins
    monkeypatch.setenv(preprocessing.MAX_IMAGE_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=r"\$FERVISION_MAX_IMAGE_PIXELS must be a positive "
                                         r"integer.*'lots'"):
        read_image(path)
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        read_image(path, max_pixels=0)


def test_decode_image_bytes_and_type_errors(tmp_path):
    import cv2

    _ok, buf = cv2.imencode(".png", np.full((6, 7, 3), 9, np.uint8))
    assert decode_image(buf.tobytes()).shape == (6, 7, 3)
    assert decode_image(bytearray(buf.tobytes()), grayscale=True).shape == (6, 7)
    with pytest.raises(ValueError, match=r"x\.jpg.*empty, corrupt or not an image"):
        decode_image(b"", name="x.jpg")
    with pytest.raises(TypeError, match=r"must be bytes.*got str"):
        decode_image("a.png")
