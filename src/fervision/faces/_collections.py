"""Image collections on disk: finding the images, and the record files of a batch run.

A batch run (:func:`fervision.analyze_files`, ``fervision predict --output``) writes
one *record* per image, ``{"path": ..., "faces": [...]}`` or ``{"path": ...,
"error": ...}``, to a JSON Lines or CSV file, each record written in one system call
and flushed as soon as it is known.  A killed run therefore leaves a file of whole
records, except possibly a torn last one (``kill -9`` or a power cut in the middle of
a write), which :func:`read_records` finds and :meth:`RecordWriter.open` cuts off
before appending, so that a resumed run records every path exactly once.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "IMAGE_EXTENSIONS",
    "RecordWriter",
    "expand_paths",
    "read_records",
    "record_format",
]

#: File name endings that a folder walk or a glob pattern takes as images (what
#: OpenCV's ``imdecode`` reads in a standard build), compared case-insensitively.
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff",
    ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".sr", ".ras",
})
_GLOB_CHARS = frozenset("*?[")


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def expand_paths(patterns: Iterable) -> list[str]:
    """Return the image files named by files, folders and glob patterns, in a stable order.

    Parameters
    ----------
    patterns : iterable of str or path-like
        Each is an existing folder (walked recursively; the files with an image
        extension, see :data:`IMAGE_EXTENSIONS`, in sorted order), a glob pattern
        (``*``, ``?``, ``[...]``; ``**`` matches folders recursively; the matching
        image files, sorted) or a file.  A file named explicitly is kept whatever its
        extension and even when it does not exist: reading it fails later, and the run
        records that failure instead of silently dropping a path the user asked for.

    Returns
    -------
    list of str
        Paths as spelled by the patterns (a folder's files are joined to the folder as
        given), each once, in the order of first appearance.

    Raises
    ------
    ValueError
        A folder or glob pattern contributes no image, or nothing is left.
    """
    out: dict[str, None] = {}  # ordered set
    for pattern in patterns:
        pattern = os.fspath(pattern)
        if os.path.isdir(pattern):
            found = []
            for root, dirs, files in os.walk(pattern):
                dirs.sort()  # os.walk order is the file system's: make it repeatable
                found.extend(os.path.join(root, f) for f in files if _is_image_name(f))
            if not found:
                raise ValueError(f"no image files in folder {pattern!r}")
            out.update(dict.fromkeys(sorted(found)))
        elif not os.path.exists(pattern) and _GLOB_CHARS & set(pattern):
            found = [p for p in glob.glob(pattern, recursive=True)
                     if os.path.isfile(p) and _is_image_name(p)]
            if not found:
                raise ValueError(f"no image files match {pattern!r}")
            out.update(dict.fromkeys(sorted(found)))
        else:
            out[pattern] = None
    if not out:
        raise ValueError("no image paths given")
    return list(out)


# ---------------------------------------------------------------------- record files
def record_format(path) -> str:
    """``"jsonl"`` or ``"csv"``, from the output file's extension.

    Raises
    ------
    ValueError
        Any other extension.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"output {os.fspath(path)!r}: expected a .jsonl (or .ndjson) or .csv file")


_CSV_FIXED = ["path", "n_faces", "face", "x", "y", "w", "h", "emotion", "detection_score"]


def _csv_header(classes: Sequence[str]) -> list[str]:
    return [*_CSV_FIXED, *(f"score_{c}" for c in classes), "error"]


def _csv_rows(record: dict, classes: Sequence[str]) -> list[list]:
    # One row per face, so the file loads straight into a data frame; an image
    # without faces or that failed is one row with the face columns empty.  n_faces
    # lets a reader tell a complete group of rows from a torn one.
    blank = [""] * (len(_CSV_FIXED) - 2 + len(classes))  # face .. scores
    if "error" in record:
        return [[record["path"], "", *blank, record["error"]]]
    faces = record["faces"]
    if not faces:
        return [[record["path"], 0, *blank, ""]]
    rows = []
    for i, face in enumerate(faces):
        scores, det = face["scores"], face.get("detection_score")
        rows.append([record["path"], len(faces), i, *face["box"], face["emotion"],
                     "" if det is None else repr(float(det)),
                     *(repr(float(scores[c])) for c in classes), ""])
    return rows


def _encode(record: dict, fmt: str, classes) -> bytes:
    if fmt == "jsonl":
        return (json.dumps(record, ensure_ascii=False) + "\n").encode()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(_csv_rows(record, classes))
    return buf.getvalue().encode()


def _jsonl_records(data: bytes) -> tuple[list[dict], int]:
    records, good = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # torn last line
        try:
            rec = json.loads(line)
        except ValueError:
            break  # torn: only a last write can be partial, nothing after it counts
        if not isinstance(rec, dict) or "path" not in rec:
            raise ValueError(f"line {len(records) + 1} is not a fervision record: {line[:80]!r}")
        records.append(rec)
        good += len(line)
    return records, good


