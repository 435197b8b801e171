"""fervision.faces.detection on real faces (tests/data/astronaut.jpg and FER2013).

Face, FaceDetector (YuNet / Haar / MTCNN), crops and the scikit-learn transformer.
"""

from __future__ import annotations

import functools
import pickle
import shutil
import sys
import threading
import warnings
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.base import clone

from fervision import weights
from fervision.faces.detection import Face, FaceDetector, NoFaceWarning, check_image

DATA = Path(__file__).parent / "data"
# Indices into the fer_sample fixture (12 images per emotion, class by class), two per
# emotion, that YuNet and Haar both found when these tests were written; the tests only
# require most of them, so a slightly different OpenCV build cannot make them flaky,
# while a broken detector still fails.
FER_PICKS = [0, 1, 12, 13, 24, 25, 36, 38, 49, 50, 60, 64, 72, 75]


@pytest.fixture(scope="module")
def astronaut():
    image = cv2.imread(str(DATA / "astronaut.jpg"))
    assert image is not None
    return image


@pytest.fixture(scope="module")
def yunet(yunet_onnx):
    return FaceDetector(backend="yunet", model_path=str(yunet_onnx))


def fer_scene(face48, side=176, canvas=256, value=128):
    """Return a tight 48x48 FER crop, padded with its own border, upscaled on a canvas."""
    padded = cv2.copyMakeBorder(face48, 16, 16, 16, 16, cv2.BORDER_REPLICATE)
    face = cv2.resize(padded, (side, side), interpolation=cv2.INTER_CUBIC)
    image = np.full((canvas, canvas), value, np.uint8)
    off = (canvas - side) // 2
    image[off : off + side, off : off + side] = face
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def rotate(image, center, angle):
    matrix = cv2.getRotationMatrix2D(tuple(float(c) for c in center), angle, 1.0)
    out = cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    return out, matrix


def ncc(a, b):
    a = a.astype(float).ravel() - a.mean()
    b = b.astype(float).ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


# --------------------------------------------------------------------------- Face
def test_face_coerces_and_validates():
    face = Face((1.6, 2.2, 30.0, 40.4), np.float32(0.5), np.zeros((5, 2)))
    assert face.box == (2, 2, 30, 40)
    assert all(type(v) is int for v in face.box)
    assert type(face.score) is float
    assert face.area == 1200
    assert face.landmarks.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        Face((0, 0, 1, 1), 1.0, np.zeros((4, 2)))


# ------------------------------------------------------------------ input checks
@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((20, 20, 3), np.float32), "dtype float32"),
        (np.zeros((20, 20, 4), np.uint8), "4 channels"),
        (np.zeros((20, 20, 2), np.uint8), r"shape \(20, 20, 2\)"),
        (np.zeros((2, 20, 20, 3), np.uint8), r"shape \(2, 20, 20, 3\)"),
        (np.zeros((0, 20), np.uint8), "empty"),
    ],
)
def test_check_image_errors_name_shape_and_dtype(image, match):
    with pytest.raises(ValueError, match=match):
        check_image(image, "img")


def test_check_image_rejects_non_array():
    with pytest.raises(TypeError, match="list"):
        check_image([[1, 2]], "img")


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="backend"):
        FaceDetector(backend="dlib").fit(None)
    with pytest.raises(ValueError, match="on_no_face"):
        FaceDetector(on_no_face="skip").fit(None)
    with pytest.raises(ValueError, match="margin"):
        FaceDetector(margin=-1).fit(None)


# ----------------------------------------------------------------- real faces
def test_yunet_finds_astronaut_face_with_landmarks(yunet, astronaut):
    faces = yunet.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    assert 150 < x + w / 2 < 260  # face centre of the NASA photo
    assert 80 < y + h / 2 < 160
    assert face.score > 0.6
    lm = face.landmarks
    # Order: right eye, left eye, nose tip, right / left mouth corner (subject's sides).
    assert lm[0, 0] < lm[1, 0]
    assert lm[3, 0] < lm[4, 0]
    assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])
    assert np.all((lm >= [x, y]) & (lm <= [x + w, y + h]))
    # Grayscale input works too and finds the same face.
    gray_faces = yunet.detect(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY))
    assert len(gray_faces) == 1
    assert abs(gray_faces[0].box[0] - x) < 10


def test_haar_finds_astronaut_face(astronaut):
    faces = FaceDetector(backend="haar").detect(astronaut)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 150 < x + w / 2 < 260
    assert 80 < y + h / 2 < 160
    assert faces[0].landmarks is None
    assert faces[0].score == 1.0


