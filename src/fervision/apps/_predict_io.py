"""Inputs and outputs of ``fervision predict`` on the terminal (no ``--output``).

Quoted glob patterns expanded, the annotated copies' paths planned and checked before any
work, annotated images written atomically, and the per-image table.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path


def expand_images(images) -> list[tuple[str, str | None]]:
    """(path, error) per input: quoted glob patterns expanded, in order.

    A shell expands ``imgs/*.jpg`` itself, but not when it is quoted (or on Windows):
    a pattern that names no existing file is expanded here; one that matches nothing
    becomes that input's error.
    """
    expanded = []
    for image in images:
        if os.path.lexists(image) or not glob.has_magic(image):
            expanded.append((image, None))
            continue
        matches = sorted(m for m in glob.glob(image) if not os.path.isdir(m))
        if matches:
            expanded += [(m, None) for m in matches]
        else:
            expanded.append((image, f"no file matches the pattern {image!r}"))
    return expanded


#: Image formats an annotated copy keeps; others get ".png" added to their name.
_ANNOTATE_FORMATS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def annotated_paths(folder: Path, paths, overwrite: bool) -> list[Path]:
    """Where each input's annotated copy goes, all checked before any work.

    The input's own name, with ``.png`` appended (not substituted) when OpenCV cannot
    write its format, so ``x.ppm`` and ``x.png`` stay two files; a name already used in
    this run gets a counter (``x-1.jpg``), compared case-insensitively for the file
    systems that are.
    """
    from ..files import check_output_path

    inputs = [p for p in paths if os.path.isfile(p)]
    taken, planned = set(), []
    for path in paths:
        name = Path(path).name
        if Path(name).suffix.lower() not in _ANNOTATE_FORMATS:
            name += ".png"
        stem, suffix = Path(name).stem, Path(name).suffix
        out, n = folder / name, 1
        while out.name.casefold() in taken:
            out, n = folder / f"{stem}-{n}{suffix}", n + 1
        taken.add(out.name.casefold())
        planned.append(check_output_path(out, what="annotated image", inputs=inputs,
                                         overwrite=overwrite, create_parents=True))
    return planned


def write_image(path: Path, image, overwrite: bool) -> None:
    """Encode ``image`` in the format of ``path``'s suffix and write it there atomically."""
    import cv2

    from ..files import atomic_write

    ok, buf = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise ValueError(f"cannot encode annotated image as {path.suffix}")
    # A private temp file renamed into place: never a half-written image under the
    # real name, never a write through a link planted in the folder.
    atomic_write(path, lambda fh: fh.write(buf.tobytes()), overwrite=overwrite)


def print_table(path: str, faces) -> None:
    """Print one image's faces: box, emotion and confidence, or that none was found."""
    n = len(faces)
    print(f"{path}: {n} face{'s' if n != 1 else ''}" + ("" if n else " (no face found)"))
    if not n:
        return
    print(f"  {'#':>2}  {'box (x, y, w, h)':<22}  {'emotion':<9}  confidence")
    for i, f in enumerate(faces):
        box = "(" + ", ".join(str(v) for v in f.box) + ")"
        print(f"  {i:>2}  {box:<22}  {f.emotion:<9}  {f.confidence:>9.1%}")
