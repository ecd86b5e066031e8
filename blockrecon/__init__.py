"""blockrecon: block-wise model-based deep learning for large 3D medical images.

Subpackages are imported on demand (``import blockrecon.physics``) so that importing
the top-level package stays cheap and never touches optional GPU libraries.
"""

__version__ = "0.1.0"
