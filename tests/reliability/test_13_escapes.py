"""Item 13: a shard path outside its folder, and a numpy.dtype given BUILD state."""

import json
import pickle

import numpy as np
import pytest

from catface_keras.data.image_folder import read_image_folder
from catface_keras.data.insightface_bin import read_verification_bin
from catface_keras.data.tfrecord import read_metadata, write_tfrecord_shards

from reliability.helpers import snapshot


def test_shard_path_outside_the_folder_is_refused(face_folder, tmp_path):
    shards = tmp_path / "data" / "shards"
    write_tfrecord_shards(read_image_folder(face_folder, None, ["Male"]), shards)
    secret = tmp_path / "secret.tfrecord"
    secret.write_text("not the dataset's")
    metadata = json.loads((shards / "dataset.json").read_text())
    metadata["shards"][0]["file"] = "../../secret.tfrecord"
    (shards / "dataset.json").write_text(json.dumps(metadata))
    before = snapshot(tmp_path)
    # Before: the file outside was opened as a shard.
    with pytest.raises(ValueError, match=r"names '../../secret.tfrecord'; a shard must be a file "
                                         r"name inside .*Refused"):
        read_metadata(shards)
    metadata["shards"][0]["file"] = str(secret)  # absolute
    (shards / "dataset.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="Refused"):
        read_metadata(shards)
    assert secret.read_text() == "not the dataset's"
    before.pop("data/shards/dataset.json")
    after = snapshot(tmp_path)
    after.pop("data/shards/dataset.json")
    assert after == before


class DtypeWithState:
    """Pickles as `numpy.dtype('u1')` followed by a BUILD of foreign state."""

    def __reduce__(self):
        # A foreign byte order and item size for uint8.
        return np.dtype, ("u1", False, True), (3, "<", None, None, None, 8, 1, 0)


def test_dtype_build_state_is_refused(tmp_path):
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps(([DtypeWithState(), b"x"], [True]), protocol=2))
    before = path.read_bytes()
    # Before: numpy.dtype.__setstate__ ran with the pickle's state.
    with pytest.raises(ValueError, match=r"lfw.bin: refused to load a state .* for numpy.dtype"):
        read_verification_bin(path)
    assert path.read_bytes() == before