@pytest.mark.parametrize("backend", ["yunet", "haar"])
def test_finds_most_fer_faces(backend, fer_sample, yunet_onnx):
    X, _ = fer_sample
    detector = FaceDetector(backend=backend, model_path=str(yunet_onnx))
    found = 0
    for i in FER_PICKS:
        faces = detector.detect(fer_scene(X[i]))
        if faces:
            x, y, w, h = faces[0].box
            # The FER face itself covers pixels ~59-197 of the 256 px canvas.
            found += 59 < x + w / 2 < 197 and 59 < y + h / 2 < 197
    assert found >= 11, f"{backend} found {found}/{len(FER_PICKS)} FER faces"


def test_largest_first_max_faces_and_min_size(yunet, fer_sample):
    X, _ = fer_sample
    big = fer_scene(X[0], side=176, canvas=176)
    small = fer_scene(X[1], side=110, canvas=110)
    image = np.full((240, 400, 3), 128, np.uint8)
    image[20:196, 10:186] = big
    image[60:170, 260:370] = small
    faces = yunet.detect(image)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[0] < 200
    assert len(clone(yunet).set_params(max_faces=1).detect(image)) == 1
    assert clone(yunet).set_params(min_face_size=500).detect(image) == []


@pytest.mark.parametrize("backend", ["yunet", "haar"])
def test_no_face_on_blank_and_noise(backend, yunet_onnx, rng):
    detector = FaceDetector(backend=backend, model_path=str(yunet_onnx))
    assert detector.detect(np.full((240, 320, 3), 90, np.uint8)) == []
    assert detector.detect(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []


# ---------------------------------------------------------------------- crops
def test_crop_and_crops_shapes(yunet, astronaut):
    faces = yunet.detect(astronaut)
    crop = yunet.crop(astronaut, faces[0])
    assert crop.shape == (48, 48)
    assert crop.dtype == np.uint8
    stacked = clone(yunet).set_params(output_size=64).crops(astronaut, faces + faces)
    assert stacked.shape == (2, 64, 64)
    assert stacked.dtype == np.uint8
    assert yunet.crops(astronaut, []).shape == (0, 48, 48)


def test_crop_outside_image_pads_with_replicated_border():
    image = np.full((100, 100), 200, np.uint8)
    image[:, :50] = 10  # left half dark: replicate keeps it, zero padding would add 0s
    crop = FaceDetector(margin=0.5, align=False).crop(image, Face((-30, 70, 60, 60), 1.0))
    assert crop.shape == (48, 48)
    assert set(np.unique(crop)) <= set(range(10, 201))
    assert crop.min() == 10


def test_alignment_makes_eyes_horizontal(yunet, astronaut):
    """Rotate the photo 25 degrees: the aligned crop matches the upright one again."""
    upright = yunet.detect(astronaut)[0]
    eyes = upright.landmarks[:2].mean(axis=0)
    rotated, matrix = rotate(astronaut, eyes, 25)
    # Landmarks of the rotated face, moved with the known rotation (the detector's own
    # landmarks are tested separately; this checks the alignment geometry exactly).
    lm = np.c_[upright.landmarks, np.ones(5)] @ matrix.T
    x, y, w, h = upright.box
    cx, cy = matrix @ [x + w / 2, y + h / 2, 1]
    tilted = Face((cx - w / 2, cy - h / 2, w, h), 1.0, lm)
    assert abs(lm[1, 1] - lm[0, 1]) > 15  # the eyes really are tilted

    detector = clone(yunet).set_params(output_size=64)
    reference = detector.crop(astronaut, upright)
    aligned = detector.crop(rotated, tilted)
    unaligned = clone(detector).set_params(align=False).crop(rotated, tilted)
    assert ncc(aligned, reference) > 0.95
    assert ncc(aligned, reference) > ncc(unaligned, reference) + 0.1


def test_mtcnn_landmarks_follow_rotation(astronaut):
    """MTCNN keypoints are mapped to our order, and they follow an in-plane rotation."""
    pytest.importorskip("mtcnn")
    eyes = (224.0, 101.0)  # between the astronaut's eyes
    rotated, _ = rotate(astronaut, eyes, 25)  # counter-clockwise: image-right eye goes up
    detector = FaceDetector(backend="mtcnn", min_face_size=60)  # filter applied after
    faces = detector.detect(rotated[:240, 100:340])  # small frame: MTCNN is slow on CPU
    assert len(faces) == 1
    lm = faces[0].landmarks
    angle = np.degrees(np.arctan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0]))
    assert -35 < angle < -15  # swapped eyes would give about 155 degrees
    mouth = np.degrees(np.arctan2(lm[4, 1] - lm[3, 1], lm[4, 0] - lm[3, 0]))
    assert -40 < mouth < -10
    assert lm[:2, 1].mean() < lm[2, 1] < lm[3:, 1].mean()  # eyes, nose, mouth top to bottom


