"""``fervision predict`` on files that used to end the whole batch with a traceback."""

from __future__ import annotations

import json

import cv2
import pytest
from helpers_images import write_bad_images

from fervision.apps.cli import main


@pytest.fixture
def model_args(tiny_model_path, yunet_onnx):
    return ["--model", str(tiny_model_path), "--detector", "yunet",
            "--detector-model", str(yunet_onnx)]


@pytest.mark.parametrize(("key", "error"), [
    ("wide_2x4000", None), ("wide_8x4000", None), ("wide_10x4000", None),  # no face
    ("huge_40000", "too large"), ("corrupt_bmp", "corrupt_header.bmp"),
])
def test_predict_one_bad_and_one_good_file(key, error, face_frame, tmp_path, model_args,
                                           capsys):
    good = tmp_path / "good.png"
    assert cv2.imwrite(str(good), face_frame[0])
    bad = write_bad_images(tmp_path / "bad")[key]
    code = main(["predict", str(bad), str(good), "--json", *model_args])
    captured = capsys.readouterr()
    records = json.loads(captured.out)  # the batch went on: one JSON array, both files
    assert [r["path"] for r in records] == [str(bad), str(good)]
    assert len(records[1]["faces"]) == 1
    assert "Traceback" not in captured.err
    if error is None:
        assert code == 0
        assert records[0]["faces"] == []
    else:
        assert code == 1
        assert "faces" not in records[0]
        assert error in records[0]["error"]
        assert bad.name in records[0]["error"]
        assert bad.name in captured.err
