"""Faces: detection, the image -> faces -> emotions analysis, video and batch runs."""
