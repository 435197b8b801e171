"""Emotion recognition on video files and cameras.

:func:`process_video` reads frames with OpenCV, analyses each one (one detector call
and ONE batched ``predict_proba`` per frame), and writes any of

* an annotated copy of the video (``output=``: H.264 in ``.mp4``, VP9 in ``.webm``,
  written with PyAV, with the source's audio),
* a CSV file with one row per face (``csv=``),
* a JSON Lines file with one object per frame (``jsonl=``),
* a live window (``display=True``; Tk from the standard library, and a display).

Each face gets a track id (:class:`~fervision.faces._tracking.FaceTracker`, ByteTrack)
that stays with the person from frame to frame; smoothing is per track and the summary
tells, per track, the dominant emotion and the share of frames of each emotion.

Output files are opened when the first frame arrives; CSV and JSONL are flushed after
every frame and the video is written under a temporary name and moved into place when
closed, so whatever stops the run (end of the file, a truncated file, a camera
unplugged, Ctrl-C, SIGTERM, ``q`` in the window) leaves them closed and valid up to the
last processed frame.  Unreadable frames in the middle of a file (a damaged recording)
are skipped, up to ``max_unreadable`` in a row, and counted.
"""

from __future__ import annotations

import csv as csv_module
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..files import check_output_path
from ._tracking import FaceTracker, TrackStats
from ._video_io import CODECS_BY_EXTENSION, VideoWriter, check_display, codecs_for, open_window
from .analysis import (
    annotate,
    classify_faces,
    default_classifier,
    default_detector,
    results_from,
)

__all__ = [
    "CODECS_BY_EXTENSION",
    "VIDEO_EXTENSIONS",
    "FaceTracker",
    "ScoreSmoother",
    "VideoSummary",
    "process_video",
]

#: Extensions an annotated output video may have (codecs in ``CODECS_BY_EXTENSION``).
VIDEO_EXTENSIONS = frozenset(CODECS_BY_EXTENSION)

_DEFAULT_FPS = 30.0  # when the source does not say (many webcams report 0)

#: Default of ``process_video(max_unreadable=)``: unreadable frames skipped in a row.
MAX_UNREADABLE = 100


