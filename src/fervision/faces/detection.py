"""Face detection and face crops: :class:`Face` and the :class:`FaceDetector` transformer.

Three backends are available:

``"yunet"`` (default)
    OpenCV's ``cv2.FaceDetectorYN`` running the YuNet ONNX model (boxes, scores and five
    landmarks).  A YuNet model ships inside the package, so it works offline;
    opencv_zoo's 2023mar release is available with
    ``model_path=fervision.weights.fetch("yunet-2023mar")`` (SHA-256 verified).
``"haar"``
    OpenCV's Haar cascade ``haarcascade_frontalface_default.xml`` (boxes only, no
    landmarks; ``score`` is always 1.0 because the cascade gives no confidence).
``"mtcnn"``
    The optional ``mtcnn`` package (``pip install "fervision[mtcnn]"``, TensorFlow based).

Landmarks follow YuNet's order, in image coordinates ``(x, y)``: the subject's right
eye, left eye, nose tip, right mouth corner, left mouth corner.  For a frontal face the
subject's right eye appears on the *left* of the image, so ``landmarks[0, 0] <
landmarks[1, 0]``.

Images are BGR ``uint8`` arrays ``(H, W, 3)`` (as returned by ``cv2.imread``) or
grayscale ``uint8`` arrays ``(H, W)`` / ``(H, W, 1)``.
"""

from __future__ import annotations

import math
import os
import pathlib
import threading
import warnings

import cv2
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..data.preprocessing import read_image, resize_gray
from ._face import Face, NoFaceWarning, box_iou

__all__ = ["BACKENDS", "Face", "FaceDetector", "NoFaceWarning", "box_iou", "check_image"]

BACKENDS = ("yunet", "haar", "mtcnn")
#: YuNet model shipped in the wheel (sha256 ebafce4e...c22f0f0), the offline default.
BUNDLED_YUNET = (pathlib.Path(__file__).parent.parent / "models"
                 / "face_detection_yunet_2026may.onnx")
ON_NO_FACE = ("center", "raise")
# Per-backend score threshold used when ``score_threshold=None``.
_DEFAULT_SCORE = {"yunet": 0.6, "haar": 0.0, "mtcnn": 0.8}
_YUNET_NMS = 0.3
_YUNET_TOP_K = 5000
_HAAR_FILE = "haarcascade_frontalface_default.xml"
# Images whose shorter side is below this (or below min_face_size) have no face.
_MIN_IMAGE_SIDE = 10
# Downscaling for detection (detect_size) stops when the shorter side reaches this.
_MIN_DETECT_SIDE = 32
# Guards the lazy creation of each detector's own lock (two threads' first calls).
_LOCK_INIT = threading.Lock()


