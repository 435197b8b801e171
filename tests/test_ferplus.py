"""FER+ loader: majority labels, vote distributions, the paper's rules."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fervision.data._ferplus import ferplus_distribution, ferplus_majority
from fervision.data.datasets import FERPLUS_CLASSES, load_ferplus

# vote columns: neutral, happy, surprise, sad, angry, disgust, fear, contempt, unknown, NF
ROWS = {
    "clear_happy.png": [1, 8, 1, 0, 0, 0, 0, 0, 0, 0],
    "tied.png": [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],
    "contempt.png": [2, 0, 0, 0, 0, 0, 0, 6, 2, 0],
    "unknown.png": [3, 0, 0, 0, 0, 0, 0, 0, 7, 0],
    "mixed_sad.png": [3, 0, 0, 6, 1, 0, 0, 0, 0, 0],
}


@pytest.fixture
def ferplus_folder(tmp_path):
    lines = []
    for i, (name, votes) in enumerate(ROWS.items()):
        cv2.imwrite(str(tmp_path / name), np.full((48, 48), 40 * i, np.uint8))
        lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (tmp_path / "label.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_majority_leaves_out_ties_contempt_and_unknown(ferplus_folder):
    X, y = load_ferplus(ferplus_folder)
    assert X.shape == (2, 48, 48)
    assert X.dtype == np.uint8
    assert y.tolist() == ["happy", "sad"]
    assert X[0, 0, 0] == 0
    assert X[1, 0, 0] == 160  # images stay with their labels


def test_distribution_drops_single_votes_and_normalises(ferplus_folder):
    bunch = load_ferplus(ferplus_folder, target="distribution", return_X_y=False)
    assert bunch.target_names == list(FERPLUS_CLASSES)
    P = bunch.target
    names = [f.rsplit("/", 1)[-1] for f in bunch.filenames]
    # the contempt- and unknown-dominated faces are left out; the tie stays (50/50)
    assert names == ["clear_happy.png", "tied.png", "mixed_sad.png"]
    col = {c: i for i, c in enumerate(FERPLUS_CLASSES)}
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    assert P[0, col["happy"]] == 1.0  # the single neutral and surprise votes are noise
    assert P[1, col["happy"]] == P[1, col["neutral"]] == 0.5
    assert P[2, col["sad"]] == pytest.approx(6 / 9)  # the single angry vote is dropped
    assert bunch.votes.shape == (3, 10)


def test_votes_target_keeps_everything(ferplus_folder):
    _X, V = load_ferplus(ferplus_folder, target="votes")
    assert V.shape == (5, 10)
    assert V.sum() == 50


def test_rules_directly():
    votes = np.array(list(ROWS.values()), np.float32)
    assert ferplus_majority(votes).tolist() == [FERPLUS_CLASSES.index("happy"), -1, -1, -1,
                                                FERPLUS_CLASSES.index("sad")]
    assert np.isnan(ferplus_distribution(votes)[2:4]).all()


@pytest.mark.parametrize(("content", "match"), [
    ('a.png,"(0, 0, 48, 48)",1,2\n', "expected 12"),
    ('a.png,"(0, 0, 48, 48)",x,0,0,0,0,0,0,0,0,0\n', "must be numbers"),
    ('../evil.png,"(0, 0, 48, 48)",9,0,0,0,0,0,0,0,0,0\n', "not a file name"),
    ('missing.png,"(0, 0, 48, 48)",9,0,0,0,0,0,0,0,0,0\n', "does not exist"),
])
def test_bad_folders_name_the_problem(tmp_path, content, match):
    (tmp_path / "label.csv").write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_ferplus(tmp_path)


def test_not_a_ferplus_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no label\.csv"):
        load_ferplus(tmp_path)
    with pytest.raises(ValueError, match="target must be one of"):
        load_ferplus(tmp_path, target="probability")


def test_real_ferplus_valid(shared_dir):
    folder = shared_dir / "data" / "ferplus" / "FER2013Valid"
    if not (folder / "label.csv").is_file():
        pytest.skip("FER+ not found in ../shared")
    X, y = load_ferplus(folder, progress=False)
    assert X.shape == (len(y), 48, 48)
    assert set(y) == set(FERPLUS_CLASSES)
    assert 3000 < len(y) < 3579  # ties, contempt, unknown left out
