"""Data: the one image-preprocessing path, dataset loaders, dataset audit, evaluation
and emotion labels."""
