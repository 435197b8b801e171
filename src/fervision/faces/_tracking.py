"""Face tracking across video frames: ByteTrack (Zhang et al., ECCV 2022).

A compact NumPy/SciPy implementation of ByteTrack's association: every track carries a
constant-velocity Kalman filter of its box (centre, aspect ratio, height), detections
are matched to the predicted boxes by IoU with the Hungarian algorithm, first the
confident detections against every track (lost ones included, so a face that was missed
for a few frames gets its identity back), then the less confident ones against the
tracks still unmatched.  It follows ``supervision.ByteTrack`` (MIT), which supervision
deprecated in 0.28 and removed in 0.31; its successor (Roboflow's ``trackers``) requires
``opencv-python``, which cannot share an environment with this package's
``opencv-python-headless``, and ``norfair`` requires NumPy < 2.

Unlike the original, every detection gets an identity (the detector has already
filtered its faces by score): an unmatched detection starts a new track at once.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["FaceTracker", "TrackStats", "describe_tracks"]

_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160


class _Kalman:
    """Constant-velocity Kalman filter of ``(cx, cy, aspect, h)`` and their velocities."""

    _F = np.eye(8)
    _F[:4, 4:] = np.eye(4)
    _H = np.eye(4, 8)

    def __init__(self, xyah: np.ndarray):
        h = xyah[3]
        self.mean = np.r_[xyah, np.zeros(4)]
        std = np.array([2 * _STD_POSITION * h, 2 * _STD_POSITION * h, 1e-2,
                        2 * _STD_POSITION * h, 10 * _STD_VELOCITY * h,
                        10 * _STD_VELOCITY * h, 1e-5, 10 * _STD_VELOCITY * h])
        self.cov = np.diag(std ** 2)

    def predict(self) -> None:
        h = self.mean[3]
        std = np.array([_STD_POSITION * h, _STD_POSITION * h, 1e-2, _STD_POSITION * h,
                        _STD_VELOCITY * h, _STD_VELOCITY * h, 1e-5, _STD_VELOCITY * h])
        self.mean = self._F @ self.mean
        self.cov = self._F @ self.cov @ self._F.T + np.diag(std ** 2)

    def update(self, xyah: np.ndarray) -> None:
        h = self.mean[3]
        r = np.diag(np.array([_STD_POSITION * h, _STD_POSITION * h, 1e-1,
                              _STD_POSITION * h]) ** 2)
        s = self._H @ self.cov @ self._H.T + r
        gain = np.linalg.solve(s, self._H @ self.cov).T  # cov H^T S^-1 (S symmetric)
        self.mean = self.mean + gain @ (xyah - self._H @ self.mean)
        self.cov = self.cov - gain @ s @ gain.T

    def box(self) -> np.ndarray:
        """Predicted ``(x, y, w, h)``."""
        cx, cy, a, h = self.mean[:4]
        w = a * h
        return np.array([cx - w / 2, cy - h / 2, w, h])


def _xyah(box) -> np.ndarray:
    x, y, w, h = (float(v) for v in box)
    h = max(h, 1e-6)
    return np.array([x + w / 2, y + h / 2, w / h, h])


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every ``(x, y, w, h)`` box of ``a`` (n, 4) with every one of ``b`` (m, 4)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    union = area_a[:, None] + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` of the assignment that maximises total IoU, each >= min_iou."""
    if not iou.size:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


class _Track:
    def __init__(self, track_id: int, box, frame: int):
        self.id = track_id
        self.kalman = _Kalman(_xyah(box))
        self.last_seen = frame


