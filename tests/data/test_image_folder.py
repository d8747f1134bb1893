import numpy as np
import pytest
import tensorflow as tf
from data.face_writers import encode, face_image, write_image

from catface_keras.data.decoding import SkippedImages, decode_elements
from catface_keras.data.face_files import load_face_arrays
from catface_keras.data.image_folder import read_image_folder
from catface_keras.data.sources import random_access_elements

NAMES = ("Male", "Bald")


def make_folder(root):
    """bob: 2 images, alice: 2 images, empty/: none, notes.txt at the root."""
    write_image(root / "bob" / "b1.png", face_image(1, 16, 16))
    write_image(root / "bob" / "b0.jpg", face_image(0, 16, 16))
    write_image(root / "alice" / "a0.png", face_image(2, 16, 16))
    write_image(root / "alice" / "a1.png", face_image(3, 16, 16))
    (root / "alice" / "readme.txt").write_text("not an image")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("ignored")
    return root


def write_csv(path, text):
    path.write_text(text)
    return path


def test_sorted_folders_become_classes_and_csv_gives_attributes(tmp_path):
    root = make_folder(tmp_path / "faces")
    csv = write_csv(tmp_path / "attributes.csv",
                    "path,Bald,Male,Age\nbob/b0.jpg,0,1,30\n./bob/b1.png,-1,1,31\n"
                    "alice/a0.png,0,0,20\nalice\\a1.png,1,0,21\n")
    files = read_image_folder(root, csv, NAMES)
    assert [p.split("faces/")[1] for p in files.paths] == [
        "alice/a0.png", "alice/a1.png", "bob/b0.jpg", "bob/b1.png"]
    np.testing.assert_array_equal(files.identities, [0, 0, 1, 1])
    assert files.num_classes == 2 and files.attribute_names == NAMES
    np.testing.assert_array_equal(files.attributes, [[0, 0], [0, 1], [1, 0], [1, -1]])
    without_csv = read_image_folder(root, None, NAMES)
    assert (without_csv.attributes == -1).all()


def test_everything_returned_is_rgb_a_pure_red_image_stays_red(tmp_path):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    write_image(tmp_path / "faces" / "x" / "red.png", red)
    files = read_image_folder(tmp_path / "faces")
    arrays = load_face_arrays(files, 16)
    np.testing.assert_array_equal(arrays.images[0], red)
    elements = random_access_elements(files, tf.constant([0, 0], tf.int64))
    (image, _, _), = decode_elements(elements, 16, SkippedImages()).as_numpy_iterator()
    np.testing.assert_array_equal(image, red)


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,Male,Bald\n", r"attributes.csv:1: the header must have a `path` column"),
        ("path,Male\n", r"attributes.csv:1: no column for attribute\(s\) \['Bald'\]"),
        ("path,Male,Bald\nbob/b0.jpg,1,0\nbob/gone.jpg,1,0\n",
         r"attributes.csv:3: no image 'bob/gone.jpg'"),
        ("path,Male,Bald\nbob/b0.jpg,1,0\nbob/b1.png,1,yes\n",
         r"attributes.csv:3: `Bald` must be 1, 0 or -1 \(unknown\). Received: 'yes'"),
        ("path,Male,Bald\nbob/b0.jpg,1,0\nbob/b1.png,1\n",
         r"attributes.csv:3: expected 3 fields"),
        ("path,Male,Bald\nbob/b0.jpg,1,0\nbob/b0.jpg,1,0\n",
         r"attributes.csv:3: path 'bob/b0.jpg' is also on line 2"),
        ("path,Male,Bald\nbob/b0.jpg,1,0\nbob/b1.png,1,0\nalice/a0.png,0,0\n",
         r"attributes.csv: no row for image 'alice/a1.png'"),
    ],
)
def test_csv_that_does_not_match_the_images_names_file_and_line(tmp_path, text, message):
    root = make_folder(tmp_path / "faces")
    with pytest.raises(ValueError, match=message):
        read_image_folder(root, write_csv(tmp_path / "attributes.csv", text), NAMES)


def test_corrupt_and_truncated_images_are_skipped_and_counted(tmp_path):
    root = tmp_path / "faces"
    for index in range(4):
        write_image(root / f"id{index % 2}" / f"{index}.jpg", face_image(index, 16, 16))
    (root / "id0" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    truncated = encode(face_image(9, 16, 16), ".jpg")
    (root / "id1" / "truncated.jpg").write_bytes(truncated[: len(truncated) * 2 // 3])
    files = read_image_folder(root)
    assert len(files) == 6
    skipped = SkippedImages()
    elements = random_access_elements(files, tf.constant([3, 4], tf.int64))
    faces = list(decode_elements(elements, 16, skipped).as_numpy_iterator())
    assert len(faces) == 4 and skipped.count == 2
    assert sorted(name.split("faces/")[1].split()[0] for name in skipped.names) == [
        "id0/corrupt.jpg", "id1/truncated.jpg"]
    held = SkippedImages()
    assert len(load_face_arrays(files, 16, held).images) == 4 and held.count == 2


def test_missing_file_stops_with_its_name(tmp_path):
    root = make_folder(tmp_path / "faces")
    files = read_image_folder(root)
    (root / "bob" / "b0.jpg").unlink()
    elements = random_access_elements(files, tf.constant([0, 0], tf.int64))
    with pytest.raises(tf.errors.OpError, match=r"bob/b0.jpg"):
        list(decode_elements(elements, 16, SkippedImages()))
