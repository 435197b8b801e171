"""A small photo collection for the batch-analysis tests.

Variants of tests/data/astronaut.jpg in nested folders, plus two files that cannot be
read.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ASTRONAUT = Path(__file__).parent / "data" / "astronaut.jpg"
#: Paths (relative to the tree's root) of the unreadable files make_image_tree writes.
BAD_FILES = ("b/broken.jpg", "c/d/empty.png")


def _variant(image: np.ndarray, i: int) -> np.ndarray:
    # Different sizes, mirrorings, brightness and placements, so the faces, boxes and
    # scores differ from image to image; every 5th image has no face at all.
    if i % 5 == 4:
        return np.full((160 + i, 200, 3), (40 + 3 * i) % 256, np.uint8)
    out = cv2.flip(image, 1) if i % 2 else image
    scale = 0.5 + 0.05 * (i % 11)
    out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = cv2.convertScaleAbs(out, alpha=0.8 + 0.02 * (i % 13), beta=i % 17)
    if i % 3 == 0:  # on a wider canvas: a different position in the frame
        canvas = np.full((out.shape[0], out.shape[1] * 2, 3), 120, np.uint8)
        x = (i * 7) % out.shape[1]
        canvas[:, x:x + out.shape[1]] = out
        out = canvas
    return out


def make_image_tree(root, n: int = 30) -> list[Path]:
    """Write ``n`` readable images and the two :data:`BAD_FILES` under ``root``.

    Returns
    -------
    list of Path
        Every file written, readable ones first.
    """
    root = Path(root)
    image = cv2.imread(str(ASTRONAUT))
    folders = ["a", "b", "c/d", "c/e"]
    written = []
    for i in range(n):
        folder = root / folders[i % len(folders)]
        folder.mkdir(parents=True, exist_ok=True)
        ext = ".png" if i % 4 == 1 else ".jpg"
        path = folder / f"img{i:03d}{ext}"
        cv2.imwrite(str(path), _variant(image, i))
        written.append(path)
    (root / "a" / "notes.txt").write_text("not an image: a folder walk skips it\n")
    (root / BAD_FILES[0]).write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (root / BAD_FILES[1]).write_bytes(b"")
    written += [root / b for b in BAD_FILES]
    return written
