"""Browser-playable output with audio (PyAV), face tracks, and the live window (Xvfb)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import time

import av
import numpy as np
import pytest
from helpers_faces import detectable_faces, overlap, plant_face

from fervision.apps.cli import main
from fervision.faces import _video_io, video
from fervision.faces._tracking import FaceTracker, describe_tracks
from fervision.faces.video import process_video

FPS, SECONDS, RATE, TONE = 10, 2.0, 22050, 440.0


def write_clip(path, frames, fps=FPS, audio_seconds=SECONDS, rate=RATE):
    """Write an H.264/AAC .mp4 of BGR ``frames`` with a mono 440 Hz sine (with PyAV)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for f in frames:
            f = np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            for p in v.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(p)
        t = np.arange(int(rate * audio_seconds)) / rate
        tone = (0.4 * np.sin(2 * np.pi * TONE * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for p in [*a.encode(frame), *a.encode(None), *v.encode(None)]:
            out.mux(p)
    return path


def probe(path):
    """(video stream info, audio stream info or None, decoded mono audio)."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        n_frames = sum(1 for _ in c.decode(vs))
        info = {"codec": vs.codec_context.name, "pix_fmt": vs.codec_context.pix_fmt,
                "size": (vs.codec_context.width, vs.codec_context.height),
                "frames": n_frames}
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return info, None, None
        s = c.streams.audio[0]
        chunks = [f.to_ndarray().reshape(f.to_ndarray().shape[0], -1)[0]
                  if f.format.is_planar else f.to_ndarray()[0, ::len(f.layout.channels)]
                  for f in c.decode(s)]
        samples = np.concatenate(chunks).astype(np.float64)
        if samples.dtype.kind == "i" or np.abs(samples).max() > 2:
            samples = samples / 32768.0
        audio = {"codec": s.codec_context.name, "rate": s.codec_context.sample_rate,
                 "seconds": len(samples) / s.codec_context.sample_rate}
    return info, audio, samples


def dominant_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples))
    return np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]


@pytest.fixture(scope="module")
def audio_clip(tmp_path_factory):
    """2 s at 10 fps, 161x121 (odd: the output pads it), grey ramps, a 440 Hz tone."""
    frames = [np.full((121, 161, 3), 40 + 8 * i, np.uint8) for i in range(int(FPS * SECONDS))]
    return write_clip(tmp_path_factory.mktemp("av") / "talk.mp4", frames)


@pytest.mark.parametrize(("name", "vcodec", "acodec"), [("out.mp4", "h264", "aac"),
                                                        ("out.webm", "vp9", "opus")])
def test_browser_codecs_and_audio_kept(audio_clip, detector, tiny_classifier, tmp_path,
                                       name, vcodec, acodec):
    out = tmp_path / name
    s = process_video(audio_clip, detector=detector, classifier=tiny_classifier,
                      output=out, progress=False)
    assert s.frames == FPS * SECONDS
    assert not s.interrupted
    info, audio, samples = probe(out)
    assert info["codec"] == vcodec
    assert info["pix_fmt"] == "yuv420p"
    assert info["size"] == (162, 122)  # even, as yuv420p needs
    assert info["frames"] == FPS * SECONDS
    assert audio is not None
    assert audio["codec"] == acodec
    assert audio["seconds"] == pytest.approx(SECONDS, abs=0.15)
    assert dominant_hz(samples, audio["rate"]) == pytest.approx(TONE, abs=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left
    if name.endswith(".mp4"):  # index first ("faststart"): a browser plays while loading
        data = out.read_bytes()
        assert 0 < data.find(b"moov") < data.find(b"mdat")


def test_audio_cut_to_the_frames_written(audio_clip, detector, tiny_classifier, tmp_path):
    out = tmp_path / "half.mp4"
    process_video(audio_clip, detector=detector, classifier=tiny_classifier, output=out,
                  max_frames=10, progress=False)
    info, audio, _ = probe(out)
    assert info["frames"] == 10
    assert audio["seconds"] == pytest.approx(1.0, abs=0.15)


class WatchingClassifier:
    """The real classifier, noting on each call whether the output video exists yet."""

    def __init__(self, clf, folder, name):
        self.clf, self.folder, self.name = clf, folder, name
        self.classes_ = clf.classes_
        self.seen = []

    def predict_proba(self, X):
        self.seen.append(sorted(p.name for p in self.folder.iterdir()))
        return self.clf.predict_proba(X)


def test_video_appears_only_when_complete(audio_clip, detector, tiny_classifier, tmp_path,
                                          fer_sample, face_ids):
    frames = [plant_face(fer_sample[0][face_ids[0]], canvas_shape=(240, 320), size=120,
                         top_left=(100, 60))[0]] * 4
    src = write_clip(tmp_path.parent / f"{tmp_path.name}-face.mp4", frames, audio_seconds=0.4)
    watcher = WatchingClassifier(tiny_classifier, tmp_path, "o.mp4")
    process_video(src, detector=detector, classifier=watcher, output=tmp_path / "o.mp4",
                  progress=False)
    assert len(watcher.seen) == 4
    for names in watcher.seen:  # during the run: only a hidden temp file
        assert "o.mp4" not in names
        assert len(names) == 1
        assert names[0].startswith(".o.mp4.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]
    assert probe(tmp_path / "o.mp4")[0]["frames"] == 4


def test_cli_mp4_with_audio_and_summary(audio_clip, detector, tiny_model_path, yunet_onnx,
                                        tmp_path, capsys):
    out, summary = tmp_path / "out.mp4", tmp_path / "summary.json"
    assert main(["video", str(audio_clip), "-o", str(out), "--summary", str(summary),
                 "--no-progress", "--model", str(tiny_model_path), "--detector", "yunet",
                 "--detector-model", str(yunet_onnx)]) == 0
    info, audio, _ = probe(out)
    assert info["codec"] == "h264"
    assert audio["codec"] == "aac"
    assert audio["seconds"] == pytest.approx(SECONDS, abs=0.15)
    data = json.loads(summary.read_text())
    assert data["frames"] == FPS * SECONDS
    assert data["tracks"] == []
    assert f"wrote {summary}" in capsys.readouterr().out


# ----------------------------------------------------------------------------- tracks
def test_tracker_keeps_ids_through_a_crossing_with_a_missed_frame():
    tracker = FaceTracker()
    ids = []
    for k in range(11):  # A moves right, B left, on one row; they meet at k=5
        a, b = (20 * k, 50, 50, 50), (200 - 20 * k, 50, 50, 50)
        boxes = [a] if k == 5 else [b, a] if k % 2 else [a, b]  # k=5: one hides the other
        got = tracker.update(boxes)
        ids.append(dict(zip(["a", "b"] if boxes[0] == a else ["b", "a"], got, strict=False)))
    assert all(d["a"] == 1 for d in ids)
    assert all(d["b"] == 2 for d in ids if "b" in d)
    assert tracker.update([]) == []
    assert tracker.active_ids == [1, 2]


def test_track_ids_stay_with_each_face(fer_sample, detector, tiny_classifier, tmp_path):
    """Two faces cross the frame in opposite directions and swap sizes."""
    X, _ = fer_sample
    n, shape = 16, (330, 480)
    # Two faces the detector finds at both ends of the size range.
    small = detectable_faces(X, detector, n=8, canvas_shape=shape, size=90, top_left=(10, 10))
    large = detectable_faces(X, detector, n=8, canvas_shape=shape, size=130,
                             top_left=(10, 10))
    face_ids = [i for i in small if i in large][:2]
    assert len(face_ids) == 2
    frames, truth = [], {"A": [], "B": []}
    for k in range(n):
        t = k / (n - 1)
        size_a, size_b = round(130 - 40 * t), round(90 + 40 * t)
        pos_a = (round(10 + 330 * t), 10)  # top row, left to right, shrinking
        pos_b = (round(340 - 330 * t), 190)  # bottom row, right to left, growing
        frame, box_a = plant_face(X[face_ids[0]], canvas_shape=shape, size=size_a,
                                  top_left=pos_a)
        other, box_b = plant_face(X[face_ids[1]], canvas_shape=shape, size=size_b,
                                  top_left=pos_b)
        x, y, w, h = box_b
        frame[y:y + h, x:x + w] = other[y:y + h, x:x + w]
        frames.append(frame)
        truth["A"].append(box_a)
        truth["B"].append(box_b)
    src = write_clip(tmp_path / "two.mp4", frames, audio_seconds=n / FPS)
    table = tmp_path / "faces.csv"
    s = process_video(src, detector=detector, classifier=tiny_classifier, csv=table,
                      smoothing=0.5, progress=False)
    rows = list(csv.DictReader(open(table, newline="")))
    owner = {}  # track id -> the planted face it covers, in every one of its rows
    for r in rows:
        box, k = tuple(int(r[c]) for c in "xywh"), int(r["frame"])
        who = [p for p in "AB" if overlap(box, truth[p][k]) > 0.2]
        assert len(who) == 1, (k, box)
        assert owner.setdefault(r["track"], who[0]) == who[0], f"track {r['track']} swapped"
    assert sorted(owner.values()) == ["A", "B"]  # exactly one track per person
    per_track = {t: sum(r["track"] == t for r in rows) for t in owner}
    assert min(per_track.values()) >= n - 2
    # The size rank ("face") changes between the two ends; the track does not.
    first = {r["track"]: r["face"] for r in rows if r["frame"] == "0"}
    last = {r["track"]: r["face"] for r in rows if r["frame"] == str(n - 1)}
    assert first.keys() == last.keys()
    assert first != last
    tracks = {str(t["track"]): t for t in s.tracks}
    assert tracks.keys() == owner.keys()
    for t, info in tracks.items():
        assert info["frames"] == per_track[t]
        assert info["dominant_emotion"] in info["emotion_share"]
        assert sum(info["emotion_share"].values()) == pytest.approx(1.0, abs=1e-3)
        share = info["emotion_share"][info["dominant_emotion"]]
        assert share == max(info["emotion_share"].values())
    lines = describe_tracks(s.tracks)  # what `fervision video` prints
    assert len(lines) == 2
    assert all("person #" in line and " frames" in line for line in lines)
    assert describe_tracks(s.tracks, limit=1)[-1] == "  ... and 1 more tracks"


# ----------------------------------------------------------------------- live window
@pytest.fixture(scope="module")
def xvfb_display():
    """Start a virtual X display (Debian's xvfb package), or skip where there is none."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    if not _video_io._has_tk():
        pytest.skip("this Python has no tkinter")
    for number in range(99, 120):
        if os.path.exists(f"/tmp/.X11-unix/X{number}") or os.path.exists(f"/tmp/.X{number}-lock"):
            continue
        proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "640x480x24",
                                 "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        for _ in range(50):
            if os.path.exists(f"/tmp/.X11-unix/X{number}") or proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        pytest.skip("no free X display number for Xvfb")
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


def test_live_window_under_xvfb(xvfb_display, audio_clip, detector, tiny_classifier,
                                monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    windows = []

    def recording_window(title, backend):
        windows.append(_video_io.open_window(title, backend))
        return windows[-1]

    monkeypatch.setattr(video, "open_window", recording_window)
    s = process_video(audio_clip, detector=detector, classifier=tiny_classifier,
                      display=True, max_frames=6, progress=False)
    assert s.frames == 6
    (win,) = windows
    assert isinstance(win, _video_io.TkWindow)
    assert win.shown == 6
    assert win.closed

    # 'q' in the window stops the run, like the OpenCV window did.
    windows.clear()

    def press_q_after_two(title, backend):
        win = _video_io.TkWindow(title)
        show = win.show

        def show_then_q(frame):
            if win.shown == 2:  # as if typed: key events go to the focused window
                win.root.focus_force()
                win.root.update()
                win.root.event_generate("<KeyPress-q>", when="tail")
            return show(frame)

        win.show = show_then_q
        windows.append(win)
        return win

    monkeypatch.setattr(video, "open_window", press_q_after_two)
    s = process_video(audio_clip, detector=detector, classifier=tiny_classifier,
                      display=True, progress=False)
    assert s.interrupted
    assert s.reason == "stopped with 'q'"
    assert s.frames == 3
    assert windows[0].closed


def test_closed_window_leaves_no_tk_objects_for_another_thread(xvfb_display):
    # Tk objects collected in a non-main thread abort the process (Tcl_AsyncDelete);
    # close() must release them in its own thread.  Run in a subprocess: an abort
    # would otherwise take pytest down with it.
    import subprocess
    import sys

    code = (
        "import gc, threading\n"
        "import numpy as np\n"
        "from fervision.faces._video_io import TkWindow\n"
        "w = TkWindow('t')\n"
        "w.show(np.zeros((8, 8, 3), np.uint8))\n"
        "w.close()\n"
        "assert w.root is None and w.label is None\n"
        "t = threading.Thread(target=gc.collect)\n"
        "t.start(); t.join()\n"
        "print('alive')\n"
    )
    env = {**os.environ, "DISPLAY": xvfb_display}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alive" in done.stdout, done.stderr[-2000:]
