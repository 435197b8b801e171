"""The ``fervision`` command line, called in-process through ``main(argv)``."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from helpers_faces import QVGA, count_frames, plant_face

from fervision.apps import cli
from fervision.apps.cli import main
from fervision.faces import analysis

SUBCOMMANDS = ["predict", "video", "webcam", "train", "evaluate", "app"]


@pytest.fixture
def model_args(tiny_model_path, yunet_onnx):
    return ["--model", str(tiny_model_path), "--detector", "yunet",
            "--detector-model", str(yunet_onnx)]


@pytest.fixture
def face_png(face_frame, tmp_path):
    path = tmp_path / "face.png"
    assert cv2.imwrite(str(path), face_frame[0])
    return path


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in SUBCOMMANDS)
    for cmd in SUBCOMMANDS:
        assert main([cmd, "--help"]) == 0
        assert f"usage: fervision {cmd}" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip().startswith("fervision ")


def test_usage_errors(capsys):
    assert main([]) == 2
    assert main(["predict"]) == 2
    assert main(["video", "in.avi", "--csv", "a.csv", "--jsonl", "b.jsonl"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_installed_script_help_is_fast_and_tf_free():
    exe = shutil.which("fervision")
    if exe is None:
        pytest.skip("the fervision console script is not installed")
    # PYTHONPROFILEIMPORTTIME lists every imported module on stderr: `--help` must not
    # pay for importing TensorFlow (seconds).
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0
    assert "predict" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "fervision.apps.cli" in imported
    assert "tensorflow" not in imported
    assert "keras" not in imported


def test_predict_json_with_a_bad_file(face_png, tmp_path, model_args, capsys):
    missing = tmp_path / "missing.jpg"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    code = main(["predict", str(face_png), str(missing), str(broken), "--json", *model_args])
    captured = capsys.readouterr()
    assert code == 1
    assert "missing.jpg" in captured.err
    assert "broken.png" in captured.err
    records = json.loads(captured.out)  # ONE JSON array on stdout, nothing else
    assert [r["path"] for r in records] == [str(face_png), str(missing), str(broken)]
    face = records[0]["faces"]
    assert len(face) == 1
    assert list(face[0]) == ["box", "emotion", "dominant_emotion",
                             "scores", "detection_score"]
    assert face[0]["dominant_emotion"] == face[0]["emotion"]
    assert 0 < face[0]["detection_score"] <= 1
    assert len(face[0]["box"]) == 4
    assert face[0]["emotion"] in face[0]["scores"]
    assert "error" in records[1]
    assert "missing.jpg" in records[1]["error"]
    assert "error" in records[2]
    assert "faces" not in records[2]


def test_predict_table_and_annotate(face_png, tmp_path, model_args, capsys, face_frame):
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), face_frame[0][:60, :60])
    out_dir = tmp_path / "annotated"
    assert main(["predict", str(face_png), str(blank), "--annotate", str(out_dir),
                 *model_args]) == 0
    out = capsys.readouterr().out
    assert f"{face_png}: 1 face" in out
    assert "confidence" in out
    assert f"{blank}: 0 faces (no face found)" in out
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["blank.jpg", "face.png"]
    img = cv2.imread(str(out_dir / "face.png"))
    assert img.shape == face_frame[0].shape
    assert (img != face_frame[0]).any()


def test_missing_model_is_one_clear_error(face_png, tmp_path, capsys):
    assert main(["predict", str(face_png), "--model", str(tmp_path / "none.keras")]) == 1
    assert "none.keras" in capsys.readouterr().err


def test_model_by_pretrained_name(face_png, capsys, pretrained_loads):
    loaded = pretrained_loads
    assert main(["predict", str(face_png), "--model", "ferplus-large", "--json"]) == 0
    assert loaded == ["ferplus-large"]
    assert json.loads(capsys.readouterr().out)[0]["faces"]
    assert main(["predict", str(face_png), "--model", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert "--model" in err
    assert "no-such-model" in err
    assert "ferplus-large" in err


@pytest.fixture
def short_video(tmp_path, fer_sample, face_ids):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 240))
    frame, _ = plant_face(fer_sample[0][face_ids[0]], **QVGA)
    for _ in range(5):
        writer.write(frame)
    writer.release()
    return path


def test_video_csv_and_output(short_video, tmp_path, model_args, capsys):
    out, table = tmp_path / "out.mp4", tmp_path / "faces.csv"
    assert main(["video", str(short_video), "-o", str(out), "--csv", str(table),
                 "--smoothing", "0.5", "--no-progress", *model_args]) == 0
    assert "5 frames, 5 faces" in capsys.readouterr().out
    rows = list(csv.DictReader(open(table, newline="")))
    assert len(rows) == 5
    assert rows[0]["emotion"]
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    assert cap.read()[0]
    cap.release()


def test_video_jsonl_every(short_video, tmp_path, model_args):
    lines = tmp_path / "r.jsonl"
    assert main(["video", str(short_video), "--jsonl", str(lines), "--every", "2",
                 "--no-progress", *model_args]) == 0
    assert [json.loads(x)["frame"] for x in open(lines)] == [0, 2, 4]


def test_video_missing_file_and_bad_camera(tmp_path, model_args, capsys):
    assert main(["video", str(tmp_path / "gone.mp4"), "--no-progress", *model_args]) == 1
    assert "gone.mp4" in capsys.readouterr().err
    assert main(["webcam", "--camera", "99", "--no-progress", *model_args]) == 1
    assert "camera 99" in capsys.readouterr().err


def test_video_display_without_a_window_toolkit(short_video, model_args, capsys,
                                                monkeypatch):
    from fervision.faces import _video_io

    monkeypatch.setattr(_video_io, "_has_tk", lambda: False)  # no tkinter, and
    monkeypatch.setattr(_video_io, "_opencv_has_gui", lambda: False)  # headless OpenCV
    assert main(["video", str(short_video), "--display", *model_args]) == 1
    err = capsys.readouterr().err
    assert "tkinter" in err
    assert "python3-tk" in err


@pytest.fixture
def image_folder(tmp_path, fer_sample):
    """Write a tiny Kaggle-style folder (3 FER images per class) to tmp; return it."""
    X, y = fer_sample
    root = tmp_path / "data"
    for label in sorted(set(y)):
        (root / label).mkdir(parents=True)
        for k, i in enumerate([i for i in range(len(y)) if y[i] == label][:3]):
            cv2.imwrite(str(root / label / f"{k}.png"), X[i])
    return root


def test_train_then_evaluate(image_folder, tmp_path, capsys):
    model = tmp_path / "models" / "m.keras"
    assert main(["train", str(image_folder), "--backbone", "fernet_tiny", "--epochs", "1",
                 "--batch-size", "8", "--validation-dir", str(image_folder), "--out",
                 str(model), "--quiet", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "training on 21 images of 7 classes" in out
    assert "validation (21 images): accuracy" in out
    assert model.is_file()
    report_dir = tmp_path / "report"
    assert main(["evaluate", str(image_folder), "--model", str(model),
                 "--out", str(report_dir)]) == 0
    assert "accuracy" in capsys.readouterr().out.lower()
    assert {"report.json", "report.md", "confusion_matrix.png"} <= {
        p.name for p in report_dir.iterdir()}
    assert json.loads((report_dir / "report.json").read_text())
    assert cv2.imread(str(report_dir / "confusion_matrix.png")) is not None


def test_evaluate_uses_the_default_model_and_its_settings(image_folder, tiny_classifier,
                                                         monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(analysis, "load_default_classifier",
                        lambda realtime=True: seen.append(realtime) or tiny_classifier)
    assert main(["evaluate", str(image_folder)]) == 0
    assert seen == [True]  # the one setting every path uses
    assert "accuracy" in capsys.readouterr().out.lower()
    assert main(["evaluate", str(image_folder), "--tta", "flip", "--out",
                 str(image_folder.parent / "report")]) == 0
    assert tiny_classifier.tta == "flip"


def test_train_bad_folder(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nowhere"), "--epochs", "1"]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_app_launches_streamlit(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert main(["app", "--port", "8765", "--", "--server.headless", "true"]) == 0
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4].endswith("streamlit_app.py")
    assert (cli.app_path()).is_file()
    assert cmd[5:] == ["--server.address", "127.0.0.1", "--browser.gatherUsageStats",
                       "false", "--server.port", "8765", "--server.headless", "true"]


def test_help_states_the_real_defaults(capsys):
    parser = cli.build_parser()
    texts = [parser.format_help()]
    for name in ("predict", "video", "webcam", "train", "evaluate", "app"):
        texts.append(parser._subparsers._group_actions[0].choices[name].format_help())
    text = " ".join(" ".join(texts).split())
    assert "FaceDetector()'s default" not in text
    assert "download" not in text.replace("no download", "")
    assert "the classifier's)" not in text
    assert "default: yunet, with its bundled model" in text
    assert "face_detection_yunet_2026may.onnx" in text
    assert "default: 127.0.0.1" in text
    assert "--verbose" in text


def test_app_is_local_and_sends_no_statistics_unless_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert main(["app"]) == 0
    assert main(["app", "--host", "0.0.0.0"]) == 0
    for cmd, host in zip(calls, ("127.0.0.1", "0.0.0.0"), strict=True):
        i = cmd.index("--server.address")
        assert cmd[i + 1] == host
        j = cmd.index("--browser.gatherUsageStats")
        assert cmd[j + 1] == "false"


def test_default_model_env_is_used(face_png, tiny_model_path, yunet_onnx, monkeypatch,
                                   capsys):
    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    monkeypatch.setenv(analysis.MODEL_ENV, str(tiny_model_path))
    monkeypatch.setenv(analysis.DETECTOR_MODEL_ENV, str(yunet_onnx))
    assert main(["predict", str(face_png), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["faces"]) == 1


# ------------------------------------------------ outputs: never an input, never lost
def test_annotate_never_overwrites_an_input(face_png, model_args, capsys):
    original = face_png.read_bytes()
    for extra in ([], ["--overwrite"]):  # not even when asked: it is the input
        code = main(["predict", str(face_png), "--annotate", str(face_png.parent),
                     *extra, *model_args])
        err = capsys.readouterr().err
        assert code == 1
        assert "is the input" in err
        assert "face.png" in err
        assert face_png.read_bytes() == original


def test_annotate_same_names_and_existing_files(face_frame, tmp_path, model_args, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    inputs = [a / "x.ppm", a / "x.png", b / "x.png"]
    for path in inputs:
        assert cv2.imwrite(str(path), face_frame[0])
    out = tmp_path / "out"
    args = ["predict", *map(str, inputs), "--annotate", str(out), "--json", *model_args]
    assert main(args) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["x-1.png", "x.png", "x.ppm.png"]
    before = (out / "x.png").stat().st_mtime_ns
    assert main(args) == 1  # the outputs exist now: refused before any work
    captured = capsys.readouterr()
    assert "already exists" in captured.err
    assert "--overwrite" in captured.err
    assert captured.out == ""
    assert (out / "x.png").stat().st_mtime_ns == before
    assert main([*args, "--overwrite"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert sorted(p.name for p in out.iterdir()) == ["x-1.png", "x.png", "x.ppm.png"]


def test_a_failing_write_is_one_files_error(face_frame, tmp_path, model_args, capsys,
                                           monkeypatch):
    resource = pytest.importorskip("resource")
    small1, big, small2 = tmp_path / "s1.jpg", tmp_path / "big.png", tmp_path / "s2.jpg"
    for path in (small1, small2):
        cv2.imwrite(str(path), face_frame[0], [cv2.IMWRITE_JPEG_QUALITY, 30])
    noisy = face_frame[0].copy()  # noise beside the face: a PNG that cannot be small
    noisy[:, :180] = np.random.default_rng(0).integers(0, 256, noisy[:, :180].shape)
    cv2.imwrite(str(big), noisy)
    limit = 3 * max(small1.stat().st_size, small2.stat().st_size)
    assert big.stat().st_size > 2 * limit
    out = tmp_path / "out"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    load_models = cli._load_models

    def load_then_fill_the_disk(args):  # (loading a .keras model writes temp files)
        models = load_models(args)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # big files fail now
        return models

    monkeypatch.setattr(cli, "_load_models", load_then_fill_the_disk)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
    try:
        code = main(["predict", str(small1), str(big), str(small2), "--json",
                     "--annotate", str(out), *model_args])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    captured = capsys.readouterr()
    assert code == 1
    records = json.loads(captured.out)  # the JSON is still printed, for all three
    assert [r["path"] for r in records] == [str(small1), str(big), str(small2)]
    assert "error" not in records[0]
    assert "error" not in records[2]
    assert "big.png" in records[1]["error"]
    assert "faces" in records[1]
    assert "1 of 3 image(s)" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["s1.jpg", "s2.jpg"]  # no temp file


def test_a_planted_symlink_is_not_written_through(face_png, tmp_path, model_args):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "face.png.part").symlink_to(victim)
    assert main(["predict", str(face_png), "--annotate", str(out), *model_args]) == 0
    assert victim.read_text() == "precious"
    assert cv2.imread(str(out / "face.png")) is not None


@pytest.fixture
def short_mp4(short_video, tmp_path):
    path = tmp_path / "same.mp4"
    cap = cv2.VideoCapture(str(short_video))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (320, 240))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    return path


def test_video_never_overwrites_its_input(short_mp4, tmp_path, model_args, capsys):
    original = short_mp4.read_bytes()
    for option, extra in (("-o", []), ("--csv", []), ("--jsonl", []), ("-o", ["--overwrite"])):
        code = main(["video", str(short_mp4), option, str(tmp_path / "." / "same.mp4"),
                     "--no-progress", *extra, *model_args])
        err = capsys.readouterr().err
        assert code == 1
        assert "is the input" in err
        assert "same.mp4" in err
        assert short_mp4.read_bytes() == original
    table = tmp_path / "faces.csv"
    table.write_text("mine")
    assert main(["video", str(short_mp4), "--csv", str(table), "--no-progress",
                 *model_args]) == 1
    assert "already exists" in capsys.readouterr().err
    assert table.read_text() == "mine"


def test_train_checks_its_output_before_training(image_folder, tmp_path, capsys):
    run = ["train", str(image_folder), "--backbone", "fernet_tiny", "--epochs", "1",
           "--quiet"]
    assert main([*run, "--out", str(tmp_path / "model.h5")]) == 1
    captured = capsys.readouterr()
    assert "model.h5" in captured.err
    assert ".keras" in captured.err
    assert "training on" not in captured.out  # refused before the data was even read
    existing = tmp_path / "model.keras"
    existing.write_bytes(b"an older model")
    assert main([*run, "--out", str(existing)]) == 1
    captured = capsys.readouterr()
    assert "already exists" in captured.err
    assert "training on" not in captured.out
    assert existing.read_bytes() == b"an older model"
    (tmp_path / "file").write_text("x")
    assert main([*run, "--out", str(tmp_path / "file" / "m.keras")]) == 1
    assert "is a file" in capsys.readouterr().err


def test_evaluate_checks_its_outputs_first(image_folder, tiny_model_path, tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("my notes")
    assert main(["evaluate", str(image_folder), "--model", str(tiny_model_path),
                 "--out", str(report)]) == 1
    captured = capsys.readouterr()
    assert "report.md" in captured.err
    assert "already exists" in captured.err
    assert captured.out == ""
    assert (report / "report.md").read_text() == "my notes"


def test_sigterm_leaves_a_playable_mp4(tmp_path, fer_sample, face_ids, tiny_model_path,
                                       yunet_onnx):
    src = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    frame, _ = plant_face(fer_sample[0][face_ids[0]], **QVGA)
    for _ in range(600):  # far more than are analysed before the signal
        writer.write(frame)
    writer.release()
    out, lines = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fervision.apps.cli", "video", str(src), "-o", str(out),
         "--jsonl", str(lines), "--no-progress", "--model", str(tiny_model_path),
         "--detector-model", str(yunet_onnx)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if lines.exists() and lines.read_text().count("\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be terminated"
        proc.send_signal(signal.SIGTERM)  # as `kill PID`, a service manager, `timeout`
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert "SIGTERM" in err
    assert "Traceback" not in err
    n = len(lines.read_text().splitlines())
    assert 3 <= n < 600
    assert count_frames(out) == n


def test_video_skips_damaged_frames_and_says_so(tmp_path, model_args, capsys):
    from test_video import write_damaged_video

    src = write_damaged_video(tmp_path / "damaged.avi")
    table = tmp_path / "r.jsonl"
    assert main(["video", str(src), "--jsonl", str(table), "--no-progress",
                 *model_args]) == 0
    captured = capsys.readouterr()
    assert "damaged.avi: 25 frames" in captured.out
    assert "skipped 5 unreadable frame(s)" in captured.err
    assert json.loads(table.read_text().splitlines()[-1])["frame"] == 29
    assert main(["video", str(src), "--no-progress", "--max-unreadable", "0",
                 *model_args]) == 1
    assert "after 10 of the 30 frames" in capsys.readouterr().err


# ------------------------------------------------------------- clear, one-line errors
def one_line_error(err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return bool(lines) and lines[0].startswith("fervision: error: ") and "Traceback" not in err


def test_quoted_glob_is_expanded(face_png, tmp_path, model_args, capsys):
    cv2.imwrite(str(tmp_path / "face2.png"), cv2.imread(str(face_png)))
    assert main(["predict", str(tmp_path / "*.png"), "--json", *model_args]) == 0
    paths = [r["path"] for r in json.loads(capsys.readouterr().out)]
    assert paths == [str(face_png), str(tmp_path / "face2.png")]
    assert main(["predict", str(tmp_path / "*.jpg"), *model_args]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err)
    assert "no file matches the pattern" in err
    assert "*.jpg" in err


def test_mtcnn_without_its_package(face_png, tiny_model_path, capsys):
    if importlib.util.find_spec("mtcnn") is not None:
        pytest.skip("mtcnn is installed")
    assert main(["predict", str(face_png), "--detector", "mtcnn",
                 "--model", str(tiny_model_path)]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err)
    assert 'pip install "fervision[mtcnn]"' in err


def test_a_text_file_as_detector_model(face_png, tmp_path, tiny_model_path, capsys):
    fake = tmp_path / "notes.onnx"
    fake.write_text("not a model\n")
    assert main(["predict", str(face_png), "--detector-model", str(fake),
                 "--model", str(tiny_model_path)]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err)
    assert "notes.onnx" in err
    assert "not an ONNX model" in err
