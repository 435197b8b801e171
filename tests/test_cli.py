"""The ``fervision`` command line, called in-process through ``main(argv)``."""
# ruff: noqa: F811 - pytest fixtures are imported from helpers_faces and used as arguments

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import cv2
import pytest
from helpers_faces import QVGA, plant_face

from fervision import analysis, cli
from fervision.cli import main

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
    assert done.returncode == 0 and "predict" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "fervision.cli" in imported
    assert "tensorflow" not in imported and "keras" not in imported


def test_predict_json_with_a_bad_file(face_png, tmp_path, model_args, capsys):
    missing = tmp_path / "missing.jpg"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    code = main(["predict", str(face_png), str(missing), str(broken), "--json", *model_args])
    captured = capsys.readouterr()
    assert code == 1
    assert "missing.jpg" in captured.err and "broken.png" in captured.err
    records = json.loads(captured.out)  # ONE JSON array on stdout, nothing else
    assert [r["path"] for r in records] == [str(face_png), str(missing), str(broken)]
    face = records[0]["faces"]
    assert len(face) == 1 and set(face[0]) == {"box", "emotion", "scores"}
    assert len(face[0]["box"]) == 4 and face[0]["emotion"] in face[0]["scores"]
    assert "error" in records[1] and "missing.jpg" in records[1]["error"]
    assert "error" in records[2] and "faces" not in records[2]


def test_predict_table_and_annotate(face_png, tmp_path, model_args, capsys, face_frame):
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), face_frame[0][:60, :60])
    out_dir = tmp_path / "annotated"
    assert main(["predict", str(face_png), str(blank), "--annotate", str(out_dir),
                 *model_args]) == 0
    out = capsys.readouterr().out
    assert f"{face_png}: 1 face" in out and "confidence" in out
    assert f"{blank}: 0 faces (no face found)" in out
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["blank.jpg", "face.png"]
    img = cv2.imread(str(out_dir / "face.png"))
    assert img.shape == face_frame[0].shape and (img != face_frame[0]).any()


def test_missing_model_is_one_clear_error(face_png, tmp_path, capsys):
    assert main(["predict", str(face_png), "--model", str(tmp_path / "none.keras")]) == 1
    assert "none.keras" in capsys.readouterr().err


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
    assert len(rows) == 5 and rows[0]["emotion"]
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and cap.read()[0]
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


def test_video_display_on_headless_opencv(short_video, model_args, capsys):
    if "NONE" not in [ln for ln in cv2.getBuildInformation().splitlines() if "GUI:" in ln][0]:
        pytest.skip("this OpenCV has a GUI")
    assert main(["video", str(short_video), "--display", *model_args]) == 1
    assert "headless" in capsys.readouterr().err


@pytest.fixture
def image_folder(tmp_path, fer_sample):
    """A tiny Kaggle-style folder (3 FER images per class) written to tmp."""
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
    assert "validation (21 images): accuracy" in out and model.is_file()
    report_dir = tmp_path / "report"
    assert main(["evaluate", str(image_folder), "--model", str(model),
                 "--out", str(report_dir)]) == 0
    assert "accuracy" in capsys.readouterr().out.lower()
    assert {"report.json", "report.md", "confusion_matrix.png"} <= {
        p.name for p in report_dir.iterdir()}
    assert json.loads((report_dir / "report.json").read_text())
    assert cv2.imread(str(report_dir / "confusion_matrix.png")) is not None


def test_evaluate_default_model_keeps_its_shipped_tta(image_folder, tiny_classifier,
                                                      monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(analysis, "load_default_classifier",
                        lambda realtime=True: seen.append(realtime) or tiny_classifier)
    assert main(["evaluate", str(image_folder)]) == 0
    assert seen == [False]  # not the real-time (2-view) variant
    assert "accuracy" in capsys.readouterr().out.lower()


def test_train_bad_folder(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nowhere"), "--epochs", "1"]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_app_launches_streamlit(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert main(["app", "--port", "8765", "--", "--server.headless", "true"]) == 0
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4].endswith("app.py") and (cli.app_path()).is_file()
    assert cmd[5:] == ["--server.port", "8765", "--server.headless", "true"]


def test_default_model_env_is_used(face_png, tiny_model_path, yunet_onnx, monkeypatch,
                                   capsys):
    monkeypatch.setattr(analysis, "_DEFAULTS", {})
    monkeypatch.setenv(analysis.MODEL_ENV, str(tiny_model_path))
    monkeypatch.setenv(analysis.DETECTOR_MODEL_ENV, str(yunet_onnx))
    assert main(["predict", str(face_png), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["faces"]) == 1
