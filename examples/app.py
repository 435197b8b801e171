"""Launch fervision's Streamlit app: ``streamlit run examples/app.py``.

Same as ``fervision app``.  Set ``FERVISION_MODEL=path/to/model.keras`` to use a model
of your own instead of the bundled one.
"""

from fervision.app import render

render()
