"""Dataset audit: unreadable files, blank images, exact and near duplicates, leakage.

Face-expression datasets scraped from the web (FER2013 among them) hold the same photo
several times: byte-identical copies, re-crops, brightened or re-compressed versions,
sometimes under different labels and in both the train and the test split.  A model
evaluated on such a test set is partly scored on images it trained on.  :func:`audit`
finds these cases:

* **unreadable** files (an image suffix but no decodable image);
* **blank** images, whose pixel standard deviation is below ``blank_std``;
* **exact duplicates**: identical pixel arrays (BLAKE2 hash of the pixels);
* **near duplicates**: images whose 64-bit DCT perceptual hash (pHash) differs in at
  most ``near_threshold`` bits;
* **cross-split duplicates** (train/test leakage) and **label conflicts** (one picture,
  several labels) among those groups.

The near-duplicate search is exact but sub-quadratic: by the pigeonhole principle two
64-bit hashes within Hamming distance ``k`` agree exactly on at least one of ``k + 1``
disjoint bit bands, so only images sharing a band value are compared.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from ._folders import list_image_files
from .labels import ordered_labels
from .preprocessing import gray_uint8, read_gray

_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(63, -1, -1, dtype=np.uint64))
_MAX_THRESHOLD = 16  # beyond this the bands are so narrow the search turns quadratic
_EXAMPLES_PER_KIND = 40  # groups per kind whose images are kept for plotting


# ---------------------------------------------------------------- hashing


def phash(image: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of a grayscale image.

    The image is shrunk to 32 x 32, transformed with :func:`cv2.dct`, and each of the
    8 x 8 lowest-frequency coefficients becomes one bit: 1 when above the median of the
    63 non-DC coefficients.  Brightness changes, mild blur and JPEG re-compression move
    few bits; a different photo moves about half of them.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Grayscale image, any numeric dtype.

    Returns
    -------
    numpy.uint64
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"phash needs a non-empty 2-D grayscale image, got shape {img.shape}")
    small = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return np.bitwise_or.reduce(_BIT_WEIGHTS[bits]) if bits.any() else np.uint64(0)


def _pixel_digest(image: np.ndarray) -> bytes:
    # Shape and dtype are hashed too, so a 48x48 and a 24x96 image never collide.
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((image.shape, image.dtype.str)).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.digest()


def hamming_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """All index pairs ``(i, j)``, ``i < j``, whose hashes differ in <= ``threshold`` bits.

    Exact (no pair is missed): the 64 bits are cut into ``threshold + 1`` bands, any
    pair within the threshold agrees on some band (pigeonhole), and only pairs that
    share a band value are compared.

    Parameters
    ----------
    hashes : ndarray of shape (n,), uint64
    threshold : int
        Maximum Hamming distance, 0 to 16.

    Returns
    -------
    ndarray of shape (n_pairs, 2), int64
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if not 0 <= threshold <= _MAX_THRESHOLD:
        raise ValueError(f"threshold must be in 0-{_MAX_THRESHOLD}, got {threshold}")
    n = len(hashes)
    edges = np.linspace(0, 64, threshold + 2).astype(int)
    found = []
    for lo, hi in itertools.pairwise(edges):
        mask = np.uint64((1 << (hi - lo)) - 1)
        keys = (hashes >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.diff(keys[order], prepend=keys[order][:1] + 1))
        sizes = np.diff(np.append(starts, n))
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
            members = order[start:start + size]
            a, b = np.triu_indices(size, k=1)
            i, j = members[a], members[b]
            close = np.bitwise_count(hashes[i] ^ hashes[j]) <= threshold
            found.append(np.stack([np.minimum(i, j)[close], np.maximum(i, j)[close]], 1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)


def _groups_from_pairs(pairs: np.ndarray, n: int) -> list[np.ndarray]:
    """Return the connected components (size >= 2) of the graph whose edges are ``pairs``."""
    if len(pairs) == 0:
        return []
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    return [g for g in np.split(order, bounds) if len(g) > 1]


# ---------------------------------------------------------------- inputs


def _array_source(X, y, split: str, name: str):
    if isinstance(X, np.ndarray) and X.ndim < 2:
        raise ValueError(f"{name} must be a batch of images, got shape {X.shape}")
    n = len(X)
    if n == 0:
        raise ValueError(f"{name} is empty")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"y for {name} must have shape ({n},), got {y.shape}")
    labels = [None] * n if y is None else [str(v) for v in y]
    return [(f"{split}[{i}]", labels[i], (lambda i=i: X[i])) for i in range(n)]