@dataclass
class VideoSummary:
    """What :func:`process_video` did.

    Attributes
    ----------
    source : str
        The file path, or ``"camera N"``.
    frames : int
        Frames analysed (written to every output).
    faces : int
        Faces found over all analysed frames.
    seconds : float
        Wall-clock time of the run.
    fps : float
        Analysed frames per second of wall-clock time.
    interrupted : bool
        True when the run stopped before the end of the source: Ctrl-C, SIGTERM, ``q``
        in the window, a camera that stopped delivering frames, a truncated file.
    reason : str
        Why it stopped, in words.
    unreadable_frames : int
        Frames of the source that could not be decoded and were skipped (a damaged
        file); they are in no output.
    tracks : list of dict
        One entry per tracked face (person), by track id: ``track``, ``frames`` (in
        how many analysed frames it was seen), ``first_s``/``last_s`` (times of the
        first and last), ``dominant_emotion`` (its most frequent emotion),
        ``emotion_share`` (the share of its frames with each emotion on top, every
        class, summing to 1) and ``mean_scores`` (its scores averaged over its frames).
    """

    source: str
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    interrupted: bool = False
    reason: str = ""
    unreadable_frames: int = 0
    tracks: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return the summary as a JSON-ready dict."""
        return asdict(self)


class ScoreSmoother:
    """Exponential moving average of class scores per track.

    Each face's scores are averaged with the earlier scores of the same track (the
    track ids of :class:`FaceTracker`), so two people keep their own history however
    they move; a new track starts with its raw scores.

    Parameters
    ----------
    alpha : float in [0, 1)
        Weight of the past: ``smoothed = alpha * previous + (1 - alpha) * current``.
        0 turns smoothing off.
    """

    def __init__(self, alpha: float):
        alpha = float(alpha)
        if not 0.0 <= alpha < 1.0 or math.isnan(alpha):
            raise ValueError(f"smoothing must be in [0, 1), got {alpha}")
        self.alpha = alpha
        self._state: dict[int, np.ndarray] = {}

    def update(self, track_ids, proba: np.ndarray, *, keep=None) -> np.ndarray:
        """Smooth this frame's ``proba`` (k, n_classes) given its faces' ``track_ids``.

        ``keep``: the ids whose history to keep (the tracker's live tracks); by default
        every id seen so far.
        """
        proba = np.asarray(proba, dtype=np.float64)
        out = proba.copy()
        if len(track_ids) != len(proba):
            raise ValueError(f"{len(track_ids)} track ids for {len(proba)} score rows")
        if self.alpha == 0:
            return out
        for i, tid in enumerate(track_ids):
            if tid in self._state:
                out[i] = self.alpha * self._state[tid] + (1 - self.alpha) * proba[i]
            self._state[tid] = out[i]
        if keep is not None:
            keep = set(keep)
            self._state = {t: p for t, p in self._state.items() if t in keep}
        return out


# ------------------------------------------------------------------------------ input
def _source_name(source) -> str:
    return f"camera {source}" if isinstance(source, int) else str(source)


def _open_capture(source) -> cv2.VideoCapture:
    if isinstance(source, bool) or not isinstance(source, int | str | os.PathLike):
        raise TypeError(
            f"source must be a video file path or a camera index (int), got {source!r}"
        )
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            cap.release()
            raise RuntimeError(
                f"camera {source} could not be opened: no such camera, or it is in use "
                "by another program (try another --camera index)"
            )
        return cap
    path = os.fspath(source)
    is_url = "://" in path  # rtsp://, http:// streams are handed to OpenCV as they are
    if not is_url:
        if not Path(path).exists():
            raise FileNotFoundError(f"video file not found: {path!r}")
        if Path(path).is_dir():
            raise ValueError(f"{path!r} is a folder, not a video file")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise ValueError(
            f"cannot open video {path!r}: corrupt, truncated or in a format OpenCV cannot read"
        )
    return cap


# ----------------------------------------------------------------------------- output
def _check_outputs(source, outputs: dict, overwrite: bool) -> dict:
    """Check every output path before any work: {what: Path or None}.

    No output may be the source or another output; an existing file needs ``overwrite``.
    """
    inputs = [source] if isinstance(source, str | os.PathLike) else []
    checked = {}
    for what, path in outputs.items():
        if path is None:
            checked[what] = None
            continue
        if what == "output video":
            codecs_for(Path(path))  # unsupported extension: fail before reading anything
        path = check_output_path(path, what=what, inputs=inputs, overwrite=overwrite)
        for other, done in checked.items():
            if done is not None and done.resolve() == path.resolve():
                raise ValueError(f"{what} and {other} are the same file {str(path)!r}")
        checked[what] = path
    return checked


class _OnSigterm:
    """Note SIGTERM while a run is on; the run stops after the frame in progress.

    ``kill`` (a service manager, ``timeout``, a container stop) sends SIGTERM, whose
    default action kills the process at once: an ``.mp4`` would lose its index and not
    play.  Handled, the frame being analysed is finished and written to every output
    (so they all hold the same frames), then the run stops and closes them, like
    Ctrl-C.  Signal handlers can only be set from the main thread; elsewhere this does
    nothing.
    """

    def __init__(self):
        self.previous, self.requested = None, False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None
        return False


class _Outputs:
    """The run's output files, opened lazily on the first frame and always closed."""

    def __init__(self, output, csv, jsonl, fps: float, classes: list[str], *,
                 audio_from=None, overwrite: bool = True):
        self.video_path = output
        self.csv_path = csv
        self.jsonl_path = jsonl
        self.fps = fps
        self.classes = classes
        self.audio_from = audio_from
        self.overwrite = overwrite
        self.writer = None
        self.csv_file = self.csv_writer = self.jsonl_file = None

    def open(self, frame_shape) -> None:
        h, w = frame_shape[:2]
        if self.video_path is not None:
            writer = VideoWriter(self.video_path, self.fps, audio_from=self.audio_from,
                                 overwrite=self.overwrite)
            try:
                writer.open(w, h)
            except Exception as err:
                raise RuntimeError(
                    f"cannot write output video {str(self.video_path)!r} "
                    f"({writer.video_codec}, {w}x{h} at {self.fps:g} fps): {err}"
                ) from err
            self.writer = writer
        if self.csv_path is not None:
            self.csv_file = open(self.csv_path, "w", newline="", encoding="utf-8")
            self.csv_writer = csv_module.writer(self.csv_file)
            self.csv_writer.writerow(
                ["frame", "time_s", "face", "track", "x", "y", "w", "h", "emotion",
                 *self.classes]
            )
            self.csv_file.flush()
        if self.jsonl_path is not None:
            self.jsonl_file = open(self.jsonl_path, "w", encoding="utf-8")

    def write(self, index: int, time_s: float, frame, results, track_ids) -> None:
        if self.writer is not None:  # the caller has annotated the frame
            self.writer.write(frame, time_s)
        if self.csv_writer is not None:
            for k, (r, tid) in enumerate(zip(results, track_ids, strict=True)):
                self.csv_writer.writerow(
                    [index, f"{time_s:.3f}", k, tid, *r.box, r.emotion,
                     *(f"{r.scores[c]:.6f}" for c in self.classes)]
                )
            self.csv_file.flush()  # valid up to this frame whatever happens next
        if self.jsonl_file is not None:
            record = {"frame": index, "time_s": round(time_s, 3),
                      "faces": [{"track": tid, **r.to_dict()}
                                for r, tid in zip(results, track_ids, strict=True)]}
            self.jsonl_file.write(json.dumps(record) + "\n")
            self.jsonl_file.flush()

    def close(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            for f in (self.csv_file, self.jsonl_file):
                if f is not None:
                    f.close()


def _draw_track_ids(frame, results, track_ids) -> None:
    """Write "#id" under each face box, to match the ``track`` column."""
    for r, tid in zip(results, track_ids, strict=True):
        x, y, w, h = (int(v) for v in r.box)
        scale = max(0.4, min(1.2, w / 160))
        thick = max(1, round(scale * 2))
        label = f"#{tid}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = min(y + h + 2, frame.shape[0] - th - base - 2)
        cv2.rectangle(frame, (x, top), (x + tw + 4, top + th + base + 2), (0, 0, 0), -1)
        cv2.putText(frame, label, (x + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)


# ------------------------------------------------------------------------------- main
def process_video(
    source,
    *,
    detector=None,
    classifier=None,
    output=None,
    csv=None,
    jsonl=None,
    smoothing: float = 0.0,
    display: bool = False,
    progress: bool = True,
    max_frames: int | None = None,
    every: int = 1,
    max_unreadable: int = MAX_UNREADABLE,
    overwrite: bool = True,
) -> VideoSummary:
    """Recognise emotions on every frame of a video file or camera.

    Parameters
    ----------
    source : str, path-like or int
        A video file (or a stream URL such as ``rtsp://...``), or a camera index.
    detector : FaceDetector, optional
        Default: the shared ``FaceDetector()`` (see :func:`fervision.analyze`).
    classifier : EmotionClassifier, optional
        Default: the shared default model (see :func:`fervision.analyze`).
    output : str or path-like, optional
        Annotated video to write (each face's box, emotion and ``#track`` id), with the
        source file's audio.  Codecs by extension: ``.mp4``/``.m4v``/``.mov``/``.mkv``:
        H.264 (yuv420p) and AAC, which every browser plays; ``.webm``: VP9 and Opus;
        ``.avi``: Motion JPEG and PCM.  Encoded with PyAV (FFmpeg in its wheel).
        Holds the analysed frames, at the source's frame rate divided by ``every``;
        odd frame sizes are padded by one pixel.  Written under a temporary name and
        moved into place when the run ends.
    csv : str or path-like, optional
        CSV with a header and one row per face: ``frame, time_s, face, track, x, y, w,
        h, emotion`` and one score column per class.  ``track`` is the face's identity
        (1, 2, ...), which stays with a person as they move (:class:`FaceTracker`,
        ByteTrack); ``face`` is the face's position in the frame's list (0 for the
        largest).  Frames without faces have no row.
    jsonl : str or path-like, optional
        JSON Lines, one object per analysed frame: ``{"frame": 0, "time_s": 0.0,
        "faces": [{"track": 1, "box": ..., "emotion": ..., "scores": ...}]}``.
    smoothing : float in [0, 1), default=0
        Exponential moving average of each track's scores over frames
        (:class:`ScoreSmoother`); 0 is off.  Larger is steadier but slower to react.
    display : bool, default=False
        Show the annotated frames in a window; press ``q`` (or close the window) to
        stop.  Uses Tk (``tkinter``, in the standard library; Debian/Ubuntu users may
        need ``apt install python3-tk``), or OpenCV's own window where tkinter is
        missing and OpenCV has a GUI; needs a display.
    progress : bool, default=True
        Show a tqdm progress bar (with a total for files).
    max_frames : int, optional
        Stop after analysing this many frames.
    every : int, default=1
        Analyse every ``every``-th frame only (the others are skipped, not written).
    max_unreadable : int, default=100
        The most frames of a file that may fail to decode in a row: they are skipped
        (counted in ``VideoSummary.unreadable_frames``, with a warning) and the run
        goes on with the next readable frame.  More in a row end the run as a truncated
        file.  0 stops at the first unreadable frame.  Cameras stop at once.
    overwrite : bool, default=True
        Replace existing output files; when False an existing one raises
        ``FileExistsError`` before anything is read.  (The ``fervision`` command passes
        False unless given ``--overwrite``.)

    Returns
    -------
    VideoSummary

    Raises
    ------
    FileNotFoundError
        ``source`` is a missing file, or an output's folder does not exist.
    FileExistsError
        An output exists and ``overwrite`` is False.
    ValueError
        ``source`` is not a readable video or holds no frame; bad option values; an
        output is the source itself or another output (never overwritten).
    RuntimeError
        A camera that cannot be opened or delivers no frame; ``display=True`` without a
        window toolkit or a display; an output video that cannot be written.

    Notes
    -----
    Ctrl-C (KeyboardInterrupt), SIGTERM (when called from the main thread; the
    previous handler is restored afterwards), a camera that stops mid-stream and a
    truncated file do not raise: the run ends, every output is closed, valid up to the
    last analysed frame, and the summary says ``interrupted=True`` and why.
    """
    every = int(every)
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if max_frames is not None and int(max_frames) < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    max_unreadable = int(max_unreadable)
    if max_unreadable < 0:
        raise ValueError(f"max_unreadable must be >= 0, got {max_unreadable}")
    smoother = ScoreSmoother(smoothing)
    tracker = FaceTracker(max_lost=max(1, round(30 / every)))
    out_video, out_csv, out_jsonl = _check_outputs(
        source, {"output video": output, "CSV file": csv, "JSONL file": jsonl}, overwrite
    ).values()
    window_backend = check_display() if display else None
    detector = detector if detector is not None else default_detector()
    classifier = classifier if classifier is not None else default_classifier()
    classes = [str(c) for c in classifier.classes_]

    name = _source_name(source)
    is_camera = isinstance(source, int)
    cap = _open_capture(source)
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    src_fps = src_fps if src_fps and math.isfinite(src_fps) and 0 < src_fps < 1000 else None
    n_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not is_camera else 0
    outputs = _Outputs(out_video, out_csv, out_jsonl, (src_fps or _DEFAULT_FPS) / every,
                       classes, overwrite=overwrite,
                       # the audio of local files (a stream URL is not opened twice)
                       audio_from=None if is_camera or "://" in os.fspath(source)
                       else os.fspath(source))
    summary = VideoSummary(source=name)
    stats = TrackStats(classes)
    window = None

    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = -(-n_total // every) if n_total > 0 else None
        if total is not None and max_frames is not None:
            total = min(total, int(max_frames))
        bar = tqdm(total=total, desc=f"fervision {Path(name).name if not is_camera else name}",
                   unit="frame", file=sys.stderr)

    start = time.perf_counter()
    index = -1  # position of the frame being read
    failing = 0  # unreadable frames in a row, not yet known to be followed by a good one
    user_stopped = False
    sigterm = _OnSigterm()
    try:
        sigterm.__enter__()
        if display:
            window = open_window(f"fervision - {name}", window_backend)
        while True:
            if sigterm.requested:
                user_stopped = True
                summary.interrupted = True
                summary.reason = f"terminated (SIGTERM) after {summary.frames} frames"
                break
            if max_frames is not None and summary.frames >= int(max_frames):
                summary.reason = f"max_frames={int(max_frames)} reached"
                break
            index += 1
            if index % every:
                # Skipped frames are only grabbed, not decoded: much cheaper than read().
                ok, frame = cap.grab(), None
            else:
                ok, frame = cap.read()
                ok = ok and frame is not None
            if not ok:
                # OpenCV moves past a frame it cannot decode, so a damaged file goes on
                # with the next good frame; the end of the file (index past the header's
                # count, or a run of failures) ends the run.
                failing += 1
                if is_camera or failing > max_unreadable or 0 < n_total <= index:
                    summary.interrupted, summary.reason = _why_stopped(
                        is_camera, name, index - failing + 1, n_total)
                    break
                continue
            summary.unreadable_frames += failing
            failing = 0
            if frame is None:
                continue
            if summary.frames == 0:
                outputs.open(frame.shape)
            faces, proba, _ = classify_faces(frame, detector, classifier)
            track_ids = tracker.update([f.box for f in faces], [f.score for f in faces])
            proba = smoother.update(track_ids, proba, keep=tracker.active_ids)
            results = results_from(faces, proba, classes)
            if is_camera or src_fps is None:
                time_s = time.perf_counter() - start
            else:
                time_s = index / src_fps
            for r, tid, p in zip(results, track_ids, proba, strict=True):
                stats.add(tid, time_s, r.emotion, p)
            if outputs.writer is not None or display:
                annotate(frame, results, copy=False)
                _draw_track_ids(frame, results, track_ids)
            outputs.write(index, time_s, frame, results, track_ids)
            summary.frames += 1
            summary.faces += len(results)
            if bar is not None:
                bar.update(1)
            if window is not None and not window.show(frame):
                user_stopped = True
                summary.interrupted, summary.reason = True, "stopped with 'q'"
                break
    except KeyboardInterrupt:
        user_stopped = True
        summary.interrupted = True
        summary.reason = f"interrupted by the user (Ctrl-C) after {summary.frames} frames"
    finally:
        cap.release()
        try:
            outputs.close()
        finally:
            if bar is not None:
                bar.close()
            if window is not None:
                window.close()
            sigterm.__exit__(None, None, None)
    summary.tracks = stats.summary()
    if summary.unreadable_frames:
        warnings.warn(
            f"{name}: skipped {summary.unreadable_frames} unreadable frame(s) (damaged "
            "file); they are in no output", RuntimeWarning, stacklevel=2)
    summary.seconds = time.perf_counter() - start
    summary.fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    if summary.frames == 0 and not user_stopped:
        if is_camera:
            raise RuntimeError(f"{name} was opened but delivered no frame")
        raise ValueError(
            f"no frame could be read from video {name!r} (empty, corrupt or truncated file)"
        )
    return summary


def _why_stopped(is_camera: bool, name: str, n_read: int, n_total: int) -> tuple[bool, str]:
    """(interrupted, reason) when the source gives no more frames after ``n_read``."""
    if is_camera:
        return True, f"{name} stopped delivering frames after {n_read} frames (disconnected?)"
    if n_total > 0 and n_read < n_total:
        return True, (
            f"{name} ended after {n_read} of the {n_total} frames its header announces "
            "(truncated or corrupt file?)"
        )
    return False, "end of video"
