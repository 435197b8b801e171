"""Settings that a parameter gives or, when it is None, an environment variable."""

from __future__ import annotations

import os
from collections.abc import Callable


def param_or_env(value, param: str, env: str, parse: Callable[[str], object]):
    """``(source, value)`` of a setting, for the caller to validate and name in errors.

    ``value`` when it is not None (source ``param``); else the environment variable
    ``env`` parsed with ``parse`` (source ``"$ENV"``; text ``parse`` rejects is returned
    as it is, so the caller's check names it); ``(None, None)`` when neither is set.
    """
    if value is not None:
        return param, value
    raw = os.environ.get(env, "").strip()
    if not raw:
        return None, None
    try:
        return f"${env}", parse(raw)
    except ValueError:
        return f"${env}", raw
