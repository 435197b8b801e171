"""fervision.faces.video.process_video on short videos written by the tests themselves."""

from __future__ import annotations

import csv
import json
import os
import signal

import cv2
import numpy as np
import pytest
from helpers_faces import QVGA, count_frames, overlap, plant_face

from fervision.faces import video
from fervision.faces.video import ScoreSmoother, VideoSummary, process_video

N_FRAMES = 10


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, fer_sample, face_ids):
    """Write a 10-frame 320x240 MJPG .avi with a FER face drifting right 4 px per frame."""
    X, _ = fer_sample
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    assert writer.isOpened()
    boxes = []
    for i in range(N_FRAMES):
        frame, box = plant_face(X[face_ids[0]], **{**QVGA, "top_left": (80 + 4 * i, 60)})
        writer.write(frame)
        boxes.append(box)
    writer.release()
    return path, boxes


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_jsonl(path):
    return [json.loads(line) for line in open(path).read().splitlines()]


def test_outputs(face_video, detector, tiny_classifier, tmp_path):
    src, boxes = face_video
    out, csv_path, jsonl_path = tmp_path / "out.avi", tmp_path / "r.csv", tmp_path / "r.jsonl"
    summary = process_video(src, detector=detector, classifier=tiny_classifier, output=out,
                            csv=csv_path, jsonl=jsonl_path, progress=False)
    assert isinstance(summary, VideoSummary)
    assert summary.frames == N_FRAMES
    assert summary.faces == N_FRAMES
    assert not summary.interrupted
    assert summary.reason == "end of video"
    assert summary.fps > 0
    classes = [str(c) for c in tiny_classifier.classes_]

    rows = read_csv(csv_path)
    assert list(rows[0]) == ["frame", "time_s", "face", "track", "x", "y", "w", "h",
                             "emotion", *classes]
    assert {r["track"] for r in rows} == {"1"}  # one face, one identity
    assert [int(r["frame"]) for r in rows] == list(range(N_FRAMES))
    assert [float(r["time_s"]) for r in rows] == pytest.approx(np.arange(N_FRAMES) / 10.0)
    for r, box in zip(rows, boxes, strict=True):
        got = tuple(int(r[k]) for k in "xywh")
        assert overlap(got, box) > 0.2
        assert r["emotion"] in classes
        assert sum(float(r[c]) for c in classes) == pytest.approx(1.0, abs=1e-3)

    records = read_jsonl(jsonl_path)
    assert [rec["frame"] for rec in records] == list(range(N_FRAMES))
    assert all(len(rec["faces"]) == 1 for rec in records)
    assert all(rec["faces"][0]["track"] == 1 for rec in records)
    assert records[3]["faces"][0]["box"] == [int(rows[3][k]) for k in "xywh"]
    assert set(records[0]["faces"][0]["scores"]) == set(classes)

    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    cap.release()
    assert count_frames(out) == N_FRAMES
    assert [t["track"] for t in summary.tracks] == [1]
    assert summary.tracks[0]["frames"] == N_FRAMES
    assert sum(summary.tracks[0]["emotion_share"].values()) == pytest.approx(1.0, abs=1e-3)


def test_every_and_max_frames(face_video, detector, tiny_classifier, tmp_path):
    src, _ = face_video
    s = process_video(src, detector=detector, classifier=tiny_classifier, every=3,
                      jsonl=tmp_path / "a.jsonl", progress=False)
    assert s.frames == 4
    assert not s.interrupted
    assert [r["frame"] for r in read_jsonl(tmp_path / "a.jsonl")] == [0, 3, 6, 9]
    s = process_video(src, detector=detector, classifier=tiny_classifier, max_frames=4,
                      csv=tmp_path / "b.csv", progress=False)
    assert s.frames == 4
    assert "max_frames" in s.reason
    assert len(read_csv(tmp_path / "b.csv")) == 4


