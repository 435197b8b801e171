"""Listing ``root/<class>/<image>`` folders (shared by the dataset loaders and the audit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .labels import canonical_emotion

__all__ = ["IMAGE_SUFFIXES", "list_image_files"]

#: File suffixes listed as images.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}


def _label(name: str) -> str:
    try:
        return canonical_emotion(name)
    except ValueError:
        return name



def list_image_files(root, classes=None, max_per_class=None, random_state=None):
    """List ``(path, label)`` pairs of a ``root/<class>/<image>`` folder.

    Files whose suffix is not an image suffix (``.jpg``, ``.png``, ...) and hidden
    files are ignored, so stray ``Thumbs.db`` or ``.DS_Store`` files do not count as
    unreadable images; a corrupt file *with* an image suffix is listed.

    Parameters
    ----------
    root : str or path-like
        Folder with one sub-folder per class.
    classes : list of str, optional
        Sub-folders to list (any spelling :func:`fervision.canonical_emotion` knows).
    max_per_class : int, optional
        At most this many files per class: the first ones in sorted order, or a random
        choice (returned in sorted order) when ``random_state`` is given.
    random_state : int, optional
        Seed for the random choice.

    Returns
    -------
    list of (pathlib.Path, str)
        Files in class-folder order, each with its canonical label.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a directory")
    if max_per_class is not None and (not isinstance(max_per_class, (int, np.integer))
                                      or isinstance(max_per_class, bool) or max_per_class < 1):
        raise ValueError(f"max_per_class must be a positive int or None, got {max_per_class!r}")
    if isinstance(classes, str):
        classes = [classes]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is not None:
        wanted = {_label(c) for c in classes}
        folders = [p for p in folders if _label(p.name) in wanted]
        missing = wanted - {_label(p.name) for p in folders}
        if missing:
            raise ValueError(f"class folder(s) {sorted(missing)} not found in {str(root)!r}")
    if not folders:
        raise ValueError(f"no class sub-folders in {str(root)!r}")
    rng = np.random.default_rng(random_state) if random_state is not None else None
    files: list[tuple[Path, str]] = []
    for folder in folders:
        paths = sorted(
            p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".")
            and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if max_per_class is not None and len(paths) > max_per_class:
            if rng is not None:
                keep = np.sort(rng.choice(len(paths), max_per_class, replace=False))
                paths = [paths[i] for i in keep]
            else:
                paths = paths[:max_per_class]
        files += [(p, _label(folder.name)) for p in paths]
    return files
