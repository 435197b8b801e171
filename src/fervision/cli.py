"""Deprecated alias of :mod:`fervision.apps.cli` (removed in the next release)."""

from ._deprecated import forward

__getattr__, __dir__, __all__ = forward(__name__, "fervision.apps.cli")

if __name__ == "__main__":  # python -m fervision.cli
    import sys

    from .apps.cli import main

    sys.exit(main())
