"""Tests for fervision.data.datasets: the FER2013 CSV reader and the image-folder loader."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from fervision.data.datasets import list_image_files, load_fer2013, load_image_folder
from fervision.data.labels import EMOTIONS

# ---------------------------------------------------------------- FER2013 CSV helpers


def _pixels(img: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in img.ravel())


def _write_csv(path, rows, header=("emotion", "pixels", "Usage")):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def fer_csv(tmp_path, rng):
    """Six rows: two per usage, emotions 0..5, each image distinct and known."""
    images = rng.integers(0, 256, size=(6, 48, 48), dtype=np.uint8)
    usages = ["Training", "Training", "PublicTest", "PublicTest", "PrivateTest", "PrivateTest"]
    rows = [(code, _pixels(img), use)
            for code, (img, use) in enumerate(zip(images, usages, strict=True))]
    return _write_csv(tmp_path / "fer2013.csv", rows), images, usages


# ---------------------------------------------------------------- load_fer2013


def test_load_fer2013_all_rows(fer_csv):
    path, images, _ = fer_csv
    X, y = load_fer2013(path)
    assert X.dtype == np.uint8
    assert X.shape == (6, 48, 48)
    np.testing.assert_array_equal(X, images)
    assert list(y) == list(EMOTIONS[:6])


@pytest.mark.parametrize(
    ("usage", "rows"),
    [("Training", [0, 1]), ("publictest", [2, 3]), ("PRIVATETEST", [4, 5]),
     (["training", "PrivateTest"], [0, 1, 4, 5])],
)
def test_load_fer2013_usage_filter(fer_csv, usage, rows):
    path, images, _ = fer_csv
    X, y = load_fer2013(path, usage=usage)
    np.testing.assert_array_equal(X, images[rows])
    assert list(y) == [EMOTIONS[i] for i in rows]


def test_load_fer2013_bunch(fer_csv):
    path, images, usages = fer_csv
    bunch = load_fer2013(path, return_X_y=False)
    np.testing.assert_array_equal(bunch.data, images)
    assert list(bunch.target) == list(EMOTIONS[:6])
    assert bunch.target_names == list(EMOTIONS)
    assert list(bunch.usage) == usages


def test_load_fer2013_header_with_spaces_and_no_usage(tmp_path, rng):
    # icml_face_data.csv writes " Usage" and " pixels"; a CSV may also lack Usage.
    img = rng.integers(0, 256, size=(48, 48), dtype=np.uint8)
    spaced = _write_csv(tmp_path / "icml.csv", [(6, "Training", _pixels(img))],
                        header=("emotion", " Usage", " pixels"))
    X, y = load_fer2013(spaced, usage="training")
    np.testing.assert_array_equal(X[0], img)
    assert list(y) == ["neutral"]
    bare = _write_csv(tmp_path / "bare.csv", [(3, _pixels(img))], header=("emotion", "pixels"))
    bunch = load_fer2013(bare, return_X_y=False)
    assert bunch.usage is None
    assert list(bunch.target) == ["happy"]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['usage'\]"):
        load_fer2013(bare, usage="Training")


def test_load_fer2013_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        load_fer2013(tmp_path / "nope.csv")


def test_load_fer2013_missing_column(tmp_path):
    path = _write_csv(tmp_path / "x.csv", [(0, "Training")], header=("emotion", "Usage"))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['pixels'\]"):
        load_fer2013(path)


def test_load_fer2013_unknown_usage(fer_csv):
    with pytest.raises(ValueError, match="'Validation'"):
        load_fer2013(fer_csv[0], usage="Validation")
    with pytest.raises(ValueError, match="'Test'"):
        load_fer2013(fer_csv[0], usage=["Training", "Test"])


@pytest.mark.parametrize(
    ("pixels", "message"),
    [(" ".join(["1"] * 2303), "expected 2304 pixel values.*got 2303"),
     (" ".join(["1"] * 2303 + ["256"]), "0-255"),
     (" ".join(["1"] * 2303 + ["-1"]), "0-255"),
     (" ".join(["1"] * 2303 + ["x"]), "space-separated integers"),
     (" ".join(["1"] * 2303 + ["1.5"]), "space-separated integers")],
)
def test_load_fer2013_bad_pixels_names_row(tmp_path, pixels, message):
    good = " ".join(["0"] * 2304)
    path = _write_csv(tmp_path / "bad.csv",
                      [(0, good, "Training"), (1, good, "Training"), (2, pixels, "Training")])
    with pytest.raises(ValueError, match=rf"row 3 \(line 4\).*{message}"):
        load_fer2013(path)


@pytest.mark.parametrize("emotion", ["7", "-1", "happy", ""])
def test_load_fer2013_bad_emotion_names_row(tmp_path, emotion):
    path = _write_csv(tmp_path / "bad.csv", [(emotion, " ".join(["0"] * 2304), "Training")])
    with pytest.raises(ValueError, match=r"row 1 \(line 2\).*emotion must be an int in 0-6"):
        load_fer2013(path)


def test_load_fer2013_no_matching_rows(fer_csv, tmp_path):
    _path, _, _ = fer_csv
    only_train = _write_csv(tmp_path / "t.csv", [(0, " ".join(["0"] * 2304), "Training")])
    with pytest.raises(ValueError, match="no rows with Usage in \\['PrivateTest'\\]"):
        load_fer2013(only_train, usage="PrivateTest")
    empty = _write_csv(tmp_path / "e.csv", [])
    with pytest.raises(ValueError, match="no rows"):
        load_fer2013(empty)


# ---------------------------------------------------------------- load_image_folder


@pytest.fixture
def image_root(tmp_path, rng):
    """root/{angry: 3 x 48x48, happiness: 4 x 60x50} plus non-image clutter."""
    root = tmp_path / "imgs"
    for folder, n, shape in (("angry", 3, (48, 48)), ("happiness", 4, (60, 50))):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, size=shape, dtype=np.uint8)
            assert cv2.imwrite(str(root / folder / f"{i:02d}.png"), img)
    (root / "angry" / "notes.txt").write_text("not an image")
    (root / "angry" / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_load_image_folder_basic(image_root):
    X, y = load_image_folder(image_root)
    assert X.shape == (7, 48, 48)
    assert X.dtype == np.uint8
    # Folder "happiness" is mapped to the canonical "happy"; clutter files are ignored.
    assert list(y) == ["angry"] * 3 + ["happy"] * 4
    first = cv2.imread(str(image_root / "angry" / "00.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(X[0], first)


def test_load_image_folder_classes_aliases(image_root):
    X, y = load_image_folder(image_root, classes=["Happy"])
    assert X.shape == (4, 48, 48)
    assert set(y) == {"happy"}
    X, y = load_image_folder(image_root, classes=["happiness", "anger"])
    assert len(X) == 7
    with pytest.raises(ValueError, match=r"\['sad'\] not found"):
        load_image_folder(image_root, classes=["sad"])


def test_load_image_folder_max_per_class(image_root):
    _X, y = load_image_folder(image_root, max_per_class=2)
    assert list(y) == ["angry", "angry", "happy", "happy"]
    bunch = load_image_folder(image_root, max_per_class=2, random_state=0, return_X_y=False)
    again = load_image_folder(image_root, max_per_class=2, random_state=0, return_X_y=False)
    assert bunch.filenames == again.filenames
    assert len(bunch.filenames) == 4
    with pytest.raises(ValueError, match="max_per_class"):
        load_image_folder(image_root, max_per_class=0)


def test_load_image_folder_bunch(image_root):
    bunch = load_image_folder(image_root, return_X_y=False)
    assert bunch.target_names == ["angry", "happy"]
    assert bunch.data.shape == (7, 48, 48)
    assert bunch.filenames[3].endswith("happiness/00.png")


def test_load_image_folder_keep_sizes(image_root):
    X, _y = load_image_folder(image_root, image_size=None)
    assert isinstance(X, list)
    assert len(X) == 7
    assert X[0].shape == (48, 48)
    assert X[-1].shape == (60, 50)
    X32, _ = load_image_folder(image_root, image_size=32)
    assert X32.shape == (7, 32, 32)
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(image_root, image_size=0)


def test_load_image_folder_corrupt_file(image_root):
    bad = image_root / "angry" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        load_image_folder(image_root)
    with pytest.warns(UserWarning, match="broken.jpg"):
        X, _y = load_image_folder(image_root, on_error="skip")
    assert len(X) == 7


def test_load_image_folder_skips_files_opencv_or_detection_choked_on(image_root):
    from helpers_images import write_bad_images

    bad = write_bad_images(image_root / "angry")  # huge and corrupt headers: cv2.error
    with pytest.raises(ValueError, match=r"corrupt_header\.bmp"):
        load_image_folder(image_root)
    with pytest.warns(UserWarning, match="skipping") as record:
        bunch = load_image_folder(image_root, on_error="skip", return_X_y=False)
    skipped = " ".join(str(w.message) for w in record)
    assert bad["huge_40000"].name in skipped
    assert bad["corrupt_bmp"].name in skipped
    # The extreme aspect ratios are images: read and resized like the rest.
    assert len(bunch.filenames) == 7 + 3
    assert bunch.data.shape == (10, 48, 48)


def test_load_image_folder_bad_root_and_options(tmp_path, image_root):
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(tmp_path / "flat")
    with pytest.raises(ValueError, match="on_error"):
        load_image_folder(image_root, on_error="ignore")
    (tmp_path / "emptycls" / "sad").mkdir(parents=True)
    with pytest.raises(ValueError, match="no readable images"):
        load_image_folder(tmp_path / "emptycls")


def test_list_image_files(image_root):
    files = list_image_files(image_root)
    assert [p.name for p, _ in files][:3] == ["00.png", "01.png", "02.png"]
    assert {label for _, label in files} == {"angry", "happy"}


def test_load_image_folder_real_fer2013(fer_dir):
    X, y = load_image_folder(fer_dir / "train", classes=["happy", "surprise"], max_per_class=5)
    assert X.shape == (10, 48, 48)
    assert X.dtype == np.uint8
    assert list(y) == ["happy"] * 5 + ["surprise"] * 5
    assert X.std() > 10  # real faces, not blank arrays
