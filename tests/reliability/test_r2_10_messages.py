"""Round two, item 10: messages that named the wrong cause, now naming the right one
(each before TensorFlow does any work where the check needs none)."""

import pytest
from data.face_writers import face_image, write_image

from catface_keras.cli.main import main
from catface_keras.data.image_folder import SOURCE as IMAGE_FOLDER
from catface_keras.weights.pretrained import PretrainedBackboneError, load_pretrained_backbone

from reliability.helpers import snapshot

@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    """A valid config, and the working directory in tmp_path (nothing lands in the repo)."""
    (tmp_path / "config.yaml").write_text("data:\n  source: synthetic\n")
    monkeypatch.chdir(tmp_path)


CONFIG = "config.yaml"


@pytest.fixture
def not_a_model(tmp_path):
    path = tmp_path / "backbone.pth"
    path.write_bytes(b"\x80\x02 a PyTorch checkpoint, not a .keras file")
    return path


def test_init_backbone_that_is_no_keras_file_is_named(tmp_path, not_a_model, capsys):
    # Before: "File not found" from Keras, about a file that exists.
    with pytest.raises(PretrainedBackboneError, match=r"backbone.pth is not a \.keras model file"):
        load_pretrained_backbone(not_a_model)
    with pytest.raises(PretrainedBackboneError, match=r"is a directory"):
        load_pretrained_backbone(tmp_path)
    code = main(["train", "--config", CONFIG, "--out", str(tmp_path / "run"),
                 "--init-backbone", str(not_a_model)])
    assert code == 2
    assert "backbone.pth is not a .keras model file" in capsys.readouterr().err
    assert main(["train", "--config", CONFIG, "--out", str(tmp_path / "run"),
                 "--init-backbone", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def import_weights(*arguments):
    return main(["import-weights", "--from", "insightface", "--arch", "ir_18", *arguments])


def test_import_weights_names_directories_and_files_in_the_way(tmp_path, not_a_model, capsys):
    out_dir = tmp_path / "models.keras"
    out_dir.mkdir()
    (out_dir / "mine.txt").write_text("the user's file")
    before = snapshot(tmp_path)
    # Before: a traceback from os.replace onto a directory, after the import.
    assert import_weights("--checkpoint", str(not_a_model), "--out", str(out_dir),
                          "--overwrite") == 2
    assert "is a directory; give the name of the file to write" in capsys.readouterr().err
    # Before: a bare "[Errno 17] File exists" after a 24 s import.
    assert import_weights("--checkpoint", str(not_a_model), "--out",
                          str(not_a_model / "backbone.keras")) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    # Before: "checkpoint ... does not exist" about a directory that exists.
    assert import_weights("--checkpoint", str(tmp_path), "--out",
                          str(tmp_path / "new.keras")) == 2
    assert "is a directory; give the checkpoint file" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [
    ["evaluate", "--model", "m.keras", "--data", "synthetic", "--out"],
    ["ablate", "--table", "fusion", "--config", CONFIG, "--out"],
])
def test_out_that_is_a_file_is_refused_while_parsing(tmp_path, command, capsys):
    existing = tmp_path / "results.txt"
    existing.write_text("the user's results")
    # Before: [Errno 17] after the TensorFlow import (evaluate), a traceback (ablate).
    with pytest.raises(SystemExit) as exit_info:
        main([*command, str(existing)])
    assert exit_info.value.code == 2
    assert "is an existing file; --out must be a directory" in capsys.readouterr().err
    assert existing.read_text() == "the user's results"


def test_ablate_report_only_without_finished_rows_is_refused(tmp_path, capsys):
    for out in (tmp_path / "missing", tmp_path / "empty"):
        # Before: an all-"n/a" table written, exit 0.
        assert main(["ablate", "--table", "fusion", "--config", CONFIG, "--out", str(out),
                     "--report-only"]) == 2
        assert "holds no finished rows" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results").mkdir()
    assert main(["ablate", "--table", "fusion", "--config", CONFIG, "--out",
                 str(tmp_path / "empty"), "--report-only"]) == 2
    assert "holds no finished row of the fusion table" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "table.md").exists()


def test_ablate_seeds_are_bounded(tmp_path, capsys):
    # Before: accepted, queueing thousands of trainings.
    assert main(["ablate", "--table", "fusion", "--config", CONFIG, "--out",
                 str(tmp_path / "out"), "--seeds", "5000"]) == 2
    assert "--seeds must be in [1, 100]. Received: 5000" in capsys.readouterr().err


def test_a_folder_where_nothing_decodes_says_so(tmp_path):
    for name in ("ann/1.png", "ann/2.png", "bo/1.png", "bo/2.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_image(tmp_path / "bo" / "3.png", face_image(0, 16, 16))
    # Before: "Received: 0 images, 0 labels, 0 identities".
    with pytest.raises(ValueError, match=r"4 of its 5 images do not decode .*1 that do show 1 "
                                         r"person\(s\), and evaluation needs two"):
        IMAGE_FOLDER.evaluation_faces(tmp_path, 16)
