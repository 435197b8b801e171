"""Import TensorFlow without its start-up noise on stderr, unless the user asks for it.

Importing TensorFlow (2.18+) prints several lines to stderr before any Python code can
set a log level: absl's "All log messages before absl::InitializeLog() ..." banner, the
oneDNN notice (``port.cc``), "Could not find cuda drivers" (``cudart_stub.cc``), the CPU
instruction notice (``cpu_feature_guard.cc``), and, on a machine without a GPU,
``failed call to cuInit: ... UNKNOWN ERROR (303)`` when the devices are first listed.
They come from C++ static initialisers, so ``TF_CPP_MIN_LOG_LEVEL=3`` leaves most of
them.  :func:`import_tensorflow` therefore

1. sets ``TF_CPP_MIN_LOG_LEVEL=3`` when the user has not set it (TensorFlow's own
   setting; a value the user set is kept and applied);
2. points file descriptor 2 at a temporary file only while TensorFlow is imported and
   its devices listed (the first time, in this process), then restores it;
3. writes back to stderr every captured line that is not TensorFlow/absl log output
   below the level in force (``I`` info = 0, ``W`` warning = 1, ``E`` error = 2) or the
   absl banner, so anything else printed meanwhile (a Python warning, another thread)
   still appears, and everything appears if the import fails.

Nothing is done when TensorFlow is already imported, or when ``FERVISION_VERBOSE`` is set
to anything but ``0``/``false``/``no``/``off``/empty (``fervision --verbose`` sets it):
then TensorFlow prints what it always prints.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

__all__ = ["VERBOSE_ENV", "filter_tensorflow_log", "import_tensorflow", "verbose_requested"]

VERBOSE_ENV = "FERVISION_VERBOSE"

#: An absl/TSL log line: severity letter, MMDD, time (before absl is initialised:
#: 00:00:<epoch seconds>), thread id, file:line].
_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
#: Errors that only say "no GPU here": noise on a CPU machine, dropped below level 0.
_NO_GPU = ("failed call to cuInit",)


def verbose_requested() -> bool:
    """Return True when ``$FERVISION_VERBOSE`` asks for TensorFlow's start-up output."""
    value = os.environ.get(VERBOSE_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_tensorflow_log(text: str, min_level: int) -> str:
    """``text`` without absl log records below ``min_level`` and without the absl banner.

    A record's continuation lines (e.g. the CPU-instructions notice's second line) go
    with it; lines before any record are kept.  ``failed call to cuInit`` (no usable
    GPU) is dropped at any level above 0.
    """
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            level = _SEVERITY[match.group(1)]
            keep = level >= min_level and not (min_level > 0 and any(s in line for s in _NO_GPU))
        elif line.rstrip("\r\n") == _BANNER:
            continue
        if keep:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _stderr_captured():
    """Point fd 2 at a temporary file; on exit restore it and yield what was written."""
    captured = []
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a pythonw-like process): nothing to redirect
        yield captured
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "replace"))


def import_tensorflow():
    """Import and return TensorFlow, quietly the first time (see the module docstring)."""
    if "tensorflow" in sys.modules or verbose_requested():
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    error = None
    with _stderr_captured() as captured:
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # cuInit and friends log now, not later
        except BaseException as err:  # replayed in full below, then raised
            error = err
    text = captured[0] if captured else ""
    rest = text if error is not None else filter_tensorflow_log(text, _min_level())
    if rest:
        sys.stderr.write(rest)
        sys.stderr.flush()
    if error is not None:
        raise error
    return tf
