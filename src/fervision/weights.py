"""Downloadable model weights, verified by SHA-256 and cached with pooch.

A small registry maps a name (``"yunet-2023mar"``) to a URL, the file's SHA-256 and
the file name it is cached under.  :func:`fetch` returns the local path, downloading
the file on first use.  Every download is checked against the registered hash before
it is moved into the cache, so a corrupted or tampered file is refused and never
reaches the cache (pooch streams into a temporary file and deletes it on mismatch).

Environment variables
---------------------
``FERVISION_CACHE``
    Folder the weights are cached in (default: ``pooch.os_cache("fervision")``, e.g.
    ``~/.cache/fervision`` on Linux).  To work offline, put the files there by hand.
``FERVISION_BASE_URL``
    A mirror: when set, a weight is downloaded from ``FERVISION_BASE_URL`` + its file
    name instead of its registered URL (a ``/`` is inserted when missing).  It must be
    an ``http://``, ``https://`` or ``ftp://`` URL.
``FERVISION_DOWNLOAD_TIMEOUT``
    Seconds one download may take in all (default :data:`DOWNLOAD_TIMEOUT`).  A server
    that trickles bytes is cut off at this deadline, not only one that goes silent, and
    the partial download is deleted: nothing unverified is ever left in the cache.
"""

from __future__ import annotations

import math
import os
import pathlib
import time
import urllib.parse
from dataclasses import dataclass, field

import pooch

from ._env import param_or_env

__all__ = [
    "PretrainedModel",
    "WeightsHashError",
    "WeightsUnavailableError",
    "cache_dir",
    "fetch",
    "list_pretrained",
    "list_weights",
    "pretrained_file",
    "pretrained_info",
    "register",
    "register_pretrained",
    "url_for",
]

CACHE_ENV = "FERVISION_CACHE"
BASE_URL_ENV = "FERVISION_BASE_URL"
TIMEOUT_ENV = "FERVISION_DOWNLOAD_TIMEOUT"
#: Default total time, in seconds, one download may take (``fetch(timeout=...)`` or
#: ``$FERVISION_DOWNLOAD_TIMEOUT`` override it).
DOWNLOAD_TIMEOUT = 300.0
# A connection that sends nothing for this long fails at once (seconds).
_STALL_TIMEOUT = 30.0
_URL_SCHEMES = ("http", "https", "ftp")


class WeightsUnavailableError(OSError):
    """A weight file is not cached and could not be downloaded (e.g. no network)."""


class WeightsHashError(ValueError):
    """A downloaded weight file did not match its registered SHA-256 (it was discarded)."""


@dataclass(frozen=True)
class WeightEntry:
    """One registered weight file."""

    name: str
    url: str
    sha256: str
    filename: str


_REGISTRY: dict[str, WeightEntry] = {}


def _check_sha256(sha256: str) -> str:
    digest = sha256.lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(
            f"sha256 must be 64 hexadecimal characters (optionally prefixed 'sha256:'), "
            f"got {sha256!r}"
        )
    return digest


def register(name: str, url: str, sha256: str, filename: str | None = None) -> None:
    """Register (or replace) a downloadable weight file.

    Parameters
    ----------
    name : str
        Registry key used with :func:`fetch`.
    url : str
        Where the file is downloaded from.
    sha256 : str
        Expected SHA-256 of the file (hex digest, optionally prefixed ``"sha256:"``).
    filename : str, optional
        Name the file is cached under (and appended to ``FERVISION_BASE_URL``).
        Defaults to the last component of ``url``.

    Raises
    ------
    ValueError
        Empty name or URL, malformed hash, or a file name containing a path separator.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"weight name must be a non-empty string, got {name!r}")
    if not url or not isinstance(url, str):
        raise ValueError(f"url for weight {name!r} must be a non-empty string, got {url!r}")
    digest = _check_sha256(sha256)
    filename = filename or url.rstrip("/").rsplit("/", 1)[-1]
    if not filename or "/" in filename or "\\" in filename or filename in (".", ".."):
        raise ValueError(
            f"filename for weight {name!r} must be a plain file name, got {filename!r}"
        )
    _REGISTRY[name] = WeightEntry(name, url, digest, filename)


def list_weights() -> dict[str, WeightEntry]:
    """Return a copy of the registry: name -> :class:`WeightEntry` (url, sha256, filename)."""
    return dict(_REGISTRY)


def cache_dir() -> pathlib.Path:
    """Folder weights are cached in: ``$FERVISION_CACHE`` or ``pooch.os_cache("fervision")``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path(pooch.os_cache("fervision"))


