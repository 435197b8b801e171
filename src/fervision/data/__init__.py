"""Data: image preprocessing, dataset loaders, audit, evaluation and emotion labels.

The one image-preprocessing path, dataset loaders, dataset audit, evaluation and
emotion labels.
"""