class FaceTracker:
    """Give each face of a video a track id that follows it from frame to frame.

    Parameters
    ----------
    high_score : float, default=0.7
        Detections at least this confident are associated first, with every track;
        the others only with the tracks those left unmatched (ByteTrack's two stages).
    min_iou : float, default=0.2
        Smallest overlap between a detection and a track's predicted box in the first
        stage (ByteTrack's ``match_thresh=0.8`` as a cost ``1 - IoU``).
    min_iou_low : float, default=0.5
        The same for the second stage (less confident detections).
    max_lost : int, default=30
        Frames (calls of :meth:`update`) a track is kept without a detection; a face
        seen again within them gets its id back.

    Examples
    --------
    >>> tracker = FaceTracker()
    >>> tracker.update([(10, 10, 50, 50), (200, 10, 50, 50)])
    [1, 2]
    >>> tracker.update([(205, 12, 50, 50), (14, 10, 50, 50)])  # listed in another order
    [2, 1]
    """

    def __init__(self, high_score: float = 0.7, min_iou: float = 0.2,
                 min_iou_low: float = 0.5, max_lost: int = 30):
        if int(max_lost) < 0:
            raise ValueError(f"max_lost must be >= 0, got {max_lost}")
        self.high_score = float(high_score)
        self.min_iou = float(min_iou)
        self.min_iou_low = float(min_iou_low)
        self.max_lost = int(max_lost)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frame = -1

    @property
    def active_ids(self) -> list[int]:
        """Ids of the tracks kept (seen within the last ``max_lost`` frames)."""
        return [t.id for t in self._tracks]

    def update(self, boxes, scores=None) -> list[int]:
        """Track ids of this frame's ``boxes`` (``(x, y, w, h)`` each), in their order.

        ``scores`` are the detector's confidences (all high when omitted).
        """
        self._frame += 1
        boxes = np.asarray([tuple(float(v) for v in b) for b in boxes],
                           dtype=np.float64).reshape(-1, 4)
        scores = (np.ones(len(boxes)) if scores is None
                  else np.asarray(scores, dtype=np.float64).reshape(-1))
        if len(scores) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        for t in self._tracks:
            t.kalman.predict()
        predicted = np.array([t.kalman.box() for t in self._tracks]).reshape(-1, 4)
        ids = [0] * len(boxes)

        high = np.flatnonzero(scores >= self.high_score)
        low = np.flatnonzero(scores < self.high_score)
        free = set(range(len(self._tracks)))
        for stage, dets in enumerate((high, low)):
            if stage == 0:
                candidates, min_iou = sorted(free), self.min_iou
            else:  # only tracks seen in the previous frame, as in ByteTrack
                candidates = sorted(j for j in free
                                    if self._tracks[j].last_seen == self._frame - 1)
                min_iou = self.min_iou_low
            iou = _iou_matrix(boxes[dets], predicted[candidates])
            for r, c in _match(iou, min_iou):
                i, j = dets[r], candidates[c]
                track = self._tracks[j]
                track.kalman.update(_xyah(boxes[i]))
                track.last_seen = self._frame
                ids[i] = track.id
                free.discard(j)
        for i in range(len(boxes)):
            if not ids[i]:
                track = _Track(self._next_id, boxes[i], self._frame)
                self._next_id += 1
                self._tracks.append(track)
                ids[i] = track.id
        self._tracks = [t for t in self._tracks if self._frame - t.last_seen <= self.max_lost]
        return ids


class TrackStats:
    """Per-track counts, for ``VideoSummary.tracks`` (:func:`.video.process_video`)."""

    def __init__(self, classes):
        self.classes = classes
        self.tracks: dict[int, dict] = {}

    def add(self, track_id: int, time_s: float, emotion: str, scores: np.ndarray) -> None:
        t = self.tracks.get(track_id)
        if t is None:
            t = self.tracks[track_id] = {
                "frames": 0, "first_s": time_s, "last_s": time_s,
                "counts": dict.fromkeys(self.classes, 0),
                "sum": np.zeros(len(self.classes)),
            }
        t["frames"] += 1
        t["last_s"] = time_s
        t["counts"][emotion] = t["counts"].get(emotion, 0) + 1
        t["sum"] += scores

    def summary(self) -> list[dict]:
        out = []
        for tid in sorted(self.tracks):
            t = self.tracks[tid]
            n = t["frames"]
            mean = t["sum"] / n
            # Most frequent top emotion; a tie goes to the higher mean score.
            dominant = max(self.classes,
                           key=lambda c: (t["counts"][c], mean[self.classes.index(c)]))
            out.append({
                "track": tid,
                "frames": n,
                "first_s": round(t["first_s"], 3),
                "last_s": round(t["last_s"], 3),
                "dominant_emotion": dominant,
                "emotion_share": {c: round(t["counts"][c] / n, 4) for c in self.classes},
                "mean_scores": {c: round(float(m), 6) for c, m in zip(self.classes, mean,
                                                                      strict=True)},
            })
        return out


def describe_tracks(tracks: list[dict], limit: int = 10) -> list[str]:
    """One line per track of ``VideoSummary.tracks`` (the first ``limit``), for people."""
    lines = []
    for t in tracks[:limit]:
        share = t["emotion_share"][t["dominant_emotion"]]
        lines.append(f"  person #{t['track']}: {t['dominant_emotion']} ({share:.0%} of "
                     f"{t['frames']} frames, {t['first_s']:.1f}-{t['last_s']:.1f} s)")
    if len(tracks) > limit:
        lines.append(f"  ... and {len(tracks) - limit} more tracks")
    return lines
