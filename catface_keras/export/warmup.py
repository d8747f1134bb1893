"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these `PredictionLog` records when it loads a version, before it serves
traffic, so that the first real requests do not pay for graph initialisation and per-shape
kernel set-up. One `predict_log` request per signature and batch size.

The protos come from `tensorflow-serving-api`, which declares a dependency on the full
`tensorflow` package; install it with `pip install --no-deps tensorflow-serving-api==2.21.0`
next to `tensorflow-cpu`.
"""

import pathlib

import numpy as np
import tensorflow as tf

from catface_keras.export.serving import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    SERVING_IMAGE_SIZE,
)

WARMUP_FILE = pathlib.Path("assets.extra", "tf_serving_warmup_requests")
WARMUP_BATCH_SIZES = (1, 8, 32)
SERVING_API_INSTALL = "pip install --no-deps tensorflow-serving-api==2.21.0"


def serving_apis():
    """`(predict_pb2, prediction_log_pb2)` from `tensorflow_serving.apis`, or a clear error."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError(
            "Writing the TF Serving warm-up file needs the `tensorflow_serving` protos. "
            f"Install them with: {SERVING_API_INSTALL}"
        ) from error
    return predict_pb2, prediction_log_pb2


def warmup_faces(batch_size, seed=0):
    """Deterministic uint8 `(batch_size, 112, 112, 3)` images: smooth gradients plus noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 255.0, SERVING_IMAGE_SIZE, dtype=np.float32)
    base = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 128.0), axis=-1)
    noise = rng.normal(0.0, 20.0, (batch_size, SERVING_IMAGE_SIZE, SERVING_IMAGE_SIZE, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def warmup_requests(model_name, batch_sizes=WARMUP_BATCH_SIZES):
    """The `PredictionLog` records: every signature at every batch size."""
    predict_pb2, prediction_log_pb2 = serving_apis()
    batch_sizes = tuple(batch_sizes)
    if not batch_sizes or not all(isinstance(size, int) and size > 0 for size in batch_sizes):
        raise ValueError(
            f"`batch_sizes` must be positive ints. Received: batch_sizes={batch_sizes!r}"
        )
    records = []
    for batch_size in batch_sizes:
        faces = warmup_faces(batch_size, seed=batch_size)
        encoded = np.array(
            [tf.io.encode_jpeg(face, quality=90).numpy() for face in faces], dtype=object
        )
        for signature, input_name, value in (
            (IMAGES_SIGNATURE, IMAGES_INPUT, faces),
            (BYTES_SIGNATURE, BYTES_INPUT, encoded),
        ):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            records.append(
                prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
            )
    return records


def write_warmup_requests(saved_model_dir, model_name, batch_sizes=WARMUP_BATCH_SIZES):
    """Writes the warm-up TFRecord into `saved_model_dir`; returns its path."""
    path = pathlib.Path(saved_model_dir, WARMUP_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_requests(model_name, batch_sizes):
            writer.write(record.SerializeToString())
    return path


def read_warmup_requests(path):
    """`[(model_name, signature_name, {input_name: np.ndarray}), ...]` from a warm-up file."""
    _, prediction_log_pb2 = serving_apis()
    requests = []
    for serialized in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(serialized)
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        requests.append((request.model_spec.name, request.model_spec.signature_name, inputs))
    return requests
