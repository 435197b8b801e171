"""Writing annotated videos (PyAV: H.264/VP9 with the source's audio) and live windows.

:class:`VideoWriter` encodes with the FFmpeg that PyAV's wheels ship: H.264 (yuv420p,
even dimensions) in ``.mp4``/``.m4v``/``.mov``/``.mkv``, VP9 in ``.webm``, which
browsers play, and Motion JPEG in ``.avi``.  The source's first audio stream is decoded
and re-encoded (AAC, Opus for WebM, PCM for AVI) alongside, cut to the written frames.
The file is written under a temporary name in the target folder and renamed into place
when closed, so the target is never a half-written video.

:func:`open_window` shows frames in a window: Tk (the standard library's ``tkinter``
with Pillow's ``ImageTk``) by default, OpenCV's HighGUI where tkinter is missing but
OpenCV has a GUI.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

__all__ = ["CODECS_BY_EXTENSION", "VideoWriter", "check_display", "open_window"]

#: (container format, video codec, audio codec) by output file extension.
CODECS_BY_EXTENSION = {
    ".mp4": ("mp4", "h264", "aac"),
    ".m4v": ("mp4", "h264", "aac"),
    ".mov": ("mov", "h264", "aac"),
    ".mkv": ("matroska", "h264", "aac"),
    ".webm": ("webm", "vp9", "opus"),
    ".avi": ("avi", "mjpeg", "pcm_s16le"),
}

_ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9", "mjpeg": "mjpeg", "aac": "aac",
             "opus": "libopus", "pcm_s16le": "pcm_s16le"}
_ENCODER_OPTIONS = {
    "h264": {"preset": "veryfast", "crf": "23"},
    "vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"},
    "mjpeg": {"q:v": "3"},
}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
              11025, 8000)


def codecs_for(path) -> tuple[str, str, str]:
    """``(format, video codec, audio codec)`` for an output path, by its extension."""
    suffix = Path(path).suffix.lower()
    try:
        return CODECS_BY_EXTENSION[suffix]
    except KeyError:
        raise ValueError(
            f"output video {str(path)!r}: unsupported extension {suffix!r}; use one of "
            f"{', '.join(sorted(CODECS_BY_EXTENSION))}"
        ) from None


class _AudioCopy:
    """The source's first audio stream, decoded on demand and re-encoded into ``out``."""

    def __init__(self, source: str, out, codec: str):
        import av

        self._av = av
        self.input = av.open(source)
        try:
            self.stream = self.input.streams.audio[0]
            video = self.input.streams.video
            # Times are relative to the first video frame (OpenCV's frame 0).
            self.t0 = (float(video[0].start_time * video[0].time_base)
                       if video and video[0].start_time is not None else 0.0)
            rate = self.stream.codec_context.sample_rate or 48000
            if codec == "opus":
                rate = 48000
            elif codec == "aac" and rate not in _AAC_RATES:
                rate = 48000
            layout = self.stream.codec_context.layout.name
            channels = len(self.stream.codec_context.layout.channels)
            self.out = out.add_stream(_ENCODERS[codec], rate=rate)
            self.out.layout = layout if channels <= 2 else "stereo"
            self.rate = rate
        except BaseException:
            self.input.close()
            raise
        self._frames = self.input.decode(self.stream)
        self._pending = None
        self._next_pts = 0
        self._container = out
        self.written_s = 0.0

    def write_until(self, end_s: float) -> None:
        """Encode the source's audio up to ``end_s`` seconds after the first frame."""
        while True:
            frame = self._pending
            self._pending = None
            if frame is None:
                try:
                    frame = next(self._frames)
                except (StopIteration, self._av.error.FFmpegError):
                    self._frames = iter(())
                    return
            if frame.pts is None:
                start = self.written_s
            else:
                start = float(frame.pts * frame.time_base) - self.t0
            duration = frame.samples / frame.sample_rate
            if start + duration <= 0:  # audio before the first video frame
                continue
            if start >= end_s:
                self._pending = frame
                return
            # Re-time in output samples; the encoder resamples to its own rate.
            frame.pts = max(self._next_pts, round(max(start, 0.0) * frame.sample_rate))
            frame.time_base = Fraction(1, frame.sample_rate)
            self._next_pts = frame.pts + frame.samples
            for packet in self.out.encode(frame):
                self._container.mux(packet)
            self.written_s = start + duration

    def finish(self) -> None:
        try:
            for packet in self.out.encode(None):
                self._container.mux(packet)
        finally:
            self.input.close()


