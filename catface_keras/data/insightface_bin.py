"""insightface verification `.bin` files (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW).

A `.bin` is a Python pickle of `(bins, issame_list)`: `2 * P` encoded
112x112 aligned faces, pair k being `(bins[2k], bins[2k + 1])`, and `P`
bools saying whether a pair shows one person. An item is `bytes` or a 1-D
uint8 numpy array (from `cv2.imencode`).

Loading a pickle can run arbitrary code, so these files are NOT read with
`pickle.load`. A restricted unpickler admits only the globals a real `.bin`
needs:

- numpy array reconstruction: `numpy.core.multiarray._reconstruct` /
  `numpy._core.multiarray._reconstruct` (protocols 2-4),
  `numpy.core.numeric._frombuffer` / `numpy._core.numeric._frombuffer`
  (protocol 5), `numpy.ndarray` and `numpy.dtype`, the dtype limited to
  uint8 (and bool, for an `issame` array);
- `_codecs.encode(text, "latin1")`, which is how Python 3 writes `bytes`
  under pickle protocol 2;

plus what needs no global (bytes, lists, tuples, bools). Any other global
(`os.system`, `builtins.eval`, ...) stops the load with a `ValueError`
naming the file and the refused global, before anything is called. A BUILD
(`__setstate__`) is admitted only on a numpy array, with a uint8 or bool
dtype, and on a dtype only with that dtype's own state. The result is then
checked: every image item must be bytes or a 1-D uint8 array.

The size of the result is bounded before anything is decoded: at most
`MAX_IMAGES` images, whose encoded sizes add up to no more than the file
(a pickle can reference one image many times) and whose headers announce
at most `MAX_DECODED_BYTES` of pixels.
"""

import os
import pickle

import numpy as np

from catface_keras.data.decoding import ImageDecodeError, decode_image, image_dimensions
from catface_keras.data.face_arrays import EvaluationFaces, FacePairs
from catface_keras.progress import track

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

_ALLOWED_DTYPES = ("u1", "b1")
# The largest standard sets (CFP-FP, AgeDB-30) hold 14,000 images.
MAX_IMAGES = 200_000
# Decoded pixels (3 bytes each) for all images together: 112x112 faces need 37.6 KB each.
MAX_DECODED_BYTES = 8 * 1024**3


class _RefusedGlobal(ValueError):
    pass


def _check_dtype(dtype):
    if np.dtype(dtype) not in (np.uint8, np.bool_):
        raise _RefusedGlobal(f"a numpy array of dtype {np.dtype(dtype)} (only uint8 and bool)")


def _dtype(name, align=False, copy=False):
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    if text not in _ALLOWED_DTYPES:
        raise _RefusedGlobal(f"numpy.dtype({name!r}) (only uint8 and bool arrays)")
    return np.dtype(text, align, copy)


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise _RefusedGlobal(f"an array of type {subtype!r} (only numpy.ndarray)")
    return _multiarray._reconstruct(subtype, shape, dtype)


def _frombuffer(buffer, dtype, shape, order):
    _check_dtype(dtype)
    return _numeric._frombuffer(buffer, dtype, shape, order)


def _latin1_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _RefusedGlobal(f"_codecs.encode with encoding {encoding!r} (only latin1)")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
}


def _load_build(unpickler):
    """BUILD: only an array's own state, or a dtype's (numpy.dtype would accept any state)."""
    state = unpickler.stack[-1]
    target = unpickler.stack[-2]
    if isinstance(target, np.dtype):
        if state != target.__reduce__()[2]:
            raise _RefusedGlobal(f"a state {state!r} for numpy.dtype({target.str!r})")
    elif type(target) is np.ndarray:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)):
            raise _RefusedGlobal("an array state other than (version, shape, dtype, order, data)")
        _check_dtype(state[2])
    else:
        raise _RefusedGlobal(f"a BUILD (__setstate__) of {type(target).__name__}")
    pickle._Unpickler.dispatch[pickle.BUILD[0]](unpickler)


