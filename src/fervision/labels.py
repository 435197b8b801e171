"""Deprecated alias of :mod:`fervision.data.labels` (removed in the next release)."""

from ._deprecated import forward

__getattr__, __dir__, __all__ = forward(__name__, "fervision.data.labels")