def test_mtcnn_missing_gives_install_hint(monkeypatch, astronaut):
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # makes `import mtcnn` fail
    with pytest.raises(ImportError, match=r"pip install 'fervision\[mtcnn\]'"):
        FaceDetector(backend="mtcnn").detect(astronaut)


def test_haar_without_cascade_classifier_explains(monkeypatch, astronaut):
    monkeypatch.delattr(cv2, "CascadeClassifier")  # as in OpenCV 5
    with pytest.raises(ImportError, match=r"opencv-python-headless<5.*backend='yunet'"):
        FaceDetector(backend="haar").detect(astronaut)


# ----------------------------------------------------------------- transformer
def test_transform_largest_face_and_no_face_center(yunet, astronaut):
    blank = np.full((120, 200, 3), 50, np.uint8)
    blank[:, 40:160] = 220  # the centred square is bright, the sides dark
    detector = clone(yunet).set_params(on_no_face="center")
    assert detector.fit([astronaut]) is detector
    with pytest.warns(NoFaceWarning, match=r"1 of 3 image\(s\) \(indices 1\)"):
        out = detector.transform([astronaut, blank, cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)])
    assert out.shape == (3, 48, 48)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(detector.no_face_mask_, [False, True, False])
    assert np.all(out[1] == 220)  # centre square crop of the blank image
    np.testing.assert_array_equal(out[0], detector.crop(astronaut, detector.detect(astronaut)[0]))
    with pytest.warns(NoFaceWarning):
        _crops, found = detector.crop_largest([astronaut, blank])
    np.testing.assert_array_equal(found, [True, False])


def test_transform_on_no_face_raise_names_indices(yunet, astronaut):
    blank = np.zeros((64, 64, 3), np.uint8)
    detector = clone(yunet).set_params(on_no_face="raise")
    with pytest.raises(ValueError, match=r"2 of 3 image\(s\), at indices 0, 2"):
        detector.transform([blank, astronaut, blank])


def test_default_does_not_invent_a_face(yunet_onnx, astronaut):
    # A Pipeline(FaceDetector(), classifier) used to label a centre crop of a photo
    # without a face, with only a warning.
    from sklearn.pipeline import make_pipeline

    assert FaceDetector().on_no_face == "raise"
    blank = np.full((200, 300, 3), 90, np.uint8)
    pipe = make_pipeline(FaceDetector(model_path=str(yunet_onnx)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning-and-carry-on either
        with pytest.raises(ValueError, match=r"no face found in 1 of 2 .*indices 1 "
                                             r"\(use on_no_face='center'"):
            pipe.transform([astronaut, blank])


# ----------------------------------------------------------- odd shapes, threads
@pytest.mark.parametrize("shape", [(2, 4000, 3), (8, 4000, 3), (10, 4000, 3), (8, 4000),
                                   (4000, 2, 3), (6, 3000, 3), (1, 1, 3)])
def test_extreme_aspect_ratios_give_no_face(yunet, shape):
    # Were cv2.error (resize to a 0-pixel height) and OverflowError (YuNet's inf boxes).
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, shape, dtype=np.uint8), np.zeros(shape, np.uint8)):
        assert yunet.detect(image) == []


def test_a_user_made_detector_is_safe_to_share_between_threads(yunet_onnx, astronaut):
    from concurrent.futures import ThreadPoolExecutor

    detector = FaceDetector(model_path=str(yunet_onnx), detect_size=None)
    # Different sizes: YuNet's input size is per-call state that other threads change.
    images = [astronaut, cv2.resize(astronaut, (256, 256)), astronaut[:300, :400],
              cv2.resize(astronaut, (700, 500)), np.full((90, 160, 3), 80, np.uint8)]
    expected = [[(f.box, round(f.score, 4)) for f in detector.detect(im)] for im in images]
    assert sum(map(len, expected)) >= 4

    def run(i):
        return i % len(images), [(f.box, round(f.score, 4))
                                 for f in detector.detect(images[i % len(images)])]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(120)))
    wrong = [i for i, got in results if got != expected[i]]
    assert wrong == []
    # The lock is per instance and is neither pickled nor cloned.
    again = pickle.loads(pickle.dumps(detector))
    assert "_lock" not in vars(clone(detector))
    assert again.detect(images[0]) is not None


def test_transform_validates_every_image_before_detecting(yunet, astronaut, tmp_path, monkeypatch):
    calls = []
    detector = clone(yunet)
    monkeypatch.setattr(detector, "detect", lambda image: calls.append(1) or [])
    with pytest.raises(ValueError, match=r"X\[2\] has dtype float64"):
        detector.transform([astronaut, astronaut, astronaut / 255.0])
    with pytest.raises(FileNotFoundError, match=r"X\[1\].*missing\.jpg"):
        detector.transform([astronaut, tmp_path / "missing.jpg"])
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"X\[0\].*cannot decode.*notes\.jpg"):
        detector.transform([str(tmp_path / "notes.jpg")])
    with pytest.raises(ValueError, match="empty"):
        detector.transform([])
    with pytest.raises(TypeError, match="single path"):
        detector.transform(str(DATA / "astronaut.jpg"))
    assert calls == []  # no detection ran for any of the bad batches


