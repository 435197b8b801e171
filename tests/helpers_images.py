"""Image files that used to escape per-file error handling (issue 15), built cheaply."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def big_png(width: int, height: int) -> bytes:
    """Return a valid, all-black 1-bit PNG of ``width`` x ``height`` in a few hundred KB.

    Built in milliseconds: one block of rows is deflated once, ending with a full flush
    (which makes it independent of what came before), and repeated; the Adler-32
    checksum of the whole stream is updated block by block.
    """
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    rows_per_block = max(1, min(height, (1 << 20) // len(row)))
    block = row * rows_per_block
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(height, rows_per_block)
    adler = 1
    for _ in range(full):
        adler = zlib.adler32(block, adler)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    last = tail.compress(row * rest) + tail.flush()
    adler = zlib.adler32(row * rest, adler)
    stream = b"\x78\xda" + segment * full + last + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream)
            + _chunk(b"IEND", b""))


def corrupt_bmp() -> bytes:
    """Return a 30 x 20 BMP whose header claims a width of 2**30 (OpenCV raised cv2.error)."""
    _ok, buf = cv2.imencode(".bmp", np.full((20, 30, 3), 100, np.uint8))
    data = bytearray(buf.tobytes())
    struct.pack_into("<i", data, 18, 2**30)
    return bytes(data)


def write_bad_images(folder) -> dict:
    """Write the files of issue 15 that crashed a batch; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    rng = np.random.default_rng(0)
    for h, w in ((2, 4000), (8, 4000), (10, 4000)):  # cv2.error / OverflowError in detection
        path = folder / f"wide_{h}x{w}.png"
        assert cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths[path.stem] = path
    paths["huge_40000"] = folder / "huge_40000.png"  # cv2.error: CV_IO_MAX_IMAGE_PIXELS
    paths["huge_40000"].write_bytes(big_png(40000, 40000))
    paths["corrupt_bmp"] = folder / "corrupt_header.bmp"  # cv2.error in imdecode
    paths["corrupt_bmp"].write_bytes(corrupt_bmp())
    return paths
