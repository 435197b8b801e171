"""fervision.analyze / annotate on real FER2013 faces planted on VGA canvases."""

from __future__ import annotations

import json
import re
import threading

import cv2
import numpy as np
import pytest
from helpers_faces import detectable_faces, overlap, plant_face

import fervision
from fervision.faces import analysis
from fervision.faces.analysis import FaceResult, analyze, annotate


class CountingClassifier:
    """Wraps a fitted classifier and records the batch size of each predict_proba."""

    def __init__(self, clf):
        self.clf = clf
        self.classes_ = clf.classes_
        self.batches = []

    def predict_proba(self, X):
        self.batches.append(len(X))
        return self.clf.predict_proba(X)


def test_analyze_structure(face_frame, detector, tiny_classifier):
    canvas, patch = face_frame
    faces = analyze(canvas, detector, tiny_classifier)
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, FaceResult)
    assert overlap(face.box, patch) > 0.2
    assert all(type(v) is int for v in face.box)
    classes = [str(c) for c in tiny_classifier.classes_]
    assert list(face.scores) == classes
    assert all(type(v) is float for v in face.scores.values())
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert face.emotion == max(face.scores, key=face.scores.get)
    assert face.confidence == face.scores[face.emotion]
    assert 0 < face.detection_score <= 1  # YuNet's confidence in the detection
    assert face.dominant_emotion == face.emotion  # deepface's name
    d = json.loads(json.dumps(face.to_dict()))  # JSON-ready
    assert d == {"box": list(face.box), "emotion": face.emotion,
                 "dominant_emotion": face.emotion, "scores": face.scores,
                 "detection_score": face.detection_score}
    assert face["emotion"] == face.emotion  # dict-style access
    assert face["dominant_emotion"] == face.emotion


def test_to_dict_schema_is_stable():
    """The documented keys, types and order of FaceResult.to_dict() (docs too)."""
    face = FaceResult((1, 2, 3, 4), "sad", {"happy": 0.25, "sad": 0.75})
    d = face.to_dict()
    assert list(d) == ["box", "emotion", "dominant_emotion", "scores", "detection_score"]
    assert d["detection_score"] is None  # not made from a detection
    assert type(FaceResult((1, 2, 3, 4), "sad", {"sad": 1.0}, 0.5).to_dict()[
        "detection_score"]) is float
    doc = FaceResult.to_dict.__doc__
    assert all(f"``{key}``" in doc for key in d)


def test_top_emotion(face_frame, detector, tiny_classifier):
    canvas, _ = face_frame
    emotion, score = fervision.top_emotion(canvas, detector, tiny_classifier)
    face = analyze(canvas, detector, tiny_classifier)[0]
    assert (emotion, score) == (face.emotion, face.confidence)
    assert type(score) is float
    blank = np.full((200, 200, 3), 128, np.uint8)
    assert fervision.top_emotion(blank, detector, tiny_classifier) == (None, None)
    with pytest.raises(TypeError, match="one image"):
        fervision.top_emotion([canvas, canvas], detector, tiny_classifier)


def test_exported_from_package():
    assert fervision.analyze is analyze
    assert fervision.annotate is annotate


def test_path_gray_and_rgb_inputs_agree(face_frame, detector, tiny_classifier, tmp_path):
    canvas, _ = face_frame
    ref = analyze(canvas, detector, tiny_classifier)
    path = tmp_path / "frame.png"
    assert cv2.imwrite(str(path), canvas)
    for image, rgb in [(path, False), (str(path), False),
                       (cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), True)]:
        got = analyze(image, detector, tiny_classifier, rgb=rgb)
        assert [f.box for f in got] == [f.box for f in ref]
        np.testing.assert_allclose(list(got[0].scores.values()),
                                   list(ref[0].scores.values()), atol=1e-5)
    gray = analyze(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), detector, tiny_classifier)
    assert len(gray) == 1
    assert overlap(gray[0].box, ref[0].box) > 0.8


def test_two_faces_largest_first_one_batched_call(fer_sample, detector, tiny_classifier):
    X, _ = fer_sample
    small_at, big_at = dict(size=150, top_left=(20, 40)), dict(size=240, top_left=(360, 200))
    i_small = detectable_faces(X, detector, n=1, **small_at)[0]
    i_big = next(i for i in detectable_faces(X, detector, n=2, **big_at) if i != i_small)
    canvas, small = plant_face(X[i_small], **small_at)
    big_canvas, big = plant_face(X[i_big], **big_at)
    canvas[200:440, 360:600] = big_canvas[200:440, 360:600]
    clf = CountingClassifier(tiny_classifier)
    faces = analyze(canvas, detector, clf)
    assert len(faces) == 2
    assert clf.batches == [2]  # every crop of the frame in ONE predict_proba call
    assert overlap(faces[0].box, big) > 0.2
    assert overlap(faces[1].box, small) > 0.2
    areas = [f.box[2] * f.box[3] for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_no_face_returns_empty_without_predicting(detector, tiny_classifier):
    clf = CountingClassifier(tiny_classifier)
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert analyze(blank, detector, clf) == []
    assert clf.batches == []


def test_missing_and_unreadable_files(tmp_path, detector, tiny_classifier):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match=r"nope\.jpg"):
        analyze(missing, detector, tiny_classifier)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match=r"bad\.jpg"):
        analyze(bad, detector, tiny_classifier)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png"):
        analyze(empty, detector, tiny_classifier)


