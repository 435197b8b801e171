"""Make the pictures of the user guide (``docs/_static/figures/*.png``) with fervision.

Run from the repository root after changing the model, the detector or ``annotate``::

    python docs/make_figures.py

Everything comes from the sample photo ``examples/images/astronaut.jpg`` (public domain)
and a short clip synthesised from it here, so no data set or network is needed:

``annotated.png``
    :func:`fervision.analyze` + :func:`fervision.annotate` on the sample photo.
``detection.png``
    :class:`fervision.faces.detection.FaceDetector`'s box, score and landmarks, and the aligned
    crop the classifier gets.
``video_frames.png``
    Four frames of the synthetic clip, annotated from :func:`fervision.faces.video.process_video`'s
    JSON Lines output.
``emotion_timeline.png``
    Per-person emotion scores over the clip, from the same output.

The clip is two copies of the same face moving across a plain background; the second
one is mirrored, smaller, and in the middle of the clip its mouth is turned upside down
(a crude, synthetic frown), so the timeline has something to show.  It illustrates the
outputs, not the model's accuracy on real video.
The photos are palette-quantised PNGs to keep them small (tens of kB each).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import cv2
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

import fervision  # noqa: E402
from fervision.faces.video import process_video  # noqa: E402

PHOTO = ROOT / "examples" / "images" / "astronaut.jpg"
OUT = HERE / "_static" / "figures"
FPS = 10
N_FRAMES = 60  # 6 s
CANVAS = (288, 512)  # height, width
COLORS = plt.get_cmap("tab10").colors


def save_png(img_rgb: np.ndarray, path: Path, colors: int = 128) -> None:
    """Write an RGB array as a small palette PNG."""
    pil = Image.fromarray(img_rgb).quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                            dither=Image.Dither.NONE)
    pil.save(path, optimize=True)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} kB)")


def save_figure(fig, path: Path, colors: int | None = None) -> None:
    """Save a figure at 100 dpi; ``colors`` quantises it (for figures with photos)."""
    if colors is None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} kB)")
        return
    fig.set_dpi(100)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    save_png(rgb, path, colors)


# ------------------------------------------------------------------ annotated photo
def annotated_photo() -> None:
    image = cv2.imread(str(PHOTO))
    faces = fervision.analyze(image)
    for face in faces:
        print("photo:", face.box, face.emotion, f"{face.confidence:.0%}")
    annotated = fervision.annotate(image, faces)
    annotated = cv2.resize(annotated, (384, 384), interpolation=cv2.INTER_AREA)
    save_png(cv2.cvtColor(annotated, cv2.COLOR_BGR2RGB), OUT / "annotated.png")


# ------------------------------------------------------------------ detection
def detection_figure() -> None:
    """Draw the detector's box, score and landmarks, and the aligned crop it hands on."""
    from fervision.faces.detection import FaceDetector

    image = cv2.imread(str(PHOTO))
    detector = FaceDetector()  # YuNet, the default backend
    faces = detector.detect(image)
    crops = detector.crops(image, faces)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7, 3.6), layout="constrained",
                                   gridspec_kw={"width_ratios": [1.6, 1]})
    ax1.imshow(cv2.cvtColor(image[0:300, 60:420], cv2.COLOR_BGR2RGB))
    for face in faces:
        x, y, w, h = face.box
        ax1.add_patch(plt.Rectangle((x - 60, y), w, h, fill=False, color="yellow", lw=2))
        ax1.text(x - 60, y - 6, f"score {face.score:.2f}", color="yellow", fontsize=9)
        if face.landmarks is not None:
            ax1.plot(face.landmarks[:, 0] - 60, face.landmarks[:, 1], "o", ms=4,
                     color="cyan")
    ax1.set_title("detect(): box, score, 5 landmarks", fontsize=10)
    ax1.axis("off")
    ax2.imshow(crops[0], cmap="gray", vmin=0, vmax=255)
    ax2.set_title(f"crops(): aligned {crops.shape[1]}x{crops.shape[2]} crop", fontsize=10)
    ax2.axis("off")
    save_figure(fig, OUT / "detection.png", colors=192)


# ------------------------------------------------------------------ synthetic clip
def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    canvas[y:y + h, x:x + w] = patch


