"""The ``fervision`` command: emotion recognition, training, evaluation and the app.

Emotion recognition on images, videos and webcams, training and evaluation, and the
Streamlit app.  TensorFlow is imported only by the subcommands that need a model, so
``fervision --help`` answers at once.  Exit codes: 0 success, 1 an input failed (the
others were still processed) or the run stopped early, 2 bad usage, 130 interrupted
with Ctrl-C, 143 stopped by SIGTERM (``video``/``webcam``: outputs closed and valid).

Every output path is checked before any work (extension, folder, not an input, and an
existing file only replaced with ``--overwrite``).
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
EXIT_TERMINATED = 128 + 15  # SIGTERM, as a shell reports a process it killed
DETECTOR_BACKENDS = ("yunet", "haar", "mtcnn")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fervision")
    except PackageNotFoundError:  # running from a source tree that is not installed
        from .. import __version__

        return __version__


def _error(message) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


# ------------------------------------------------------------------------- arguments
_VERBOSE_HELP = ("show TensorFlow's start-up and log output on stderr (default: hidden; "
                 "also FERVISION_VERBOSE=1, or a TF_CPP_MIN_LOG_LEVEL you set)")
#: The commands that load a model, and so import TensorFlow.
_TENSORFLOW_COMMANDS = ("predict", "video", "webcam", "train", "evaluate")


def _setup_logging(args) -> None:
    """Keep TensorFlow's start-up lines off stderr, loggers at ERROR (:mod:`fervision._quiet`).

    ``--verbose`` sets ``FERVISION_VERBOSE=1`` (for worker processes too) and changes nothing else.
    """
    import logging

    from .._quiet import VERBOSE_ENV, import_tensorflow, verbose_requested

    if getattr(args, "verbose", False):
        os.environ[VERBOSE_ENV] = "1"
    if args.command not in _TENSORFLOW_COMMANDS:
        return
    import_tensorflow()
    if not verbose_requested():
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME|PATH",
                   help="a pretrained model's name (fervision.weights.list_pretrained(), "
                        "e.g. ferplus-large) or a .keras file saved by "
                        "EmotionClassifier.save (default: $FERVISION_MODEL, else the "
                        "bundled pretrained model 'default', no download)")
    g.add_argument("--detector", choices=DETECTOR_BACKENDS,
                   help="face detector backend (default: yunet, with its bundled model)")
    g.add_argument("--detector-model", metavar="PATH",
                   help="a YuNet .onnx model file for --detector yunet (default: "
                        "$FERVISION_DETECTOR_MODEL, else the bundled "
                        "face_detection_yunet_2026may.onnx, no download)")


def _add_overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that already exist (default: refuse, "
                        "before any work); an input is never overwritten")


def _add_stream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write the annotated video here, with the source's audio: .mp4 "
                        "(H.264, plays in browsers), .webm (VP9), .mov, .m4v, .mkv, .avi")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", metavar="FILE", help="per-face results, one row per face")
    fmt.add_argument("--jsonl", metavar="FILE", help="per-frame results, one JSON per line")
    p.add_argument("--summary", metavar="FILE", help="write the run's summary as JSON, "
                   "with each tracked person's dominant emotion and emotion shares")
    p.add_argument("--smoothing", type=float, default=0.0, metavar="A",
                   help="exponential moving average of each tracked face's scores over "
                        "frames, 0 (off, default) to <1 (steadier)")
    p.add_argument("--display", action="store_true",
                   help="show the annotated frames in a window ('q' quits); needs Tk "
                        "(tkinter; Debian/Ubuntu: apt install python3-tk) and a display")
    p.add_argument("--max-frames", type=int, metavar="N",
                   help="stop after N frames (default: no limit)")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="analyse every N-th frame only (default: 1)")
    p.add_argument("--max-unreadable", type=int, default=100, metavar="N",
                   help="skip up to N unreadable (damaged) frames in a row and go on; "
                        "more end the run (default: 100; 0 stops at the first)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overwrite_option(p)
    _add_model_options(p)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``fervision`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Facial emotion recognition: images, videos, webcams, training, "
                    "evaluation and a web app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
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
                        'h], "emotion": ..., "dominant_emotion": ..., "scores": {...}, '
                        '"detection_score": ...}]}] (FaceResult.to_dict())')
    p.add_argument("--annotate", metavar="DIR",
                   help="save each image with boxes and emotions drawn into DIR, under "
                        "its own name (x.jpg -> DIR/x.jpg; a format OpenCV cannot write "
                        "gets .png added: x.ppm -> DIR/x.ppm.png; a second input of the "
                        "same name gets a counter: DIR/x-1.jpg). An input is never "
                        "overwritten, an existing file only with --overwrite")
    _add_overwrite_option(p)
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
                   help="faces per network call (default: the model's batch_size, 64 "
                        "for the bundled model)")
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
                   help="optimizer learning rate (default: 0.001)")
    p.add_argument("--validation-dir", metavar="DIR",
                   help="image folder monitored during training (early stopping) and "
                        "scored after it (accuracy, macro F1)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed, for repeatable runs")
    p.add_argument("--max-per-class", type=int, metavar="N",
                   help="use at most N images per class (quick runs)")
    p.add_argument("--out", default="model.keras", metavar="PATH",
                   help="where to save the model, a .keras file (default: model.keras); "
                        "checked before training")
    _add_overwrite_option(p)
    p.add_argument("--quiet", action="store_true", help="no per-epoch Keras output")

    p = sub.add_parser("evaluate", help="score a model on an image folder",
                       description="Accuracy, per-class report and confusion matrix of a "
                                   "model on DATA_DIR/<emotion>/*.jpg.")
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder per class")
    p.add_argument("--model", metavar="NAME|PATH",
                   help="a pretrained model's name or a saved .keras model (default: "
                        "$FERVISION_MODEL, else the bundled pretrained model 'default')")
    p.add_argument("--out", metavar="DIR",
                   help="write report.json, report.md and confusion_matrix.png here")
    _add_overwrite_option(p)
    p.add_argument("--max-per-class", type=int, metavar="N",
                   help="use at most N images per class (quick runs)")
    p.add_argument("--pretrained", metavar="NAME", default=None,
                   help="a pretrained model by name (fervision.weights.list_pretrained(); "
                        "default: $FERVISION_MODEL, else 'default')")
    p.add_argument("--tta", choices=["none", "flip", "crops"], default=None,
                   help="test-time augmentation (default: the model's own setting, which "
                        "for the pretrained models is none: one pass per face)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (default: one on stderr for more than "
                        "256 images)")

    p = sub.add_parser("app", help="launch the Streamlit web app",
                       description="Launch the Streamlit app (needs `pip install "
                                   "fervision[app]`) on this machine only, with "
                                   "Streamlit's usage statistics off. Arguments after the "
                                   "options are passed to `streamlit run`.")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                   help="address the server listens on (default: 127.0.0.1, this "
                        "machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, help="server port (default: Streamlit's, 8501)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER,
                   help="extra `streamlit run` arguments, e.g. -- --server.headless true")
    for p in sub.choices.values():  # also after the command: fervision predict -v x.jpg
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help=_VERBOSE_HELP)
    return parser


# -------------------------------------------------------------------------- helpers
def _load_models(args):
    """(detector, classifier) for the options given; None means the shared default.

    Loaded before any input is touched, so a bad model fails once, clearly.
    """
    from ..faces.analysis import default_classifier, default_detector, load_classifier

    if args.detector == "mtcnn" and importlib.util.find_spec("mtcnn") is None:
        raise ImportError('--detector mtcnn needs the optional mtcnn package: '
                          'pip install "fervision[mtcnn]"')
    if args.detector or args.detector_model:
        from ..faces.detection import FaceDetector

        kwargs = {"backend": args.detector or "yunet"}
        if args.detector_model:
            if kwargs["backend"] != "yunet":
                raise ValueError(f"--detector-model is a YuNet .onnx file, for --detector "
                                 f"yunet; --detector {kwargs['backend']} has no model file")
            if not Path(args.detector_model).is_file():
                raise FileNotFoundError(f"detector model not found: {args.detector_model!r}")
            kwargs["model_path"] = args.detector_model
        detector = FaceDetector(**kwargs)
        if args.detector_model:
            _check_detector_model(detector, f"--detector-model {args.detector_model!r}")
    else:
        detector = default_detector()
    if args.model:
        classifier = load_classifier(args.model, what="--model")
    else:
        classifier = default_classifier()
    return detector, classifier


def _check_detector_model(detector, what: str) -> None:
    """Load the detector's model now: a wrong file fails once, clearly, before any work."""
    import numpy as np

    try:
        detector.detect(np.zeros((64, 64, 3), np.uint8))
    except Exception as err:  # cv2.error, whose message is OpenCV's multi-line C++ trace
        raise ValueError(f"{what} is not an ONNX model OpenCV can load as a YuNet face "
                         f"detector ({type(err).__name__})") from None