@pytest.mark.parametrize(("image", "match"), [
    (np.zeros((10, 10, 2), np.uint8), "shape"),
    (np.zeros((4, 10, 10, 3), np.uint8), "shape"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.array([["a"]]), "dtype"),
    (np.full((10, 10), np.nan), "NaN"),
    # Used to be clipped to white and return [] without a word:
    (np.full((40, 40, 3), 200.0), r"float with values up to 200.*divide by 255"),
    (np.full((40, 40), 4000, np.uint16), r"uint16 with values from 4000 to 4000.*0-255"),
])
def test_bad_arrays(image, match, detector, tiny_classifier):
    with pytest.raises(ValueError, match=match):
        analyze(image, detector, tiny_classifier)


def test_defaults_loaded_once_and_shared(monkeypatch, tiny_model_path, yunet_onnx,
                                         face_frame):
    from fervision.estimator import EmotionClassifier
    from fervision.faces.detection import FaceDetector

    loads = []
    real_load = EmotionClassifier.load.__func__

    def counting_load(cls, path, *args, **kwargs):
        loads.append(path)
        return real_load(cls, path, *args, **kwargs)

    monkeypatch.setattr(EmotionClassifier, "load", classmethod(counting_load))
    monkeypatch.setenv(analysis.MODEL_ENV, str(tiny_model_path))
    monkeypatch.setenv(analysis.DETECTOR_MODEL_ENV, str(yunet_onnx))
    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    canvas, patch = face_frame
    results = []
    threads = [threading.Thread(target=lambda: results.append(analyze(canvas)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.append(analyze(canvas))
    assert len(loads) == 1  # built once, reused by every call and thread
    assert all(len(r) == 1 and overlap(r[0].box, patch) > 0.2 for r in results)
    assert isinstance(analysis.default_detector(), FaceDetector)


def test_default_model_env_must_exist(monkeypatch, tmp_path):
    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    monkeypatch.setenv(analysis.MODEL_ENV, str(tmp_path / "missing.keras"))
    with pytest.raises(FileNotFoundError, match=r"missing\.keras"):
        analysis.default_classifier()


def test_default_model_env_may_name_a_pretrained_model(monkeypatch):
    from fervision import EmotionClassifier

    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    monkeypatch.setenv(analysis.MODEL_ENV, "fer2013")
    clf = analysis.default_classifier()
    expected = EmotionClassifier.from_pretrained("fer2013")
    X = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(clf.predict_proba(X), expected.predict_proba(X), rtol=1e-5)
    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    monkeypatch.setenv(analysis.MODEL_ENV, "nope")
    with pytest.raises(KeyError, match=r"\$FERVISION_MODEL.*'nope'.*'default'"):
        analysis.default_classifier()


def test_annotate_draws_on_copy_or_in_place(face_frame, detector, tiny_classifier):
    canvas, _ = face_frame
    faces = analyze(canvas, detector, tiny_classifier)
    before = canvas.copy()
    out = annotate(canvas, faces)
    np.testing.assert_array_equal(canvas, before)  # copy=True leaves the input alone
    assert out.shape == canvas.shape
    assert out.dtype == np.uint8
    x, y, w, h = faces[0].box
    changed = np.any(out != canvas, axis=2)
    assert changed[y:y + h + 1, x:x + w + 1].any()  # the box
    assert changed[max(0, y - 40):y, x:x + w].any()  # the label above it
    same = annotate(canvas, faces, copy=False)
    assert same is canvas
    np.testing.assert_array_equal(canvas, out)


def test_annotate_dicts_gray_and_edge_boxes():
    gray = np.full((100, 120), 100, np.uint8)
    faces = [{"box": [0, 0, 50, 50], "emotion": "happy", "scores": {"happy": 0.9}},
             {"box": [90, 80, 40, 40], "emotion": "custom"},  # unknown class, off-edge
             {"box": [10, 60, 20, 20]}]  # box only
    out = annotate(gray, faces)
    assert out.shape == (100, 120, 3)
    assert np.any(out[0:50, 0:50] != 100)
    with pytest.raises(TypeError, match="FaceResult or dict"):
        annotate(gray, [(0, 0, 5, 5)])


def test_annotate_numbered_labels_follow_the_list_order():
    canvas = np.full((200, 300, 3), 90, np.uint8)
    faces = [FaceResult((20, 80, 60, 60), "happy", {"happy": 0.9, "sad": 0.1}),
             FaceResult((180, 80, 60, 60), "sad", {"happy": 0.2, "sad": 0.8})]
    plain = annotate(canvas, faces)
    numbered = annotate(canvas, faces, numbered=True)
    # Each label is wider with its number in front ("1 happy 90%"), boxes unchanged.
    for (x, y, w, h) in (f.box for f in faces):
        label_row = slice(max(0, y - 40), y - 3)
        np.testing.assert_array_equal(plain[y:y + h, x:x + w], numbered[y:y + h, x:x + w])
        assert (np.any(numbered[label_row] != plain[label_row]))
    boxes_only = annotate(canvas, [{"box": [20, 80, 60, 60]}], numbered=True)
    assert np.any(boxes_only[40:77, 20:80] != 90)  # a box with no emotion gets its number


# ------------------------------------------------------------- inputs of every kind
def test_pil_bytes_and_file_objects_agree_with_the_path(face_frame, detector, tiny_classifier,
                                                        tmp_path):
    from PIL import Image

    canvas, _ = face_frame
    path = tmp_path / "frame.png"  # PNG: lossless, so every reader sees the same pixels
    assert cv2.imwrite(str(path), canvas)
    ref = analyze(path, detector, tiny_classifier)
    assert len(ref) == 1
    with Image.open(path) as pil, open(path, "rb") as fh:
        inputs = [pil, pil.convert("RGBA"), path.read_bytes(), bytearray(path.read_bytes()),
                  fh]
        for image in inputs:
            got = analyze(image, detector, tiny_classifier)
            assert [f.box for f in got] == [f.box for f in ref], type(image)
            np.testing.assert_allclose(list(got[0].scores.values()),
                                       list(ref[0].scores.values()), atol=1e-6)


def test_a_list_of_inputs_gives_a_list_of_results(face_frame, detector, tiny_classifier,
                                                   tmp_path):
    canvas, _ = face_frame
    path = tmp_path / "frame.png"
    assert cv2.imwrite(str(path), canvas)
    blank = np.full((120, 160, 3), 128, np.uint8)
    got = analyze([str(path), blank, path], detector, tiny_classifier)
    assert [len(r) for r in got] == [1, 0, 1]
    assert got[0][0].box == got[2][0].box
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        analyze([path, tmp_path / "nope.png"], detector, tiny_classifier)
    with pytest.raises(ValueError, match=r"images\[1\] has shape"):
        analyze([blank, np.zeros((5, 5, 2), np.uint8)], detector, tiny_classifier)
    # A nested list of numbers is still one (gray) image.
    assert analyze(np.full((30, 30), 99).tolist(), detector, tiny_classifier) == []


@pytest.mark.parametrize(("image", "match"), [
    (42, "got int"), (None, "got NoneType"), ({"path": "x.png"}, "got dict"),
])
def test_other_types_are_refused_naming_the_type(image, match, detector, tiny_classifier):
    with pytest.raises(TypeError, match=rf"path, bytes, .*PIL image.*{match}"):
        analyze(image, detector, tiny_classifier)


def test_text_mode_file_is_refused(tmp_path, detector, tiny_classifier):
    path = tmp_path / "a.txt"
    path.write_text("hello")
    with open(path) as fh, pytest.raises(TypeError, match=r"text mode.*'rb'"):
        analyze(fh, detector, tiny_classifier)


# ------------------------------------------------------- bad files: per-file errors
def test_bad_files_give_a_value_error_or_no_face(tmp_path, detector, tiny_classifier):
    from helpers_images import write_bad_images

    bad = write_bad_images(tmp_path)
    for key in ("wide_2x4000", "wide_8x4000", "wide_10x4000"):  # cv2.error/OverflowError
        assert analyze(bad[key], detector, tiny_classifier) == []
        assert analyze(cv2.imread(str(bad[key]))[:, :, 0], detector, tiny_classifier) == []
    for key in ("huge_40000", "corrupt_bmp"):
        with pytest.raises(ValueError, match=re.escape(bad[key].name)):
            analyze(bad[key], detector, tiny_classifier)


def test_detection_failure_becomes_a_value_error_naming_the_image(detector, tiny_classifier,
                                                                   monkeypatch):
    from sklearn.base import clone

    broken = clone(detector)

    def fail(image):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(broken, "detect", fail)
    with pytest.raises(ValueError, match=r"shot.png: face detection failed .*OverflowError"):
        analyze(np.zeros((20, 20, 3), np.uint8), broken, tiny_classifier, name="shot.png")