def _csv_records(data: bytes) -> tuple[list[dict], int, list[str]]:
    lines = data.splitlines(keepends=True)
    if not lines or not lines[0].endswith(b"\n"):
        return [], 0, []
    header = next(csv.reader([lines[0].decode()]))
    if header[: len(_CSV_FIXED)] != _CSV_FIXED or header[-1] != "error":
        raise ValueError(f"not a fervision results CSV (header {header[:4]}...)")
    classes = [h[len("score_"):] for h in header[len(_CSV_FIXED):-1]]
    records: list[dict] = []
    good = pos = len(lines[0])
    group: list[list[str]] = []
    for line in lines[1:]:
        if not line.endswith(b"\n"):
            break
        pos += len(line)
        try:
            row = next(csv.reader([line.decode()]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            break
        if len(row) != len(header):
            break
        group.append(row)
        n_faces = row[1]
        expected = int(n_faces) if n_faces not in ("", "0") else 1
        if len(group) < expected:
            continue
        records.append(_record_from_rows(group, classes))
        group = []
        good = pos
    return records, good, classes


def _record_from_rows(rows, classes) -> dict:
    path, n_faces, error = rows[0][0], rows[0][1], rows[0][-1]
    if n_faces == "":
        return {"path": path, "error": error}
    faces = []
    for row in rows if n_faces != "0" else []:
        box = [int(v) for v in row[3:7]]
        scores = {c: float(v) for c, v in zip(classes, row[9:-1], strict=True)}
        # the keys of FaceResult.to_dict(), so a CSV reads back as the JSONL would
        faces.append({"box": box, "emotion": row[7], "dominant_emotion": row[7],
                      "scores": scores,
                      "detection_score": float(row[8]) if row[8] else None})
    return {"path": path, "faces": faces}


def read_records(path) -> tuple[list[dict], int]:
    """Read the whole records of a results file, ignoring a torn end.

    Parameters
    ----------
    path : str or path-like
        A ``.jsonl`` or ``.csv`` file written by :class:`RecordWriter`.

    Returns
    -------
    records : list of dict
        The complete records, in file order (CSV rows are grouped back into one record
        per image).
    good_bytes : int
        Length of the file's prefix made of whole records (and the CSV header): what
        to keep before appending.

    Raises
    ------
    ValueError
        The file is not a fervision results file.
    """
    fmt = record_format(path)
    data = Path(path).read_bytes()
    if fmt == "jsonl":
        return _jsonl_records(data)
    records, good, _ = _csv_records(data)
    return records, good


class RecordWriter:
    """Append records to a JSON Lines or CSV file, each one whole and flushed.

    Each record is encoded first and written with a single ``os.write`` on an
    unbuffered descriptor, so a process killed at any moment leaves whole records
    (a torn one needs the kernel to stop inside that write: a power cut, a full
    disk); :meth:`open` with ``resume=True`` cuts such a torn end off.

    Parameters
    ----------
    path : str or path-like
        ``.jsonl``/``.ndjson`` or ``.csv``.
    classes : sequence of str, optional
        The classifier's classes: the CSV score columns (needed for CSV only).

    Use :meth:`open`, which also says what is already recorded.
    """

    def __init__(self, path, classes=None):
        self.path = Path(path)
        self.format = record_format(path)
        self.classes = None if classes is None else [str(c) for c in classes]
        if self.format == "csv" and self.classes is None:
            raise ValueError("a CSV output needs the classifier's classes")
        self._fd = None

    def open(self, *, resume: bool = False) -> list[dict]:
        """Create (or truncate) the file, or with ``resume`` keep its whole records.

        Returns
        -------
        list of dict
            The records already in the file (empty unless ``resume``).
        """
        done: list[dict] = []
        if resume and self.path.exists():
            data = self.path.read_bytes()
            if self.format == "jsonl":
                done, good = _jsonl_records(data)
            else:
                done, good, classes = _csv_records(data)
                if good and classes != self.classes:
                    raise ValueError(
                        f"{self.path} has score columns for {classes}, but the classifier "
                        f"predicts {self.classes}: resume with the model that wrote it"
                    )
            if good < len(data):
                os.truncate(self.path, good)  # drop the torn end before appending
            flags = os.O_WRONLY | os.O_APPEND
            header = self.format == "csv" and good == 0
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            header = self.format == "csv"
        self._fd = os.open(self.path, flags | getattr(os, "O_BINARY", 0), 0o644)
        if header:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(_csv_header(self.classes))
            self._write(buf.getvalue().encode())
        return done

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # os.write may write less than asked (rare for regular files)
            view = view[os.write(self._fd, view):]

    def write(self, record: dict) -> None:
        """Append one record (visible to other readers as soon as this returns)."""
        if self._fd is None:
            raise ValueError("RecordWriter is not open")
        self._write(_encode(record, self.format, self.classes))

    def close(self) -> None:
        """Sync the file to disk and close it."""
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