# ------------------------------------------------------------------------- commands
def cmd_predict(args) -> int:
    """Run ``fervision predict``: analyse images and print or write the faces found."""
    if args.output:
        from ..faces._batch import predict_command

        return predict_command(args, _error)
    collection_only = [o for o, v in (("--resume", args.resume), ("--workers", args.workers),
                                      ("--scheduler", args.scheduler)) if v]
    if collection_only:
        _error(f"{', '.join(collection_only)} need(s) --output")
        return EXIT_USAGE
    from ..faces.analysis import analyze, annotate, read_image
    from ._predict_io import annotated_paths, expand_images, print_table, write_image

    images = expand_images(args.images)
    annotated = [None] * len(images)
    if args.annotate:  # every output checked before the models load
        annotated = annotated_paths(Path(args.annotate), [p for p, _ in images],
                                     args.overwrite)
    detector, classifier = _load_models(args)
    if args.annotate:
        Path(args.annotate).mkdir(parents=True, exist_ok=True)
    records, failed = [], 0
    for (path, problem), out in zip(images, annotated, strict=True):
        if problem is not None:
            failed += 1
            _error(problem)
            records.append({"path": path, "error": problem})
            continue
        try:
            image = read_image(path)
            faces = analyze(image, detector, classifier, name=path)
        except (OSError, ValueError) as err:
            failed += 1
            _error(err)
            records.append({"path": path, "error": str(err)})
            continue
        records.append({"path": path, "faces": [f.to_dict() for f in faces]})
        if not args.json:
            print_table(path, faces)
        if out is not None:
            try:
                write_image(out, annotate(image, faces, copy=False), args.overwrite)
            except Exception as err:  # a full disk, a file created meanwhile: this one only
                failed += 1
                records[-1]["error"] = f"cannot write annotated image {str(out)!r}: {err}"
                _error(records[-1]["error"])
    if args.json:
        print(json.dumps(records, indent=2))
    if failed:
        _error(f"{failed} of {len(images)} image(s) could not be processed")
    return EXIT_FAILED if failed else EXIT_OK