def synthetic_frames() -> list[np.ndarray]:
    """Two copies of the sample face moving across a plain background (BGR frames).

    Person 2 is the photo mirrored and smaller; in the middle of the clip its mouth is
    blended into the same mouth flipped upside down (a crude frown), and back.
    """
    photo = cv2.imread(str(PHOTO))
    head = photo[20:300, 110:370]  # head and shoulders of the 512x512 photo
    frown = head.copy()
    mouth = (slice(115, 147), slice(84, 145))  # rows, columns of the mouth in `head`
    frown[mouth] = cv2.flip(head[mouth], 0)
    ys, xs = np.mgrid[0:CANVAS[0], 0:CANVAS[1]]
    background = np.stack([150 + 40 * xs / CANVAS[1], 140 + 30 * ys / CANVAS[0],
                           120 + 0 * xs], axis=-1).astype(np.uint8)
    frames = []
    for i in range(N_FRAMES):
        t = i / (N_FRAMES - 1)
        frame = background.copy()
        # person 1: large, walks from the left edge towards the centre
        big = cv2.resize(head, (176, 190))
        _paste(frame, big, int(8 + 120 * t), int(50 + 16 * np.sin(4 * t)))
        # person 2: mirrored, smaller, moving down on the right; frowns from 2 s to 4 s
        w = float(np.clip((0.15 - abs(t - 0.5)) / 0.1, 0, 1))  # 0 -> 1 -> 0
        face2 = cv2.addWeighted(head, 1 - w, frown, w, 0)
        small = cv2.flip(cv2.resize(face2, (120, 130)), 1)
        _paste(frame, small, int(380 - 30 * t), int(20 + 120 * t))
        frames.append(frame)
    return frames


def _person(face: dict, rank: int) -> int:
    """Return the id of the person a face belongs to: the tracker's id if there is one."""
    for key in ("track_id", "track"):
        if face.get(key) is not None:
            return int(face[key])
    return rank  # size rank; person 1 is always the larger one in this clip


def video_figures() -> None:
    frames = synthetic_frames()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), FPS,
                                 (CANVAS[1], CANVAS[0]))
        for frame in frames:
            writer.write(frame)
        writer.release()
        jsonl = Path(tmp) / "faces.jsonl"
        process_video(clip, jsonl=jsonl, smoothing=0.5, progress=False)
        records = [json.loads(line) for line in jsonl.read_text().splitlines()]

    # people numbered 1, 2, ... in order of first appearance, by tracker id if any
    people: dict[int, list[tuple[float, dict]]] = {}
    for rec in records:
        for rank, face in enumerate(rec["faces"]):
            people.setdefault(_person(face, rank), []).append((rec["time_s"], face["scores"]))
    number = {pid: n for n, pid in enumerate(people, start=1)}

    # the strip: four annotated frames, before, during and after the frown
    picks = [round(t * FPS) for t in (0.0, 2.5, 3.0, 5.0)]
    tiles = []
    for k in picks:
        rec = records[k]
        tile = fervision.annotate(frames[rec["frame"]], rec["faces"])
        for rank, face in enumerate(rec["faces"]):
            x, y, _, h = face["box"]
            label = f"person {number[_person(face, rank)]}"
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            cv2.rectangle(tile, (x, y + h + 2), (x + tw + 6, y + h + th + 10), (40, 40, 40), -1)
            cv2.putText(tile, label, (x + 3, y + h + th + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(tile, f"t = {rec['time_s']:.1f} s", (8, CANVAS[0] - 10),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        tile[:, -1] = tile[-1, :] = 255  # thin white lines between the tiles
        tiles.append(tile)
    strip = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    save_png(cv2.cvtColor(strip, cv2.COLOR_BGR2RGB), OUT / "video_frames.png")

    # the timeline: one panel per person, one line per emotion
    ids = list(people)[:2]
    classes = list(next(iter(people.values()))[0][1])
    fig, axes = plt.subplots(len(ids), 1, figsize=(7.5, 1.2 + 1.6 * len(ids)), sharex=True,
                             layout="constrained", squeeze=False)
    for ax, pid in zip(axes[:, 0], ids, strict=True):
        times = np.array([t for t, _ in people[pid]])
        for j, c in enumerate(classes):
            ax.plot(times, [s[c] for _, s in people[pid]], color=COLORS[j % 10], label=c,
                    lw=1.6)
        dominant = max(classes, key=lambda c: np.mean([s[c] for _, s in people[pid]]))
        ax.set_title(f"person {number[pid]}: mostly {dominant}", fontsize=10,
                     loc="left")
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right center",
               fontsize=8)
    fig.suptitle("Emotion scores over time, per person (synthetic clip, smoothing=0.5)",
                 fontsize=11)
    save_figure(fig, OUT / "emotion_timeline.png")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    annotated_photo()
    detection_figure()
    video_figures()
