"""One-call facial emotion analysis: find the faces in an image and classify each.

:func:`analyze` runs a :class:`~fervision.faces.detection.FaceDetector` and an
:class:`~fervision.estimator.EmotionClassifier` on an image; :func:`annotate` draws the
result.  Without an explicit detector or classifier the defaults (``FaceDetector()`` and
the bundled model with two network passes per face, :func:`load_default_classifier`)
are loaded once, on first use, and reused by
every later call in the process (thread-safe).

Environment variables (read when the defaults are first built; the command-line tool
and the Streamlit app use them too):

``FERVISION_MODEL``
    A pretrained model's name (:func:`fervision.weights.list_pretrained`, e.g.
    ``ferplus-large``) or a ``.keras`` file written by :meth:`EmotionClassifier.save
    <fervision.estimator.EmotionClassifier.save>`, used instead of the default model.
``FERVISION_DETECTOR_MODEL``
    A YuNet ``.onnx`` file for the default detector, instead of the bundled one.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.preprocessing import as_uint8, decode_image
from ..data.preprocessing import read_image as _read_image

__all__ = [
    "FaceResult",
    "analyze",
    "analyze_frame",
    "annotate",
    "default_classifier",
    "default_detector",
    "load_default_classifier",
    "read_image",
    "to_bgr",
    "top_emotion",
]

#: Environment variable naming a saved model to use instead of the bundled default.
MODEL_ENV = "FERVISION_MODEL"
#: Environment variable naming a YuNet ``.onnx`` file for the default detector, instead
#: of the one bundled in the package.
DETECTOR_MODEL_ENV = "FERVISION_DETECTOR_MODEL"

_DEFAULTS: dict[str, object] = {}
_DEFAULTS_LOCK = threading.Lock()


@dataclass
class FaceResult:
    """One face found by :func:`analyze`.

    Attributes
    ----------
    box : tuple of int
        ``(x, y, w, h)`` in pixels of the analysed image.
    emotion : str
        The most probable class (also :attr:`dominant_emotion`).
    scores : dict of str to float
        Probability of every class of the classifier (``classifier.classes_`` order).
    detection_score : float or None
        The face detector's confidence that this is a face (YuNet and MTCNN: 0 to 1;
        the Haar backend gives none and reports 1.0); None when the result was not
        made from a detection.
    """

    box: tuple[int, int, int, int]
    emotion: str
    scores: dict[str, float] = field(default_factory=dict)
    detection_score: float | None = None

    @property
    def confidence(self) -> float:
        """Probability of :attr:`emotion`."""
        return self.scores[self.emotion]

    @property
    def dominant_emotion(self) -> str:
        """:attr:`emotion`, under the name deepface uses."""
        return self.emotion

    def to_dict(self) -> dict:
        """Return the result as JSON-ready built-in types; a stable schema.

        Every key is always present, in this order; new keys may be added in later
        versions, none is renamed or removed without a deprecation period.  The CLI's
        ``predict --json`` and the ``faces`` of :func:`fervision.analyze_files` and the
        video JSONL records are lists of these.

        ==================== ================== ========================================
        key                  type               value
        ==================== ================== ========================================
        ``box``              list of 4 int      ``[x, y, w, h]``, pixels of the image
        ``emotion``          str                the most probable class
        ``dominant_emotion`` str                the same, under deepface's name
        ``scores``           dict of str: float every class's probability (the
                                                classifier's class order; sum 1)
        ``detection_score``  float or null      the detector's confidence, 0 to 1
        ==================== ================== ========================================

        Returns
        -------
        dict
        """
        return {
            "box": [int(v) for v in self.box],
            "emotion": self.emotion,
            "dominant_emotion": self.emotion,
            "scores": {k: float(v) for k, v in self.scores.items()},
            "detection_score": (None if self.detection_score is None
                                else float(self.detection_score)),
        }

    def __getitem__(self, key: str):
        """Return ``to_dict()[key]``, so that ``face["emotion"]`` works as on a dict."""
        # Lets code written for dict results (``face["emotion"]``) keep working.
        return self.to_dict()[key]


# --------------------------------------------------------------------------- defaults
def default_detector():
    """Return the process-wide default :class:`~fervision.faces.detection.FaceDetector`.

    Made on the first call: ``FaceDetector()``, or
    ``FaceDetector(model_path=$FERVISION_DETECTOR_MODEL)`` when set.
    """
    return _cached("detector", _make_default_detector)


def default_classifier():
    """Return the process-wide default :class:`~fervision.estimator.EmotionClassifier`.

    Made on the first call: ``$FERVISION_MODEL`` (a saved ``.keras`` model) when set,
    else the bundled model set up for real time: see :func:`load_default_classifier`.
    """
    return _cached("classifier", load_default_classifier)


def _cached(key: str, factory):
    obj = _DEFAULTS.get(key)
    if obj is None:
        with _DEFAULTS_LOCK:  # two threads asking at once build it once
            obj = _DEFAULTS.get(key)
            if obj is None:
                obj = _DEFAULTS[key] = factory()
    return obj


def _make_default_detector():
    from .detection import FaceDetector

    path = os.environ.get(DETECTOR_MODEL_ENV)
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"${DETECTOR_MODEL_ENV} names {path!r}, which is not a file")
        return FaceDetector(model_path=path)
    return FaceDetector()


def load_default_classifier(realtime: bool = True):
    """Load the default classifier (a new object; :func:`default_classifier` caches one).

    ``EmotionClassifier.from_pretrained()``, or the model ``$FERVISION_MODEL`` names.
    Every path (``analyze``, video, webcam, the app, ``fervision evaluate``) uses the
    same model with the same settings: one network pass per face, no test-time
    augmentation unless asked for (``tta=``).

    Parameters
    ----------
    realtime : bool, default=True
        Kept for compatibility; it no longer changes anything (the pretrained models
        ship with test-time augmentation off).
    """
    from ..estimator import EmotionClassifier

    spec = os.environ.get(MODEL_ENV)
    if spec:
        return load_classifier(spec, what=f"${MODEL_ENV}")
    return EmotionClassifier.from_pretrained()


def load_classifier(spec, what: str = "model"):
    """Load a classifier from a pretrained model's name or a saved ``.keras`` file.

    Parameters
    ----------
    spec : str or path-like
        A name of :func:`fervision.weights.list_pretrained`, or the path of a file
        written by :meth:`EmotionClassifier.save
        <fervision.estimator.EmotionClassifier.save>`.  A value that ends in ``.keras``
        or holds a path separator is a path; anything else is a name.
    what : str, default="model"
        Where ``spec`` came from (``"--model"``, ``"$FERVISION_MODEL"``), for errors.

    Raises
    ------
    FileNotFoundError
        A path that is not a file.
    KeyError
        An unknown name; the message lists the pretrained names.
    """
    from ..estimator import EmotionClassifier

    text = os.fspath(spec)
    if text.endswith(".keras") or os.sep in text or "/" in text:
        if not Path(text).is_file():
            raise FileNotFoundError(f"{what} names {text!r}, which is not a file")
        return EmotionClassifier.load(text)
    try:
        return EmotionClassifier.from_pretrained(text)
    except KeyError as err:
        raise KeyError(f"{what}: {err.args[0]} (or give the path of a saved .keras "
                       "file)") from None


# ----------------------------------------------------------------------------- images
def read_image(path) -> np.ndarray:
    """Read an image file as a BGR uint8 array.

    See :func:`fervision.data.preprocessing.read_image`.
    """
    return _read_image(path)


def _is_pil_image(obj) -> bool:
    # Checked by module so PIL is only imported when the user already has an image of it.
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert") and hasattr(
        obj, "mode")


def _is_single_input(obj) -> bool:
    """Tell whether :func:`to_bgr` reads ``obj`` as one image (not a nested list of numbers)."""
    return (isinstance(obj, str | os.PathLike | bytes | bytearray | memoryview | np.ndarray)
            or hasattr(obj, "read") or _is_pil_image(obj))


def to_bgr(image, *, rgb: bool = False, name: str = "image") -> np.ndarray:
    """Turn any supported image input into a 3-channel BGR uint8 array.

    Parameters
    ----------
    image : str, path-like, bytes, binary file object, PIL.Image.Image or array-like
        * a path: the file is read with :func:`fervision.data.preprocessing.read_image`;
        * ``bytes`` / ``bytearray`` / ``memoryview``: an encoded image file's content;
        * an object with ``read()`` opened in binary mode (``open(p, "rb")``,
          ``io.BytesIO``, an upload): read and decoded like bytes;
        * a ``PIL.Image.Image``: taken as RGB (its colour order), whatever ``rgb`` says;
        * an array ``(H, W)`` (gray), ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``
          (alpha dropped): uint8 0-255, other integers in 0-255, or float 0-1 (the
          rules of :func:`fervision.data.preprocessing.as_uint8`: a float array in 0-255 or
          a uint16 image is refused, not clipped to white).
    rgb : bool, default=False
        Arrays are BGR as OpenCV reads them; pass True for RGB arrays (matplotlib,
        ``np.asarray(pil_image)``).
    name : str
        What to call the input in error messages.

    Raises
    ------
    TypeError
        ``image`` is none of the types above, or a file object opened in text mode.
    FileNotFoundError
        A path that does not exist.
    ValueError
        An unreadable file or bytes, or an array of the wrong shape, dtype (strings,
        objects) or range.
    """
    if isinstance(image, str | os.PathLike):
        return _read_image(image)
    if isinstance(image, bytes | bytearray | memoryview):
        return decode_image(image, name=name)
    if hasattr(image, "read") and not isinstance(image, np.ndarray):
        data = image.read()
        label = getattr(image, "name", None)
        label = f"{name} (file {label!r})" if isinstance(label, str) else name
        if isinstance(data, str):
            raise TypeError(f"{label} is a file opened in text mode; open it with 'rb'")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{label}.read() returned {type(data).__name__}, not bytes")
        return decode_image(data, name=label)
    if _is_pil_image(image):
        if image.mode not in ("I", "I;16", "I;16B", "I;16L", "F"):
            # Palette, gray, RGBA, CMYK, ...: PIL's own conversion (alpha dropped).
            return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
        image, rgb = np.asarray(image), True  # 16/32-bit gray: the array range rules
    elif not isinstance(image, np.ndarray | list | tuple) and not hasattr(image, "__array__"):
        raise TypeError(
            f"{name} must be a path, bytes, a binary file object, a PIL image or a numpy "
            f"array, got {type(image).__name__}"
        )
    arr = np.asarray(image)
    if arr.dtype.kind in "USO":
        raise ValueError(
            f"{name} ({type(image).__name__}) has dtype {arr.dtype}, not an image: pass a "
            "path, bytes, a PIL image or a numeric array (analyze also takes a list of those)"
        )
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(
            f"{name} has shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = as_uint8(arr, name)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    if arr.shape[-1] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if rgb else np.ascontiguousarray(arr)


# ----------------------------------------------------------------------------- analyze
def detect_and_crop(image_bgr: np.ndarray, detector, *, name: str = "image"):
    """``(faces, crops)`` of one BGR uint8 frame: the detector's faces and their crops.

    An OpenCV or arithmetic failure caused by this one image (an extreme aspect ratio,
    say) becomes a ``ValueError`` naming ``name``, so a batch can report it and go on.
    """
    try:
        # Detectors lock their own stateful backend, so they can be shared by threads.
        faces = list(detector.detect(image_bgr))
        return faces, detector.crops(image_bgr, faces)
    except (cv2.error, ArithmeticError) as err:
        shape = getattr(image_bgr, "shape", None)
        reason = getattr(err, "err", None) or str(err).strip().splitlines()[-1]
        raise ValueError(
            f"{name}: face detection failed on this image (shape {shape}): "
            f"{type(err).__name__}: {reason}"
        ) from err


def classify_faces(image_bgr: np.ndarray, detector, classifier, *, name: str = "image"):
    """Detect faces and return ``(faces, proba, classes)`` for one BGR uint8 frame.

    All crops of the frame go through ONE ``predict_proba`` call.  ``proba`` is
    ``(k, n_classes)`` float (``(0, n_classes)`` when no face was found).  A detection
    failure caused by this one image is a ``ValueError`` naming ``name``
    (:func:`detect_and_crop`).
    """
    classes = [str(c) for c in classifier.classes_]
    faces, crops = detect_and_crop(image_bgr, detector, name=name)
    if not faces:
        return faces, np.zeros((0, len(classes)), dtype=np.float32), classes
    proba = np.asarray(classifier.predict_proba(crops))
    return faces, proba, classes


def results_from(faces, proba, classes) -> list[FaceResult]:
    """Build :class:`FaceResult` objects from detector faces and class probabilities."""
    out = []
    for face, row in zip(faces, proba, strict=True):
        scores = {c: float(p) for c, p in zip(classes, row, strict=True)}
        box = tuple(int(v) for v in face.box)
        out.append(FaceResult(box=box, emotion=classes[int(np.argmax(row))], scores=scores,
                              detection_score=getattr(face, "score", None)))
    return out


def analyze_frame(image_bgr: np.ndarray, detector, classifier, *,
                  name: str = "image") -> list[FaceResult]:
    """Run :func:`analyze` on a BGR uint8 frame with an explicit detector and classifier.

    No conversion, no defaults: the per-frame step of video processing.  ``name`` is
    what errors call the frame.
    """
    return results_from(*classify_faces(image_bgr, detector, classifier, name=name))


def analyze(image, detector=None, classifier=None, *, rgb: bool = False, name: str | None = None):
    """Find the faces in an image and recognise the emotion of each.

    Parameters
    ----------
    image : image input or list of image inputs
        One image: a file path, encoded bytes, a binary file object, a
        ``PIL.Image.Image`` (taken as RGB), or an array in BGR order as OpenCV reads it
        (gray and BGRA are accepted too; uint8 0-255 or float 0-1, see
        :func:`to_bgr`).  A list or tuple of such inputs (as DeepFace accepts) gives a
        list of results, one per input; a nested list of numbers is one array.
    detector : FaceDetector, optional
        Default: ``FaceDetector()``, built once and reused.
    classifier : EmotionClassifier, optional
        A fitted classifier.  Default: ``$FERVISION_MODEL`` when set, else
        ``EmotionClassifier.from_pretrained()``; built once and reused.
    rgb : bool, default=False
        Set when ``image`` is an RGB array (matplotlib, Streamlit, ``np.asarray`` of a
        PIL image).  PIL images, files and bytes know their colour order and ignore it.
    name : str, optional
        What to call the image in error messages (default: its path, or ``"image"``;
        ``"images[i]"`` for list items).

    Returns
    -------
    list of FaceResult, or list of lists of FaceResult for a list input
        One per face, largest first; ``result.to_dict()`` gives
        ``{"box": [x, y, w, h], "emotion": "happy", "dominant_emotion": "happy",
        "scores": {"angry": 0.01, ...}, "detection_score": 0.93}`` (the schema:
        :meth:`FaceResult.to_dict`).

    Raises
    ------
    FileNotFoundError
        ``image`` is a path that does not exist.
    ValueError
        ``image`` is not a readable image (corrupt, larger than
        :data:`fervision.data.preprocessing.MAX_IMAGE_PIXELS`, ...), an array of the wrong
        shape, dtype or range, or an image detection fails on; the message names it.
        For a list, the first failing item is named by its index.
    TypeError
        ``image`` is of a type not listed above.

    Examples
    --------
    >>> import fervision
    >>> for face in fervision.analyze("group.jpg"):  # doctest: +SKIP
    ...     print(face.box, face.emotion, f"{face.confidence:.0%}")
    """
    if isinstance(image, list | tuple) and image and all(_is_single_input(i) for i in image):
        base = name or "images"
        return [
            analyze(item, detector, classifier, rgb=rgb, name=_input_name(item, f"{base}[{i}]"))
            for i, item in enumerate(image)
        ]
    name = name or _input_name(image, "image")
    bgr = to_bgr(image, rgb=rgb, name=name)  # before loading models: bad input fails fast
    detector = detector if detector is not None else default_detector()
    classifier = classifier if classifier is not None else default_classifier()
    return analyze_frame(bgr, detector, classifier, name=name)


def top_emotion(image, detector=None, classifier=None, *,
                rgb: bool = False) -> tuple[str | None, float | None]:
    """Return the emotion of the largest face and its probability, or ``(None, None)``.

    Parameters
    ----------
    image, detector, classifier, rgb
        As for :func:`analyze` (one image).

    Returns
    -------
    (str, float) or (None, None)
        ``(emotion, score)`` of the largest face (``analyze(image)[0]``), as fer's
        ``FER.top_emotion``; ``(None, None)`` when no face is found.

    Examples
    --------
    >>> import fervision
    >>> fervision.top_emotion("portrait.jpg")  # doctest: +SKIP
    ('happy', 0.89)
    """
    if isinstance(image, list | tuple) and image and all(_is_single_input(i) for i in image):
        raise TypeError("top_emotion takes one image; use analyze() for a list")
    faces = analyze(image, detector, classifier, rgb=rgb)
    if not faces:
        return None, None
    return faces[0].emotion, float(faces[0].confidence)


def _input_name(image, default: str) -> str:
    if isinstance(image, str | os.PathLike):
        return f"{default} ({os.fspath(image)!r})" if default != "image" else repr(
            os.fspath(image))
    return default


# ---------------------------------------------------------------------------- annotate
# BGR colours per emotion; anything else (custom classes) gets a fixed fallback.
_COLORS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (150, 50, 150),
    "happy": (0, 200, 255),
    "sad": (200, 90, 30),
    "surprise": (0, 140, 255),
    "neutral": (170, 170, 170),
}
_FALLBACK_COLOR = (255, 200, 0)


def _as_face_dict(face) -> dict:
    if isinstance(face, FaceResult):
        return face.to_dict()
    if isinstance(face, dict):
        return face
    raise TypeError(f"expected FaceResult or dict faces, got {type(face).__name__}")


def annotate(image, faces, *, copy: bool = True, rgb: bool = False,
             numbered: bool = False) -> np.ndarray:
    """Draw each face's box, emotion and confidence on an image.

    Parameters
    ----------
    image : str, path-like or ndarray
        The image the faces were found in (BGR, or RGB with ``rgb=True``).
    faces : list of FaceResult or dict
        As returned by :func:`analyze` (dicts need ``"box"``, and may carry
        ``"emotion"`` and ``"scores"``).
    copy : bool, default=True
        Draw on a copy; with False a 3-channel uint8 array is drawn on in place.
    rgb : bool, default=False
        ``image`` is RGB; colours are then swapped so they look the same.
    numbered : bool, default=False
        Start each label with the face's 1-based position in ``faces`` ("1 happy 89%"),
        to match a list of results ("Face 1", "Face 2", as in the app).

    Returns
    -------
    ndarray
        The annotated image, uint8, in the colour order it came in (gray and float
        inputs come back as BGR/RGB uint8).
    """
    if isinstance(image, str | os.PathLike):
        out = read_image(image)
    else:
        arr = np.asarray(image)
        in_place_ok = arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3
        if in_place_ok:
            out = arr.copy() if copy else arr
        else:  # conversion makes a new array anyway
            out = to_bgr(arr)
            if rgb:
                out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    h_img, w_img = out.shape[:2]
    scale = max(0.45, min(1.2, min(h_img, w_img) / 800))
    thick = max(1, round(2 * scale))
    for number, face in enumerate(faces, start=1):
        d = _as_face_dict(face)
        x, y, w, h = (int(v) for v in d["box"])
        emotion = d.get("emotion")
        color = _COLORS.get(emotion, _FALLBACK_COLOR)
        # Black or white text, whichever reads better on the label colour.
        luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        text_color = (0, 0, 0) if luma > 140 else (255, 255, 255)
        if rgb:
            color = color[::-1]
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick, cv2.LINE_AA)
        if emotion is None and not numbered:
            continue
        label = "" if emotion is None else str(emotion)
        scores = d.get("scores") or {}
        if emotion in scores:
            label += f" {float(scores[emotion]):.0%}"
        if numbered:
            label = f"{number} {label}".rstrip()
        _draw_label(out, label, x, y, color, text_color, scale, thick)
    return out


def _draw_label(img, label, x, y, color, text_color, scale, thick) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(label, font, scale, thick)
    pad = max(2, thick + 1)
    top = y - th - base - 2 * pad
    if top < 0:  # no room above the box: put the label just inside its top edge
        top = y
    left = min(max(x, 0), max(0, img.shape[1] - tw - 2 * pad))
    cv2.rectangle(img, (left, top), (left + tw + 2 * pad, top + th + base + 2 * pad), color, -1)
    cv2.putText(img, label, (left + pad, top + pad + th), font, scale, text_color, thick,
                cv2.LINE_AA)