def test_smoother_ema_per_track():
    sm = ScoreSmoother(0.5)
    a = np.array([[1.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    np.testing.assert_allclose(sm.update([1], a), a)  # first frame: raw
    np.testing.assert_allclose(sm.update([1], b), [[0.5, 0.5]])  # same track
    np.testing.assert_allclose(sm.update([1], b), [[0.25, 0.75]])
    np.testing.assert_allclose(sm.update([2], a), a)  # new track: raw
    # two tracks listed in another order keep their own history
    sm = ScoreSmoother(0.5)
    sm.update([1, 2], np.array([[1.0, 0.0], [0.0, 1.0]]))
    out = sm.update([2, 1], np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(out, [[0.5, 0.5], [0.5, 0.5]])
    sm.update([1], a, keep=[1])  # track 2 is gone: its history too
    np.testing.assert_allclose(sm.update([2], b), b)
    assert ScoreSmoother(0.0).update([1], a) is not None
    with pytest.raises(ValueError, match="track ids"):
        sm.update([1, 2], a)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="smoothing"):
            ScoreSmoother(bad)


def test_smoothing_in_video(face_video, detector, tiny_classifier, tmp_path):
    src, _ = face_video
    raw = tmp_path / "raw.jsonl"
    smooth = tmp_path / "smooth.jsonl"
    process_video(src, detector=detector, classifier=tiny_classifier, jsonl=raw,
                  progress=False)
    process_video(src, detector=detector, classifier=tiny_classifier, jsonl=smooth,
                  smoothing=0.6, progress=False)
    r, s = read_jsonl(raw), read_jsonl(smooth)
    classes = list(r[0]["faces"][0]["scores"])
    raw_p = np.array([[f["faces"][0]["scores"][c] for c in classes] for f in r])
    smooth_p = np.array([[f["faces"][0]["scores"][c] for c in classes] for f in s])
    np.testing.assert_allclose(smooth_p[0], raw_p[0], atol=1e-6)
    expected = raw_p[0]
    for t in range(1, len(raw_p)):  # the tracked face's EMA, frame by frame
        expected = 0.6 * expected + 0.4 * raw_p[t]
        np.testing.assert_allclose(smooth_p[t], expected, atol=1e-5)


def test_truncated_file(face_video, detector, tiny_classifier, tmp_path):
    src, _ = face_video
    data = src.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    csv_path = tmp_path / "cut.csv"
    refused = None
    try:
        s = process_video(cut, detector=detector, classifier=tiny_classifier, csv=csv_path,
                          progress=False)
    except ValueError as err:  # OpenCV may refuse the file outright
        refused = err
    if refused is not None:
        assert "cut.avi" in str(refused)
        assert not csv_path.exists()  # no half-written output
        return
    assert 0 < s.frames < N_FRAMES
    assert s.interrupted
    assert "truncated" in s.reason
    assert len(read_csv(csv_path)) == s.frames


def test_garbage_file(tmp_path, detector, tiny_classifier):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 1000)
    out = tmp_path / "o.csv"
    with pytest.raises(ValueError, match=r"bad\.avi"):
        process_video(bad, detector=detector, classifier=tiny_classifier, csv=out,
                      progress=False)
    assert not out.exists()


def test_missing_file(tmp_path, detector, tiny_classifier):
    with pytest.raises(FileNotFoundError, match=r"missing\.avi"):
        process_video(tmp_path / "missing.avi", detector=detector,
                      classifier=tiny_classifier, progress=False)


def test_bad_camera_index(detector, tiny_classifier):
    with pytest.raises(RuntimeError, match="camera 99"):
        process_video(99, detector=detector, classifier=tiny_classifier, progress=False)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"output": "out.xyz"}, ValueError, "extension"),
    ({"every": 0}, ValueError, "every"),
    ({"max_frames": 0}, ValueError, "max_frames"),
    ({"smoothing": 1.5}, ValueError, "smoothing"),
    ({"csv": "no/such/dir/r.csv"}, FileNotFoundError, "does not exist"),
])
def test_bad_options_fail_before_reading(face_video, detector, tiny_classifier, tmp_path,
                                         monkeypatch, kwargs, exc, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(exc, match=match):
        process_video(face_video[0], detector=detector, classifier=tiny_classifier,
                      progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_source_type(detector, tiny_classifier):
    with pytest.raises(TypeError, match="camera index"):
        process_video(1.5, detector=detector, classifier=tiny_classifier)


def test_display_without_a_window_toolkit_is_a_clear_error(face_video, detector,
                                                           tiny_classifier, monkeypatch):
    from fervision.faces import _video_io

    monkeypatch.setattr(_video_io, "_has_tk", lambda: False)
    monkeypatch.setattr(_video_io, "_opencv_has_gui", lambda: False)
    with pytest.raises(RuntimeError, match="python3-tk"):
        process_video(face_video[0], detector=detector, classifier=tiny_classifier,
                      display=True, progress=False)
    monkeypatch.undo()
    if not _video_io._has_tk() and not _video_io._opencv_has_gui():
        return
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(_video_io.sys, "platform", "linux")
    with pytest.raises(RuntimeError, match="DISPLAY"):
        process_video(face_video[0], detector=detector, classifier=tiny_classifier,
                      display=True, progress=False)


class InterruptingClassifier:
    """Behaves like the real classifier, then acts like Ctrl-C on call ``after + 1``."""

    def __init__(self, clf, after):
        self.clf, self.after, self.calls = clf, after, 0
        self.classes_ = clf.classes_

    def predict_proba(self, X):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.clf.predict_proba(X)


def test_keyboard_interrupt_leaves_valid_outputs(face_video, detector, tiny_classifier,
                                                 tmp_path):
    src, _ = face_video
    out, csv_path, jsonl_path = tmp_path / "o.avi", tmp_path / "o.csv", tmp_path / "o.jsonl"
    s = process_video(src, detector=detector,
                      classifier=InterruptingClassifier(tiny_classifier, after=3),
                      output=out, csv=csv_path, jsonl=jsonl_path, progress=False)
    assert s.interrupted
    assert "Ctrl-C" in s.reason
    assert s.frames == 3
    assert [int(r["frame"]) for r in read_csv(csv_path)] == [0, 1, 2]
    assert [r["frame"] for r in read_jsonl(jsonl_path)] == [0, 1, 2]
    assert count_frames(out) == 3


class FakeCamera:
    """A cv2.VideoCapture stand-in: a camera that delivers ``n`` frames then vanishes."""

    def __init__(self, frame, n):
        self.frame, self.left = frame, n
        self.released = False

    def isOpened(self):
        return True

    def get(self, prop):
        return 0.0  # webcams often report no fps and no frame count

    def read(self):
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, self.frame.copy()

    def grab(self):
        return self.read()[0]

    def release(self):
        self.released = True


def test_camera_vanishing_mid_stream(monkeypatch, fer_sample, face_ids, detector,
                                     tiny_classifier, tmp_path):
    frame, _ = plant_face(fer_sample[0][face_ids[0]], **QVGA)
    cams = []
    monkeypatch.setattr(video.cv2, "VideoCapture",
                        lambda index: cams.append(FakeCamera(frame, 4)) or cams[-1])
    s = process_video(0, detector=detector, classifier=tiny_classifier,
                      jsonl=tmp_path / "cam.jsonl", progress=False)
    assert s.source == "camera 0"
    assert s.frames == 4
    assert s.interrupted
    assert "camera 0 stopped" in s.reason
    assert cams[0].released
    times = [r["time_s"] for r in read_jsonl(tmp_path / "cam.jsonl")]
    assert len(times) == 4
    assert times == sorted(times)


def test_camera_with_no_frame(monkeypatch, fer_sample, detector, tiny_classifier):
    monkeypatch.setattr(video.cv2, "VideoCapture",
                        lambda index: FakeCamera(np.zeros((8, 8, 3), np.uint8), 0))
    with pytest.raises(RuntimeError, match="delivered no frame"):
        process_video(0, detector=detector, classifier=tiny_classifier, progress=False)


# ------------------------------------------------ damaged files, SIGTERM, output paths
def write_damaged_video(path, n=30, bad=range(10, 15)):
    """Write an ``n``-frame 160x120 MJPG .avi whose frames ``bad`` have zeroed JPEG data.

    Each frame's brightness is ``5 * i``, so a decoded frame tells which one it is.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(n):
        writer.write(np.full((120, 160, 3), 5 * i, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == n
    for k in bad:  # keep the container intact, destroy the JPEG: "No JPEG data found"
        end = starts[k + 1] - 8 if k + 1 < n else len(data) - 8
        data[starts[k]:end] = bytes(end - starts[k])
    path.write_bytes(bytes(data))
    return path


def test_unreadable_frames_in_the_middle_are_skipped(detector, tiny_classifier, tmp_path):
    src = write_damaged_video(tmp_path / "damaged.avi")
    jsonl = tmp_path / "r.jsonl"
    with pytest.warns(RuntimeWarning, match="skipped 5 unreadable frame"):
        s = process_video(src, detector=detector, classifier=tiny_classifier, jsonl=jsonl,
                          progress=False)
    assert s.frames == 25
    assert s.unreadable_frames == 5
    assert not s.interrupted
    assert s.reason == "end of video"
    frames = [r["frame"] for r in read_jsonl(jsonl)]
    assert frames == [*range(10), *range(15, 30)]  # positions keep their true index
    # max_unreadable=0: the old behaviour, stop at the damage, as a truncated file.
    s = process_video(src, detector=detector, classifier=tiny_classifier, progress=False,
                      max_unreadable=0)
    assert s.frames == 10
    assert s.interrupted
    assert "after 10 of the 30" in s.reason
    # Fewer allowed in a row than the damage: stop there too.
    s = process_video(src, detector=detector, classifier=tiny_classifier, progress=False,
                      max_unreadable=4)
    assert s.frames == 10
    assert s.interrupted
    assert s.unreadable_frames == 0


class TerminatingClassifier(InterruptingClassifier):
    """Sends SIGTERM to this process on call ``after + 1``, as ``kill PID`` would."""

    def predict_proba(self, X):
        self.calls += 1
        if self.calls > self.after:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.clf.predict_proba(X)


class Killed(Exception):
    pass


def _raise_killed(signum, frame):
    raise Killed


def test_sigterm_leaves_a_playable_mp4(face_video, detector, tiny_classifier, tmp_path):
    # A handler of the caller's (here: raise Killed) rather than the default action,
    # so that a process_video that does not handle SIGTERM fails this test instead of
    # killing pytest; process_video must use its own, then put this one back.
    before = signal.signal(signal.SIGTERM, _raise_killed)
    try:
        out, jsonl = tmp_path / "o.mp4", tmp_path / "o.jsonl"
        s = process_video(face_video[0], detector=detector,
                          classifier=TerminatingClassifier(tiny_classifier, after=3),
                          output=out, jsonl=jsonl, progress=False)
        assert signal.getsignal(signal.SIGTERM) is _raise_killed
    finally:
        signal.signal(signal.SIGTERM, before)
    assert s.interrupted
    assert "SIGTERM" in s.reason
    assert s.frames in (3, 4)
    assert count_frames(out) == s.frames == len(read_jsonl(jsonl))


def test_outputs_never_replace_the_source_or_each_other(face_video, detector,
                                                        tiny_classifier, tmp_path):
    src = tmp_path / "in.avi"
    src.write_bytes(face_video[0].read_bytes())
    original = src.read_bytes()
    run = dict(detector=detector, classifier=tiny_classifier, progress=False)
    for kwargs in ({"output": src}, {"csv": src}, {"jsonl": tmp_path / "." / "in.avi"}):
        with pytest.raises(ValueError, match=r"in\.avi.*is the input"):
            process_video(src, **run, **kwargs)
    with pytest.raises(ValueError, match="same file"):
        process_video(src, **run, csv=tmp_path / "r.txt", jsonl=tmp_path / "r.txt")
    assert src.read_bytes() == original
    existing = tmp_path / "r.csv"
    existing.write_text("mine")
    with pytest.raises(FileExistsError, match=r"r\.csv"):
        process_video(src, **run, csv=existing, overwrite=False)
    assert existing.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.avi", "r.csv"]
