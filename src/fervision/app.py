"""Deprecated: moved to :mod:`fervision.apps.streamlit_app`.

This path is removed in the next release.  ``fervision app`` runs the new script.
"""

from fervision._deprecated import forward

__getattr__, __dir__, __all__ = forward("fervision.app", "fervision.apps.streamlit_app")

if __name__ == "__main__":  # streamlit run .../fervision/app.py
    from fervision.apps.streamlit_app import render

    render()
