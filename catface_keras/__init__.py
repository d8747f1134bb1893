"""catface-keras: CATFace low-quality face recognition in Keras 3."""

__version__ = "0.1.0"