class VideoWriter:
    """An output video, written under a temporary name and renamed into place on close.

    Parameters
    ----------
    path : Path
        The target file; its extension chooses the codecs (:data:`CODECS_BY_EXTENSION`).
    fps : float
        Frames per second of the output.
    audio_from : str, optional
        A media file whose first audio stream is copied (re-encoded) into the output.
        Ignored (no audio) when it has none or PyAV cannot read it.
    overwrite : bool, default=True
        Replace an existing target when closing; otherwise fail if one appeared.
    """

    def __init__(self, path, fps: float, *, audio_from=None, overwrite: bool = True):
        self.path = Path(path)
        self.format, self.video_codec, self.audio_codec = codecs_for(self.path)
        self.rate = Fraction(float(fps)).limit_denominator(1001)
        self.audio_from = audio_from
        self.overwrite = overwrite
        self.container = self.stream = self.audio = None
        self.frames = 0
        self._last_pts = -1
        self._size = None
        self._tmp = None

    def open(self, width: int, height: int) -> None:
        import av

        # yuv420p needs even dimensions: the frames are padded by one pixel if needed.
        self._size = (width + width % 2, height + height % 2)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent,
                                         prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
            self.container = av.open(self._tmp, "w", format=self.format, options=options)
            self.stream = self.container.add_stream(
                _ENCODERS[self.video_codec], rate=self.rate,
                options=_ENCODER_OPTIONS.get(self.video_codec, {}))
            self.stream.width, self.stream.height = self._size
            self.stream.pix_fmt = "yuvj420p" if self.video_codec == "mjpeg" else "yuv420p"
            self.stream.codec_context.time_base = 1 / self.rate
            if self.audio_from is not None:
                try:
                    self.audio = _AudioCopy(os.fspath(self.audio_from), self.container,
                                            self.audio_codec)
                except (av.error.FFmpegError, IndexError, ValueError):
                    self.audio = None  # no audio stream, or one PyAV cannot read
        except BaseException:
            self._discard()
            raise

    def write(self, frame_bgr: np.ndarray, time_s: float) -> None:
        """Encode one BGR frame shown at ``time_s`` seconds after the first frame."""
        import av

        h, w = frame_bgr.shape[:2]
        if (w, h) != self._size:
            frame_bgr = cv2.copyMakeBorder(frame_bgr, 0, self._size[1] - h, 0,
                                           self._size[0] - w, cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        frame.pts = max(self._last_pts + 1, round(time_s * self.rate))
        self._last_pts = frame.pts
        if self.audio is not None:  # interleaved: audio up to the end of this frame
            self.audio.write_until(float((frame.pts + 1) / self.rate))
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoders, close the file and move it into place."""
        if self.container is None:
            return
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            if self.audio is not None:
                self.audio.write_until(float((self._last_pts + 1) / self.rate))
                self.audio.finish()
            self.container.close()
            self.container = None
            os.chmod(self._tmp, 0o644)
            if self.overwrite:
                os.replace(self._tmp, self.path)
            else:
                from ..files import _move_no_clobber

                _move_no_clobber(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        if self.audio is not None:
            try:
                self.audio.input.close()
            except Exception:  # already failing; the temp file goes below
                pass
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None


# ----------------------------------------------------------------------------- windows
_NO_TK = (
    "display=True needs a window: this Python has no tkinter (Tk) and OpenCV is "
    "opencv-python-headless (no GUI).  Install Tk for your Python (Debian/Ubuntu: "
    "apt install python3-tk; Fedora: dnf install python3-tkinter; macOS/Windows: the "
    "python.org installers include it), or run without display and write an annotated "
    "video with output= instead"
)


def _has_tk() -> bool:
    try:
        import tkinter  # noqa: F401

        from PIL import ImageTk  # noqa: F401
    except ImportError:
        return False
    return True


def _opencv_has_gui() -> bool:
    gui = next((line for line in cv2.getBuildInformation().splitlines()
                if line.strip().startswith("GUI:")), "")
    return "NONE" not in gui.upper()


def check_display() -> str:
    """Which window toolkit a live window will use, ``"tk"`` or ``"opencv"``.

    Raises RuntimeError, with what to install or set, when no window can be shown.
    """
    if _has_tk():
        backend = "tk"
    elif _opencv_has_gui():
        backend = "opencv"
    else:
        raise RuntimeError(_NO_TK)
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise RuntimeError(
            "display=True but no display is available (DISPLAY is not set); run without "
            "display and write an annotated video with output= instead"
        )
    return backend


class TkWindow:
    """A Tk window showing BGR frames; 'q', Escape or closing it asks to stop."""

    def __init__(self, title: str):
        import tkinter

        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as err:
            raise RuntimeError(f"cannot open a window: {err}") from None
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.stop_requested = False
        self.shown = 0
        self.closed = False
        self._photo = None
        self.root.protocol("WM_DELETE_WINDOW", self._stop)
        for key in ("<KeyPress-q>", "<KeyPress-Q>", "<Escape>"):
            self.root.bind(key, lambda _event: self._stop())

    def _stop(self) -> None:
        self.stop_requested = True

    def show(self, frame_bgr: np.ndarray) -> bool:
        """Show a frame; False when the user asked to stop."""
        from PIL import Image, ImageTk

        if self.closed:
            return False
        image = Image.fromarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
        self._photo = ImageTk.PhotoImage(image, master=self.root)
        self.label.configure(image=self._photo)
        self.root.update()
        self.shown += 1
        return not self.stop_requested

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._photo = None
            try:
                self.root.destroy()
            except Exception:  # already destroyed by the window manager
                pass
            # Tk objects must die in the thread that made them: left to the cyclic
            # garbage collector (the key bindings hold self), they may be collected in
            # any thread, and Tcl then aborts the process ("Tcl_AsyncDelete: async
            # handler deleted by the wrong thread"; seen with Pillow 9.2's ImageTk).
            self.label = self.root = None
            gc.collect()


class OpenCVWindow:
    """A HighGUI window (opencv-python with a GUI); 'q' asks to stop."""

    def __init__(self, title: str):
        self.title = title
        self.shown = 0
        self.closed = False

    def show(self, frame_bgr: np.ndarray) -> bool:
        cv2.imshow(self.title, frame_bgr)
        self.shown += 1
        return (cv2.waitKey(1) & 0xFF) != ord("q")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            cv2.destroyWindow(self.title)


def open_window(title: str, backend: str):
    """Open a window of :func:`check_display`'s ``backend``."""
    return TkWindow(title) if backend == "tk" else OpenCVWindow(title)
