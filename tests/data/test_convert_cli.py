"""`catface data convert` end to end: each source into shards, read back."""

import json

from data.face_writers import encode, face_image, write_celeba, write_image, write_insightface_rec

from catface_keras.cli.main import main
from catface_keras.data.tfrecord import read_tfrecord_dataset


def read_back(directory):
    return [
        (image, int(identity), attributes.tolist())
        for image, identity, attributes in read_tfrecord_dataset(directory).as_numpy_iterator()
    ]


def test_image_folder_with_csv_converts_and_reads_back(tmp_path, capsys):
    for index in range(6):
        path = tmp_path / "faces" / f"p{index % 2}" / f"{index}.png"
        write_image(path, face_image(index, 24, 20))
    (tmp_path / "faces" / "p0" / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    (tmp_path / "a.csv").write_text("path,Male,Bald\n" + "".join(
        f"p{i % 2}/{i}.png,{i % 2},0\n" for i in range(6)) + "p0/bad.jpg,1,1\n")
    argv = ["data", "convert", "--source", "image_folder", "--input", str(tmp_path / "faces"),
            "--attributes-csv", str(tmp_path / "a.csv"), "--attribute-names", "Bald,Male",
            "--out", str(tmp_path / "shards"), "--shards", "3", "--image-size", "16"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wrote 6 images of 2 identities in 3 shard(s)" in printed
    assert "skipped 1 undecodable" in printed and "bad.jpg" in printed
    faces = read_back(tmp_path / "shards")
    assert len(faces) == 6 and all(image.shape == (16, 16, 3) for image, _, _ in faces)
    assert sorted((identity, tuple(attributes)) for _, identity, attributes in faces) == sorted(
        (i % 2, (0, i % 2)) for i in range(6))
    # Run again: refused without --overwrite, replaced with it.
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0


def test_celeba_converts_train_and_heldout_identities(tmp_path, capsys):
    write_celeba(tmp_path / "celeba", [5, 5, 6, 6, 8, 8], [0, 0, 0, 0, 2, 2],
                 [{"Male"}, set(), {"Bald"}, set(), set(), {"Chubby"}])
    out = tmp_path / "shards"
    assert main(["data", "convert", "--source", "celeba", "--input", str(tmp_path / "celeba"),
                 "--out", str(out), "--image-size", "32"]) == 0
    train = json.loads((out / "dataset.json").read_text())
    heldout = json.loads((out / "heldout" / "dataset.json").read_text())
    assert (train["num_examples"], train["num_classes"]) == (4, 2)
    assert (heldout["num_examples"], heldout["num_classes"]) == (2, 1)
    assert train["attribute_names"] == ["Male", "Bald", "Big_Nose", "Chubby", "Narrow_Eyes"]
    labels = sorted((identity, tuple(a)) for _, identity, a in read_back(out))
    assert labels == [(0, (0, 0, 0, 0, 0)), (0, (1, 0, 0, 0, 0)), (1, (0, 0, 0, 0, 0)),
                      (1, (0, 1, 0, 0, 0))]


def test_recordio_converts_with_per_class_gender(tmp_path, capsys):
    faces = [face_image(i, 16, 16) for i in range(4)]
    write_insightface_rec(tmp_path / "train.rec", [0, 1, 1, 0], [encode(f, ".png") for f in faces])
    (tmp_path / "gender.csv").write_text("identity,Male\n1,1\n")
    assert main(["data", "convert", "--source", "recordio", "--input", str(tmp_path / "train.rec"),
                 "--attributes-csv", str(tmp_path / "gender.csv"), "--out", str(tmp_path / "s"),
                 "--shards", "2", "--image-size", "16"]) == 0
    back = read_back(tmp_path / "s")
    expected = sorted((faces[i].tobytes(), label, [{0: -1, 1: 1}[label]])
                      for i, label in enumerate([0, 1, 1, 0]))
    assert sorted((image.tobytes(), identity, a) for image, identity, a in back) == expected


def test_bad_arguments_stop_before_reading(tmp_path, capsys):
    assert main(["data", "convert", "--source", "image_folder", "--input", str(tmp_path),
                 "--out", str(tmp_path / "s"), "--shards", "0"]) == 2
    assert "--shards must be at least 1" in capsys.readouterr().err
    assert main(["data", "convert", "--source", "celeba", "--input", str(tmp_path / "none"),
                 "--out", str(tmp_path / "s")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "convert", "--source", "image_folder", "--input", str(tmp_path),
                 "--out", str(tmp_path / "s")]) == 2
    assert "holds no identity folder" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
