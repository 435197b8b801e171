"""fervision: facial emotion recognition as scikit-learn estimators over Keras 3."""

from .labels import EMOTIONS, canonical_emotion

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "canonical_emotion", "__version__"]

from .classifier import EmotionClassifier  # noqa: E402

__all__ += ["EmotionClassifier"]

from .analysis import analyze, annotate  # noqa: E402

__all__ += ["analyze", "annotate"]
