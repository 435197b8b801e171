"""Tests for fervision.data.audit.

It must find exactly the problems planted in a small synthetic dataset, and the banded
near-duplicate search must equal brute force.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from fervision.data import datasets
from fervision.data.audit import AuditReport, audit, hamming_pairs, phash


def _face_like(rng, size=48):
    """Return a smooth random image (low-frequency blobs), so pHash bits are stable."""
    coarse = rng.uniform(0, 255, size=(6, 6)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg_roundtrip(img, quality=60):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


@pytest.fixture
def planted(tmp_path, rng):
    """train/{happy,sad} and test/{happy,sad} with known problems planted."""
    a, b, c, d, e, f = (_face_like(rng) for _ in range(6))
    files = {
        "train/happy/a.png": a,
        "train/happy/a_copy.png": a,  # exact duplicate of a
        "train/happy/b.png": b,
        "train/happy/b_bright.png": np.clip(b.astype(int) + 15, 0, 255).astype(np.uint8),
        "train/sad/c.png": c,
        "train/sad/c_jpeg.png": _jpeg_roundtrip(c),  # re-compressed copy of c
        "train/sad/blank.png": np.full((48, 48), 128, np.uint8),
        "train/sad/d.png": d,
        "train/sad/e.png": e,
        "test/happy/d_leak.png": d,  # train/test leak with a different label
        "test/sad/f.png": f,
    }
    for rel, img in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), img)
    (tmp_path / "train/sad/broken.jpg").write_bytes(b"\xff\xd8 truncated garbage")
    return tmp_path


def _names(report, groups):
    return sorted(sorted(report.ids[i] for i in g) for g in groups)


def test_audit_finds_exactly_what_was_planted(planted):
    report = audit(planted / "train", test_root=planted / "test", progress=False)
    assert [u for u, _ in report.unreadable] == ["train/sad/broken.jpg"]
    assert "broken.jpg" in report.unreadable[0][1]
    assert [report.ids[i] for i in report.blank] == ["train/sad/blank.png"]
    assert _names(report, report.exact_groups) == [
        ["test/happy/d_leak.png", "train/sad/d.png"],
        ["train/happy/a.png", "train/happy/a_copy.png"]]
    assert _names(report, report.near_groups) == [
        ["train/happy/b.png", "train/happy/b_bright.png"],
        ["train/sad/c.png", "train/sad/c_jpeg.png"]]
    assert _names(report, report.cross_split_groups()) == [
        ["test/happy/d_leak.png", "train/sad/d.png"]]
    assert _names(report, report.label_conflicts()) == [
        ["test/happy/d_leak.png", "train/sad/d.png"]]
    assert [report.ids[i] for i in report.leaked_test_images()] == ["test/happy/d_leak.png"]
    s = report.summary()
    assert (s["n_train"], s["n_test"], s["n_unreadable"], s["n_blank"]) == (9, 2, 1, 1)
    assert (s["n_exact_groups"], s["n_exact_redundant"], s["n_near_groups"]) == (2, 2, 2)
    assert (s["n_cross_split_exact_groups"], s["n_cross_split_near_groups"]) == (1, 0)
    assert s["class_counts"] == {"train": {"happy": 4, "sad": 5},
                                 "test": {"happy": 1, "sad": 1}}


def test_audit_markdown_and_plot(planted):
    report = audit(planted / "train", test_root=planted / "test", progress=False)
    md = report.to_markdown()
    assert "## Train/test duplicates (1)" in md
    assert "`test/happy/d_leak.png` (happy)" in md
    assert "| happy | 4 | 1 |" in md
    assert str(report) == md
    fig = report.plot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG\r\n\x1a\n")
    assert buf.tell() > 1000
    kinds = [k for k, _, _ in report.example_pairs()]
    # The leak is also the label conflict, so it is shown once.
    assert kinds == ["train/test", "near", "near", "exact"]


def test_audit_arrays(rng):
    imgs = np.stack([_face_like(rng) for _ in range(5)])
    X = np.concatenate([imgs, imgs[:1]])  # X[5] duplicates X[0]
    y = ["happy", "sad", "sad", "fear", "angry", "happy"]
    X_test = np.stack([imgs[2], _face_like(rng)])[..., None]  # (N, H, W, 1)
    report = audit(X, y, test_root=(X_test.astype(np.float32) / 255.0, ["sad", "fear"]),
                   progress=False)
    assert _names(report, report.exact_groups) == [["test[0]", "train[2]"],
                                                   ["train[0]", "train[5]"]]
    assert report.near_groups == []
    assert report.blank == []
    assert report.unreadable == []
    assert report.label_conflicts() == []
    assert report.summary()["n_test_leaked"] == 1


def test_audit_lazy_alias_in_datasets(rng):
    X = np.stack([_face_like(rng) for _ in range(3)])
    report = datasets.audit(X, progress=False)
    assert isinstance(report, AuditReport)
    assert report.summary()["n_images"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"near_threshold": 17}, "near_threshold"), ({"near_threshold": -1}, "near_threshold"),
     ({"near_threshold": 2.5}, "near_threshold"), ({"blank_std": -1}, "blank_std")],
)
def test_audit_bad_options(rng, kwargs, message):
    with pytest.raises(ValueError, match=message):
        audit(np.zeros((2, 8, 8), np.uint8), progress=False, **kwargs)


def test_audit_bad_inputs(tmp_path, planted):
    with pytest.raises(ValueError, match="does not exist"):
        audit(tmp_path / "missing", progress=False)
    with pytest.raises(ValueError, match="y must be None"):
        audit(planted / "train", y=["happy"], progress=False)
    with pytest.raises(ValueError, match=r"shape \(2,\), got \(3,\)"):
        audit(np.zeros((2, 8, 8), np.uint8), ["a", "b", "c"], progress=False)
    with pytest.raises(ValueError, match="X is empty"):
        audit(np.zeros((0, 8, 8), np.uint8), progress=False)
    with pytest.raises(ValueError, match="batch of images"):
        audit(np.zeros(8, np.uint8), progress=False)
    with pytest.raises(ValueError, match=r"train\[1\] has shape \(8, 8, 4\)"):
        audit([np.zeros((8, 8)), np.zeros((8, 8, 4))], progress=False)
    with pytest.raises(ValueError, match=r"train\[0\] contains NaN"):
        audit(np.full((1, 8, 8), np.nan), progress=False)
    with pytest.raises(ValueError, match="X_test, y_test"):
        audit(np.zeros((1, 8, 8)), test_root=(1, 2, 3), progress=False)


def test_phash_properties(rng):
    img = _face_like(rng)
    h = phash(img)
    assert isinstance(h, np.uint64)
    brighter = np.clip(img.astype(int) + 10, 0, 255).astype(np.uint8)
    assert np.bitwise_count(h ^ phash(brighter)) <= 2
    other = phash(_face_like(rng))
    assert np.bitwise_count(h ^ other) > 8
    with pytest.raises(ValueError, match="2-D"):
        phash(np.zeros((4, 4, 3)))


@pytest.mark.parametrize("threshold", [0, 1, 3, 4, 7])
def test_hamming_pairs_equals_brute_force(rng, threshold):
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    # Plant close hashes: flip 0-8 random bits of some of them.
    flips = [np.bitwise_or.reduce(np.uint64(1) << rng.choice(64, k, replace=False)
                                  .astype(np.uint64)) if k else np.uint64(0)
             for k in rng.integers(0, 9, size=100)]
    hashes = np.concatenate([base, base[:100] ^ np.array(flips, dtype=np.uint64)])
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    i, j = np.nonzero(np.triu(dist <= threshold, k=1))
    expected = np.stack([i, j], 1)
    np.testing.assert_array_equal(hamming_pairs(hashes, threshold), expected)
    assert len(expected) >= 5  # the planted pairs are there to be found


def test_hamming_pairs_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        hamming_pairs(np.zeros(3, np.uint64), 20)