def _run_stream(args, source) -> int:
    import warnings

    from ..faces._tracking import describe_tracks
    from ..faces.video import VIDEO_EXTENSIONS, process_video
    from ..files import check_output_path, write_json

    inputs = [source] if isinstance(source, str) else []
    for what, path, suffixes in (("output video", args.output, VIDEO_EXTENSIONS),
                                 ("CSV file", args.csv, None),
                                 ("JSONL file", args.jsonl, None),
                                 ("summary file", args.summary, None)):
        if path:  # before the models load; process_video checks again, and more
            check_output_path(path, what=what, inputs=inputs, suffixes=suffixes,
                              overwrite=args.overwrite)
    detector, classifier = _load_models(args)
    with warnings.catch_warnings():  # reported below, in the command's own words
        warnings.filterwarnings("ignore", message=".*unreadable frame")
        summary = process_video(
            source, detector=detector, classifier=classifier, output=args.output,
            csv=args.csv, jsonl=args.jsonl, smoothing=args.smoothing, display=args.display,
            progress=not args.no_progress, max_frames=args.max_frames, every=args.every,
            max_unreadable=args.max_unreadable, overwrite=args.overwrite,
        )
    print(f"{summary.source}: {summary.frames} frames, {summary.faces} faces in "
          f"{summary.seconds:.1f} s ({summary.fps:.1f} frames/s)")
    for line in describe_tracks(summary.tracks):  # the people, by track id
        print(line)
    if args.summary:
        write_json(args.summary, summary.to_dict())
    if summary.unreadable_frames:
        print(f"{PROG}: warning: skipped {summary.unreadable_frames} unreadable frame(s) "
              f"of {summary.source} (damaged file); they are in no output", file=sys.stderr)
    written = [p for p in (args.output, args.csv, args.jsonl, args.summary) if p]
    if summary.interrupted:
        print(f"{PROG}: stopped: {summary.reason}", file=sys.stderr)
        if written:
            print(f"{PROG}: {', '.join(written)} complete up to the last analysed frame",
                  file=sys.stderr)
        if summary.reason.startswith("interrupted by the user"):
            return EXIT_INTERRUPTED
        if summary.reason.startswith("terminated (SIGTERM)"):
            return EXIT_TERMINATED
        return EXIT_OK if summary.reason == "stopped with 'q'" else EXIT_FAILED
    for p in written:
        print(f"wrote {p}")
    return EXIT_OK