def test_transform_accepts_paths_and_arrays(yunet, astronaut):
    from_path = clone(yunet).transform([DATA / "astronaut.jpg", str(DATA / "astronaut.jpg")])
    from_array = clone(yunet).transform(np.stack([astronaut]))
    assert from_path.shape == (2, 48, 48)
    assert ncc(from_path[0], from_array[0]) > 0.99


def test_clone_and_pickle_drop_the_cached_detector(yunet, astronaut):
    detector = clone(yunet).set_params(margin=0.2)
    before = detector.transform([astronaut])
    assert hasattr(detector, "_engine")
    restored = pickle.loads(pickle.dumps(detector))
    assert not hasattr(restored, "_engine")
    assert restored.get_params() == detector.get_params()
    np.testing.assert_array_equal(restored.transform([astronaut]), before)
    cloned = clone(detector)
    assert not hasattr(cloned, "_engine")
    assert cloned.get_params()["margin"] == 0.2


def test_set_params_rebuilds_the_detector(yunet, astronaut):
    detector = clone(yunet)
    detector.detect(astronaut)
    first = detector._engine
    detector.set_params(score_threshold=0.99)
    assert detector.detect(astronaut) == [] or detector.detect(astronaut)[0].score >= 0.99
    assert detector._engine is not first


# ------------------------------------------------------- default model via fetch
class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_default_yunet_is_bundled_and_offline(astronaut, monkeypatch, tmp_path):
    """model_path=None uses the YuNet file inside the package: no fetch, no cache."""
    from fervision.faces import detection

    assert detection.BUNDLED_YUNET.is_file()

    def no_fetch(name, **kw):
        raise AssertionError("the default detector must not download anything")

    monkeypatch.setattr(weights, "fetch", no_fetch)
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    faces = FaceDetector().detect(astronaut)
    assert len(faces) == 1
    assert not (tmp_path / "cache").exists()


def test_detect_size_maps_boxes_back(astronaut):
    big = cv2.resize(astronaut, (1024, 1024))
    full = FaceDetector(detect_size=None).detect(big)[0]
    small = FaceDetector(detect_size=256).detect(big)[0]
    # Same face, box in full-resolution coordinates (within the 4x rescale's rounding).
    assert np.allclose(full.box, small.box, atol=0.08 * full.box[2])
    assert np.allclose(full.landmarks, small.landmarks, atol=0.08 * full.box[2])
    with pytest.raises(ValueError, match="detect_size"):
        FaceDetector(detect_size=8).detect(big)


def test_yunet_2023mar_is_fetched_and_verified(tmp_path, monkeypatch, yunet_onnx, astronaut):
    """The registry's "yunet-2023mar" downloads through pooch (here from a local mirror)."""
    served = tmp_path / "mirror"
    served.mkdir()
    shutil.copy(yunet_onnx, served / yunet_onnx.name)
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        monkeypatch.setattr(weights, "_REGISTRY", dict(weights._REGISTRY))
        weights.register(
            "yunet-2023mar",
            "https://unreachable.invalid/" + yunet_onnx.name,
            "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        )
        monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
        monkeypatch.setenv(weights.BASE_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
        faces = FaceDetector(model_path=weights.fetch("yunet-2023mar")).detect(astronaut)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert len(faces) == 1
    assert (tmp_path / "cache" / yunet_onnx.name).is_file()


def test_missing_model_path_is_named(astronaut, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.onnx"):
        FaceDetector(model_path=tmp_path / "nothere.onnx").detect(astronaut)


# ------------------------------------------------------------------- pipeline
def test_pipeline_with_emotion_classifier(yunet_onnx, fer_sample):
    classifier = pytest.importorskip("fervision.estimator")
    from sklearn.pipeline import make_pipeline

    X, y = fer_sample
    images = [fer_scene(X[i]) for i in FER_PICKS]
    labels = y[FER_PICKS]
    pipe = make_pipeline(
        FaceDetector(model_path=str(yunet_onnx), on_no_face="center"),
        classifier.EmotionClassifier(backbone="fernet_tiny", epochs=1, batch_size=4, verbose=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoFaceWarning)  # a miss is allowed here
        pipe.fit(images, labels)
        pred = pipe.predict(images[:3])
    assert len(pred) == 3
    assert set(pred) <= set(pipe.classes_)


def test_box_iou():
    from fervision.faces.detection import box_iou

    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
