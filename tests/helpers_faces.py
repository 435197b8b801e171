"""Test helpers: real FER2013 faces planted on larger canvases (fixtures: conftest.py).

A FER2013 image is a tight 48x48 crop, too tight for a face detector, so it is first
padded with its replicated border (which continues hair, cheeks and background), then
upscaled and pasted onto a plain canvas the size of a webcam frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from fervision.faces.detection import box_iou

CANVAS_SHAPE = (480, 640)  # (height, width) of a VGA frame


def plant_face(face48, *, canvas_shape=CANVAS_SHAPE, size=200, top_left=(220, 140),
               pad=16, background=(90, 110, 120)):
    """Paste an upscaled FER2013 face onto a BGR canvas.

    Parameters
    ----------
    face48 : ndarray (48, 48) uint8
        A FER2013 image.
    canvas_shape : (int, int)
        Canvas height and width.
    size : int
        Side of the pasted (padded) face patch in pixels.
    top_left : (int, int)
        ``(x, y)`` of the patch on the canvas.
    pad : int
        Replicated border added to each side of the 48x48 crop before upscaling.
    background : tuple of 3 int
        BGR colour of the canvas.

    Returns
    -------
    canvas : ndarray (H, W, 3) uint8
    patch_box : tuple (x, y, w, h)
        Where the patch went; the detected face box should overlap it.
    """
    padded = cv2.copyMakeBorder(np.asarray(face48, np.uint8), pad, pad, pad, pad,
                                cv2.BORDER_REPLICATE)
    patch = cv2.resize(padded, (size, size), interpolation=cv2.INTER_CUBIC)
    canvas = np.empty((*canvas_shape, 3), np.uint8)
    canvas[:] = background
    x, y = top_left
    canvas[y:y + size, x:x + size] = cv2.cvtColor(patch, cv2.COLOR_GRAY2BGR)
    return canvas, (x, y, size, size)


overlap = box_iou  # the library's IoU; tests compare face boxes with it


def detectable_faces(X, detector, n=2, **plant_kwargs):
    """Return the indices of the first ``n`` images of ``X`` the detector finds once planted.

    Which FER2013 faces a detector finds is a property of the data, not of the code
    under test, so tests pick faces that are found rather than hard-coding indices.
    """
    found = []
    for i, face in enumerate(X):
        canvas, box = plant_face(face, **plant_kwargs)
        faces = detector.detect(canvas)
        if len(faces) == 1 and overlap(faces[0].box, box) > 0.2:
            found.append(i)
            if len(found) == n:
                return found
    raise AssertionError(f"only {len(found)} of {len(X)} planted faces were detected")


#: plant_face arguments for a 320x240 frame.
QVGA = dict(canvas_shape=(240, 320), size=120, top_left=(100, 60))


def count_frames(path) -> int:
    """Frames OpenCV can read from a video file (which must open)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n
