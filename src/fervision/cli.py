"""The ``fervision`` command: emotion recognition on images, videos and webcams,
training and evaluation, and the Streamlit app.

TensorFlow is imported only by the subcommands that need a model, so ``fervision
--help`` answers at once.  Exit codes: 0 success, 1 an input failed (the others were
still processed) or the run stopped early, 2 bad usage, 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

PROG = "fervision"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DETECTOR_BACKENDS = ("yunet", "haar", "mtcnn")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fervision")
    except PackageNotFoundError:  # running from a source tree that is not installed
        from . import __version__

        return __version__


def _error(message) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


# ------------------------------------------------------------------------- arguments
def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="PATH",
                   help="a .keras model saved by EmotionClassifier.save (default: "
                        "$FERVISION_MODEL, else the bundled model)")
    g.add_argument("--detector", choices=DETECTOR_BACKENDS,
                   help="face detector backend (default: FaceDetector()'s default)")
    g.add_argument("--detector-model", metavar="PATH",
                   help="the detector's model file (e.g. a YuNet .onnx) instead of the "
                        "downloaded one")


def _add_stream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write the annotated video here (.avi, .mp4, .mkv, .mov, .m4v)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", metavar="FILE", help="per-face results, one row per face")
    fmt.add_argument("--jsonl", metavar="FILE", help="per-frame results, one JSON per line")
    p.add_argument("--smoothing", type=float, default=0.0, metavar="A",
                   help="exponential moving average of each face's scores over frames, "
                        "0 (off, default) to <1 (steadier)")
    p.add_argument("--display", action="store_true",
                   help="show the annotated frames in a window ('q' quits); needs "
                        "opencv-python (not -headless) and a display")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="analyse every N-th frame only (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_options(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fervision`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Facial emotion recognition: images, videos, webcams, training, "
                    "evaluation and a web app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("predict", help="emotions of the faces in images",
                       description="Find the faces in each image and recognise their "
                                   "emotions. Files that fail are reported on stderr; the "
                                   "others are still processed (exit code 1 at the end).")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files; with --output also folders (walked recursively) "
                        "and quoted glob patterns")
    p.add_argument("--json", action="store_true",
                   help='print one JSON array: [{"path": ..., "faces": [{"box": [x, y, w, '
                        'h], "emotion": ..., "scores": {...}}]}]')
    p.add_argument("--annotate", metavar="DIR",
                   help="save each image with boxes and emotions drawn into DIR")
    g = p.add_argument_group("collections (with --output)")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="write one record per image to FILE (.jsonl or .csv) as each is "
                        "done, with a progress bar; see fervision.analyze_files")
    g.add_argument("--resume", action="store_true",
                   help="keep the records already in FILE and append the other paths")
    g.add_argument("--workers", type=int, metavar="N",
                   help="run on a local Dask cluster of N worker processes")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster (e.g. tcp://host:8786)")
    g.add_argument("--batch-size", type=int, metavar="N",
                   help="faces per network call (default: the model's batch size)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_options(p)

    p = sub.add_parser("video", help="emotions frame by frame in a video file",
                       description="Recognise emotions on every frame of a video file.")
    p.add_argument("input", metavar="IN", help="video file (or stream URL)")
    _add_stream_options(p)

    p = sub.add_parser("webcam", help="emotions live from a camera",
                       description="Recognise emotions live from a camera; stop with 'q' "
                                   "in the window or Ctrl-C.")
    p.add_argument("--camera", type=int, default=0, metavar="N",
                   help="camera index (default: 0)")
    _add_stream_options(p)

    p = sub.add_parser("train", help="train a model on an image folder",
                       description="Train an EmotionClassifier on DATA_DIR/<emotion>/*.jpg "
                                   "and save it.")
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder per class")
    p.add_argument("--backbone", default="fernet", help="backbone name (default: fernet)")
    p.add_argument("--epochs", type=int, default=30, metavar="N", help="default: 30")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="default: 64")
    p.add_argument("--input-size", type=int, default=48, metavar="S",
                   help="side of the square network input (default: 48)")
    p.add_argument("--learning-rate", type=float, metavar="LR",
                   help="optimizer learning rate (default: the classifier's)")
    p.add_argument("--validation-dir", metavar="DIR",
                   help="image folder monitored during training (early stopping) and "
                        "scored after it (accuracy, macro F1)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed, for repeatable runs")
    p.add_argument("--max-per-class", type=int, metavar="N",
                   help="use at most N images per class (quick runs)")
    p.add_argument("--out", default="model.keras", metavar="PATH",
                   help="where to save the model (default: model.keras)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch Keras output")

    p = sub.add_parser("evaluate", help="score a model on an image folder",
                       description="Accuracy, per-class report and confusion matrix of a "
                                   "model on DATA_DIR/<emotion>/*.jpg.")
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder per class")
    p.add_argument("--model", metavar="PATH",
                   help="a saved .keras model (default: $FERVISION_MODEL, else the bundled "
                        "model)")
    p.add_argument("--out", metavar="DIR",
                   help="write report.json, report.md and confusion_matrix.png here")
    p.add_argument("--max-per-class", type=int, metavar="N",
                   help="use at most N images per class (quick runs)")

    p = sub.add_parser("app", help="launch the Streamlit web app",
                       description="Launch the Streamlit app (needs `pip install "
                                   "fervision[app]`). Arguments after the options are "
                                   "passed to `streamlit run`.")
    p.add_argument("--port", type=int, help="server port (default: Streamlit's, 8501)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER,
                   help="extra `streamlit run` arguments, e.g. -- --server.headless true")
    return parser


# -------------------------------------------------------------------------- helpers
def _load_models(args):
    """(detector, classifier) for the options given; None means the shared default.

    Loaded before any input is touched, so a bad model fails once, clearly.
    """
    from .analysis import default_classifier, default_detector

    if args.detector or args.detector_model:
        from .detection import FaceDetector

        kwargs = {"backend": args.detector or "yunet"}
        if args.detector_model:
            if not Path(args.detector_model).is_file():
                raise FileNotFoundError(f"detector model not found: {args.detector_model!r}")
            kwargs["model_path"] = args.detector_model
        detector = FaceDetector(**kwargs)
    else:
        detector = default_detector()
    if args.model:
        from .classifier import EmotionClassifier

        if not Path(args.model).is_file():
            raise FileNotFoundError(f"model file not found: {args.model!r}")
        classifier = EmotionClassifier.load(args.model)
    else:
        classifier = default_classifier()
    return detector, classifier


def _unique_path(folder: Path, name: str, taken: set) -> Path:
    path = folder / name
    stem, suffix = path.stem, path.suffix
    n = 1
    while path in taken:
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    taken.add(path)
    return path


def _write_image(path: Path, image) -> None:
    import cv2

    ext = path.suffix.lower() if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp",
                                                       ".webp", ".tif", ".tiff"} else ".png"
    path = path.with_suffix(ext)
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise ValueError(f"cannot encode annotated image as {ext}")
    tmp = path.with_name(path.name + ".part")
    buf.tofile(tmp)  # write then rename: never a half-written image under the real name
    os.replace(tmp, path)


def _print_table(path: str, faces) -> None:
    n = len(faces)
    print(f"{path}: {n} face{'s' if n != 1 else ''}" + ("" if n else " (no face found)"))
    if not n:
        return
    print(f"  {'#':>2}  {'box (x, y, w, h)':<22}  {'emotion':<9}  confidence")
    for i, f in enumerate(faces):
        box = "(" + ", ".join(str(v) for v in f.box) + ")"
        print(f"  {i:>2}  {box:<22}  {f.emotion:<9}  {f.confidence:>9.1%}")


# ------------------------------------------------------------------------- commands
def cmd_predict(args) -> int:
    if args.output:
        from ._batch import predict_command

        return predict_command(args, _error)
    collection_only = [o for o, v in (("--resume", args.resume), ("--workers", args.workers),
                                      ("--scheduler", args.scheduler)) if v]
    if collection_only:
        _error(f"{', '.join(collection_only)} need(s) --output")
        return EXIT_USAGE
    from .analysis import analyze, annotate, read_image

    detector, classifier = _load_models(args)
    out_dir, taken = None, set()
    if args.annotate:
        out_dir = Path(args.annotate)
        out_dir.mkdir(parents=True, exist_ok=True)
    records, failed = [], 0
    for path in args.images:
        try:
            image = read_image(path)
            faces = analyze(image, detector, classifier)
        except (OSError, ValueError) as err:
            failed += 1
            _error(err)
            records.append({"path": path, "error": str(err)})
            continue
        records.append({"path": path, "faces": [f.to_dict() for f in faces]})
        if not args.json:
            _print_table(path, faces)
        if out_dir is not None:
            _write_image(_unique_path(out_dir, Path(path).name, taken),
                         annotate(image, faces, copy=False))
    if args.json:
        print(json.dumps(records, indent=2))
    if failed:
        _error(f"{failed} of {len(args.images)} image(s) could not be processed")
    return EXIT_FAILED if failed else EXIT_OK


def _run_stream(args, source) -> int:
    from .video import process_video

    detector, classifier = _load_models(args)
    summary = process_video(
        source, detector=detector, classifier=classifier, output=args.output,
        csv=args.csv, jsonl=args.jsonl, smoothing=args.smoothing, display=args.display,
        progress=not args.no_progress, max_frames=args.max_frames, every=args.every,
    )
    print(f"{summary.source}: {summary.frames} frames, {summary.faces} faces in "
          f"{summary.seconds:.1f} s ({summary.fps:.1f} frames/s)")
    written = [p for p in (args.output, args.csv, args.jsonl) if p]
    if summary.interrupted:
        print(f"{PROG}: stopped: {summary.reason}", file=sys.stderr)
        if written:
            print(f"{PROG}: {', '.join(written)} complete up to the last analysed frame",
                  file=sys.stderr)
        if summary.reason.startswith("interrupted by the user"):
            return EXIT_INTERRUPTED
        return EXIT_OK if summary.reason == "stopped with 'q'" else EXIT_FAILED
    for p in written:
        print(f"wrote {p}")
    return EXIT_OK


def cmd_video(args) -> int:
    return _run_stream(args, args.input)


def cmd_webcam(args) -> int:
    return _run_stream(args, args.camera)


def cmd_train(args) -> int:
    from .classifier import EmotionClassifier
    from .datasets import load_image_folder

    X, y = load_image_folder(args.data_dir, max_per_class=args.max_per_class)
    validation = None
    if args.validation_dir:  # loaded before training: a bad folder fails at once
        validation = load_image_folder(args.validation_dir, max_per_class=args.max_per_class)
    print(f"training on {len(X)} images of {len(set(y))} classes from {args.data_dir}")
    params = dict(backbone=args.backbone, input_size=args.input_size, epochs=args.epochs,
                  batch_size=args.batch_size, verbose=0 if args.quiet else 2,
                  random_state=args.seed, validation_data=validation)
    if args.learning_rate is not None:
        params["learning_rate"] = args.learning_rate
    clf = EmotionClassifier(**params).fit(X, y)
    history = getattr(clf, "history_", None) or {}
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if history.get(key):
            print(f"final {key}: {history[key][-1]:.4f}")
    if validation is not None:
        from .evaluation import evaluate

        Xv, yv = validation
        report = evaluate(clf, Xv, yv)
        print(f"validation ({len(Xv)} images): accuracy {report.accuracy:.4f}, "
              f"macro F1 {report.macro_f1:.4f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(out)
    print(f"saved model to {out}")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from .datasets import load_image_folder
    from .evaluation import evaluate

    if args.model:
        from .classifier import EmotionClassifier

        if not Path(args.model).is_file():
            raise FileNotFoundError(f"model file not found: {args.model!r}")
        clf = EmotionClassifier.load(args.model)
    else:
        from .analysis import load_default_classifier

        clf = load_default_classifier(realtime=False)  # the shipped, most accurate setting
    X, y = load_image_folder(args.data_dir, max_per_class=args.max_per_class)
    report = evaluate(clf, X, y)
    print(report)
    if args.out:
        report.save(args.out)
        print(f"wrote report.json, report.md and confusion_matrix.png to {args.out}")
    return EXIT_OK


def app_path() -> Path:
    """Path of the Streamlit script (``fervision/app.py``)."""
    return Path(__file__).with_name("app.py")


def cmd_app(args) -> int:
    if importlib.util.find_spec("streamlit") is None:
        _error("the app needs Streamlit: pip install 'fervision[app]'")
        return EXIT_FAILED
    extra = [a for a in args.streamlit_args if a != "--"]
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path())]
    if args.port is not None:
        cmd += ["--server.port", str(args.port)]
    try:
        return subprocess.call(cmd + extra)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


COMMANDS = {
    "predict": cmd_predict,
    "video": cmd_video,
    "webcam": cmd_webcam,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "app": cmd_app,
}


def main(argv=None) -> int:
    """Run the ``fervision`` command line; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        _error("interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except (OSError, ValueError, RuntimeError) as err:
        _error(err)
        return EXIT_FAILED


if __name__ == "__main__":  # python -m fervision.cli
    sys.exit(main())
