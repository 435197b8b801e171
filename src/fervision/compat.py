"""A drop-in for the ``fer`` package's ``FER`` class, on fervision's detector and model.

Code written for ``fer``::

    from fer import FER
    detector = FER()
    detector.detect_emotions(img)   # [{"box": [x, y, w, h], "emotions": {...}}, ...]
    detector.top_emotion(img)       # ("happy", 0.97) or (None, None)

runs on fervision by changing the import to ``from fervision.compat import FER``.  The
results have ``fer``'s shapes: ``box`` is ``[x, y, w, h]`` in pixels, ``emotions``
maps fer's seven labels, in fer's order (angry, disgust, fear, happy, sad, surprise,
neutral), to probabilities rounded to two decimals, as ``fer`` rounds them.

What differs: faces are found by fervision's default detector (YuNet; ``mtcnn=True``
selects MTCNN), not by a Haar cascade, and classified by fervision's default model;
faces come largest first.  ``fer``'s Haar-only options (``scale_factor``,
``min_neighbors``) are validated as ``fer`` validates them and otherwise unused;
``use_tflite`` is accepted and ignored (there is one model); ``offsets`` is replaced by
the detector's own ``margin``.  ``tfserving`` and ``cascade_file`` are not supported and
raise ``ValueError``.  For fervision's richer results (detection score, landmarks,
``to_dict()``), use :func:`fervision.analyze`.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from .data.labels import EMOTIONS

__all__ = ["FER"]


def _decode_data_uri(img):
    """``fer`` accepts base64 images as ``data:image/...;base64,...`` strings."""
    if isinstance(img, str) and img.startswith("data:image"):
        try:
            return base64.b64decode(img.split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error):
            raise ValueError("image: malformed base64 data URI") from None
    return img


class FER:
    """Facial expression recognition with ``fer``'s interface.

    Parameters
    ----------
    cascade_file : None
        Not supported (fervision does not use a Haar cascade by default); must be None.
    mtcnn : bool, default=False
        Detect faces with MTCNN (needs ``pip install "fervision[mtcnn]"``) instead of
        fervision's default YuNet detector.
    tfserving : bool, default=False
        Not supported; must be False.
    use_tflite : bool, default=True
        Accepted for compatibility and ignored.
    scale_factor : float, default=1.1
        Validated as ``fer`` does (> 1.0); otherwise unused.
    min_face_size : int, default=50
        Smallest face, in pixels, that is reported.
    min_neighbors : int, default=5
        Validated as ``fer`` does (>= 0); otherwise unused.
    offsets : tuple of 2 int, default=(10, 10)
        Validated as ``fer`` does; fervision crops with the detector's ``margin``.
    detector : FaceDetector, optional
        Use this detector (overrides ``mtcnn`` and ``min_face_size``).
    classifier : EmotionClassifier, optional
        Use this fitted classifier; default: fervision's default model.
    """

    def __init__(self, cascade_file=None, mtcnn=False, tfserving=False, use_tflite=True,
                 scale_factor=1.1, min_face_size=50, min_neighbors=5, offsets=(10, 10),
                 *, detector=None, classifier=None):
        if scale_factor <= 1.0:
            raise ValueError("scale_factor must be greater than 1.0")
        if min_face_size < 1:
            raise ValueError("min_face_size must be at least 1")
        if min_neighbors < 0:
            raise ValueError("min_neighbors must be non-negative")
        if not isinstance(offsets, tuple | list) or len(offsets) != 2:
            raise ValueError("offsets must be a tuple or list of length 2")
        if cascade_file is not None:
            raise ValueError("cascade_file is not supported by fervision.compat.FER: faces "
                             "are found by fervision's detector; pass detector=FaceDetector("
                             "backend='haar') for a Haar cascade")
        if tfserving:
            raise ValueError("tfserving is not supported by fervision.compat.FER")
        self.mtcnn = mtcnn
        self.use_tflite = use_tflite
        self.min_face_size = min_face_size
        self._detector = detector
        self._classifier = classifier
        self.emotions = []  # fer keeps the last result here

    def _models(self):
        from .faces.analysis import default_classifier, default_detector
        from .faces.detection import FaceDetector

        if self._detector is None:
            self._detector = (FaceDetector("mtcnn", min_face_size=self.min_face_size)
                              if self.mtcnn else default_detector())
        if self._classifier is None:
            self._classifier = default_classifier()
        return self._detector, self._classifier

    def detect_emotions(self, img, face_rectangles=None) -> list[dict]:
        """Faces and the probability of each emotion, in ``fer``'s result shape.

        Parameters
        ----------
        img : path, array (BGR or gray), PIL image, bytes or base64 data URI
            The image.
        face_rectangles : sequence of (x, y, w, h), optional
            Classify these boxes instead of detecting faces.

        Returns
        -------
        list of dict
            ``[{"box": [x, y, w, h], "emotions": {"angry": 0.02, ..., "neutral": 0.09}}]``
            with values rounded to two decimals, one per face.
        """
        from .faces.analysis import classify_faces, to_bgr
        from .faces.detection import Face

        detector, classifier = self._models()
        bgr = to_bgr(_decode_data_uri(img))
        if face_rectangles is None:
            faces, proba, classes = classify_faces(bgr, detector, classifier)
            keep = [i for i, f in enumerate(faces) if min(f.box[2:]) >= self.min_face_size]
            faces, proba = [faces[i] for i in keep], proba[keep]
        else:
            faces = [Face(tuple(int(v) for v in box), 1.0) for box in face_rectangles]
            classes = [str(c) for c in classifier.classes_]
            proba = (np.asarray(classifier.predict_proba(detector.crops(bgr, faces)))
                     if faces else np.zeros((0, len(classes))))
        order = [c for c in EMOTIONS if c in classes] + [c for c in classes
                                                         if c not in EMOTIONS]
        column = {c: i for i, c in enumerate(classes)}
        self.emotions = [
            {"box": [int(v) for v in face.box],
             "emotions": {c: round(float(row[column[c]]), 2) for c in order}}
            for face, row in zip(faces, proba, strict=True)
        ]
        return self.emotions

    def batch_detect_emotions(self, imgs) -> list[list[dict]]:
        """:meth:`detect_emotions` of each image of ``imgs``."""
        return [self.detect_emotions(img) for img in imgs]

    def top_emotion(self, img) -> tuple[str | None, float | None]:
        """Return the first face's most probable emotion and its score, or ``(None, None)``."""
        emotions = self.detect_emotions(img)
        if not emotions:
            return None, None
        scores = emotions[0]["emotions"]
        top = max(scores, key=scores.get)
        return top, scores[top]
