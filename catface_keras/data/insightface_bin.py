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
naming the file and the refused global, before anything is called. The
result is then checked: every image item must be bytes or a 1-D uint8 array.
"""

import pickle

import numpy as np
from tqdm import tqdm

from catface_keras.data.decoding import ImageDecodeError, decode_image

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

_ALLOWED_DTYPES = ("u1", "b1")


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


class _VerificationUnpickler(pickle.Unpickler):
    """Admits only the globals of `_ALLOWED_GLOBALS` (see the module docstring)."""

    def find_class(self, module, name):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise _RefusedGlobal(f"the global {module}.{name}")
        return allowed


def _load_pickle(path):
    try:
        with open(path, "rb") as handle:
            return _VerificationUnpickler(handle, encoding="bytes").load()
    except OSError as error:
        raise ValueError(f"Cannot read verification file {path}: {error.strerror}") from error
    except _RefusedGlobal as error:
        raise ValueError(
            f"{path}: refused to load {error}: a verification .bin may hold only bytes, 1-D "
            "uint8 numpy arrays, lists, tuples and bools (a pickle can run code when loaded)"
        ) from None
    except Exception as error:  # a damaged pickle raises many kinds of error
        raise ValueError(f"{path} is not a readable verification pickle: {error!r}") from None


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
    bins, issame = _check_contents(path, _load_pickle(path))
    images = None
    for index, item in enumerate(tqdm(bins, desc=f"decoding {path}", unit="image", disable=None)):
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
