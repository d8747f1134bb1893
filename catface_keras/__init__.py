"""catface-keras: CATFace low-quality face recognition in Keras 3.

Imports sit at the top of each module, with two exceptions, always inside the
function that needs them:

- heavy imports in `catface_keras.cli` and in the NumPy-only modules the CLI
  loads for argument and config checks: TensorFlow/Keras (and the modules that
  load them) and matplotlib's pyplot, so that `catface --help` and an argument
  or config error come back in a fraction of a second;
- optional packages, needed by one feature only: `mtcnn` (face detection),
  `tensorflow_serving` (export warm-up), `torch` (tests only).
"""

__version__ = "0.1.0"
