"""A detected face (box, score, landmarks) and box overlap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Face", "NoFaceWarning", "box_iou"]


class NoFaceWarning(UserWarning):
    """Some images had no detectable face and were centre-cropped instead."""


@dataclass(eq=False)
class Face:
    """One detected face.

    Parameters
    ----------
    box : tuple of 4 int
        ``(x, y, w, h)`` in pixels, top-left corner and size.
    score : float
        Detector confidence (1.0 for the Haar backend, which gives none).
    landmarks : ndarray of shape (5, 2), float, or None
        ``(x, y)`` of the right eye, left eye, nose tip, right mouth corner and left
        mouth corner (the subject's right/left), or None when the backend has none.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray | None = None

    def __post_init__(self):
        x, y, w, h = (round(float(v)) for v in self.box)
        self.box = (x, y, w, h)
        self.score = float(self.score)
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if lm.shape != (5, 2):
                raise ValueError(f"landmarks must have shape (5, 2), got {lm.shape}")
            self.landmarks = lm

    @property
    def area(self) -> int:
        """Box area in pixels."""
        return self.box[2] * self.box[3]

    def scaled(self, factor: float) -> Face:
        """Return this face with box and landmarks multiplied by ``factor``."""
        lm = None if self.landmarks is None else self.landmarks * factor
        return Face(tuple(v * factor for v in self.box), self.score, lm)


def box_iou(a, b) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when both are empty)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
