"""fervision.weights: download, SHA-256 verification, caching and offline behaviour.

Everything is served from a local HTTP server on 127.0.0.1 and cached in tmp_path;
the real user cache is never touched.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from fervision import weights

YUNET_2026_SHA = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
YUNET_2026_SIZE = 229_738


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class LocalServer:
    """http.server in a thread serving ``root``; ``stop()`` makes the URL unreachable."""

    def __init__(self, root):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.running = True

    def stop(self):
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.running = False


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv(weights.CACHE_ENV, str(path))
    monkeypatch.delenv(weights.BASE_URL_ENV, raising=False)
    return path


@pytest.fixture
def served(tmp_path, yunet_onnx):
    root = tmp_path / "served"
    root.mkdir()
    shutil.copy(yunet_onnx, root / yunet_onnx.name)
    server = LocalServer(root)
    yield server
    server.stop()


@pytest.fixture
def registry(monkeypatch):
    """Isolate registry changes made by a test."""
    monkeypatch.setattr(weights, "_REGISTRY", dict(weights._REGISTRY))
    return weights._REGISTRY


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_registry_has_yunet():
    entry = weights.list_weights()["yunet-2023mar"]
    assert entry.url.startswith("https://github.com/opencv/opencv_zoo/")
    assert entry.filename == "face_detection_yunet_2023mar.onnx"
    assert entry.sha256 == "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "x"))
    assert weights.cache_dir() == tmp_path / "x"
    monkeypatch.delenv(weights.CACHE_ENV)
    assert weights.cache_dir().name == "fervision"


def test_register_validates(registry):
    with pytest.raises(ValueError, match="64 hexadecimal"):
        weights.register("bad", "http://x/a.onnx", "abc")
    with pytest.raises(ValueError, match="plain file name"):
        weights.register("bad", "http://x/a.onnx", "0" * 64, filename="../evil")
    weights.register("ok", "http://x/dir/a.onnx", "sha256:" + "A" * 64)
    assert weights.list_weights()["ok"].filename == "a.onnx"
    assert weights.list_weights()["ok"].sha256 == "a" * 64


def test_unknown_name_lists_registered():
    with pytest.raises(KeyError, match="yunet-2023mar"):
        weights.fetch("no-such-model")


def test_download_verified_cached_then_offline(cache, served, registry, yunet_onnx):
    weights.register("yunet-test", f"{served.url}/{yunet_onnx.name}", YUNET_2026_SHA)
    path = weights.fetch("yunet-test", progress=False)
    assert path == cache / yunet_onnx.name
    assert path.stat().st_size == YUNET_2026_SIZE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == YUNET_2026_SHA
    det = cv2.FaceDetectorYN.create(str(path), "", (320, 240), 0.6, 0.3, 100)
    assert det is not None

    served.stop()  # offline from now on: the cached, verified copy must be used
    assert weights.fetch("yunet-test", progress=False) == path
    assert _files(cache) == [yunet_onnx.name]


def test_base_url_mirror(cache, served, registry, monkeypatch, yunet_onnx):
    weights.register(
        "yunet-mirror", "https://unreachable.invalid/x.onnx", YUNET_2026_SHA,
        filename=yunet_onnx.name,
    )
    monkeypatch.setenv(weights.BASE_URL_ENV, served.url + "/")
    assert weights.url_for("yunet-mirror") == f"{served.url}/{yunet_onnx.name}"
    path = weights.fetch("yunet-mirror", progress=False)
    assert path.stat().st_size == YUNET_2026_SIZE


def test_wrong_sha_refused_and_cache_empty(cache, served, registry, yunet_onnx):
    wrong = "0" * 64
    weights.register("yunet-bad", f"{served.url}/{yunet_onnx.name}", wrong)
    with pytest.raises(weights.WeightsHashError, match="SHA-256 mismatch") as info:
        weights.fetch("yunet-bad", progress=False)
    assert "nothing was cached" in str(info.value)
    assert wrong in str(info.value)
    assert _files(cache) == []


def test_not_cached_and_offline_names_url_and_path(cache, served, registry, yunet_onnx):
    url = f"{served.url}/{yunet_onnx.name}"
    weights.register("yunet-offline", url, YUNET_2026_SHA)
    served.stop()
    with pytest.raises(weights.WeightsUnavailableError) as info:
        weights.fetch("yunet-offline", progress=False)
    assert isinstance(info.value, OSError)
    msg = str(info.value)
    assert url in msg
    assert str(cache / yunet_onnx.name) in msg
    assert weights.CACHE_ENV in msg
    assert _files(cache) == []


def test_manually_placed_file_used_offline(cache, registry, yunet_onnx):
    """The offline recipe in the error message works: copy the file to the cache path."""
    weights.register("yunet-manual", "http://127.0.0.1:9/none.onnx", YUNET_2026_SHA,
                     filename=yunet_onnx.name)
    cache.mkdir()
    shutil.copy(yunet_onnx, cache / yunet_onnx.name)
    assert weights.fetch("yunet-manual", progress=False) == cache / yunet_onnx.name


# ------------------------------------------------------------- timeouts, bad mirrors
class _TrickleHandler(_QuietHandler):
    """Announces 10,000 bytes and sends one every 50 ms.

    Never silent long enough for a per-read timeout, and would take over 8 minutes.
    """

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "10000")
        self.end_headers()
        try:
            for _ in range(10000):
                self.wfile.write(b"x")
                self.wfile.flush()
                if self.server.stopping.wait(0.05):
                    return
        except OSError:  # the client hung up: what the timeout should make it do
            pass


@pytest.fixture
def trickle():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
    httpd.daemon_threads = True
    httpd.stopping = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.stopping.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.mark.parametrize("how", ["argument", "env"])
def test_slow_server_hits_the_total_timeout_and_leaves_nothing(how, cache, trickle, registry,
                                                               monkeypatch):
    import time

    weights.register("slow", f"{trickle}/slow.onnx", "0" * 64)
    kwargs = {"timeout": 1.0} if how == "argument" else {}
    if how == "env":
        monkeypatch.setenv(weights.TIMEOUT_ENV, "1")
    start = time.monotonic()
    with pytest.raises(weights.WeightsUnavailableError, match=r"TimeoutError.*longer than 1 s"):
        weights.fetch("slow", progress=False, **kwargs)
    assert time.monotonic() - start < 5
    assert _files(cache) == []  # no temporary or partial file left in the cache


def test_timeout_must_be_positive(cache, registry):
    weights.register("x", "http://127.0.0.1:9/x.onnx", "0" * 64)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        weights.fetch("x", timeout=0)


@pytest.mark.parametrize("base", ["not a url", "/srv/mirror", "file:///srv/mirror"])
def test_base_url_that_is_not_a_url_is_a_clear_error(base, cache, monkeypatch):
    monkeypatch.setenv(weights.BASE_URL_ENV, base)
    with pytest.raises(ValueError, match=r"\$FERVISION_BASE_URL=.* is not a URL.*https://"):
        weights.fetch("yunet-2023mar", progress=False)
    assert _files(cache) == []


def test_unknown_pretrained_name_lists_the_names():
    from fervision import EmotionClassifier
    from fervision.weights import list_pretrained

    with pytest.raises(KeyError, match="available: 'default', 'fer2013'") as info:
        EmotionClassifier.from_pretrained("resnet")
    assert "yunet" not in str(info.value)
    with pytest.raises(KeyError, match="not an emotion model"):
        EmotionClassifier.from_pretrained("yunet-2023mar")
    assert "yunet-2023mar" not in list_pretrained()


def test_a_damaged_bundled_model_is_refused(monkeypatch, tmp_path):
    import dataclasses

    from fervision import weights

    entry = weights.pretrained_info("fer2013")
    monkeypatch.setitem(weights._PRETRAINED, "fer2013",
                        dataclasses.replace(entry, sha256="0" * 64))
    with pytest.raises(weights.WeightsHashError, match="installation is damaged"):
        weights.pretrained_file("fer2013")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, "exactly one of file"),
    ({"file": "../x.keras", "sha256": "0" * 64}, "plain file name"),
    ({"file": "x.keras"}, "needs its sha256"),
    ({"weights": "not-registered"}, "not registered"),
])
def test_register_pretrained_checks_entries(kwargs, match):
    from fervision.weights import PretrainedModel, register_pretrained

    with pytest.raises(ValueError, match=match):
        register_pretrained(PretrainedModel("x", "data", "net", **kwargs))


def test_cli_evaluate_names_unknown_pretrained(capsys, tmp_path):
    from fervision.apps.cli import main

    (tmp_path / "happy").mkdir()
    assert main(["evaluate", str(tmp_path), "--pretrained", "nope"]) != 0
    err = capsys.readouterr().err
    assert "available: 'default', 'fer2013'" in err
    assert "Traceback" not in err
