r"""Frames per second of ``fervision.analyze`` and of the ``fer`` package on a VGA frame.

``fervision.analyze`` (detect + classify) against the ``fer`` package's
``FER(mtcnn=False).detect_emotions`` on the same frame.

The frame: a FER2013 test face padded with its replicated border, upscaled to 200 px and
pasted on a 640 x 480 canvas (one face).  Each contender gets ``--warmup`` untimed
calls, then ``--calls`` timed ones; the table shows the median and mean milliseconds per
call and the frames per second (1 / mean).

``fer`` bundles an older Keras model and needs an older TensorFlow, so it is never
installed next to fervision: install it in its own virtual environment and point
``--fer-python`` at that environment's interpreter (the default, ``/tmp/ferenv``, is
used when it exists)::

    python -m venv /tmp/ferenv
    /tmp/ferenv/bin/pip install --no-deps fer==22.5.1
    /tmp/ferenv/bin/pip install "tensorflow-cpu==2.15.1" "numpy<2" \
        "opencv-python-headless<4.10" "moviepy<2" pandas tqdm requests Pillow "setuptools<70"

Usage::

    nice -n 10 python benchmarks/bench_analyze.py [--calls 100] [--untrained]
        [--detector-model face_detection_yunet.onnx]

``--untrained`` measures an untrained ``fernet`` model (the default model's
architecture, so the same speed) for machines where the bundled default model is not
there yet.  Prints a table and writes ``benchmarks/results/analyze.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FERVISION_SHARED", ROOT.parent / "shared"))
DEFAULT_FER_PYTHON = Path("/tmp/ferenv/bin/python")

# Runs inside fer's virtual environment: time detect_emotions on the saved frame.
FER_SCRIPT = r"""
import json, sys, time, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cv2
from fer import FER
frame = cv2.imread(sys.argv[1])
warmup, calls = int(sys.argv[2]), int(sys.argv[3])
detector = FER(mtcnn=False)
for _ in range(warmup):
    faces = detector.detect_emotions(frame)
times = []
for _ in range(calls):
    t = time.perf_counter()
    faces = detector.detect_emotions(frame)
    times.append(time.perf_counter() - t)
import tensorflow as tf
print(json.dumps({"times": times, "faces": len(faces), "tensorflow": tf.__version__}))
"""


def make_frame() -> np.ndarray:
    """640 x 480 BGR frame with the first FER2013 'happy' test face, 200 px wide."""
    from fervision.data.datasets import load_image_folder

    X, _ = load_image_folder(SHARED / "data/fer2013/test", classes=["happy"], max_per_class=1)
    padded = cv2.copyMakeBorder(X[0], 16, 16, 16, 16, cv2.BORDER_REPLICATE)
    face = cv2.resize(padded, (200, 200), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((480, 640), 110, np.uint8)
    canvas[140:340, 220:420] = face
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def timed(fn, warmup: int, calls: int) -> tuple[list[float], object]:
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def summarize(times) -> dict:
    mean = statistics.fmean(times)
    return {"median_ms": 1e3 * statistics.median(times), "mean_ms": 1e3 * mean,
            "fps": 1.0 / mean, "calls": len(times)}


def fervision_models(args):
    from fervision.estimator import EmotionClassifier
    from fervision.faces.detection import FaceDetector

    detector = FaceDetector(model_path=args.detector_model)  # the default backend: YuNet
    if args.untrained:
        from fervision.data.labels import EMOTIONS
        from fervision.nn.backbones import create_model

        classifier = EmotionClassifier.from_keras_model(create_model("fernet"), list(EMOTIONS))
        label = "fervision analyze (untrained fernet)"
    else:
        from fervision.faces.analysis import load_default_classifier

        try:
            classifier = load_default_classifier()  # what analyze() uses by default
        except FileNotFoundError as err:
            sys.exit(f"{err}\nRun with --untrained to time the same architecture untrained.")
        label = "fervision analyze (default model)"
    return detector, classifier, label


def run_fer(python: Path, frame: np.ndarray, warmup: int, calls: int) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.png"
        cv2.imwrite(str(path), frame)
        done = subprocess.run([str(python), "-c", FER_SCRIPT, str(path), str(warmup),
                               str(calls)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        print(f"fer failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--untrained", action="store_true",
                        help="time an untrained fernet model (fallback when the default "
                             "model is not bundled yet)")
    parser.add_argument("--detector-model",
                        help="YuNet .onnx file (default: FaceDetector()'s own)")
    parser.add_argument("--fer-python", default=str(DEFAULT_FER_PYTHON),
                        help="python of a virtual environment with `fer` installed; "
                             "'' skips fer")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/analyze.json"))
    args = parser.parse_args(argv)

    from fervision import analyze
    from fervision.estimator import EmotionClassifier
    from fervision.nn.tta import resolve_tta

    frame = make_frame()
    detector, classifier, label = fervision_models(args)
    faces = detector.detect(frame)
    crops = detector.crops(frame, faces)
    rows = {}
    times, results = timed(lambda: analyze(frame, detector, classifier), args.warmup,
                           args.calls)
    rows[label] = {**summarize(times), "faces": len(results)}
    shipped = resolve_tta(classifier.tta)
    if not args.untrained:
        # The bundled model's own, most accurate setting (12 views), for comparison.
        exact = EmotionClassifier.from_pretrained()
        if resolve_tta(exact.tta) != shipped:
            times, results = timed(lambda: analyze(frame, detector, exact), args.warmup,
                                   args.calls)
            rows[label.replace(")", f", tta={resolve_tta(exact.tta)!r})")] = {
                **summarize(times), "faces": len(results)}
    times, _ = timed(lambda: detector.detect(frame), args.warmup, args.calls)
    rows["  of which: YuNet detect"] = {**summarize(times), "faces": len(faces)}
    times, _ = timed(lambda: classifier.predict_proba(crops), args.warmup, args.calls)
    rows[f"  of which: predict_proba (1 crop, tta={shipped!r})"] = {
        **summarize(times), "faces": len(crops)}

    fer = None
    if args.fer_python and Path(args.fer_python).exists():
        fer = run_fer(Path(args.fer_python), frame, args.warmup, args.calls)
        if fer is not None:
            rows[f"fer FER(mtcnn=False) (TF {fer['tensorflow']})"] = {
                **summarize(fer["times"]), "faces": fer["faces"]}
    elif args.fer_python:
        print(f"fer skipped: {args.fer_python} not found (see this script's docstring)",
              file=sys.stderr)

    print(f"\n640x480 frame, 1 face; {args.calls} timed calls after {args.warmup} warm-up; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
    print(f"{'':44} {'median ms':>10} {'mean ms':>9} {'frames/s':>9} {'faces':>6}")
    for name, r in rows.items():
        print(f"{name:44} {r['median_ms']:10.2f} {r['mean_ms']:9.2f} {r['fps']:9.1f} "
              f"{r['faces']:6d}")
    ratio = None
    if fer is not None:
        ratio = rows[label]["fps"] / summarize(fer["times"])["fps"]
        print(f"\nfervision / fer frames per second: {ratio:.2f}x")

    payload = {"frame": "640x480, one FER2013 face upscaled to 200 px",
               "warmup": args.warmup, "python": platform.python_version(),
               "cpus": os.cpu_count(), "results": rows, "fervision_over_fer_fps": ratio}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")  # write then rename: never a half-written file
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
