"""Deprecated alias of :mod:`fervision.nn.backbones` (removed in the next release)."""

from ._deprecated import forward

__getattr__, __dir__, __all__ = forward(__name__, "fervision.nn.backbones")