def check_image(image, name: str = "image") -> np.ndarray:
    """Validate one image and return it as a BGR or grayscale uint8 array.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` / ``(H, W, 1)`` grayscale or ``(H, W, 3)`` BGR, dtype uint8.
    name : str, default="image"
        What to call the image in error messages (e.g. ``"images[3]"``).

    Returns
    -------
    ndarray of shape (H, W) or (H, W, 3), uint8

    Raises
    ------
    TypeError
        Not an array.
    ValueError
        Wrong dtype, number of dimensions or channels, or an empty image.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array (BGR uint8 (H, W, 3) or grayscale (H, W)), "
            f"got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"{name} has dtype {image.dtype}; expected uint8 (0-255). For float images in "
            "[0, 1] use (image * 255).round().astype(np.uint8)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(
            f"{name} has shape {image.shape} (4 channels); drop the alpha channel first, "
            "e.g. cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)"
        )
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(
            f"{name} has shape {image.shape}; expected BGR (H, W, 3) or grayscale (H, W)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    return image


def _plausible(face: Face, width: int, height: int) -> bool:
    """Tell whether ``face`` has a plausible box for an image of this size.

    Plausible: a box of positive size that overlaps the image and is at most twice as
    wide and twice as high as the image.

    Anything else is a backend artefact (seen from YuNet on extreme aspect ratios: a
    305-pixel-wide "face" in a 1-pixel-wide image), and a huge box would make
    :meth:`FaceDetector.crop` allocate a huge patch.
    """
    x, y, w, h = face.box
    return (0 < w <= 2 * width and 0 < h <= 2 * height and x < width and y < height
            and x + w > 0 and y + h > 0)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def _to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _read_image(path, name: str) -> np.ndarray:
    return read_image(path, name=name)


class FaceDetector(TransformerMixin, BaseEstimator):
    """Detect faces and turn images into aligned grayscale face crops.

    As a scikit-learn transformer it maps a batch of images to the crop of the largest
    face in each, ``(N, output_size, output_size)`` uint8, so it can be chained with a
    classifier: ``make_pipeline(FaceDetector(), EmotionClassifier())``.  It learns
    nothing: ``fit`` only returns ``self``, and ``transform`` may be called unfitted.

    Parameters
    ----------
    backend : {"yunet", "haar", "mtcnn"}, default="yunet"
        Detection backend (see the module docs and ``docs/detectors.md`` for the
        measured accuracy/speed that made YuNet the default).
    score_threshold : float or None, default=None
        Minimum confidence of a kept face.  None uses the backend's default (YuNet 0.6,
        MTCNN 0.8).  Ignored by the Haar backend, which has no confidence.
    min_face_size : int, default=20
        Faces whose box is smaller than this (in pixels, either side) are dropped, and
        an image whose shorter side is below ``max(min_face_size, 10)`` has no face.
    max_faces : int or None, default=None
        Keep at most this many faces (the largest) per image.
    margin : float, default=0.1
        Fraction of the box size added on *each* side of a crop: the crop is a square
        of side ``max(w, h) * (1 + 2 * margin)`` centred on the box.
    output_size : int, default=48
        Side of the square crops.
    align : bool, default=True
        Rotate crops so the eyes are horizontal (when the backend gives landmarks).
    model_path : str or path-like or None, default=None
        YuNet ONNX file.  None uses the YuNet model shipped inside the package
        (``fervision/models/face_detection_yunet_2026may.onnx``, 230 KB), so detection
        works with no network.  Pass ``fervision.weights.fetch("yunet-2023mar")`` for
        opencv_zoo's 2023mar release (downloaded once, SHA-256 verified).
    detect_size : int or None, default=320
        Images whose longer side exceeds this are scaled down to it for detection
        (boxes and landmarks are mapped back, and crops are cut from the full-resolution
        image).  Detection cost grows with the pixel count, and a face that fills a
        webcam frame is still 100+ pixels at 320, so this keeps video real-time.  Use
        None (full resolution) for photos with many small faces.  A panorama is not
        scaled below 32 pixels on its shorter side.
    on_no_face : {"raise", "center"}, default="raise"
        What :meth:`transform` does with an image without a face.  ``"raise"`` (the
        default: a pipeline must not classify a face that is not there) raises
        ``ValueError`` naming the index of every such image, after checking them all.
        ``"center"`` uses a centred square crop of the whole image instead, emits one
        :class:`NoFaceWarning` per call and records the images in ``no_face_mask_``;
        choose it for data sets of already-cropped faces, where the detector may miss
        a face that fills the image.

    Attributes
    ----------
    no_face_mask_ : ndarray of shape (N,), bool
        For the most recent :meth:`transform` call, True where no face was found (and
        the centre crop was used).  Use :meth:`crop_largest` to get the mask returned
        instead of stored.

    Notes
    -----
    The loaded detector is cached on the instance but not pickled or cloned; it is
    recreated lazily after unpickling, ``clone`` or ``set_params``.

    One instance may be shared by threads: the backend (OpenCV's ``FaceDetectorYN``
    keeps per-call state such as the input size) is called under a per-instance lock,
    so calls to :meth:`detect` on the same instance run one at a time.  For parallel
    detection give each thread its own ``sklearn.base.clone`` of the detector.
    """

    def __init__(
        self,
        backend="yunet",
        score_threshold=None,
        min_face_size=20,
        max_faces=None,
        margin=0.1,
        output_size=48,
        align=True,
        model_path=None,
        on_no_face="raise",
        detect_size=320,
    ):
        self.backend = backend
        self.score_threshold = score_threshold
        self.min_face_size = min_face_size
        self.max_faces = max_faces
        self.margin = margin
        self.output_size = output_size
        self.align = align
        self.model_path = model_path
        self.on_no_face = on_no_face
        self.detect_size = detect_size

    # ------------------------------------------------------------------ sklearn
    def __sklearn_tags__(self):
        """Return scikit-learn's tags: no fit required, 3-D image batches as input."""
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: nothing is learned
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags

    def __getstate__(self):
        """Return the state to pickle, without the loaded detector engine."""
        # The OpenCV/TensorFlow detector objects cannot be pickled; rebuild lazily.
        state = super().__getstate__()
        for key in ("_engine", "_engine_key", "_lock"):
            state.pop(key, None)
        return state

    def fit(self, X, y=None):
        """Check the parameters and return ``self`` (nothing is learned).

        Parameters
        ----------
        X : ignored
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        return self

    def transform(self, X):
        """Crop the largest face of each image.

        Parameters
        ----------
        X : sequence of images or image paths, or ndarray (N, H, W[, 3]) uint8
            BGR ``(H, W, 3)`` or grayscale ``(H, W)`` uint8 arrays, and/or paths of
            image files (read with OpenCV, any format it decodes).  All are validated
            (and files read) before any detection runs.

        Returns
        -------
        ndarray of shape (N, output_size, output_size), uint8
        """
        crops, found = self.crop_largest(X)
        self.no_face_mask_ = ~found
        return crops

    def crop_largest(self, X):
        """Like :meth:`transform` but return the face mask instead of storing it.

        Parameters
        ----------
        X : sequence of images or image paths, or ndarray (N, H, W[, 3]) uint8

        Returns
        -------
        crops : ndarray of shape (N, output_size, output_size), uint8
        found : ndarray of shape (N,), bool
            False where no face was found (only with ``on_no_face="center"``, which
            then used the centred crop; ``"raise"`` raises instead).
        """
        self._check_params()
        images = self._load_batch(X)
        size = self.output_size
        crops = np.empty((len(images), size, size), dtype=np.uint8)
        found = np.zeros(len(images), dtype=bool)
        for i, image in enumerate(images):
            faces = self.detect(image)
            if faces:
                crops[i] = self.crop(image, faces[0])
                found[i] = True
            else:
                crops[i] = self._center_crop(image)
        missing = np.flatnonzero(~found)
        if missing.size:
            shown = ", ".join(str(i) for i in missing[:20]) + (" ..." if missing.size > 20 else "")
            if self.on_no_face == "raise":
                raise ValueError(
                    f"no face found in {missing.size} of {len(images)} image(s), at "
                    f"indices {shown} (use on_no_face='center' to centre-crop them instead)"
                )
            warnings.warn(
                f"no face found in {missing.size} of {len(images)} image(s) (indices "
                f"{shown}); used a centred square crop. See no_face_mask_.",
                NoFaceWarning,
                stacklevel=3,
            )
        return crops, found

    # ---------------------------------------------------------------- detection
    def detect(self, image) -> list[Face]:
        """Detect faces in one image.

        Parameters
        ----------
        image : ndarray
            BGR ``(H, W, 3)`` or grayscale ``(H, W)`` uint8.

        Returns
        -------
        list of Face
            Largest first, at most ``max_faces``.
        """
        self._check_params()
        image = check_image(image)
        height, width = image.shape[:2]
        if min(height, width) < max(self.min_face_size, _MIN_IMAGE_SIDE):
            return []  # a 2 x 4000 strip holds no face (and YuNet returns junk boxes on it)
        backend = getattr(self, f"_detect_{self.backend}")
        scale = 1.0
        small = image
        if self.detect_size is not None and max(height, width) > self.detect_size:
            # Keep a panorama's shorter side at >= _MIN_DETECT_SIDE pixels: on inputs a
            # few pixels high YuNet returns inf or junk boxes, and misses real faces.
            scale = max(self.detect_size / max(height, width),
                        min(1.0, _MIN_DETECT_SIDE / min(height, width)))
        if scale < 1.0:
            # An explicit size of at least 1 pixel: fx/fy would round a 2 x 4000 image's
            # height to 0 and make cv2.resize fail.
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            scale = 1.0
        with self._backend_lock():  # the backends keep per-call state: one call at a time
            faces = backend(small)
        if scale != 1.0:
            faces = [f.scaled(1.0 / scale) for f in faces]
        faces = [f for f in faces if _plausible(f, width, height)
                 and min(f.box[2], f.box[3]) >= self.min_face_size]
        faces.sort(key=lambda f: (f.area, f.score), reverse=True)
        return faces if self.max_faces is None else faces[: self.max_faces]

    def _backend_lock(self) -> threading.Lock:
        lock = self.__dict__.get("_lock")
        if lock is None:
            with _LOCK_INIT:
                lock = self.__dict__.setdefault("_lock", threading.Lock())
        return lock

    def _score_threshold(self) -> float:
        if self.score_threshold is None:
            return _DEFAULT_SCORE[self.backend]
        return float(self.score_threshold)

    def _engine_for(self, key, factory):
        """Return the cached backend object, rebuilding it when its settings changed."""
        if getattr(self, "_engine_key", None) != key:
            self._engine = factory()
            self._engine_key = key
        return self._engine

    def _detect_yunet(self, image: np.ndarray) -> list[Face]:
        model = os.fspath(self.model_path if self.model_path is not None else BUNDLED_YUNET)
        if not os.path.isfile(model):
            raise FileNotFoundError(f"YuNet model_path not found: {model}")
        threshold = self._score_threshold()
        h, w = image.shape[:2]
        detector = self._engine_for(
            ("yunet", model, threshold),
            lambda: cv2.FaceDetectorYN.create(
                model, "", (w, h), threshold, _YUNET_NMS, _YUNET_TOP_K
            ),
        )
        detector.setInputSize((w, h))
        _, raw = detector.detect(_to_bgr(image))
        if raw is None:
            return []
        # On images a few pixels high YuNet returns rows of inf/NaN: not faces.
        raw = raw[np.isfinite(raw).all(axis=1)]
        # Row: x, y, w, h, 5 x (x, y) landmarks, score.
        return [Face(row[:4], row[14], row[4:14].reshape(5, 2)) for row in raw]

    def _detect_haar(self, image: np.ndarray) -> list[Face]:
        if not hasattr(cv2, "CascadeClassifier"):
            raise ImportError(
                f"backend='haar' needs cv2.CascadeClassifier, which OpenCV {cv2.__version__} "
                "does not have (it was removed in OpenCV 5). Install "
                "'opencv-python-headless<5' or use backend='yunet'."
            )

        def load():
            path = os.path.join(cv2.data.haarcascades, _HAAR_FILE)
            cascade = cv2.CascadeClassifier(path)
            if cascade.empty():
                raise OSError(f"could not load the Haar cascade {path}")
            return cascade

        cascade = self._engine_for(("haar",), load)
        # Histogram equalisation makes the cascade less sensitive to lighting.
        gray = cv2.equalizeHist(_to_gray(image))
        m = max(int(self.min_face_size), 1)
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        return [Face(box, 1.0, None) for box in np.reshape(boxes, (-1, 4))]

    def _detect_mtcnn(self, image: np.ndarray) -> list[Face]:
        def load():
            try:
                from mtcnn import MTCNN
            except ImportError as err:
                raise ImportError(
                    "backend='mtcnn' needs the optional 'mtcnn' package: "
                    "pip install 'fervision[mtcnn]' (or pip install mtcnn), "
                    "or use backend='yunet'."
                ) from err
            return MTCNN(device="CPU:0")

        detector = self._engine_for(("mtcnn",), load)
        rgb = cv2.cvtColor(_to_bgr(image), cv2.COLOR_BGR2RGB)
        # min_face_size is applied afterwards in detect(): mtcnn 1.0.0's own
        # min_face_size kwarg made it miss clear 100 px faces when set to 60.
        raw = detector.detect_faces(rgb, threshold_onet=self._score_threshold())
        faces = []
        for r in raw:
            kp = r["keypoints"]
            # mtcnn names keypoints from the viewer's side ("left_eye" is on the image's
            # left), i.e. the mirror of YuNet's subject-side order.
            lm = [kp["left_eye"], kp["right_eye"], kp["nose"], kp["mouth_left"], kp["mouth_right"]]
            faces.append(Face(r["box"], r["confidence"], np.asarray(lm, dtype=np.float32)))
        return faces

    # -------------------------------------------------------------------- crops
    def crop(self, image, face: Face) -> np.ndarray:
        """Square grayscale crop of one face, aligned when landmarks are known.

        With ``align=True`` and landmarks, the image is rotated about the eye centre so
        the eyes are horizontal; then the square of side ``max(w, h) * (1 + 2 *
        margin)`` centred on the (rotated) box centre is cut out, padding with the
        replicated border where it leaves the image, and resized to ``output_size``.

        Parameters
        ----------
        image : ndarray
            BGR ``(H, W, 3)`` or grayscale ``(H, W)`` uint8.
        face : Face

        Returns
        -------
        ndarray of shape (output_size, output_size), uint8
        """
        self._check_params()
        gray = _to_gray(check_image(image))
        x, y, w, h = face.box
        center = np.array([x + w / 2.0, y + h / 2.0])
        side = max(round(float(max(w, h) * (1 + 2 * float(self.margin)))), 1)
        rotation = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if self.align and face.landmarks is not None:
            right_eye, left_eye = face.landmarks[0], face.landmarks[1]
            dx, dy = left_eye - right_eye
            angle = math.degrees(math.atan2(dy, dx))
            eyes = (right_eye + left_eye) / 2.0
            rotation = cv2.getRotationMatrix2D((float(eyes[0]), float(eyes[1])), angle, 1.0)
            center = rotation @ np.append(center, 1.0)
        # One warp does rotation + cut-out (+ replicate padding); resizing is the shared
        # preprocessing step so crops are scaled exactly like every other image.
        shift = np.array([[0.0, 0.0, side / 2.0 - center[0]], [0.0, 0.0, side / 2.0 - center[1]]])
        matrix = rotation + shift
        patch = cv2.warpAffine(
            gray, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return resize_gray(patch, int(self.output_size))

    def crops(self, image, faces) -> np.ndarray:
        """Crops of several faces of one image.

        Parameters
        ----------
        image : ndarray
            BGR ``(H, W, 3)`` or grayscale ``(H, W)`` uint8.
        faces : sequence of Face

        Returns
        -------
        ndarray of shape (len(faces), output_size, output_size), uint8
        """
        size = int(self.output_size)
        if len(faces) == 0:
            return np.empty((0, size, size), dtype=np.uint8)
        return np.stack([self.crop(image, face) for face in faces])

    def _center_crop(self, image: np.ndarray) -> np.ndarray:
        gray = _to_gray(image)
        h, w = gray.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return resize_gray(gray[top : top + side, left : left + side], int(self.output_size))

    # --------------------------------------------------------------- validation
    def _check_params(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.on_no_face not in ON_NO_FACE:
            raise ValueError(f"on_no_face must be one of {ON_NO_FACE}, got {self.on_no_face!r}")
        if not (isinstance(self.output_size, int | np.integer) and self.output_size >= 8):
            raise ValueError(f"output_size must be an int >= 8, got {self.output_size!r}")
        if not (isinstance(self.margin, int | float) and 0 <= self.margin <= 2):
            raise ValueError(f"margin must be a number in [0, 2], got {self.margin!r}")
        if self.max_faces is not None and not (
            isinstance(self.max_faces, int | np.integer) and self.max_faces >= 1
        ):
            raise ValueError(f"max_faces must be None or an int >= 1, got {self.max_faces!r}")
        if not (isinstance(self.min_face_size, int | float) and self.min_face_size >= 0):
            raise ValueError(f"min_face_size must be a number >= 0, got {self.min_face_size!r}")
        if self.detect_size is not None and not (
            isinstance(self.detect_size, int | np.integer) and self.detect_size >= 32
        ):
            raise ValueError(f"detect_size must be None or an int >= 32, got {self.detect_size!r}")
        if self.score_threshold is not None and not (
            isinstance(self.score_threshold, int | float) and 0 <= self.score_threshold <= 1
        ):
            raise ValueError(
                f"score_threshold must be None or in [0, 1], got {self.score_threshold!r}"
            )

    @staticmethod
    def _load_batch(X) -> list[np.ndarray]:
        """Validate every image (reading paths) before any detection runs."""
        if isinstance(X, str | os.PathLike):
            raise TypeError(
                "X must be a sequence of images or paths, got a single path; "
                "wrap it in a list: [path]"
            )
        if isinstance(X, np.ndarray):
            if X.dtype != object and X.ndim not in (3, 4):
                raise ValueError(
                    f"X has shape {X.shape}; expected a batch (N, H, W) or (N, H, W, 3) of "
                    "uint8 images, or a list of images / paths"
                )
            items = list(X)
        else:
            try:
                items = list(X)
            except TypeError:
                raise TypeError(
                    f"X must be a sequence of images or paths, got {type(X).__name__}"
                ) from None
        if not items:
            raise ValueError("X is empty: at least one image is required")
        images = []
        for i, item in enumerate(items):
            name = f"X[{i}]"
            if isinstance(item, str | os.PathLike):
                images.append(_read_image(item, name))
            else:
                images.append(check_image(item, name))
        return images