class _VerificationUnpickler(pickle._Unpickler):
    """Admits only the globals of `_ALLOWED_GLOBALS` and checked BUILDs (module docstring).

    The pure-Python unpickler, so that BUILD can be checked before it runs.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build

    def find_class(self, module, name):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise _RefusedGlobal(f"the global {module}.{name}")
        return allowed


def _load_pickle(path):
    try:
        if os.path.getsize(path) == 0:
            raise ValueError(f"{path} is empty (0 bytes): not a verification .bin")
        with open(path, "rb") as handle:
            return _VerificationUnpickler(handle, encoding="bytes").load()
    except OSError as error:
        raise ValueError(f"Cannot read verification file {path}: {error.strerror}") from error
    except _RefusedGlobal as error:
        raise ValueError(
            f"{path}: refused to load {error}: a verification .bin may hold only bytes, 1-D "
            "uint8 numpy arrays, lists, tuples and bools (a pickle can run code when loaded)"
        ) from None
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path} is not a readable verification pickle: {error!r}") from None
    except Exception as error:  # a damaged pickle raises many kinds of error
        raise ValueError(f"{path} is not a readable verification pickle: {error!r}") from None


def _check_size(path, bins):
    """Bounds the images of a `.bin` before they are decoded (see the module docstring)."""
    if len(bins) > MAX_IMAGES:
        raise ValueError(
            f"{path}: {len(bins)} images, more than the {MAX_IMAGES} a verification .bin "
            "may hold"
        )
    file_size = os.path.getsize(path)
    encoded = sum(len(item) if isinstance(item, (bytes, bytearray)) else item.size for item in bins)
    if encoded > file_size:
        raise ValueError(
            f"{path}: its images add up to {encoded} encoded bytes, more than the file's "
            f"{file_size}: items reference the same data many times (refused: decoding it "
            "would multiply the file's size)"
        )
    decoded = 0
    for index, item in enumerate(bins):
        dimensions = image_dimensions(item) or (0, 0)
        decoded += 3 * dimensions[0] * dimensions[1]
        if decoded > MAX_DECODED_BYTES:
            raise ValueError(
                f"{path}: the images' headers announce more than {MAX_DECODED_BYTES} bytes of "
                f"pixels by image {index} ({dimensions[0]}x{dimensions[1]}); refused"
            )


def _check_contents(path, loaded):
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
        raise ValueError(
            f"{path}: expected a pickled (bins, issame_list) pair, found {type(loaded).__name__}"
        )
    bins, issame = loaded
    if not isinstance(bins, (list, tuple)):
        raise ValueError(f"{path}: bins must be a list. Received: {type(bins).__name__}")
    for index, item in enumerate(bins):
        if isinstance(item, np.ndarray):
            if type(item) is not np.ndarray or item.dtype != np.uint8 or item.ndim != 1:
                raise ValueError(
                    f"{path}: image {index} must be bytes or a 1-D uint8 array. Received: "
                    f"array of dtype {item.dtype} and shape {item.shape}"
                )
        elif not isinstance(item, (bytes, bytearray)):
            raise ValueError(
                f"{path}: image {index} must be bytes or a 1-D uint8 array. Received: "
                f"{type(item).__name__}"
            )
    if isinstance(issame, np.ndarray) and issame.dtype == np.bool_ and issame.ndim == 1:
        issame = issame.tolist()
    if not isinstance(issame, (list, tuple)) or not all(
        isinstance(value, (bool, np.bool_)) for value in issame
    ):
        raise ValueError(f"{path}: issame_list must be a list of bools")
    if len(bins) != 2 * len(issame):
        raise ValueError(
            f"{path}: {len(bins)} images for {len(issame)} pairs (expected {2 * len(issame)})"
        )
    return bins, np.array(issame, bool)


def read_verification_items(path):
    """The encoded images and pair labels of a `.bin`, checked but not decoded.

    Returns:
        `(bins, issame)`: `2P` encoded images (bytes or 1-D uint8 arrays) and
        `(P,)` bool; raises `ValueError` as `read_verification_bin` does.
    """
    bins, issame = _check_contents(path, _load_pickle(path))
    if not bins:
        raise ValueError(f"{path} holds no image pairs")
    _check_size(path, bins)
    return bins, issame


def read_verification_bin(path):
    """Reads an insightface verification `.bin` through the restricted unpickler.

    Args:
        path: the `.bin` file.

    Returns:
        `(images, issame)`: `(2P, H, W, 3)` uint8 RGB (pair k is images
        `2k` and `2k + 1`) and `(P,)` bool.

    Raises:
        ValueError: naming the file, for a pickle that needs any other global
            than a real `.bin` does (the global is named and nothing is
            called), a wrong structure, or an image that does not decode
            (its index named) or has another size than the first.
    """
    bins, issame = read_verification_items(path)
    images = None
    for index, item in enumerate(track(bins, len(bins), f"decoding {path}")):
        try:
            image = decode_image(item)
        except ImageDecodeError as error:
            raise ValueError(f"{path}: image {index} does not decode: {error}") from None
        if images is None:
            images = np.empty((len(bins),) + image.shape, np.uint8)
        elif image.shape != images.shape[1:]:
            raise ValueError(
                f"{path}: image {index} is {image.shape[1]}x{image.shape[0]}, image 0 is "
                f"{images.shape[2]}x{images.shape[1]}"
            )
        images[index] = image
    if images is None:
        images = np.zeros((0, 112, 112, 3), np.uint8)
    return images, issame


class VerificationBinSource:
    """The insightface `.bin` face source (`catface_keras.data.registry`): evaluation only."""

    def evaluation_faces(self, path, image_size, attributes_csv=None, pairs_file=None):
        """Pair `k` is images `2k` and `2k + 1`, kept at the file's size (no image is
        skipped: `read_verification_bin` stops at one that does not decode)."""
        images, issame = read_verification_bin(str(path))
        issame = np.asarray(issame, bool)
        info = {"num_images": int(len(images)), "num_pairs": int(len(issame))}
        if len(images) != 2 * len(issame):
            raise ValueError(
                f"A verification .bin must hold two images per pair. Received: {len(images)} "
                f"images for {len(issame)} pairs in {path}"
            )
        pairs = FacePairs(np.arange(0, len(images), 2), np.arange(1, len(images), 2), issame)
        return EvaluationFaces(images=np.asarray(images, np.uint8), pairs=pairs, info=info)


SOURCE = VerificationBinSource()