def _entry(name: str) -> WeightEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown weights {name!r}; registered: {known}") from None


def url_for(name: str) -> str:
    """URL :func:`fetch` downloads ``name`` from (honours ``FERVISION_BASE_URL``).

    Raises
    ------
    ValueError
        ``FERVISION_BASE_URL`` is set but is not an http(s) or ftp URL with a host.
    """
    entry = _entry(name)
    base = os.environ.get(BASE_URL_ENV)
    if base:
        parts = urllib.parse.urlsplit(base.strip())
        if parts.scheme.lower() not in _URL_SCHEMES or not parts.netloc:
            raise ValueError(
                f"${BASE_URL_ENV}={base!r} is not a URL: expected a mirror folder such as "
                "'https://example.org/fervision-weights/' (http, https or ftp); unset it "
                "to download from the registered URL"
            )
        return base.strip().rstrip("/") + "/" + entry.filename
    return entry.url


def _resolve_timeout(timeout) -> float:
    source, value = param_or_env(timeout, "timeout", TIMEOUT_ENV, float)
    if source is None:
        return DOWNLOAD_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{source} must be a positive number of seconds, got {value!r}")
    return float(value)


class _DeadlineDownloader:
    """A pooch downloader for http(s) with a deadline over the whole transfer.

    requests' own ``timeout`` bounds each socket read, so a server sending one byte a
    second never trips it; pooch's HTTPDownloader also reads fixed 1 KB chunks, each of
    which may wait for 1,024 such bytes.  Here every read returns what one socket read
    gave (``read1``), and the deadline is checked after each.  Raising lets pooch delete
    its temporary file.
    """

    def __init__(self, timeout: float, progress: bool):
        self.timeout = timeout
        self.progress = progress

    def __call__(self, url, output_file, pooch_obj=None):
        import requests
        from tqdm.auto import tqdm

        deadline = time.monotonic() + self.timeout
        socket_timeout = min(_STALL_TIMEOUT, self.timeout)
        with requests.get(url, stream=True, timeout=socket_timeout) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length") or 0) or None
            with open(output_file, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, leave=True,
                disable=not self.progress, desc=pathlib.Path(str(output_file)).name,
            ) as bar:
                while True:
                    chunk = response.raw.read1(1 << 16, decode_content=True)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"the download took longer than {self.timeout:g} s "
                            f"(${TIMEOUT_ENV} or fetch(timeout=...) allow more)"
                        )


def fetch(name: str, *, progress: bool = True, timeout: float | None = None) -> pathlib.Path:
    """Return the local path of registered weights, downloading them if needed.

    A cached file whose SHA-256 matches is used without any network access.  Otherwise
    the file is downloaded (from ``FERVISION_BASE_URL`` when set), its SHA-256 checked,
    and only then moved into :func:`cache_dir`.

    Parameters
    ----------
    name : str
        A registered name, see :func:`list_weights`.
    progress : bool, default=True
        Show a tqdm progress bar while downloading.
    timeout : float, optional
        Seconds the whole download may take (default ``$FERVISION_DOWNLOAD_TIMEOUT``,
        else :data:`DOWNLOAD_TIMEOUT`); a partial download is deleted.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    KeyError
        ``name`` is not registered.
    WeightsHashError
        The download's SHA-256 differs from the registered one; nothing is cached.
    WeightsUnavailableError
        The file is not cached and the download failed or ran past ``timeout``; the
        message gives the URL and the exact path to put the file at.
    ValueError
        ``FERVISION_BASE_URL`` is not a URL, or the timeout is not a positive number.
    """
    entry = _entry(name)
    url = url_for(name)
    seconds = _resolve_timeout(timeout)
    folder = cache_dir()
    target = folder / entry.filename
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        downloader = _DeadlineDownloader(seconds, progress)
    elif scheme == "ftp":  # pooch's, with the timeout on each socket operation only
        downloader = pooch.FTPDownloader(timeout=seconds, progressbar=progress)
    else:  # doi:, sftp: (registered by a user): pooch chooses
        downloader = None
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{entry.sha256}",
            fname=entry.filename,
            path=folder,
            progressbar=progress,
            downloader=downloader,
        )
    except ValueError as err:
        # pooch raises ValueError for a hash mismatch and has already deleted the
        # temporary download, so the cache holds nothing unverified.
        if "hash" not in str(err).lower():
            raise
        raise WeightsHashError(
            f"refused weights {name!r} downloaded from {url}: SHA-256 mismatch "
            f"(expected {entry.sha256}). The file was discarded and nothing was cached. "
            f"Details: {err}"
        ) from err
    except Exception as err:  # requests/urllib errors, permissions, ...: all "unavailable"
        raise WeightsUnavailableError(
            f"could not download weights {name!r} from {url} ({type(err).__name__}: {err}). "
            f"To use them offline, download {entry.url} yourself (SHA-256 {entry.sha256}) "
            f"and save it as {target} (set {CACHE_ENV} to use another folder, or "
            f"{BASE_URL_ENV} to download from a mirror)."
        ) from err
    return pathlib.Path(path)


