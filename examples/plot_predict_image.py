"""
Emotions of the faces in a photo
================================

Detect the faces in an image, classify the emotion of each with the pretrained model
and draw the result: :func:`fervision.analyze` and :func:`fervision.annotate`.
"""

# %%
# Load the pretrained classifier and a face detector
# --------------------------------------------------
# ``EmotionClassifier.from_pretrained()`` loads the model bundled with the package (no
# network).  The default face detector, YuNet, downloads a small model on first use;
# to keep this example offline we use OpenCV's bundled Haar cascade instead.
from pathlib import Path

import cv2
import matplotlib.pyplot as plt

import fervision
from fervision import EmotionClassifier
from fervision.faces.detection import FaceDetector

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # run interactively
    HERE = Path.cwd()
IMAGE = HERE / "images" / "astronaut.jpg"

clf = EmotionClassifier.from_pretrained()
detector = FaceDetector(backend="haar")
print("classes:", ", ".join(clf.classes_))

# %%
# Analyse the image
# -----------------
# ``analyze`` accepts a path or an array (BGR as OpenCV reads it, or RGB with
# ``rgb=True``) and returns one result per face, largest first.
image = cv2.imread(str(IMAGE))
faces = fervision.analyze(image, detector=detector, classifier=clf)
for face in faces:
    top3 = sorted(face.scores.items(), key=lambda kv: -kv[1])[:3]
    print(face.box, face.emotion, ", ".join(f"{k} {v:.0%}" for k, v in top3))

# %%
# Draw the result
# ---------------
# ``annotate`` returns a copy with a box and a label per face (BGR in, BGR out).
annotated = fervision.annotate(image, faces)
fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(cv2.cvtColor(annotated, cv2.COLOR_BGR2RGB))
ax.set_title(f"{len(faces)} face(s): " + ", ".join(f.emotion for f in faces))
ax.axis("off")
plt.show()
