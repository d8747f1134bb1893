"""catface-keras: CATFace low-quality face recognition in Keras 3.

`import catface_keras` registers every class the package saves (layers, backbones, models;
`catface_keras.serializable`) with Keras, as `import keras_hub` does, so that
`keras.models.load_model` reads every `.keras` file the package writes in a fresh process:

    import catface_keras, keras
    model = keras.models.load_model("runs/demo/stage2.keras")

This loads TensorFlow. The one exception is the `catface` command: its console script,
the top-level module `catface_command`, is imported before the package, and the package
then leaves the registration to the commands, which import the models they load; so
`catface --help` and argument or config errors come back in a fraction of a second.

Imports sit at the top of each module, with two exceptions, always inside the
function that needs them:

- heavy imports in `catface_keras.cli` and in the NumPy-only modules the CLI
  loads for argument and config checks: TensorFlow/Keras (and the modules that
  load them) and matplotlib's pyplot;
- optional packages, needed by one feature only: `mtcnn` (face detection),
  `tensorflow_serving` (export warm-up), `tf2onnx`/`onnxruntime` (ONNX export, the
  `[onnx]` extra), `ai_edge_litert` (LiteRT export, the `[litert]` extra), `torch`
  (tests only).
"""

import sys

__version__ = "0.1.0"

if "catface_command" not in sys.modules:
    from catface_keras import serializable  # noqa: F401  registers the saved classes
