"""Dataset loaders: FER2013 CSV and Kaggle-style image folders."""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from ._ferplus import FERPLUS_CLASSES, FERPLUS_COLUMNS, load_ferplus
from ._folders import list_image_files
from .labels import EMOTIONS, ordered_labels
from .preprocessing import read_gray


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
        What to do with a file that has an image suffix but cannot be decoded: raise a
        ``ValueError`` naming it, or warn and skip it.  Files without an image suffix
        (``.txt``, ``Thumbs.db``, hidden files) are ignored.
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
    if image_size is not None and (not isinstance(image_size, (int, np.integer))
                                   or isinstance(image_size, bool) or image_size < 1):
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    root = Path(root)
    files = list_image_files(root, classes=classes, max_per_class=max_per_class,
                             random_state=random_state)
    show = progress if progress is not None else len(files) > 2000
    images, labels, names = [], [], []
    for path, label in tqdm(files, desc=f"loading {root.name}", disable=not show, unit="img"):
        try:
            img = read_gray(path, image_size)
        except (ValueError, OSError) as err:
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
    return Bunch(data=X, target=y, target_names=ordered_labels(labels), filenames=names)


#: FER2013's ``Usage`` values: train, validation ("public test") and test splits.
FER2013_USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
_FER_SIDE = 48
_FER_PIXELS = _FER_SIDE * _FER_SIDE


def _check_usage(usage) -> set[str] | None:
    if usage is None:
        return None
    values = [usage] if isinstance(usage, str) else list(usage)
    if not values:
        raise ValueError("usage must be None, one of "
                         f"{', '.join(FER2013_USAGES)} or a non-empty list of them")
    by_lower = {u.lower(): u for u in FER2013_USAGES}
    chosen = set()
    for value in values:
        key = str(value).strip().lower()
        if key not in by_lower:
            raise ValueError(f"unknown FER2013 usage {value!r}; expected one of "
                             f"{', '.join(FER2013_USAGES)} (case-insensitive)")
        chosen.add(by_lower[key])
    return chosen


def _parse_pixels(text: str, row: int, line: int, path: Path) -> np.ndarray:
    where = f"row {row} (line {line}) of {str(path)!r}"
    try:
        values = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        raise ValueError(f"{where}: pixels must be space-separated integers") from None
    if values.size != _FER_PIXELS:
        raise ValueError(f"{where}: expected {_FER_PIXELS} pixel values (48 x 48), "
                         f"got {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise ValueError(f"{where}: pixel values must be in 0-255, got "
                         f"{values.min()}..{values.max()}")
    return values.astype(np.uint8).reshape(_FER_SIDE, _FER_SIDE)


def load_fer2013(csv_path, usage=None, *, return_X_y: bool = True,
                 progress: bool | None = None):
    """Load the original FER2013 CSV (``emotion,pixels,Usage``).

    Parameters
    ----------
    csv_path : str or path-like
        ``fer2013.csv`` (or ``icml_face_data.csv``, whose header has spaces before the
        column names).  Column names are matched case-insensitively.
    usage : str or list of str, optional
        Keep only rows whose ``Usage`` is one of ``"Training"``, ``"PublicTest"``,
        ``"PrivateTest"`` (case-insensitive); default: every row.
    return_X_y : bool, default=True
        Return ``(X, y)``; if False, a :class:`sklearn.utils.Bunch` with ``data``,
        ``target``, ``target_names`` (:data:`~fervision.data.labels.EMOTIONS`) and ``usage``
        (each row's ``Usage``, or None when the CSV has no ``Usage`` column).
    progress : bool, optional
        Show a tqdm progress bar (default: for files over 10 MB).

    Returns
    -------
    X : ndarray of shape (N, 48, 48), uint8
    y : ndarray of shape (N,), str
        Emotion names: FER2013's integer codes 0-6 mapped through
        :data:`~fervision.data.labels.EMOTIONS`.

    Raises
    ------
    FileNotFoundError
        If ``csv_path`` is not a file.
    ValueError
        Missing ``emotion``/``pixels`` columns (or ``Usage`` when ``usage`` is given),
        an unknown ``usage`` value, a row whose emotion is not an int in 0-6 or whose
        pixels are not 2304 ints in 0-255 (the message names the row), or no rows left.

    Examples
    --------
    >>> X, y = load_fer2013("fer2013.csv", usage="Training")  # doctest: +SKIP
    >>> X.shape, y[:3]  # doctest: +SKIP
    ((28709, 48, 48), array(['angry', 'angry', 'fear'], dtype='<U8'))
    """
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"FER2013 CSV {str(path)!r} does not exist or is not a file")
    wanted = _check_usage(usage)
    show = progress if progress is not None else path.stat().st_size > 10_000_000
    images, codes, usages = [], [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"FER2013 CSV {str(path)!r} is empty")
        columns = {name.strip().lower(): i for i, name in enumerate(header)}
        required = ["emotion", "pixels"] + (["usage"] if wanted is not None else [])
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(f"FER2013 CSV {str(path)!r} lacks column(s) {missing}; "
                             f"its header is {header}")
        i_emo, i_pix = columns["emotion"], columns["pixels"]
        i_use = columns.get("usage")
        width = max(i_emo, i_pix, -1 if i_use is None else i_use) + 1
        for row, fields in enumerate(tqdm(reader, desc=f"reading {path.name}",
                                          disable=not show, unit="row"), start=1):
            if not fields:  # blank line
                continue
            where = f"row {row} (line {reader.line_num}) of {str(path)!r}"
            if len(fields) < width:
                raise ValueError(f"{where} has {len(fields)} field(s), expected {len(header)}")
            row_usage = fields[i_use].strip() if i_use is not None else None
            if wanted is not None and row_usage not in wanted:
                continue
            try:
                code = int(fields[i_emo])
            except ValueError:
                code = -1
            if not 0 <= code < len(EMOTIONS):
                raise ValueError(f"{where}: emotion must be an int in 0-{len(EMOTIONS) - 1}, "
                                 f"got {fields[i_emo]!r}")
            images.append(_parse_pixels(fields[i_pix], row, reader.line_num, path))
            codes.append(code)
            usages.append(row_usage)
    if not images:
        which = "" if wanted is None else f" with Usage in {sorted(wanted)}"
        raise ValueError(f"no rows{which} in FER2013 CSV {str(path)!r}")
    X = np.stack(images)
    y = np.asarray(EMOTIONS)[np.asarray(codes)]
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, target_names=list(EMOTIONS),
                 usage=None if i_use is None else np.asarray(usages))


def audit(*args, **kwargs):
    """Audit an image dataset; see :func:`fervision.data.audit.audit`."""
    from .audit import audit as _audit  # scipy and matplotlib only when used

    return _audit(*args, **kwargs)


__all__ = ["EMOTIONS", "FER2013_USAGES", "FERPLUS_CLASSES", "FERPLUS_COLUMNS", "audit",
           "list_image_files", "load_fer2013", "load_ferplus", "load_image_folder"]
