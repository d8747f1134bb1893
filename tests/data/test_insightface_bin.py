import builtins
import os
import pickle

import cv2
import numpy as np
import pytest
from data.face_writers import face_image

from catface_keras.data.insightface_bin import read_verification_bin


def imencode_rgb(rgb, suffix=".jpg"):
    """What insightface's packers store: `cv2.imencode` output, a 1-D uint8 array."""
    return cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1]


def write_bin(path, bins, issame, protocol=pickle.HIGHEST_PROTOCOL):
    path.write_bytes(pickle.dumps((bins, issame), protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_bytes_and_numpy_items_as_rgb_pairs(tmp_path, protocol):
    faces = [face_image(seed, 32, 32) for seed in range(4)]
    faces[0][:8, :8] = (255, 0, 0)  # a pure-red RGB corner
    bins = [
        imencode_rgb(faces[0]),  # numpy item
        imencode_rgb(faces[1]).tobytes(),  # bytes item
        imencode_rgb(faces[2], ".png"),
        imencode_rgb(faces[3], ".png").tobytes(),
    ]
    path = write_bin(tmp_path / "lfw.bin", bins, [True, False], protocol)
    images, issame = read_verification_bin(path)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert issame.dtype == bool and issame.tolist() == [True, False]
    red = images[0, 1:6, 1:6].reshape(-1, 3).mean(axis=0)
    assert red[0] > 240 and red[1] < 15 and red[2] < 15  # R high: RGB, not BGR
    assert np.abs(images[0].astype(int) - faces[0]).mean() < 4  # JPEG
    np.testing.assert_array_equal(images[2:], faces[2:])  # PNG is lossless


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evaluates:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.eval, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.mark.parametrize(
    "payload, refused", [(_RunsCommand, "system"), (_Evaluates, "builtins.eval")]
)
def test_pickle_that_calls_a_function_is_refused_and_nothing_runs(tmp_path, payload, refused):
    marker = tmp_path / "the_payload_ran"
    bins = [imencode_rgb(face_image(0, 16, 16)), payload(marker)]
    path = write_bin(tmp_path / "evil.bin", bins, [True])
    message = rf"evil.bin: refused to load the global \S*{refused}"
    with pytest.raises(ValueError, match=message) as error:
        read_verification_bin(path)
    assert "can run code" in str(error.value)
    assert not marker.exists()


def test_arrays_other_than_1d_uint8_are_refused(tmp_path):
    path = write_bin(tmp_path / "floats.bin", [np.zeros(4, np.float64), b"x"], [True])
    with pytest.raises(ValueError, match=r"floats.bin: refused to load numpy.dtype\('f8'\)"):
        read_verification_bin(path)
    path = write_bin(tmp_path / "square.bin", [np.zeros((2, 2), np.uint8), b"x"], [True])
    with pytest.raises(ValueError, match=r"square.bin: image 0 must be bytes or a 1-D uint8 array"):
        read_verification_bin(path)


def test_wrong_structure_and_undecodable_images_are_named(tmp_path):
    good = imencode_rgb(face_image(0, 16, 16))
    with pytest.raises(ValueError, match=r"odd.bin: 3 images for 1 pairs"):
        read_verification_bin(write_bin(tmp_path / "odd.bin", [good, good, good], [True]))
    with pytest.raises(ValueError, match=r"broken.bin: image 1 does not decode"):
        read_verification_bin(
            write_bin(tmp_path / "broken.bin", [good, b"\xff\xd8garbage"], [True])
        )