def cmd_video(args) -> int:
    """Run ``fervision video`` on the input file; return the exit status."""
    return _run_stream(args, args.input)


def cmd_webcam(args) -> int:
    """Run ``fervision webcam`` on the camera; return the exit status."""
    return _run_stream(args, args.camera)


def cmd_train(args) -> int:
    """Run ``fervision train``: fit a classifier on an image folder and save it."""
    from ..data.datasets import load_image_folder
    from ..estimator import EmotionClassifier
    from ..files import check_output_path

    # Checked before hours of training, not when saving.
    out = check_output_path(args.out, what="model file (--out)", suffixes={".keras"},
                            overwrite=args.overwrite, create_parents=True)
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
        from ..data.evaluation import evaluate

        Xv, yv = validation
        report = evaluate(clf, Xv, yv)
        print(f"validation ({len(Xv)} images): accuracy {report.accuracy:.4f}, "
              f"macro F1 {report.macro_f1:.4f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(out)
    print(f"saved model to {out}")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    """Run ``fervision evaluate``: score a classifier on an image folder and report it."""
    from ..data.datasets import load_image_folder
    from ..data.evaluation import evaluate
    from ..files import check_output_path

    if args.out:  # the names EvaluationReport.save writes
        for name in ("report.json", "report.md", "confusion_matrix.png"):
            check_output_path(Path(args.out) / name, what="report file",
                              overwrite=args.overwrite, create_parents=True)
    if args.model and args.pretrained:
        raise ValueError("give --model or --pretrained, not both")
    from ..faces.analysis import load_classifier, load_default_classifier

    if args.model:
        clf = load_classifier(args.model, what="--model")
    elif args.pretrained:
        from ..estimator import EmotionClassifier

        clf = EmotionClassifier.from_pretrained(args.pretrained)
    else:
        clf = load_default_classifier()
    if args.tta is not None:
        clf.set_params(tta=False if args.tta == "none" else args.tta)
    X, y = load_image_folder(args.data_dir, max_per_class=args.max_per_class)
    report = evaluate(clf, X, y, progress=False if args.no_progress else None)
    print(report)
    if args.out:
        report.save(args.out)
        print(f"wrote report.json, report.md and confusion_matrix.png to {args.out}")
    return EXIT_OK


def app_path() -> Path:
    """Path of the Streamlit script (``fervision/apps/streamlit_app.py``)."""
    return Path(__file__).with_name("streamlit_app.py")


def cmd_app(args) -> int:
    """Run ``fervision app``: start the Streamlit app; return its exit status."""
    if importlib.util.find_spec("streamlit") is None:
        _error("the app needs Streamlit: pip install 'fervision[app]'")
        return EXIT_FAILED
    extra = [a for a in args.streamlit_args if a != "--"]
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path()),
           # Local by default (people upload face photos), no usage statistics sent.
           "--server.address", args.host, "--browser.gatherUsageStats", "false"]
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
        _setup_logging(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        _error("interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except (OSError, ValueError, RuntimeError, ImportError) as err:
        _error(err)
        return EXIT_FAILED
    except KeyError as err:  # an unknown pretrained name: the message lists the names
        _error(err.args[0] if err.args else err)
        return EXIT_FAILED


if __name__ == "__main__":  # python -m fervision.apps.cli
    sys.exit(main())
