"""fervision's Streamlit app: upload a photo, see each face's emotion.

Run it with ``fervision app`` or ``streamlit run`` on this file (needs
``pip install "fervision[app]"``).  It uses the default models of
:func:`fervision.analyze`; the sidebar picks another bundled emotion model
(:func:`fervision.weights.list_pretrained`).  Point ``FERVISION_MODEL`` at a pretrained
name or a ``.keras`` file saved by ``EmotionClassifier.save`` (and
``FERVISION_DETECTOR_MODEL`` at a YuNet ``.onnx`` file on an offline machine) to change
what "default" means.

The page logic lives in :func:`process_upload` (bytes in, annotated image and results
out), which has no Streamlit dependency, and :func:`render`, which draws the page.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fervision.data.preprocessing import decode_image
from fervision.faces.analysis import (
    FaceResult,
    analyze_frame,
    annotate,
    default_classifier,
    default_detector,
)

#: File types the uploader accepts.
UPLOAD_TYPES = ("jpg", "jpeg", "png")
#: Larger uploads are scaled down to this longest side before analysis (phone photos
#: are 4000+ px: slower to detect in and too big to show).
MAX_SIDE = 1600


@dataclass
class UploadResult:
    """What the app shows for one upload.

    Attributes
    ----------
    annotated_rgb : ndarray (H, W, 3) uint8
        The image with boxes and labels, RGB for display.
    faces : list of FaceResult
        Largest first; boxes are in ``annotated_rgb``'s pixels.
    """

    annotated_rgb: np.ndarray
    faces: list[FaceResult]


def decode_upload(data: bytes, name: str = "upload") -> np.ndarray:
    """Decode uploaded bytes into a BGR uint8 image, scaled down to :data:`MAX_SIDE`.

    The library's one reader (:func:`fervision.data.preprocessing.decode_image`), so an
    upload gets the same checks as a file: its pixel limit
    (``$FERVISION_MAX_IMAGE_PIXELS``, checked before decoding) and a ``ValueError`` for
    every kind of unreadable file.

    Raises
    ------
    ValueError
        Empty data, not an image OpenCV can decode, or too many pixels; the message
        names ``name``.
    """
    image = decode_image(bytes(data or b""), name=repr(name))
    height, width = image.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale < 1:
        # An explicit size of at least 1 pixel: fx/fy would round a 1 x 5000 image's
        # height to 0 and make cv2.resize fail.
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def process_upload(data: bytes, detector, classifier, name: str = "upload") -> UploadResult:
    """Analyse an uploaded image file's bytes.

    Parameters
    ----------
    data : bytes
        The uploaded file.
    detector, classifier
        A :class:`~fervision.faces.detection.FaceDetector` and a fitted
        :class:`~fervision.estimator.EmotionClassifier`.
    name : str
        The file's name, for error messages.

    Returns
    -------
    UploadResult

    Raises
    ------
    ValueError
        The upload is not a readable image, or face detection failed on it; the
        message names ``name``.
    """
    image = decode_upload(data, name)
    faces = analyze_frame(image, detector, classifier, name=repr(name))
    # Numbered boxes, in the order of the "Face 1", "Face 2" charts (face_heading).
    annotated = annotate(image, faces, copy=False, numbered=True)
    return UploadResult(cv2.cvtColor(annotated, cv2.COLOR_BGR2RGB), faces)


def face_heading(number: int, face: FaceResult) -> str:
    """Return the heading above a face's chart, "Face 1: happy (89%)".

    ``number`` is 1-based and is the number drawn in that face's box.
    """
    return f"Face {number}: {face.emotion} ({face.confidence:.0%})"


def probability_chart(face: FaceResult) -> tuple[dict, dict]:
    """Return ``(data, spec)`` for ``st.vega_lite_chart``: one bar per emotion.

    One horizontal bar per emotion, in the model's order, on a probability axis from 0
    to 1 whatever the scores.
    """
    data = {"emotion": list(face.scores),
            "probability": [float(v) for v in face.scores.values()]}
    spec = {
        "mark": {"type": "bar", "tooltip": True},
        "height": 220,
        "encoding": {
            "y": {"field": "emotion", "type": "nominal", "sort": None, "title": None},
            "x": {"field": "probability", "type": "quantitative", "title": "probability",
                  "scale": {"domain": [0, 1]}, "axis": {"format": ".0%"}},
        },
    }
    return data, spec


def render() -> None:
    """Draw the page (runs on every Streamlit rerun)."""
    import pandas as pd
    import streamlit as st

    st.set_page_config(page_title="fervision", page_icon=":performing_arts:", layout="wide")
    st.title("fervision: facial emotion recognition")
    st.write(
        "Upload a photo with one or more faces. Each face is found, boxed and labelled "
        "with its most likely emotion; the chart shows the probability of every emotion."
    )
    model_name = st.sidebar.selectbox(
        "Emotion model", model_choices(),
        help="default: small and fast, trained on FER+; ferplus-large: larger, "
             "slower, a little less accurate on FER+ but steadier on very dark faces; fer2013: "
             "trained on FER2013's original labels. See the model card.")
    upload = st.file_uploader("Photo (JPG or PNG)", type=list(UPLOAD_TYPES))
    if upload is None:
        st.info("Choose a JPG or PNG image to analyse.")
        return

    try:
        detector, classifier = _models(model_name)
    except Exception as err:  # shown to the user instead of a traceback
        st.error(f"The emotion model could not be loaded: {err}")
        return
    try:
        result = process_upload(upload.getvalue(), detector, classifier, name=upload.name)
    except ValueError as err:
        st.error(f"Unreadable upload: {err}")
        return

    left, right = st.columns([3, 2])
    n = len(result.faces)
    left.image(result.annotated_rgb, caption=f"{upload.name}: {n} face{'s' * (n != 1)}",
               width="stretch")
    if not result.faces:
        right.warning(
            "No face found in this image. Try a photo where the face is frontal, "
            "well lit and at least about 40 pixels wide."
        )
        return
    for i, face in enumerate(result.faces, start=1):
        right.subheader(face_heading(i, face))
        data, spec = probability_chart(face)
        right.vega_lite_chart(pd.DataFrame(data), spec)


def model_choices() -> list[str]:
    """Return the sidebar's emotion models, ``"default"`` first.

    ``"default"`` (what :func:`fervision.analyze` uses, ``$FERVISION_MODEL`` included)
    first, then the other pretrained names.
    """
    from fervision.weights import list_pretrained

    return ["default"] + [n for n in list_pretrained() if n != "default"]


def _models(name: str = "default"):
    import streamlit as st

    @st.cache_resource(show_spinner="Loading the emotion model...")
    def load(name):
        if name == "default":
            return default_detector(), default_classifier()
        from fervision.estimator import EmotionClassifier

        return default_detector(), EmotionClassifier.from_pretrained(name)

    return load(name)


if __name__ == "__main__":  # `streamlit run` executes the script as __main__
    render()