def _folder_source(root, split: str):
    root = Path(root)
    return [(f"{split}/{p.relative_to(root).as_posix()}", label,
             (lambda p=p: read_gray(p, None)))
            for p, label in list_image_files(root)]


# ---------------------------------------------------------------- report


@dataclass
class AuditReport:
    """What :func:`audit` found.  Indices refer to ``ids``/``labels``/``splits``.

    Attributes
    ----------
    ids : list of str
        One per readable image: ``"<split>/<class>/<file>"`` for folders,
        ``"<split>[<index>]"`` for arrays.
    labels : list of str or None
    splits : list of str
        ``"train"`` or ``"test"``.
    unreadable : list of (str, str)
        ``(id, reason)`` for files that could not be decoded.
    blank : list of int
        Images whose pixel standard deviation is below ``blank_std``.
    exact_groups : list of list of int
        Groups (size >= 2) of pixel-identical images.
    near_groups : list of list of int
        Groups (size >= 2) linked by pHash distance <= ``near_threshold`` that are not
        all pixel-identical.  Linking is transitive (A~B and B~C put A, B, C together).
    near_threshold : int
    blank_std : float
    examples : dict
        ``{index: image}`` kept for the groups and blanks shown by :meth:`plot`.
    """

    ids: list
    labels: list
    splits: list
    unreadable: list = field(default_factory=list)
    blank: list = field(default_factory=list)
    exact_groups: list = field(default_factory=list)
    near_groups: list = field(default_factory=list)
    near_threshold: int = 4
    blank_std: float = 1.0
    examples: dict = field(default_factory=dict, repr=False)

    # ---- derived views
    def class_counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: count}}`` over readable images."""
        out: dict[str, dict[str, int]] = {}
        for split in dict.fromkeys(self.splits):
            counts = Counter(lab for lab, s in zip(self.labels, self.splits, strict=True)
                             if s == split)
            names = ordered_labels([str(k) for k in counts])
            out[split] = {k: counts[None if k == "None" else k] for k in names}
        return out

    def _spans_splits(self, group) -> bool:
        return len({self.splits[i] for i in group}) > 1

    def cross_split_groups(self, kind: str = "all") -> list[list[int]]:
        """Exact (``kind="exact"``), near (``"near"``) or all groups in both splits."""
        groups = {"exact": self.exact_groups, "near": self.near_groups,
                  "all": self.exact_groups + self.near_groups}[kind]
        return [g for g in groups if self._spans_splits(g)]

    def label_conflicts(self) -> list[list[int]]:
        """Exact or near groups whose members carry more than one label."""
        return [g for g in self.exact_groups + self.near_groups
                if len({self.labels[i] for i in g}) > 1]

    def leaked_test_images(self) -> list[int]:
        """Test images that have an exact or near duplicate in the train split."""
        return sorted({i for g in self.cross_split_groups() for i in g
                       if self.splits[i] == "test"})

    def summary(self) -> dict:
        """Headline numbers as a flat, JSON-ready dict."""
        n_split = Counter(self.splits)
        return {
            "n_images": len(self.ids),
            **{f"n_{split}": n for split, n in n_split.items()},
            "n_unreadable": len(self.unreadable),
            "n_blank": len(self.blank),
            "n_exact_groups": len(self.exact_groups),
            "n_exact_redundant": int(sum(len(g) - 1 for g in self.exact_groups)),
            "n_near_groups": len(self.near_groups),
            "n_near_images": int(sum(len(g) for g in self.near_groups)),
            "n_cross_split_exact_groups": len(self.cross_split_groups("exact")),
            "n_cross_split_near_groups": len(self.cross_split_groups("near")),
            "n_test_leaked": len(self.leaked_test_images()),
            "n_label_conflict_groups": len(self.label_conflicts()),
            "near_threshold": self.near_threshold,
            "blank_std": self.blank_std,
            "class_counts": self.class_counts(),
        }

    # ---- rendering
    def _describe(self, group) -> str:
        return ", ".join(f"`{self.ids[i]}` ({self.labels[i]})" for i in group)

    def to_markdown(self, max_rows: int = 10) -> str:
        """Return a Markdown report: headline numbers, class counts, and the first groups."""
        s = self.summary()
        lines = ["## Summary", "", "| check | count |", "|---|---:|"]
        for key, value in s.items():
            if key != "class_counts":
                lines.append(f"| {key} | {value} |")
        counts = s["class_counts"]
        names = ordered_labels([k for c in counts.values() for k in c])
        lines += ["", "## Images per class", "",
                  "| class | " + " | ".join(counts) + " |",
                  "|---|" + "---:|" * len(counts)]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(str(c.get(name, 0)) for c in counts.values())
                         + " |")
        sections = [
            ("Unreadable files", [f"`{i}`: {why}" for i, why in self.unreadable]),
            ("Blank images", [f"`{self.ids[i]}` ({self.labels[i]})" for i in self.blank]),
            ("Train/test duplicates", [self._describe(g) for g in self.cross_split_groups()]),
            ("Label conflicts", [self._describe(g) for g in self.label_conflicts()]),
            ("Exact duplicates", [self._describe(g) for g in self.exact_groups]),
            ("Near duplicates", [self._describe(g) for g in self.near_groups]),
        ]
        for title, items in sections:
            lines += ["", f"## {title} ({len(items)})", ""]
            lines += [f"- {item}" for item in items[:max_rows]]
            if len(items) > max_rows:
                lines.append(f"- ... and {len(items) - max_rows} more")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        """Return the report as Markdown (:meth:`to_markdown`)."""
        return self.to_markdown()

    def example_pairs(self, n: int = 8) -> list[tuple[str, int, int]]:
        """Return up to ``n`` ``(kind, i, j)`` pairs to show.

        Leaks first, then conflicts, then near and exact duplicates (only pairs whose
        images were kept).
        """
        kinds = [("train/test", self.cross_split_groups()),
                 ("label conflict", self.label_conflicts()),
                 ("near", self.near_groups), ("exact", self.exact_groups)]
        pairs, seen = [], set()
        per_kind = max(1, n // len(kinds))
        for round_limit in (per_kind, n):  # a fair share of each kind, then fill up
            for kind, groups in kinds:
                taken = sum(1 for k, _, _ in pairs if k == kind)
                for g in groups:
                    if len(pairs) >= n or taken >= round_limit:
                        break
                    i, j = self._pair_of(g)
                    if (i, j) in seen or i not in self.examples or j not in self.examples:
                        continue
                    seen.add((i, j))
                    pairs.append((kind, i, j))
                    taken += 1
        return pairs

    def _pair_of(self, group) -> tuple[int, int]:
        # Prefer a pair that shows the problem: different splits, else different labels.
        first = group[0]
        for pred in (lambda j: self.splits[j] != self.splits[first],
                     lambda j: self.labels[j] != self.labels[first], lambda j: True):
            for j in group[1:]:
                if pred(j):
                    return first, j
        return first, group[1]

    def plot(self, n_pairs: int = 8) -> Figure:
        """Class-count bar chart above a panel of example duplicate pairs."""
        pairs = self.example_pairs(n_pairs)
        cols = 4
        rows = -(-len(pairs) // cols)
        fig = Figure(figsize=(11, 3.4 + 2.1 * rows), layout="constrained")
        grid = fig.add_gridspec(1 + rows, 2 * cols, height_ratios=[3.0] + [2.0] * rows)
        ax = fig.add_subplot(grid[0, :])
        counts = self.class_counts()
        names = ordered_labels([k for c in counts.values() for k in c])
        width = 0.8 / max(1, len(counts))
        for k, (split, c) in enumerate(counts.items()):
            x = np.arange(len(names)) + (k - (len(counts) - 1) / 2) * width
            bars = ax.bar(x, [c.get(nm, 0) for nm in names], width, label=split)
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(np.arange(len(names)), names)
        ax.set_ylabel("images")
        ax.set_title("Images per class")
        ax.legend()
        for p, (kind, i, j) in enumerate(pairs):
            r, c = divmod(p, cols)
            for side, idx in enumerate((i, j)):
                a = fig.add_subplot(grid[1 + r, 2 * c + side])
                a.imshow(self.examples[idx], cmap="gray", vmin=0, vmax=255)
                a.set_xticks([])
                a.set_yticks([])
                a.set_xlabel(f"{self.splits[idx]}: {self.labels[idx]}", fontsize=8)
                if side == 0:
                    a.set_title(kind, fontsize=9, loc="left")
        return fig


# ---------------------------------------------------------------- the audit


def audit(root_or_X, y=None, *, test_root=None, near_threshold: int = 4,
          blank_std: float = 1.0, progress: bool = True) -> AuditReport:
    """Audit an image dataset for unreadable, blank and duplicated images.

    Parameters
    ----------
    root_or_X : path-like or array-like
        A ``root/<class>/<image>`` folder (the train split), or a batch of images
        (``(N, H, W)``, ``(N, H, W, 1)``, ``(N, H, W, 3)`` or a list of 2-D arrays;
        integer 0-255 or float 0-1).
    y : array-like of shape (N,), optional
        Labels for an image batch (folders take labels from sub-folder names).
    test_root : path-like or (X_test, y_test), optional
        A test split to audit together with the first: duplicates between the two are
        reported as train/test leakage.
    near_threshold : int, default=4
        Largest pHash Hamming distance (0-16) counted as a near duplicate.  On FER2013,
        pairs within 4 bits are in practice the same photo re-cropped, brightened or
        watermarked; from 6 bits on, different people start to appear (see
        ``docs/dataset_audit.md``).
    blank_std : float, default=1.0
        Images whose pixel standard deviation (0-255 scale) is below this are blank.
    progress : bool, default=True
        Show a tqdm progress bar while reading and hashing.

    Returns
    -------
    AuditReport

    Raises
    ------
    ValueError
        A missing folder, an empty or malformed image batch (the message names the
        image index), labels of the wrong length, or a threshold out of range.
    """
    if isinstance(near_threshold, bool) or not isinstance(near_threshold, (int, np.integer)) \
            or not 0 <= near_threshold <= _MAX_THRESHOLD:
        raise ValueError(f"near_threshold must be an int in 0-{_MAX_THRESHOLD}, "
                         f"got {near_threshold!r}")
    if not blank_std >= 0:
        raise ValueError(f"blank_std must be >= 0, got {blank_std!r}")
    sources = _source(root_or_X, y, "train", "X")
    if test_root is not None:
        if isinstance(test_root, tuple):
            if len(test_root) != 2:
                raise ValueError("test_root as a tuple must be (X_test, y_test)")
            sources += _source(test_root[0], test_root[1], "test", "X_test")
        else:
            sources += _source(test_root, None, "test", "test_root")

    ids, labels, splits, unreadable = [], [], [], []
    digests, hashes, stds, images = [], [], [], []
    for item_id, label, load in tqdm(sources, desc="auditing", disable=not progress,
                                     unit="img"):
        try:
            img = load()
        except ValueError as err:  # only folders raise here: an undecodable file
            unreadable.append((item_id, str(err)))
            continue
        img = gray_uint8(img, item_id)
        ids.append(item_id)
        labels.append(label)
        splits.append(item_id.split("/")[0].split("[")[0])
        digests.append(_pixel_digest(img))
        hashes.append(phash(img))
        stds.append(float(img.std()))
        images.append(img)
    if not ids:
        raise ValueError("no readable images to audit")

    stds = np.asarray(stds)
    blank = [int(i) for i in np.flatnonzero(stds < blank_std)]

    # Blank images are reported on their own and left out of the duplicate search:
    # all of them look alike, and a group of a dozen black frames is not a leak.
    blank_set = set(blank)
    by_digest: dict[bytes, list[int]] = {}
    for i, d in enumerate(digests):
        if i not in blank_set:
            by_digest.setdefault(d, []).append(i)
    exact_groups = [g for g in by_digest.values() if len(g) > 1]

    # Near duplicates among one representative per distinct pixel content.
    reps = np.array([g[0] for g in by_digest.values()], dtype=int)
    members = {g[0]: g for g in by_digest.values()}
    pairs = hamming_pairs(np.asarray(hashes, dtype=np.uint64)[reps], near_threshold)
    near_groups = [sorted(i for r in comp for i in members[int(reps[r])])
                   for comp in _groups_from_pairs(pairs, len(reps))]

    report = AuditReport(ids=ids, labels=labels, splits=splits, unreadable=unreadable,
                         blank=blank, exact_groups=exact_groups, near_groups=near_groups,
                         near_threshold=int(near_threshold), blank_std=float(blank_std))
    # Keep the pixels of the images plots may show, not the whole dataset.
    keep = set(blank[:_EXAMPLES_PER_KIND])
    for groups in (report.cross_split_groups(), report.label_conflicts(), near_groups,
                   exact_groups):
        for g in groups[:_EXAMPLES_PER_KIND]:
            keep.update(g)
    report.examples = {i: images[i] for i in sorted(keep)}
    return report


def _source(obj, y, split: str, name: str):
    if isinstance(obj, (str, os.PathLike)):
        if y is not None:
            raise ValueError(f"y must be None when {name} is a folder (labels come from "
                             "its sub-folder names)")
        return _folder_source(obj, split)
    return _array_source(obj, y, split, name)


__all__ = ["AuditReport", "audit", "hamming_pairs", "phash"]
