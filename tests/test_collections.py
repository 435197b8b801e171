"""Batch analysis of image collections in one process.

Finding the images, record files (JSON Lines and CSV), resuming after a crash or
kill -9, and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers_collections import ASTRONAUT, BAD_FILES, make_image_tree

from fervision import FaceDetector
from fervision.faces._collections import RecordWriter, expand_paths, read_records, record_format

N_GOOD = 30


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_image_tree(root, N_GOOD)
    return root


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory):
    """One in-process run over the tree: (paths, records, JSONL bytes)."""
    import fervision

    out = tmp_path_factory.mktemp("ref") / "all.jsonl"
    records = list(fervision.analyze_files([tree], out))
    return expand_paths([tree]), records, out.read_bytes()


# ----------------------------------------------------------------------- expand_paths
def test_expand_paths_walks_folders_globs_and_files(tree):
    paths = expand_paths([tree])
    assert len(paths) == N_GOOD + len(BAD_FILES)  # notes.txt is not an image
    assert paths == sorted(paths)
    assert len(set(paths)) == len(paths)
    assert all(p.startswith(str(tree)) for p in paths)
    jpgs = expand_paths([f"{tree}/**/*.jpg"])
    assert jpgs
    assert all(p.endswith(".jpg") for p in jpgs)
    assert set(jpgs) < set(paths)
    # Explicit files are kept even when missing or not images; duplicates appear once.
    missing = str(tree / "nope.jpg")
    notes = str(tree / "a" / "notes.txt")
    again = expand_paths([missing, notes, tree / "a", missing])
    assert again[:2] == [missing, notes]
    assert again[2:] == [p for p in paths if p.startswith(str(tree / "a") + os.sep)]


def test_expand_paths_rejects_empty_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files in folder"):
        expand_paths([tmp_path / "empty"])
    with pytest.raises(ValueError, match="no image files match"):
        expand_paths([str(tmp_path / "*.png")])
    with pytest.raises(ValueError, match="no image paths"):
        expand_paths([])


def test_record_format():
    assert record_format("r.jsonl") == record_format("r.NDJSON") == "jsonl"
    assert record_format("r.csv") == "csv"
    with pytest.raises(ValueError, match="jsonl"):
        record_format("r.json")


# ------------------------------------------------------------------------ record files
CLASSES = ["happy", "sad"]
RECORDS = [
    {"path": "a.jpg", "faces": [
        {"box": [1, 2, 3, 4], "emotion": "happy", "dominant_emotion": "happy",
         "scores": {"happy": 0.75, "sad": 0.25}, "detection_score": 0.875},
        {"box": [5, 6, 7, 8], "emotion": "sad", "dominant_emotion": "sad",
         "scores": {"happy": 0.1, "sad": 0.9}, "detection_score": None}]},
    {"path": "dir, with comma/b.png", "faces": []},
    {"path": "c.jpg", "error": "cannot decode image file 'c.jpg'"},
    {"path": "d.jpg", "faces": [
        {"box": [0, 0, 9, 9], "emotion": "happy", "dominant_emotion": "happy",
         "scores": {"happy": 0.6, "sad": 0.4}, "detection_score": 0.5}]},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_records_round_trip(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    with RecordWriter(out, CLASSES) as w:
        assert w.open() == []
        for rec in RECORDS:
            w.write(rec)
    records, good = read_records(out)
    assert records == RECORDS
    assert good == out.stat().st_size


@pytest.mark.parametrize(("suffix", "cut"), [(".jsonl", 7), (".csv", 5), (".csv", None)])
def test_resume_drops_a_torn_last_record(tmp_path, suffix, cut):
    """A write cut short (kill -9 or power loss inside it) leaves a partial record.

    A partial line, or for CSV the first rows of a multi-face image; resuming removes
    it and the path is written again, once.
    """
    out = tmp_path / f"r{suffix}"
    with RecordWriter(out, CLASSES) as w:
        w.open()
        for rec in RECORDS[1:3]:
            w.write(rec)
    whole = out.read_bytes()
    first = RecordWriter(out, CLASSES)
    first.format = record_format(out)
    from fervision.faces._collections import _encode

    torn = _encode(RECORDS[0], first.format, CLASSES)
    if cut is None:  # CSV: the first of the two face rows, complete with its newline
        torn = torn[: torn.index(b"\n") + 1]
    else:
        torn = torn[:cut]
    out.write_bytes(whole + torn)
    assert read_records(out) == (RECORDS[1:3], len(whole))

    with RecordWriter(out, CLASSES) as w:
        done = w.open(resume=True)
        assert done == RECORDS[1:3]
        assert out.read_bytes() == whole  # the torn end is gone before appending
        w.write(RECORDS[0])
        w.write(RECORDS[3])
    records, _ = read_records(out)
    assert records == [*RECORDS[1:3], RECORDS[0], RECORDS[3]]


def test_resume_refuses_a_csv_of_other_classes(tmp_path):
    out = tmp_path / "r.csv"
    with RecordWriter(out, CLASSES) as w:
        w.open()
        w.write(RECORDS[0])
    with pytest.raises(ValueError, match="score columns"):
        RecordWriter(out, ["angry", "happy"]).open(resume=True)


# ----------------------------------------------------------------------- analyze_files
def test_analyze_files_matches_analyze(tree, reference):
    import fervision

    paths, records, data = reference
    assert [r["path"] for r in records] == paths
    assert data.decode().splitlines() == [json.dumps(r) for r in records]
    errors = {r["path"] for r in records if "error" in r}
    assert errors == {str(tree / b) for b in BAD_FILES}
    assert sum(len(r.get("faces", ())) for r in records) >= N_GOOD // 2
    # The batched pipeline finds what analyze() finds, image by image; scores agree to
    # float rounding (a different batch shape changes the last bits, see _batch).
    for rec in records[:12]:
        if "error" in rec:
            continue
        faces = fervision.analyze(rec["path"])
        assert [f.box for f in faces] == [tuple(f["box"]) for f in rec["faces"]]
        assert [f.emotion for f in faces] == [f["emotion"] for f in rec["faces"]]
        for f, g in zip(faces, rec["faces"], strict=True):
            np.testing.assert_allclose(list(f.scores.values()), list(g["scores"].values()),
                                       atol=1e-5)


def test_csv_output_holds_the_same_records(tree, reference, tmp_path):
    import fervision

    _, records, _ = reference
    out = tmp_path / "r.csv"
    assert list(fervision.analyze_files(tree, out)) == records
    assert read_records(out)[0] == records
    header = out.read_text().splitlines()[0].split(",")
    assert header[:3] == ["path", "n_faces", "face"]
    assert header[-1] == "error"


def test_resume_appends_only_missing_paths(tree, reference, tmp_path):
    import fervision

    paths, _records, data = reference
    out = tmp_path / "r.jsonl"
    lines = data.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:11]) + lines[11][:25])  # 11 records and a torn one
    new = list(fervision.analyze_files([tree], out, resume=True))
    assert [r["path"] for r in new] == paths[11:]
    assert out.read_bytes() == data  # every path exactly once, same records
    assert list(fervision.analyze_files([tree], out, resume=True)) == []  # nothing left


class _FailsOnWideImages(FaceDetector):
    """YuNet, except that detection fails with OverflowError on images 301 px wide.

    As OpenCV's arithmetic does on some extreme shapes.
    """

    def detect(self, image):
        if image.shape[1] == 301:
            raise OverflowError("cannot convert float infinity to integer")
        return super().detect(image)


def test_a_detection_failure_is_one_error_record(tmp_path, yunet_onnx):
    import cv2

    import fervision

    good = tmp_path / "a.png"
    cv2.imwrite(str(good), cv2.imread(str(ASTRONAUT)))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((40, 301, 3), np.uint8))
    records = list(fervision.analyze_files(
        tmp_path, detector=_FailsOnWideImages(backend="yunet", model_path=yunet_onnx)))
    assert [r["path"] for r in records] == [str(good), str(tmp_path / "b.png")]
    assert records[0]["faces"]
    assert "error" not in records[0]
    assert "b.png: face detection failed" in records[1]["error"]
    assert "OverflowError" in records[1]["error"]


def test_analyze_files_argument_errors(tree, tmp_path):
    import fervision

    with pytest.raises(ValueError, match="jsonl"):
        fervision.analyze_files(tree, tmp_path / "r.txt")
    with pytest.raises(ValueError, match="needs an output"):
        fervision.analyze_files(tree, resume=True)
    with pytest.raises(ValueError, match="batch_size"):
        fervision.analyze_files(tree, batch_size=0)


# ------------------------------------------------------------------------------- CLI
def test_cli_predict_output(tree, reference, tmp_path, capsys):
    from fervision.apps.cli import EXIT_FAILED, main

    _, records, data = reference
    out = tmp_path / "r.jsonl"
    assert main(["predict", str(tree), "--output", str(out), "--no-progress"]) == EXIT_FAILED
    assert out.read_bytes() == data
    err = capsys.readouterr().err
    assert f"2 of {len(records)}" in err
    # A finished file is not replaced by accident; --overwrite replaces it.
    out.write_bytes(b"keep")
    assert main(["predict", str(tree), "--output", str(out), "--no-progress"]) == 2
    assert out.read_bytes() == b"keep"
    assert "--overwrite" in capsys.readouterr().err
    assert main(["predict", str(tree), "--output", str(out), "--overwrite",
                 "--no-progress"]) == EXIT_FAILED
    assert out.read_bytes() == data


def test_cli_resume_after_kill_9(tree, tmp_path):
    """A real ``kill -9`` in the middle of a run, then ``--resume``.

    Every path once, the same records as an uninterrupted run with the same batch size.
    """
    import fervision
    from fervision.apps.cli import EXIT_FAILED, main

    paths = expand_paths([tree])
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, "-m", "fervision.apps.cli", "predict", str(tree), "--output", str(out),
           "--batch-size", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.02)
        proc.kill()  # SIGKILL: no cleanup, no flush, no finally
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -9, proc.stderr.read().decode()[-2000:]
    before, _ = read_records(out)
    assert 3 <= len(before) < len(paths), "the run was not killed midway"

    assert main(["predict", str(tree), "--output", str(out), "--resume", "--batch-size", "1",
                 "--no-progress"]) == EXIT_FAILED
    records, good = read_records(out)
    assert good == out.stat().st_size
    assert sorted(r["path"] for r in records) == sorted(paths)  # each path exactly once
    assert records[: len(before)] == before
    expected = list(fervision.analyze_files([tree], batch_size=1))
    assert records == expected