register(
    "yunet-2023mar",
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
    "face_detection_yunet_2023mar.onnx",
    "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
)


# ---------------------------------------------------------------- pretrained models
@dataclass(frozen=True)
class PretrainedModel:
    """A pretrained emotion model: where its file is and what it is.

    A timm-style tagged config that carries its own settings and labels.

    Attributes
    ----------
    name : str
        What :meth:`EmotionClassifier.from_pretrained` takes.
    trained_on : str
        The data it was trained on, in words.
    description : str
        Architecture and what it is for.
    file : str or None
        A file bundled in the package (``fervision/models/<file>``).
    sha256 : str or None
        SHA-256 of the bundled file, checked on every load.
    weights : str or None
        Instead of ``file``: a name registered with :func:`register`, downloaded and
        verified by :func:`fetch`.
    params : dict
        Estimator parameters set on load (e.g. ``{"tta": False}``: one network pass
        per face, the setting every path uses by default).
    """

    name: str
    trained_on: str
    description: str
    file: str | None = None
    sha256: str | None = None
    weights: str | None = None
    params: dict = field(default_factory=dict)


_PRETRAINED: dict[str, PretrainedModel] = {}


def register_pretrained(model: PretrainedModel) -> None:
    """Register (or replace) a pretrained emotion model under ``model.name``.

    Raises
    ------
    ValueError
        Neither or both of ``file`` and ``weights`` given, a ``file`` that is not a
        plain file name, a malformed ``sha256``, or ``weights`` not registered.
    """
    if (model.file is None) == (model.weights is None):
        raise ValueError(f"pretrained model {model.name!r}: give exactly one of file "
                         "(bundled) and weights (a registered download)")
    if model.file is not None:
        if pathlib.PurePath(model.file).name != model.file:
            raise ValueError(f"pretrained model {model.name!r}: file must be a plain file "
                             f"name inside fervision/models, got {model.file!r}")
        if model.sha256 is None:
            raise ValueError(f"pretrained model {model.name!r}: a bundled file needs its "
                             "sha256")
        _check_sha256(model.sha256)
    elif model.weights not in _REGISTRY:
        raise ValueError(f"pretrained model {model.name!r}: weights {model.weights!r} are "
                         f"not registered (register() them first)")
    _PRETRAINED[model.name] = model


def list_pretrained() -> list[str]:
    """Names :meth:`EmotionClassifier.from_pretrained` accepts, bundled first."""
    bundled = [n for n, m in _PRETRAINED.items() if m.file is not None]
    return bundled + sorted(n for n, m in _PRETRAINED.items() if m.file is None)


def pretrained_info(name: str) -> PretrainedModel:
    """Return the registry entry of a pretrained model (see :class:`PretrainedModel`).

    Raises
    ------
    KeyError
        ``name`` is not a pretrained emotion model; the message lists the names.
    """
    try:
        return _PRETRAINED[name]
    except (KeyError, TypeError):
        pass
    hint = ""
    if isinstance(name, str) and name in _REGISTRY:
        hint = (f" ({name!r} is a registered weight file, e.g. a face detector's, not an "
                "emotion model)")
    raise KeyError(f"unknown pretrained model {name!r}{hint}; available: "
                   f"{', '.join(repr(n) for n in list_pretrained())} "
                   "(fervision.weights.list_pretrained())")


