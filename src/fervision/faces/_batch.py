"""Batch analysis of image collections, in one process or on a Dask cluster.

A threaded pipeline in one process, and the same pipeline on the workers of a Dask
cluster.

In one process, a pool of threads reads, decodes and detects the faces of the next
images (OpenCV releases the GIL) while the calling thread classifies the faces of
many images in one network call.  With Dask, the paths are cut into partitions; each
worker process runs that pipeline on its partitions with a detector and a classifier it
builds (or receives) once, and the records come back to the client, which writes them
in input order.

Results do not depend on how the work was split: the network is always called on a
fixed number of faces (``batch_size``, the last call of a run padded with blank
faces), because a CPU network gives results that differ in the last bits with the
batch *shape* (not with the other faces in the batch), and ``batch_size`` alone fixes
that shape.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ._collections import RecordWriter, expand_paths, record_format

__all__ = ["analyze_files"]

#: Faces per network call when neither ``batch_size`` nor the classifier says.
DEFAULT_BATCH = 32


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# ------------------------------------------------------------ per-process model cache
# Built once per process (the client's, or each Dask worker's) and reused by every
# partition that process runs: loading the bundled model takes seconds, a partition
# may take less.
_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _cached(key, factory):
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = factory()
        return _CACHE[key]


def _resolve_classifier(classifier):
    """Return a fitted classifier from a classifier spec.

    The spec is None (the process default), a saved model's path (loaded once per
    process) or an estimator (used as it is).
    """
    if classifier is None:
        from .analysis import default_classifier

        return default_classifier()
    if isinstance(classifier, str | os.PathLike):
        path = os.path.abspath(os.fspath(classifier))

        def load():
            from ..estimator import EmotionClassifier

            if not os.path.isfile(path):
                raise FileNotFoundError(f"model file not found: {path!r}")
            return EmotionClassifier.load(path)

        return _cached(("model", path), load)
    return classifier


def _resolve_detector(detector):
    if detector is None:
        from .analysis import default_detector

        return default_detector()
    return detector


def _classes(classifier) -> list[str]:
    """Return the classes of a classifier spec, without loading a model when it is a path."""
    if classifier is None:
        from .analysis import MODEL_ENV

        path = os.environ.get(MODEL_ENV)
        if not path:
            from ..estimator._persistence import bundled_model_path

            path = bundled_model_path()
        classifier = path
    if isinstance(classifier, str | os.PathLike):
        from ..estimator import EmotionClassifier

        return [str(c) for c in EmotionClassifier.read_metadata(classifier)["classes"]]
    return [str(c) for c in classifier.classes_]


# ------------------------------------------------------------------ one-process pipeline
class _Pipeline:
    """Decode and detect in ``n_threads`` threads, classify in fixed-size batches.

    Each thread detects with its own clone of ``detector``: OpenCV's YuNet keeps
    per-call state (input size, buffers) and must not be shared between threads.
    """

    def __init__(self, detector, classifier, batch_size, n_threads):
        self.detector = detector
        self.classifier = classifier
        self.batch_size = int(batch_size)
        self.n_threads = int(n_threads)
        self.classes = [str(c) for c in classifier.classes_]
        self._local = threading.local()

    def _thread_detector(self):
        det = getattr(self._local, "detector", None)
        if det is None:
            from sklearn.base import clone

            det = self._local.detector = clone(self.detector)
        return det

    def _prepare(self, path):
        from .analysis import detect_and_crop, read_image

        det = self._thread_detector()
        try:
            image = read_image(path)
            faces, crops = detect_and_crop(image, det, name=str(path))
            return faces, crops, None
        except (OSError, ValueError) as err:
            # One bad file is a record, not the end of a run over a million files.
            return None, None, str(err)

    def _proba(self, crops: np.ndarray) -> np.ndarray:
        n, size = self.batch_size, len(crops)
        out = []
        for start in range(0, size, n):
            part = crops[start:start + n]
            k = len(part)
            if k < n:  # pad: the same batch shape whatever the split (module docs)
                part = np.concatenate([part, np.zeros((n - k, *part.shape[1:]), part.dtype)])
            out.append(np.asarray(self.classifier.predict_proba(part), dtype=np.float32)[:k])
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def _records(self, pending) -> list[dict]:
        from .analysis import results_from

        crops = [c for _, faces, c, _ in pending if faces]
        proba = self._proba(np.concatenate(crops)) if crops else None
        records, row = [], 0
        for path, faces, _, error in pending:
            if error is not None:
                records.append({"path": path, "error": error})
                continue
            p = proba[row:row + len(faces)] if faces else np.zeros((0, len(self.classes)))
            row += len(faces)
            results = results_from(faces, p, self.classes)
            records.append({"path": path, "faces": [r.to_dict() for r in results]})
        return records

    def run(self, paths) -> Iterator[dict]:
        """Yield one record per path, in the order of ``paths``."""
        paths = list(paths)
        # Enough images in flight to fill the next batch while this one is classified.
        window = max(2 * self.batch_size, 4 * self.n_threads)
        with ThreadPoolExecutor(self.n_threads, thread_name_prefix="fervision-detect") as pool:
            todo = iter(paths)
            inflight: deque = deque()

            def fill():
                while len(inflight) < window:
                    path = next(todo, None)
                    if path is None:
                        return
                    inflight.append((path, pool.submit(self._prepare, path)))

            fill()
            pending, n_faces = [], 0
            try:
                while inflight:
                    path, future = inflight.popleft()
                    faces, crops, error = future.result()
                    fill()
                    pending.append((path, faces, crops, error))
                    n_faces += len(faces or ())
                    if n_faces >= self.batch_size or len(pending) >= self.batch_size \
                            or not inflight:
                        yield from self._records(pending)
                        pending, n_faces = [], 0
            finally:
                for _, future in inflight:  # stopped early: do not detect the rest
                    future.cancel()


def _pipeline(detector, classifier, batch_size, n_threads) -> _Pipeline:
    detector = _resolve_detector(detector)
    clf = _resolve_classifier(classifier)
    if batch_size is None:
        batch_size = getattr(clf, "batch_size", None) or DEFAULT_BATCH
    if n_threads is None:
        n_threads = _default_threads()
    # One pipeline (its thread-local detectors) per process and settings; the objects
    # are kept in the key's value so their ids stay theirs.
    key = ("pipeline", id(detector), id(clf), int(batch_size), int(n_threads))
    return _cached(key, lambda: _Pipeline(detector, clf, batch_size, n_threads))


def _analyze_partition(paths, detector, classifier, batch_size, n_threads) -> list[dict]:
    """Dask task: the records of one partition of paths, on a worker."""
    return list(_pipeline(detector, classifier, batch_size, n_threads).run(paths))


# ------------------------------------------------------------------------------ Dask
def _dask_records(client, paths, detector, classifier, batch_size, n_threads,
                  partition_size) -> Iterator[dict]:
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    if partition_size is None:
        # Several partitions per worker (load balance, steady streaming), each big
        # enough to fill batches.
        per = math.ceil(len(paths) / (4 * n_workers))
        partition_size = min(max(per, batch_size or DEFAULT_BATCH), 1024)
    parts = [paths[i:i + partition_size] for i in range(0, len(paths), partition_size)]
    # Estimators go to each worker once (scatter, broadcast) and tasks refer to that
    # copy; None and paths are built or loaded on the workers themselves.
    shipped = []
    for obj in (detector, classifier):
        if obj is None or isinstance(obj, str | os.PathLike):
            shipped.append(obj if obj is None else os.fspath(obj))
        else:
            shipped.append(client.scatter(obj, broadcast=True, hash=False))
    futures = [client.submit(_analyze_partition, part, *shipped, batch_size, n_threads,
                             pure=False) for part in parts]
    index = {f.key: i for i, f in enumerate(futures)}
    ready: dict[int, list] = {}
    nxt = 0
    try:
        for future in as_completed(futures):
            ready[index[future.key]] = future.result()
            future.release()
            # Write in input order, so the file is the same however the work was split.
            while nxt in ready:
                yield from ready.pop(nxt)
                nxt += 1
    finally:
        client.cancel([f for f in futures if not f.done()])


class _DaskSession:
    """The client to use: given, connected to an address, or on a new LocalCluster."""

    def __init__(self, client, n_workers):
        self.client, self._own = client, []
        if isinstance(client, str):
            from distributed import Client

            self.client = Client(client)
            self._own = [self.client]
        elif client is None and n_workers:
            from distributed import Client, LocalCluster

            # One thread per worker process: TensorFlow already uses several cores per
            # call, and the pipeline has its own detection threads.
            cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            self.client = Client(cluster)
            self._own = [self.client, cluster]

    def close(self):
        for obj in self._own:
            obj.close()
        self._own = []


# ---------------------------------------------------------------------------- public
def analyze_files(paths, output=None, client=None, *, n_workers=None, detector=None,
                  classifier=None, resume=False, batch_size=None, n_threads=None,
                  partition_size=None, progress=False) -> Iterator[dict]:
    """Analyse a collection of image files; yield one record per image.

    Parameters
    ----------
    paths : str, path-like or iterable of them
        Files, folders (walked recursively for images) and glob patterns; see
        :func:`fervision.faces._collections.expand_paths`.
    output : str or path-like, optional
        A ``.jsonl`` or ``.csv`` file to write the records to, each one as soon as it
        is known (an existing file is replaced, unless ``resume``).  JSON Lines holds
        the records as yielded; CSV has one row per face (``path, n_faces, face, x, y,
        w, h, emotion, score_<class>..., error``).
    client : distributed.Client or str, optional
        Run on this Dask cluster (a client, or a scheduler address such as
        ``"tcp://host:8786"``).  Paths are opened on the workers as given, so they
        must be valid there (a shared file system).
    n_workers : int, optional
        Without ``client``: start a local Dask cluster of this many worker processes
        for the run, and shut it down after.
    detector : FaceDetector, optional
        Default: :func:`fervision.faces.analysis.default_detector` of each process.
    classifier : EmotionClassifier, str or path-like, optional
        A fitted classifier, or the path of a saved ``.keras`` model (then each Dask
        worker loads it from that path itself, once).  Default: each process's
        :func:`fervision.faces.analysis.default_classifier` (``$FERVISION_MODEL`` or the
        bundled model).  An estimator object is sent to each worker once.
    resume : bool, default=False
        Keep the records already in ``output`` (cutting off a torn last record left
        by a killed run), skip their paths and append the others.
    batch_size : int, optional
        Faces per network call.  Default: the classifier's ``batch_size`` (or 32).
        Records depend on it in the last bits (see the module docs), so resume a file
        with the batch size that began it.
    n_threads : int, optional
        Threads that read and detect, per process.  Default: the number of CPUs, at
        most 4.
    partition_size : int, optional
        Paths per Dask task.  Default: about four tasks per worker, 1024 paths at most.
    progress : bool, default=False
        Show a tqdm progress bar on stderr.

    Yields
    ------
    dict
        ``{"path": ..., "faces": [{"box": [x, y, w, h], "emotion": ..., "scores":
        {...}}, ...]}``, or ``{"path": ..., "error": message}`` for an image that
        could not be read; in the order of ``paths`` (with ``resume``, only the paths
        not already recorded).  The work happens while iterating: consume the
        generator (``for record in analyze_files(...)``) even when only the file is
        wanted.

    Raises
    ------
    ValueError
        No image found, or ``output`` is neither ``.jsonl`` nor ``.csv``, or
        ``resume`` without ``output``.

    Examples
    --------
    >>> import fervision
    >>> for rec in fervision.analyze_files("photos/", "results.jsonl",
    ...                                    n_workers=4):  # doctest: +SKIP
    ...     if "error" in rec:
    ...         print(rec["path"], rec["error"])
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = expand_paths(paths)
    if output is not None:
        record_format(output)  # a wrong extension fails before any work
    elif resume:
        raise ValueError("resume=True needs an output file")
    if client is not None and n_workers:
        raise ValueError("give either client or n_workers, not both")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    # Checked here, so that a generator never started is the only thing left unchecked.
    return _run(paths, output, client, n_workers, detector, classifier, resume, batch_size,
                n_threads, partition_size, progress)


