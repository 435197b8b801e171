"""FER+ loader: the FER2013 faces relabelled by 10 taggers each (Barsoum et al., 2016).

A FER+ folder (``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/`` in the layout of
the microsoft/FERPlus repository) holds the face images and a ``label.csv`` whose rows
are ``file name, face box, votes`` with ten vote counts in this order: neutral,
happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, not-a-face.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from .labels import EMOTIONS

#: The ten vote columns of FER+'s ``label.csv``, as fervision names them.
FERPLUS_COLUMNS: tuple[str, ...] = ("neutral", "happy", "surprise", "sad", "angry", "disgust",
                                    "fear", "contempt", "unknown", "not_a_face")
#: Columns of a ``target="distribution"`` matrix: the seven emotions in sorted order, which
#: is the order of ``EmotionClassifier.classes_`` after a fit on them.
FERPLUS_CLASSES: tuple[str, ...] = tuple(sorted(EMOTIONS))
_TO_CLASS = np.array([FERPLUS_COLUMNS.index(c) for c in FERPLUS_CLASSES])
_N_VOTES = len(FERPLUS_COLUMNS)
_TARGETS = ("majority", "distribution", "votes")


def _read_labels(folder: Path) -> tuple[list[str], np.ndarray]:
    path = folder / "label.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a FER+ folder: it has no label.csv")
    names, votes = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 2 + _N_VOTES:
                raise ValueError(f"line {line} of {str(path)!r} has {len(row)} fields, expected "
                                 f"{2 + _N_VOTES} (file, face box, {_N_VOTES} vote counts)")
            try:
                counts = [int(float(v)) for v in row[2:]]
            except ValueError:
                raise ValueError(f"line {line} of {str(path)!r}: vote counts must be numbers, "
                                 f"got {row[2:]}") from None
            if min(counts) < 0:
                raise ValueError(f"line {line} of {str(path)!r}: negative vote count {row[2:]}")
            name = row[0].strip()
            if not name or Path(name).name != name or name in (".", ".."):
                # label.csv names files inside the folder, never a path elsewhere
                raise ValueError(f"line {line} of {str(path)!r}: {name!r} is not a file name")
            names.append(name)
            votes.append(counts)
    if not names:
        raise ValueError(f"{str(path)!r} has no rows")
    return names, np.asarray(votes, dtype=np.float32).reshape(-1, _N_VOTES)


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """Index into :data:`FERPLUS_CLASSES` of each face's majority emotion, or -1.

    The label is the column with the most votes.  A face is left out (-1) when that top
    count is shared by two columns, or when the top column is contempt, unknown or
    not-a-face: the rule fervision's figures on FER+ use (seven classes remain).
    """
    votes = np.asarray(votes, dtype=np.float32).reshape(-1, _N_VOTES)
    top = votes.max(axis=1)
    tied = (votes == top[:, None]).sum(axis=1) > 1
    column = votes.argmax(axis=1)
    out = np.full(len(votes), -1, dtype=np.int64)
    ok = ~tied & (top > 0)
    to_class = {col: i for i, col in enumerate(_TO_CLASS)}
    for i in np.flatnonzero(ok):
        out[i] = to_class.get(int(column[i]), -1)
    return out


def ferplus_distribution(votes: np.ndarray) -> np.ndarray:
    """Per-face probability of each emotion (rows sum to 1), or a row of NaN.

    Follows the FER+ paper's "probability" target: a column with a single vote is
    treated as tagger noise and zeroed (the paper's outlier removal); a face is left out
    (NaN row) when, after that, contempt, unknown or not-a-face has as many votes as the
    most-voted emotion, or no emotion has votes left.  The remaining emotion votes are
    normalised to sum to 1, with columns in :data:`FERPLUS_CLASSES` order.
    """
    votes = np.asarray(votes, dtype=np.float32).reshape(-1, _N_VOTES).copy()
    votes[votes <= 1] = 0
    emotions = votes[:, _TO_CLASS]
    other = np.delete(votes, _TO_CLASS, axis=1).max(axis=1)
    total = emotions.sum(axis=1)
    keep = (total > 0) & (emotions.max(axis=1) > other)
    out = np.full(emotions.shape, np.nan, dtype=np.float32)
    out[keep] = emotions[keep] / total[keep, None]
    return out


def load_ferplus(folder, target: str = "majority", *, return_X_y: bool = True,
                 progress: bool | None = None):
    """Load a FER+ folder (images + ``label.csv`` with 10 taggers' votes per face).

    Parameters
    ----------
    folder : str or path-like
        A folder in the microsoft/FERPlus layout, e.g. ``FER2013Train``: the images and
        ``label.csv`` (file name, face box, votes for neutral, happiness, surprise,
        sadness, anger, disgust, fear, contempt, unknown, not-a-face).
    target : {"majority", "distribution", "votes"}, default="majority"
        ``"majority"``: ``y`` holds emotion names, the most-voted emotion of each face;
        faces whose top vote is tied or is contempt, unknown or not-a-face are left out
        (:func:`ferplus_majority`).  ``"distribution"``: ``y`` is an (N, 7) float matrix
        of vote shares over :data:`FERPLUS_CLASSES` (angry, disgust, fear, happy,
        neutral, sad, surprise) after the FER+ paper's outlier removal; faces with no
        clear emotion are left out (:func:`ferplus_distribution`).  Such a matrix fits
        an :class:`~fervision.EmotionClassifier` directly.  ``"votes"``: every face with
        its raw (N, 10) vote counts in :data:`FERPLUS_COLUMNS` order, nothing left out.
    return_X_y : bool, default=True
        Return ``(X, y)``; if False, a :class:`sklearn.utils.Bunch` with ``data``,
        ``target``, ``target_names``, ``filenames`` and ``votes`` (the raw counts of the
        faces kept).
    progress : bool, optional
        Show a tqdm progress bar (default: for more than 2,000 images).

    Returns
    -------
    X : ndarray of shape (N, 48, 48), uint8
    y : ndarray of shape (N,), str, or (N, 7) / (N, 10) float32

    Raises
    ------
    FileNotFoundError
        If ``folder`` has no ``label.csv`` or an image it lists is missing.
    ValueError
        An unknown ``target``, a malformed row (the message names the line), or an
        image that cannot be decoded (the message names the file).

    Examples
    --------
    >>> X, P = load_ferplus("FERPlus/FER2013Train", target="distribution")  # doctest: +SKIP
    >>> EmotionClassifier().fit(X, P).classes_  # doctest: +SKIP
    array(['angry', 'disgust', 'fear', 'happy', 'neutral', 'sad', 'surprise'], dtype=object)
    """
    from .preprocessing import read_image

    if target not in _TARGETS:
        raise ValueError(f"target must be one of {', '.join(_TARGETS)}; got {target!r}")
    folder = Path(folder)
    names, votes = _read_labels(folder)
    if target == "majority":
        index = ferplus_majority(votes)
        keep = index >= 0
        y = np.asarray(FERPLUS_CLASSES)[index[keep]]
        target_names = list(FERPLUS_CLASSES)
    elif target == "distribution":
        y = ferplus_distribution(votes)
        keep = ~np.isnan(y[:, 0])
        y = y[keep]
        target_names = list(FERPLUS_CLASSES)
    else:
        keep = np.ones(len(names), dtype=bool)
        y = votes
        target_names = list(FERPLUS_COLUMNS)
    kept = [n for n, k in zip(names, keep, strict=True) if k]
    show = progress if progress is not None else len(kept) > 2000
    images = []
    for name in tqdm(kept, desc=f"loading {folder.name}", disable=not show, unit="img"):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r}, listed in {str(folder / 'label.csv')!r}, "
                                    "does not exist")
        img = read_image(path, grayscale=True)
        if img.shape != (48, 48):
            raise ValueError(f"{str(path)!r} is {img.shape[1]}x{img.shape[0]}, FER+ faces are "
                             "48x48")
        images.append(img)
    X = np.stack(images) if images else np.zeros((0, 48, 48), np.uint8)
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, target_names=target_names,
                 filenames=[str(folder / n) for n in kept], votes=votes[keep])