def _sha256_of(path: pathlib.Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pretrained_file(name: str) -> pathlib.Path:
    """Local path of a pretrained model's file, its SHA-256 checked.

    Bundled files are read from the package (no network); others are fetched with
    :func:`fetch`.

    Raises
    ------
    KeyError
        Unknown ``name`` (the message lists the available ones).
    FileNotFoundError
        A bundled file missing from the installation.
    WeightsHashError
        A bundled file whose SHA-256 does not match the registry (a damaged install).
    """
    entry = pretrained_info(name)
    if entry.weights is not None:
        return fetch(entry.weights)
    import importlib.resources

    path = pathlib.Path(str(importlib.resources.files("fervision") / "models" / entry.file))
    if not path.is_file():
        raise FileNotFoundError(
            f"the bundled model {name!r} is missing ({path}); reinstall fervision")
    digest = _sha256_of(path)
    if digest != entry.sha256:
        raise WeightsHashError(
            f"the bundled model {name!r} ({path}) does not match its SHA-256 (expected "
            f"{entry.sha256}, got {digest}): the installation is damaged; reinstall "
            "fervision")
    return path


# Inference batches of 256: 48x48 faces are small, and larger batches keep the CPU's
# vector units busy (batches of 64 measurably slowed the default network per face).
# crop_pct 0.9: the centre crop at the scale of their training's random-resized crops
# (fervision.nn.eval_crop), stated here so the config carries its own preprocessing.
_PRETRAINED_PARAMS = {"tta": False, "crop_pct": 0.9, "predict__batch_size": 256}

register_pretrained(PretrainedModel(
    name="default",
    trained_on="FER+ Train vote distributions (10 taggers per FER2013 Training face) "
               "mixed with the probabilities of an earlier ferplus-large model and, in later "
               "runs, of its mean with an earlier default, last of a three-network mean "
               "that includes the previous ferplus-large (distillation; in the last two "
               "runs the teacher saw each augmented training view: consistent teaching), "
               "then fine-tuned at the centre crop it predicts on against the 12-view "
               "mean of ferplus-large and the previous default",
    description="one fernet_small network (squeeze-excitation ResNet at half fernet's "
                "width, 48x48 grayscale, bfloat16-rounded weights), one pass per face, "
                "built for speed on a laptop CPU; see docs/model_card.md",
    file="default.keras",
    sha256="389b78f0f8bdde69bdfeee5ca2b57a790840c4a7696729268ee19a1fa21d61de",
    params=dict(_PRETRAINED_PARAMS),
))
register_pretrained(PretrainedModel(
    name="fer2013",
    trained_on="FER2013 Training (original labels), distilled from fervision's previous "
               "two-network fer2013 ensemble (12-view test-time augmentation, then "
               "consistent teaching on the augmented training views), then fine-tuned "
               "twice at the centre crop it predicts on against its own 12-view "
               "probabilities; the two fine-tunes' weights averaged (a model soup)",
    description="one fernet network (squeeze-excitation ResNet, 48x48 grayscale, "
                "bfloat16-rounded weights), one pass per face, for figures comparable "
                "with FER2013 papers; see docs/model_card.md",
    file="fer2013.keras",
    sha256="c383b7186e058b03acdc113f9782e7d9ed9da69c8906aa0a383a16b2109880aa",
    params=dict(_PRETRAINED_PARAMS),
))
register_pretrained(PretrainedModel(
    name="ferplus-large",
    trained_on="FER+ Train vote distributions (10 taggers per FER2013 Training face), "
               "fine-tuned from a fernet network trained on FER2013's original labels, "
               "then mixed with the probabilities of the mean of its earlier version and "
               "two defaults, last of the mean of its previous version and the default "
               "(consistent teaching on the augmented training views)",
    description="one fernet network (squeeze-excitation ResNet, 48x48 grayscale, "
                "bfloat16-rounded weights), one pass per face: several times slower than "
                "the default, a little less accurate on FER+ and more robust to very "
                "dark faces; see docs/model_card.md",
    file="ferplus-large.keras",
    sha256="10b7d9ff4b55d039958b25bea1bcea0bf8b304b29aa5c0524e633befb390e574",
    params=dict(_PRETRAINED_PARAMS),
))
