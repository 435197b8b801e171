"""Output files: checked before any work, written whole or not at all.

:func:`check_output_path` is what every command and :func:`fervision.process_video`
call on each output path before reading any input; :func:`atomic_write` is the one way
files are written (a private temp file in the target folder, renamed into place).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "check_output_path", "write_json"]


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (through links, ``..``, case folding)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the resolved paths
        return a.resolve() == b.resolve()


def check_output_path(path, *, what: str = "output file", inputs=(), suffixes=None,
                      overwrite: bool = False, create_parents: bool = False) -> Path:
    """Check that ``path`` can be written, before any work is done.

    Parameters
    ----------
    path : str or path-like
        The output file.
    what : str, default="output file"
        What the file is, for the error messages (e.g. ``"output video"``).
    inputs : iterable of str or path-like, default=()
        Files the run reads; ``path`` must not be one of them, even with ``overwrite``
        (writing the output would destroy the input it is computed from).  Entries that
        are not local files (a camera index, a URL) are ignored.
    suffixes : collection of str, optional
        Allowed extensions (lower case, with the dot); any when None.
    overwrite : bool, default=False
        Allow replacing an existing file.
    create_parents : bool, default=False
        The caller creates missing folders: check only that the nearest existing one is
        a writable folder.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        ``path`` is a folder, has a wrong extension, or is one of ``inputs``.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        Its folder does not exist (and ``create_parents`` is False).
    PermissionError
        Its folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder; give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{what} {str(path)!r}: unsupported extension {path.suffix!r}; use "
            f"{', '.join(sorted(suffixes))}"
        )
    for source in inputs:
        if isinstance(source, int) or "://" in os.fspath(source):
            continue
        if _same_file(path, Path(source)):
            raise ValueError(
                f"{what} {str(path)!r} is the input {os.fspath(source)!r}; writing it would "
                "destroy the input: choose another output name"
            )
    if os.path.lexists(path) and not overwrite:  # lexists: a dangling link counts too
        raise FileExistsError(
            f"{what} {str(path)!r} already exists; remove it, choose another name, or "
            "pass --overwrite (overwrite=True) to replace it"
        )
    folder = path.parent
    if create_parents:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.is_dir():
        if folder.exists():
            raise ValueError(f"folder of {what} {str(path)!r} is a file: {str(folder)!r}")
        raise FileNotFoundError(f"folder of {what} {str(path)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {what} {str(path)!r}: folder {str(folder)!r} "
                              "is not writable")
    return path


def atomic_write(path, write: Callable[[BinaryIO], object], *,
                 overwrite: bool = True) -> Path:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then rename it there.

    An interruption or an exception in ``write`` leaves ``path`` as it was (absent or
    the previous version), never half-written, and removes the temp file: what later
    reads it (a resumed run, a cache) can trust it.  The temp file has a random name and
    is created with ``O_CREAT | O_EXCL`` (:func:`tempfile.mkstemp`), so a file or a
    symbolic link planted in the folder is never written through.  A symbolic link at
    ``path`` itself is replaced, its target left alone.  The file gets mode 0644
    (``mkstemp`` makes owner-only files).

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    write : callable
        Writes the content to the binary file object it is given.
    overwrite : bool, default=True
        Replace an existing ``path``.  When False the file is moved into place only if
        ``path`` does not exist at that moment (a hard link, which fails rather than
        replaces, where the file system has them), else ``FileExistsError``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{str(path)!r} already exists; not overwritten")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _move_no_clobber(tmp: str, path: Path) -> None:
    # os.replace would silently replace a file created since the check above; link()
    # fails with FileExistsError instead, atomically.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{str(path)!r} already exists; not overwritten") from None
    except OSError:  # no hard links here (FAT, some network shares): check, then rename
        if os.path.lexists(path):
            raise FileExistsError(f"{str(path)!r} already exists; not overwritten") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2).encode()))
