"""Applications: the ``fervision`` command line and the Streamlit app."""
