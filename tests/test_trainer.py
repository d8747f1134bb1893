import json

import numpy as np
import pytest

from catface_keras.cli.main import main
from catface_keras.config import ExperimentConfig, config_from_dict
from catface_keras.run_directory import OutputDirectoryError, lock_path
from catface_keras.trainer import TrainingDivergedError, run_stage1
from tiny_models import TINY_EXPERIMENT as TINY, StopAfterFirstEpoch



@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    """Tolerance: 1e-5 absolute; both runs execute the same float32 ops in order."""
    config = config_from_dict(TINY)
    uninterrupted, _ = run_stage1(config, tmp_path / "straight", verbose=0)
    with pytest.raises(KeyboardInterrupt):
        run_stage1(config, tmp_path / "killed", verbose=0, callbacks=[StopAfterFirstEpoch()])
    assert not (tmp_path / "killed" / "stage1.keras").exists()
    assert (tmp_path / "killed" / "backup").exists()
    resumed, metrics = run_stage1(config, tmp_path / "killed", verbose=0)
    for expected, got in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert float(resumed.adaface.norm_mean) == pytest.approx(float(uninterrupted.adaface.norm_mean))
    assert not (tmp_path / "killed" / "backup").exists()
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == [
        "epoch_001.keras",
        "epoch_002.keras",
    ]
    assert set(metrics["stage1"]["verification"]) == {"clean", "degraded", "mixed"}


@pytest.mark.slow
def test_finished_run_is_not_overwritten_silently(tmp_path):
    config = config_from_dict({**TINY, "train": {**TINY["train"], "epochs": 1}})
    run_stage1(config, tmp_path, verbose=0)
    stamp = (tmp_path / "stage1.keras").stat().st_mtime_ns
    with pytest.raises(OutputDirectoryError, match="--overwrite"):
        run_stage1(config, tmp_path, verbose=0)
    assert (tmp_path / "stage1.keras").stat().st_mtime_ns == stamp
    run_stage1(config, tmp_path, overwrite=True, verbose=0)
    assert (tmp_path / "stage1.keras").stat().st_mtime_ns != stamp


@pytest.mark.slow
def test_cli_train_writes_model_metrics_and_logs(tmp_path, capsys):
    import yaml

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "epochs": 1}}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config_path), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for condition in ("clean", "degraded", "mixed"):
        for key in ("accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e-2"):
            assert 0.0 <= metrics["stage1"]["verification"][condition][key] <= 1.0
    for condition in ("clean", "degraded"):
        accuracy = metrics["stage1"]["attributes"][condition]["accuracy"]
        assert set(accuracy) == set(ExperimentConfig().model.attribute_names)
        male = metrics["stage1"]["attributes"][condition]["per_attribute"]["Male"]
        assert male["accuracy"] == accuracy["Male"] and 0.5 <= male["majority_rate"] <= 1.0
        low, high = male["balanced_accuracy_ci"]
        assert low <= male["balanced_accuracy"] <= high
    assert (out / "stage1.keras").exists() and any((out / "logs").iterdir())
    assert not lock_path(out).exists()  # the run let go of its directory
    printed = capsys.readouterr().out
    assert "mixed" in printed and "Attributes (held-out), stage1" in printed
    assert "degraded bal. [95 % CI]" in printed and "Narrow_Eyes" in printed
    assert "bal. [95 % CI]" in printed and "base: share of the majority class" in printed
    # Started again on the finished run: refused with a message, exit code 2.
    assert main(["train", "--config", str(config_path), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_train_rejects_bad_config_before_training(tmp_path, capsys):
    config_path = tmp_path / "bad.yaml"
    config_path.write_text("train:\n  epoch: 3\n")
    assert main(["train", "--config", str(config_path), "--out", str(tmp_path / "x")]) == 2
    assert "unknown key `train.epoch`" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_diverging_run_stops_with_a_message_and_keeps_no_model(tmp_path):
    config = config_from_dict(
        {
            **TINY,
            "train": {**TINY["train"], "epochs": 1},
            "optimizer": {"learning_rate": 1e12, "global_clipnorm": 0, "weight_decay": 0},
        }
    )
    with pytest.raises(TrainingDivergedError, match="Lower optimizer.learning_rate"):
        run_stage1(config, tmp_path, verbose=0)
    assert not (tmp_path / "stage1.keras").exists()


def test_balanced_positive_weights_are_negatives_over_positives():
    from catface_keras.soft_biometrics import MISSING_LABEL, balanced_positive_weights

    labels = np.array([[1, 0], [0, 0], [0, 1], [MISSING_LABEL, 0], [0, 0]])
    # Male: 1 positive, 3 negatives (the unknown label left out); Bald: 1 and 4.
    assert balanced_positive_weights(labels, ["Male", "Bald"]) == ([3.0, 4.0], [])
    assert balanced_positive_weights(np.array([[1], [0], [0]] + [[0]] * 4), ["Bald"])[0] == [6.0]
    # Nothing to balance without positives (or negatives): weight 1, and a note says so.
    weights, notes = balanced_positive_weights(np.array([[1, 0], [0, 0]] * 2), ["Male", "Bald"])
    assert weights == [1.0, 1.0]
    assert notes == ["Bald has 0 positive and 4 negative training labels: nothing to balance, "
                     "its positives keep weight 1"]
    with pytest.raises(ValueError, match=r"must be \(N, 2\)"):
        balanced_positive_weights(np.zeros((5, 3)), ["Male", "Bald"])


def test_balanced_config_weights_come_from_the_training_labels(capsys):
    from catface_keras.data.face_arrays import FaceArrays
    from catface_keras.data.sources import InMemoryFaces, StreamingFaces
    from catface_keras.trainer import DatasetError, with_balanced_positive_weights

    config = config_from_dict(TINY).replace("model", attribute_names=["Male", "Bald"]).replace(
        "loss", attribute_positive_weights="balanced")
    attributes = np.array([[1, 0], [1, 1], [0, 0], [0, 0], [0, 0]], np.int8)
    faces = InMemoryFaces(FaceArrays(np.zeros((5, 8, 8, 3), np.uint8), np.arange(5),
                                     attributes, ("Male", "Bald")))
    resolved = with_balanced_positive_weights(config, faces)
    assert resolved.loss.attribute_positive_weights == [1.5, 4.0]
    assert "balanced -> Male 1.5, Bald 4" in capsys.readouterr().out
    # Weights given as numbers are left alone.
    given = config.replace("loss", attribute_positive_weights=[2.0, 3.0])
    assert with_balanced_positive_weights(given, faces) is given
    records = StreamingFaces(None, 5, 5, ("Male", "Bald"), 8, None)
    with pytest.raises(DatasetError, match="holds them only inside its records"):
        with_balanced_positive_weights(config, records)


def test_unknown_positive_weights_word_is_refused():
    from catface_keras.config import ConfigError

    with pytest.raises(ConfigError, match="a list of weights, one per attribute, or 'balanced'"):
        config_from_dict(TINY).replace("loss", attribute_positive_weights="balance")
