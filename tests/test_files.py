"""fervision.files.atomic_write: whole files or none."""

import os
import stat

import pytest

from fervision.files import atomic_write


def test_writes_the_file_readable_by_all(tmp_path):
    path = atomic_write(tmp_path / "a.json", lambda fh: fh.write(b"{}"))
    assert path.read_bytes() == b"{}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "cache.npz"
    path.write_bytes(b"old")

    def half(fh):
        fh.write(b"new, half")
        raise KeyboardInterrupt  # as a kill in the middle of np.savez

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.npz"]


def test_a_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="bad"):
        atomic_write(tmp_path / "x", lambda fh: (_ for _ in ()).throw(ValueError("bad")))
    assert list(tmp_path.iterdir()) == []


def test_write_json_round_trips_and_is_atomic(tmp_path):
    import json

    from fervision.files import write_json

    path = write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})  # not JSON: the old file stays
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
