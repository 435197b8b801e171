"""The Streamlit app: upload handling, the page through AppTest, and one real browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_browser import HeadlessChromium
from helpers_faces import overlap

pytest.importorskip("streamlit")

from fervision.apps import cli
from fervision.apps.streamlit_app import (
    MAX_SIDE,
    decode_upload,
    face_heading,
    probability_chart,
    process_upload,
)
from fervision.faces import analysis

APP = Path(cli.app_path())
CHROMIUM = Path("/usr/bin/chromium")


def png_bytes(image) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_process_upload(face_frame, detector, tiny_classifier):
    canvas, patch = face_frame
    result = process_upload(png_bytes(canvas), detector, tiny_classifier, name="me.png")
    assert len(result.faces) == 1
    assert overlap(result.faces[0].box, patch) > 0.2
    rgb = result.annotated_rgb
    assert rgb.shape == canvas.shape
    assert rgb.dtype == np.uint8
    # RGB for display: the annotation's colours are swapped relative to a BGR drawing;
    # boxes numbered like the "Face 1", "Face 2" charts.
    bgr = analysis.annotate(canvas, result.faces, numbered=True)
    np.testing.assert_array_equal(rgb, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert np.any(bgr != analysis.annotate(canvas, result.faces))


def test_face_heading_and_chart_axis():
    face = analysis.FaceResult((0, 0, 10, 10), "happy",
                               {"angry": 0.05, "happy": 0.6, "sad": 0.35})
    assert face_heading(2, face) == "Face 2: happy (60%)"
    data, spec = probability_chart(face)
    assert data == {"emotion": ["angry", "happy", "sad"], "probability": [0.05, 0.6, 0.35]}
    x = spec["encoding"]["x"]
    assert x["field"] == "probability"
    assert x["scale"]["domain"] == [0, 1]
    assert spec["encoding"]["y"]["sort"] is None  # the model's class order


def test_decode_upload_errors_and_downscaling():
    for data in (b"", b"not an image at all", png_bytes(np.zeros((4, 4), np.uint8))[:20]):
        with pytest.raises(ValueError, match=r"holiday\.jpg"):
            decode_upload(data, "holiday.jpg")
    big = np.zeros((2000, 4000, 3), np.uint8)
    assert decode_upload(png_bytes(big)).shape == (MAX_SIDE // 2, MAX_SIDE, 3)


def test_upload_uses_the_library_reader_and_survives_odd_files(detector, tiny_classifier,
                                                                 monkeypatch):
    from helpers_images import big_png, corrupt_bmp

    # 1 x 5000 was scaled to a 0-pixel height (cv2.error); 10 x 4000 made YuNet's boxes inf.
    for shape in ((1, 5000, 3), (10, 4000, 3), (4000, 2, 3)):
        result = process_upload(png_bytes(np.full(shape, 77, np.uint8)), detector,
                                tiny_classifier)
        assert result.faces == []
        assert result.annotated_rgb.shape[2] == 3
    for data in (big_png(25000, 25000), corrupt_bmp()):  # 4.5 GB / cv2.error before
        with pytest.raises(ValueError, match=r"odd\.png"):
            process_upload(data, detector, tiny_classifier, name="odd.png")
    monkeypatch.setenv("FERVISION_MAX_IMAGE_PIXELS", "100")  # the library's limit applies
    with pytest.raises(ValueError, match=r"'tiny.png' is too large.*400 pixels"):
        decode_upload(png_bytes(np.zeros((20, 20), np.uint8)), "tiny.png")


@pytest.fixture
def app_models(monkeypatch, tiny_model_path, yunet_onnx):
    """Make the app's default models the tiny test model and the shared YuNet file."""
    import streamlit as st

    monkeypatch.setenv(analysis.MODEL_ENV, str(tiny_model_path))
    monkeypatch.setenv(analysis.DETECTOR_MODEL_ENV, str(yunet_onnx))
    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def run_app(upload=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if upload is not None:
        at.file_uploader[0].set_value(upload)
        at.run()
    assert not at.exception, at.exception
    return at


def test_page_before_upload(app_models):
    at = run_app()
    assert "fervision" in at.title[0].value
    assert at.file_uploader[0].allowed_type == [".jpg", ".jpeg", ".png"] or set(
        t.lstrip(".") for t in at.file_uploader[0].allowed_type) == {"jpg", "jpeg", "png"}
    assert "JPG or PNG" in at.info[0].value


def test_page_with_a_face(app_models, face_frame):
    at = run_app(("face.png", png_bytes(face_frame[0]), "image/png"))
    assert not at.error
    assert len(at.get("image")) == 1
    heads = [h.value for h in at.subheader]
    assert len(heads) == 1
    assert heads[0].startswith("Face 1: ")
    assert heads[0].endswith("%)")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1  # the probability bar chart, on a 0-1 axis
    assert '"domain": [0, 1]' in charts[0].proto.spec.replace(" ", "").replace(
        '"domain":[0,1]', '"domain": [0, 1]')


def test_sidebar_picks_a_bundled_model(app_models, face_frame, pretrained_loads):
    loaded = pretrained_loads
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    picker = at.sidebar.selectbox[0]
    assert picker.options[0] == "default"
    assert "ferplus-large" in picker.options
    picker.set_value("ferplus-large")
    at.file_uploader[0].set_value(("face.png", png_bytes(face_frame[0]), "image/png"))
    at.run()
    assert not at.exception
    assert not at.error
    assert loaded == ["ferplus-large"]  # "default" stays $FERVISION_MODEL's tiny model
    assert at.subheader[0].value.startswith("Face 1: ")


def test_page_unreadable_upload(app_models):
    at = run_app(("broken.png", b"\x89PNG garbage", "image/png"))
    assert len(at.error) == 1
    assert "broken.png" in at.error[0].value


def test_page_huge_upload_is_an_error_not_a_crash(app_models):
    from helpers_images import big_png

    at = run_app(("bomb.png", big_png(25000, 25000), "image/png"))
    assert len(at.error) == 1
    assert "bomb.png" in at.error[0].value
    assert "too large" in at.error[0].value


def test_page_no_face(app_models):
    blank = np.full((300, 400, 3), 200, np.uint8)
    at = run_app(("wall.png", png_bytes(blank), "image/png"))
    assert not at.error
    assert any("No face found" in w.value for w in at.warning)


def test_page_model_failure_is_reported(monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    monkeypatch.setenv(analysis.MODEL_ENV, str(tmp_path / "absent.keras"))
    st.cache_resource.clear()
    at = run_app(("face.png", png_bytes(np.zeros((64, 64, 3), np.uint8)), "image/png"))
    assert len(at.error) == 1
    assert "absent.keras" in at.error[0].value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_page_in_headless_chromium(tmp_path, tiny_model_path, yunet_onnx, face_frame):
    """The app as a user meets it, in a real browser.

    The empty page, then a photo uploaded through the browser's file input, answered
    with the boxed face and its heading.
    """
    port = free_port()
    env = {**os.environ, analysis.MODEL_ENV: str(tiny_model_path),
           analysis.DETECTOR_MODEL_ENV: str(yunet_onnx)}
    log = open(tmp_path / "streamlit.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(face_frame[0]))
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not start in 120 s"
            time.sleep(0.3)
        with HeadlessChromium(CHROMIUM, tmp_path / "profile") as browser:
            browser.navigate(url)
            # the script's last element on an empty page: the whole page is drawn
            try:
                browser.wait_for_text("fervision: facial emotion recognition",
                                      "Choose a JPG or PNG image to analyse.")
            except TimeoutError as err:
                raise AssertionError(f"{err}\nstreamlit log:\n"
                                     f"{(tmp_path / 'streamlit.log').read_text()}") from None
            empty = cv2.imdecode(np.frombuffer(browser.screenshot(), np.uint8), cv2.IMREAD_COLOR)
            browser.upload('input[type="file"]', photo)
            text = browser.wait_for_text("photo.png: 1 face", "Face 1")
            # the probability chart is drawn by vega-embed into a canvas (or svg)
            browser.wait_for("document.querySelector('.vega-embed canvas, .vega-embed svg')")
            answered = cv2.imdecode(np.frombuffer(browser.screenshot(), np.uint8),
                                    cv2.IMREAD_COLOR)
        assert "could not be loaded" not in text
        assert "Unreadable" not in text
        for image in (empty, answered):
            assert image.shape[:2] == (900, 1200)
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            # a drawn page has a large dark title and text on white (a blank one: std ~3)
            assert gray.std() > 8
            assert (gray < 100).mean() > 0.002
        # the answer shows the photo: far more non-white pixels than the empty page
        assert (cv2.cvtColor(answered, cv2.COLOR_BGR2GRAY) < 200).mean() > \
            2 * (cv2.cvtColor(empty, cv2.COLOR_BGR2GRAY) < 200).mean()
        if os.environ.get("FERVISION_KEEP_SCREENSHOT"):
            cv2.imwrite(os.environ["FERVISION_KEEP_SCREENSHOT"], answered)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
