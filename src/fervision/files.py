"""Writing output files whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "write_json"]


def atomic_write(path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then rename it there.

    An interruption or an exception in ``write`` leaves ``path`` as it was (absent or
    the previous version), never half-written: what later reads it (a resumed run, a
    cache) can trust it.  The file gets mode 0644 (``mkstemp`` makes owner-only files).

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    write : callable
        Writes the content to the binary file object it is given.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2).encode()))
