"""Emotion names and the spellings of them that datasets use."""

from __future__ import annotations

#: The seven FER2013 emotions, in FER2013's integer order (0 = angry ... 6 = neutral).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Spellings found in FER2013, AffectNet, RAF-DB, CK+ and Kaggle folder names.
_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "contempt_disgust": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
}


def canonical_emotion(name: str) -> str:
    """Return fervision's name for an emotion label spelt as in a dataset.

    Parameters
    ----------
    name : str
        A label such as ``"Happiness"``, ``"fearful"`` or ``"angry"``.

    Returns
    -------
    str
        One of :data:`EMOTIONS`.

    Raises
    ------
    ValueError
        If the spelling is unknown.
    """
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return _ALIASES[key]
    except KeyError:
        raise ValueError(
            f"unknown emotion label {name!r}; expected one of {', '.join(EMOTIONS)} "
            f"or a common spelling of them ({', '.join(sorted(_ALIASES))})"
        ) from None


def ordered_labels(labels) -> list[str]:
    """Distinct labels: known emotions in FER2013 order, then any others sorted."""
    present = set(labels)
    return [e for e in EMOTIONS if e in present] + sorted(present - set(EMOTIONS))
