import numpy as np
import pytest
from data.face_writers import face_image, write_celeba

from catface_keras.data.celeba import celeba_splits, read_celeba
from catface_keras.data.decoding import decode_image

# Images 1-8: identities 50, 50, 7, 7, 7 (train), 9, 9 (val), 12, 12 (test).
IDENTITIES = [50, 50, 7, 7, 7, 9, 9, 12, 12]
PARTITIONS = [0, 0, 0, 0, 0, 1, 1, 2, 2]
ATTRIBUTES = [{"Male"}, {"Male", "Bald"}, set(), {"Chubby"}, {"Narrow_Eyes", "Big_Nose"},
              {"Young"}, set(), {"Male"}, {"Male", "Chubby"}]


@pytest.fixture
def celeba_root(tmp_path):
    write_celeba(tmp_path, IDENTITIES, PARTITIONS, ATTRIBUTES)
    return tmp_path


def test_reads_identities_attributes_and_partition(celeba_root):
    celeba = read_celeba(celeba_root)
    assert celeba.attribute_names == ("Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes")
    np.testing.assert_array_equal(celeba.identities, IDENTITIES)
    np.testing.assert_array_equal(celeba.partitions, PARTITIONS)
    # CelebA's -1 ("no") becomes 0; 1 stays 1.
    expected = [[int(name in row) for name in celeba.attribute_names] for row in ATTRIBUTES]
    np.testing.assert_array_equal(celeba.attributes, expected)
    image = decode_image(open(celeba.paths[3], "rb").read())
    assert np.abs(image.astype(int) - face_image(3, 49, 40)).mean() < 3  # RGB, not BGR


def test_configured_attribute_names_select_columns(celeba_root):
    celeba = read_celeba(celeba_root, ["Young", "Male"])
    np.testing.assert_array_equal(celeba.attributes[:, 0], [int("Young" in r) for r in ATTRIBUTES])
    with pytest.raises(ValueError, match=r"unknown: \['Beard'\].*Received: attribute_names"):
        read_celeba(celeba_root, ["Male", "Beard"])


def test_protocol_trains_on_train_identities_and_holds_out_test_identities(celeba_root):
    train, heldout = celeba_splits(celeba_root)
    assert len(train) == 5 and train.num_classes == 2
    # Relabelled 0..K-1 in CelebA identity order: 7 -> 0, 50 -> 1.
    np.testing.assert_array_equal(train.identities, [1, 1, 0, 0, 0])
    assert len(heldout) == 2 and heldout.num_classes == 1
    assert all(path.endswith(("000008.jpg", "000009.jpg")) for path in heldout.paths)
    np.testing.assert_array_equal(heldout.attributes[:, 0], [1, 1])


def test_official_folder_layout_is_found(tmp_path):
    write_celeba(tmp_path, IDENTITIES, PARTITIONS, ATTRIBUTES, image_dir="Img/img_align_celeba")
    (tmp_path / "Anno").mkdir()
    (tmp_path / "Eval").mkdir()
    for name in ("identity_CelebA.txt", "list_attr_celeba.txt"):
        (tmp_path / name).rename(tmp_path / "Anno" / name)
    (tmp_path / "list_eval_partition.txt").rename(tmp_path / "Eval" / "list_eval_partition.txt")
    assert len(read_celeba(tmp_path).paths) == len(IDENTITIES)


def test_broken_files_are_named_with_their_line(celeba_root):
    attributes = celeba_root / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines()
    lines[4] = lines[4].replace("-1", "0", 1)
    attributes.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"list_attr_celeba.txt:5: attribute values must be 1 or"):
        read_celeba(celeba_root, ["5_o_Clock_Shadow"])

    partition = celeba_root / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace("000003.jpg 0", "000003.jpg 5"))
    with pytest.raises(ValueError, match=r"list_eval_partition.txt:3: partition must be one of"):
        read_celeba(celeba_root, ["Male"])


def test_missing_image_stops_naming_the_identity_line(celeba_root):
    (celeba_root / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(ValueError, match=r"identity_CelebA.txt:4: 000004.jpg is not in .*missing"):
        read_celeba(celeba_root)
