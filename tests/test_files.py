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


def test_a_planted_symlink_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    # The fixed names an older writer used for its temp file, and the target itself.
    for name in ("a.jpg.part", ".a.jpg.tmp", "a.jpg.tmp"):
        (out / name).symlink_to(victim)
    atomic_write(out / "a.jpg", lambda fh: fh.write(b"image"))
    assert victim.read_text() == "precious"
    assert (out / "a.jpg").read_bytes() == b"image"
    assert not (out / "a.jpg").is_symlink()
    (out / "b.jpg").symlink_to(victim)  # replacing a link replaces the link only
    atomic_write(out / "b.jpg", lambda fh: fh.write(b"b"))
    assert victim.read_text() == "precious"
    assert (out / "b.jpg").read_bytes() == b"b"


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"a\.png"):
        atomic_write(path, lambda fh: fh.write(b"new"), overwrite=False)
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError, match="dangling"):
        atomic_write(link, lambda fh: fh.write(b"new"), overwrite=False)
    assert path.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "dangling"]
    atomic_write(tmp_path / "b.png", lambda fh: fh.write(b"b"), overwrite=False)
    assert (tmp_path / "b.png").read_bytes() == b"b"


def test_overwrite_false_loses_a_race_without_clobbering(tmp_path, monkeypatch):
    path = tmp_path / "a.png"

    def write(fh):  # another process creates the file while this one writes
        path.write_bytes(b"theirs")
        fh.write(b"mine")

    with pytest.raises(FileExistsError, match=r"a\.png"):
        atomic_write(path, write, overwrite=False)
    assert path.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize(("setup", "kwargs", "exc", "match"), [
    (lambda d: (d / "x.csv").write_text("x"), {}, FileExistsError, "already exists"),
    (lambda d: (d / "x.csv").mkdir(), {"overwrite": True}, ValueError, "is a folder"),
    (lambda d: None, {"suffixes": {".keras"}}, ValueError, "extension '.csv'"),
    (lambda d: (d / "in.csv").write_text("x"), {"inputs": ["in.csv"]}, ValueError,
     "is the input"),
])
def test_check_output_path_errors(tmp_path, monkeypatch, setup, kwargs, exc, match):
    from fervision.files import check_output_path

    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    target = "in.csv" if "inputs" in kwargs else "x.csv"
    with pytest.raises(exc, match=match):
        check_output_path(tmp_path / target, what="CSV file", **kwargs)


def test_check_output_path_folders(tmp_path):
    from fervision.files import check_output_path

    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output_path(tmp_path / "no" / "x.keras")
    assert check_output_path(tmp_path / "no" / "x.keras", create_parents=True)
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ValueError, match="is a file"):
        check_output_path(tmp_path / "f" / "x.keras", create_parents=True)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(PermissionError, match="not writable"):
            check_output_path(ro / "x.keras")
