"""Compare the face-detector backends: detection rate, false positives and speed.

Scenes: FER2013 test faces (48 x 48, tight crops) padded with their replicated border,
upscaled to 120-220 px and pasted at a random place on a 640 x 480 textured canvas.  A
face counts as found when the largest detection's centre lies inside the pasted face.
False positives: face-free 640 x 480 images (scikit-image's non-face sample photos when
scikit-image is installed, plus smooth random textures and a blank frame).  Speed: median
milliseconds of ``FaceDetector.detect`` per 640 x 480 frame, after one warm-up call.

Usage::

    nice -n 10 python benchmarks/bench_detectors.py [--n-faces 200] [--backends yunet haar]
        [--model-path shared/models/face_detection_yunet_2026may.onnx]

Prints a table and writes ``benchmarks/results/detectors.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np

from fervision.data.datasets import load_image_folder
from fervision.faces.detection import FaceDetector

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FERVISION_SHARED", ROOT.parent / "shared"))
W, H = 640, 480


def texture(rng: np.random.Generator, shape=(H, W)) -> np.ndarray:
    """Smooth random gray texture (a background with some structure, but no face)."""
    small = rng.integers(40, 216, size=(shape[0] // 16 + 1, shape[1] // 16 + 1), dtype=np.uint8)
    big = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, size=shape)
    return np.clip(big + noise, 0, 255).astype(np.uint8)


def fer_scene(face48: np.ndarray, rng: np.random.Generator):
    """Paste an upscaled FER face on a 640 x 480 canvas; return (BGR frame, face box)."""
    pad = 16  # FER crops are tight: give the detector some forehead/chin/background
    padded = cv2.copyMakeBorder(face48, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    side = int(rng.integers(120, 221))
    scale = side / padded.shape[0]
    face = cv2.resize(padded, (side, side), interpolation=cv2.INTER_CUBIC)
    canvas = texture(rng)
    x, y = int(rng.integers(0, W - side)), int(rng.integers(0, H - side))
    canvas[y : y + side, x : x + side] = face
    inner = (x + pad * scale, y + pad * scale, 48 * scale, 48 * scale)  # the FER face itself
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), inner


def face_free_images(rng: np.random.Generator, n_textures: int = 30) -> list[np.ndarray]:
    frames = [np.full((H, W, 3), 127, np.uint8)]
    frames += [cv2.cvtColor(texture(rng), cv2.COLOR_GRAY2BGR) for _ in range(n_textures)]
    frames += [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(5)]
    try:
        from skimage import data
    except ImportError:
        return frames
    names = ["coffee", "chelsea", "rocket", "coins", "text", "page", "brick", "grass",
             "gravel", "moon", "horse", "hubble_deep_field", "immunohistochemistry",
             "logo", "clock", "colorwheel", "cell", "retina"]  # all bundled: no download
    for name in names:
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # some need an optional download (pooch): skip them
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.dtype != np.uint8:
            img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        if img.ndim == 3:
            img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        frames.append(cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA))
    return frames


def hit(faces, inner) -> bool:
    if not faces:
        return False
    x, y, w, h = faces[0].box
    cx, cy = x + w / 2, y + h / 2
    ix, iy, iw, ih = inner
    return ix <= cx <= ix + iw and iy <= cy <= iy + ih


def run_backend(detector: FaceDetector, scenes, negatives) -> dict:
    detector.detect(scenes[0][0])  # warm-up: load the model outside the timing
    times, hits = [], 0
    for frame, inner in scenes:
        t0 = time.perf_counter()
        faces = detector.detect(frame)
        times.append((time.perf_counter() - t0) * 1000)
        hits += hit(faces, inner)
    fp_images = fp_boxes = 0
    for frame in negatives:
        faces = detector.detect(frame)
        fp_images += bool(faces)
        fp_boxes += len(faces)
    return {
        "detection_rate": hits / len(scenes),
        "n_faces": len(scenes),
        "false_positive_images": fp_images,
        "false_positive_boxes": fp_boxes,
        "n_negatives": len(negatives),
        "ms_per_frame_median": float(np.median(times)),
        "ms_per_frame_p90": float(np.percentile(times, 90)),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-faces", type=int, default=200)
    parser.add_argument("--backends", nargs="+", default=["yunet", "haar", "mtcnn"])
    parser.add_argument(
        "--model-path", default=str(SHARED / "models/face_detection_yunet_2026may.onnx")
    )
    parser.add_argument("--fer-dir", default=str(SHARED / "data/fer2013"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/detectors.json"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    per_class = -(-args.n_faces // 7)
    X, _ = load_image_folder(Path(args.fer_dir) / "test", max_per_class=per_class,
                             random_state=args.seed)
    X = X[rng.permutation(len(X))[: args.n_faces]]
    scenes = [fer_scene(face, rng) for face in X]
    negatives = face_free_images(rng)

    results = {}
    for backend in args.backends:
        detector = FaceDetector(backend=backend, model_path=args.model_path)
        try:
            results[backend] = run_backend(detector, scenes, negatives)
        except ImportError as err:
            print(f"skipping {backend}: {err}", file=sys.stderr)

    header = (f"{'backend':8} {'detected':>9} {'FP images':>10} {'FP boxes':>9} "
              f"{'ms/frame':>9} {'p90 ms':>7}")
    print(f"{len(scenes)} FER2013 faces on {W}x{H} canvases, {len(negatives)} face-free images")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        fp = f"{r['false_positive_images']:>4}/{r['n_negatives']:<5}"
        print(f"{name:8} {r['detection_rate']:9.1%} {fp} {r['false_positive_boxes']:9d} "
              f"{r['ms_per_frame_median']:9.1f} {r['ms_per_frame_p90']:7.1f}")

    payload = {
        "results": results,
        "setup": {
            "n_faces": len(scenes), "n_negatives": len(negatives), "frame": [W, H],
            "seed": args.seed, "model_path": Path(args.model_path).name,
            "opencv": cv2.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")  # write then rename: never a half-written file
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(out)
    print(f"wrote {out}")
    return payload


if __name__ == "__main__":
    main()