def _run(paths, output, client, n_workers, detector, classifier, resume, batch_size,
         n_threads, partition_size, progress) -> Iterator[dict]:
    from tqdm.auto import tqdm

    distributed = client is not None or bool(n_workers)
    writer = None
    if output is not None:
        classes = _classes(classifier) if record_format(output) == "csv" else None
        writer = RecordWriter(output, classes)
        done = {rec["path"] for rec in writer.open(resume=resume)}
        paths = [p for p in paths if p not in done]
    session = None
    bar = tqdm(total=len(paths), unit="img", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    try:
        if distributed:
            if batch_size is None and classifier is not None \
                    and not isinstance(classifier, str | os.PathLike):
                batch_size = getattr(classifier, "batch_size", None)
            if batch_size is None:
                # Workers must split faces the same way: fix the batch size here, from
                # the model's saved settings when there is no estimator at hand.
                batch_size = _saved_batch_size(classifier)
            session = _DaskSession(client, n_workers)
            records = _dask_records(session.client, paths, detector, classifier,
                                    batch_size, n_threads, partition_size)
        else:
            records = _pipeline(detector, classifier, batch_size, n_threads).run(paths) \
                if paths else iter(())
        for record in records:
            if writer is not None:
                writer.write(record)
            bar.update()
            yield record
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if session is not None:
            session.close()


def _saved_batch_size(classifier) -> int:
    if classifier is None:
        from .analysis import MODEL_ENV

        path = os.environ.get(MODEL_ENV)
        if not path:
            from ..estimator._persistence import bundled_model_path

            path = bundled_model_path()
        classifier = path
    from ..estimator import EmotionClassifier

    params = EmotionClassifier.read_metadata(classifier).get("params", {})
    # What EmotionClassifier.load would set: the saved value, else the default.
    return int(params.get("batch_size") or EmotionClassifier().batch_size or DEFAULT_BATCH)



# ------------------------------------------------------------------------------- CLI
def predict_command(args, error) -> int:
    """``fervision predict PATH... --output FILE``: the records of a collection.

    ``args`` is the ``predict`` subcommand's namespace; ``error`` prints an error
    message.  Returns the exit code: 0, or 1 when any image of the output file (this
    run's or, with ``--resume``, an earlier one's) is an error record.
    """
    if args.annotate:
        error("--annotate cannot be combined with --output")
        return 2
    detector = None
    if args.detector or args.detector_model:
        from .detection import FaceDetector

        kwargs = {"backend": args.detector or "yunet"}
        if args.detector_model:
            if not Path(args.detector_model).is_file():
                raise FileNotFoundError(f"detector model not found: {args.detector_model!r}")
            kwargs["model_path"] = args.detector_model
        detector = FaceDetector(**kwargs)
    if (Path(args.output).exists() and not args.resume
            and not getattr(args, "overwrite", False)):
        # The command's rule for every output: a finished run's results are never
        # replaced by accident (--resume continues them, --overwrite replaces them).
        error(f"{args.output} exists: add --resume to continue it or --overwrite to "
              "replace it")
        return 2
    if args.model and not Path(args.model).is_file():
        raise FileNotFoundError(f"model file not found: {args.model!r}")
    # A model path, not a loaded model: Dask workers then load it themselves.
    records = analyze_files(
        args.images, args.output, args.scheduler, n_workers=args.workers,
        detector=detector, classifier=args.model, resume=args.resume,
        batch_size=args.batch_size, progress=not args.no_progress)
    n_new = n_failed = 0
    for record in records:
        n_new += 1
        if "error" in record:
            n_failed += 1
            error(f"{record['path']}: {record['error']}")
    # Judge the whole file, so that a resumed run ends as an uninterrupted one would.
    from ._collections import read_records

    recorded, _ = read_records(args.output)
    failed = sum("error" in r for r in recorded)
    print(f"wrote {n_new} record(s) to {args.output} ({len(recorded)} in all)",
          file=sys.stderr)
    if failed:
        error(f"{failed} of {len(recorded)} image(s) could not be processed")
    return 1 if failed else 0
