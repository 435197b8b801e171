"""Shared fixtures.

FER2013 is read from ../shared when present; tests that need it skip cleanly when it is
absent (e.g. a fresh clone elsewhere).  The YuNet model is the one bundled in the
package, so detector tests run everywhere.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# TF_ENABLE_ONEDNN_OPTS is left alone: tests run with oneDNN on, as users do.  (It was
# once turned off here to hide heap corruption that turned out to be TF 2.21's oneDNN
# weight gradient of strided 1x1 convolutions; see fervision.nn.backbones._conv_bn.)

import numpy as np
import pytest
from helpers_faces import QVGA, detectable_faces, plant_face

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FERVISION_SHARED", ROOT.parent / "shared"))
FER_DIR = SHARED / "data" / "fer2013"
YUNET_ONNX = Path(
    str(importlib.resources.files("fervision") / "models" / "face_detection_yunet_2026may.onnx")
)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared material not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    if not (FER_DIR / "train").is_dir():
        pytest.skip(f"FER2013 image folders not found at {FER_DIR}")
    return FER_DIR


@pytest.fixture(scope="session")
def yunet_onnx() -> Path:
    """Return the YuNet model bundled in the package (the same file as ../shared's copy)."""
    assert YUNET_ONNX.is_file(), f"bundled YuNet model missing: {YUNET_ONNX}"
    return YUNET_ONNX


@pytest.fixture(scope="session")
def fer_sample(fer_dir):
    """Return a small, fixed FER2013 sample: 12 PublicTest images per class (84 images)."""
    from fervision.data.datasets import load_image_folder

    return load_image_folder(fer_dir / "test", max_per_class=12)


# ------------------------------------------------------- faces, detector, tiny model
# Session-scoped: the tiny classifier is fitted (and saved) once per session, whichever
# module asks first.
@pytest.fixture(scope="session")
def tiny_classifier(fer_sample):
    """Return a real EmotionClassifier (fernet_tiny, 1 epoch on the 84-image FER sample)."""
    from fervision.estimator import EmotionClassifier

    X, y = fer_sample
    return EmotionClassifier(backbone="fernet_tiny", epochs=1, batch_size=16, verbose=0).fit(X, y)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_classifier, tmp_path_factory) -> Path:
    """``tiny_classifier`` saved with ``EmotionClassifier.save`` (for --model)."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_classifier.save(path)
    return path


@pytest.fixture(scope="session")
def detector(yunet_onnx):
    from fervision.faces.detection import FaceDetector

    return FaceDetector(backend="yunet", model_path=yunet_onnx)


@pytest.fixture(scope="session")
def face_ids(fer_sample, detector):
    """Return the indices of three FER sample faces YuNet finds when planted (VGA, QVGA)."""
    X, _ = fer_sample
    vga = set(detectable_faces(X, detector, n=6))
    qvga = detectable_faces(X, detector, n=6, **QVGA)
    return [i for i in qvga if i in vga][:3]


@pytest.fixture(scope="session")
def face_frame(fer_sample, face_ids):
    """(640x480 BGR canvas with one planted FER face, the patch box)."""
    X, _ = fer_sample
    return plant_face(X[face_ids[0]])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def pretrained_loads(monkeypatch) -> list:
    """Record the names ``EmotionClassifier.from_pretrained`` is called with, in order.

    Return the list of names; the models still load.
    """
    from fervision.estimator import EmotionClassifier

    loaded = []
    real = EmotionClassifier.from_pretrained.__func__

    def spy(cls, name="default", **params):
        loaded.append(name)
        return real(cls, name, **params)

    monkeypatch.setattr(EmotionClassifier, "from_pretrained", classmethod(spy))
    return loaded
