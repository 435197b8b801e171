"""Dataset loaders: FER2013 CSV and Kaggle-style image folders."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from .labels import EMOTIONS, canonical_emotion

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}


def _read_gray(path: Path, image_size: int | None) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot read image file {str(path)!r} (missing, unreadable or "
                         "not an image)")
    if image_size is not None and img.shape != (image_size, image_size):
        interp = cv2.INTER_AREA if min(img.shape) >= image_size else cv2.INTER_LINEAR
        img = cv2.resize(img, (image_size, image_size), interpolation=interp)
    return img


def load_image_folder(
    root,
    classes=None,
    max_per_class: int | None = None,
    image_size: int | None = 48,
    *,
    return_X_y: bool = True,
    on_error: str = "raise",
    progress: bool | None = None,
    random_state=None,
):
    """Load a Kaggle-style ``root/<emotion>/*.jpg`` image folder.

    Parameters
    ----------
    root : str or path-like
        Folder with one sub-folder per class.
    classes : list of str, optional
        Sub-folders to load (any spelling :func:`fervision.canonical_emotion` knows);
        default: every sub-folder.
    max_per_class : int, optional
        Load at most this many files per class (the first ones in sorted order, or a
        random choice when ``random_state`` is given).
    image_size : int or None, default=48
        Resize every image to ``image_size`` x ``image_size``; ``None`` keeps sizes (and
        then ``X`` is a list).
    return_X_y : bool, default=True
        Return ``(X, y)``; if False, a :class:`sklearn.utils.Bunch` with ``data``,
        ``target``, ``target_names``, ``filenames``.
    on_error : {"raise", "skip"}, default="raise"
        What to do with an unreadable or non-image file: raise a ``ValueError`` naming
        it, or warn and skip it.
    progress : bool, optional
        Show a tqdm progress bar (default: when loading more than 2,000 files).
    random_state : int, optional
        Seed for choosing ``max_per_class`` files at random.

    Returns
    -------
    X : ndarray of shape (N, image_size, image_size), uint8
    y : ndarray of shape (N,), str
        Canonical emotion names (folder names mapped through
        :func:`fervision.canonical_emotion`; unknown names are kept as they are).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
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
        paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if max_per_class is not None and len(paths) > max_per_class:
            paths = (list(rng.choice(paths, max_per_class, replace=False)) if rng is not None
                     else paths[:max_per_class])
        files += [(p, _label(folder.name)) for p in paths]
    show = progress if progress is not None else len(files) > 2000
    images, labels, names = [], [], []
    for path, label in tqdm(files, desc=f"loading {root.name}", disable=not show, unit="img"):
        try:
            img = _read_gray(path, image_size)
        except ValueError as err:
            if on_error == "raise":
                raise
            warnings.warn(f"skipping {err}", UserWarning, stacklevel=2)
            continue
        images.append(img)
        labels.append(label)
        names.append(os.fspath(path))
    if not images:
        raise ValueError(f"no readable images under {str(root)!r}")
    X = np.stack(images) if image_size is not None else images
    y = np.asarray(labels)
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, target_names=sorted(set(labels)), filenames=names)


def _label(name: str) -> str:
    try:
        return canonical_emotion(name)
    except ValueError:
        return name


__all__ = ["EMOTIONS", "load_image_folder"]
