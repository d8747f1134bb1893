"""A published iResNet through `catface import-weights` and `catface export`: the exported
signature (batch norms folded) gives the PyTorch network's embedding."""

import numpy as np
import pytest

from catface_keras.cli.main import main

torch = pytest.importorskip("torch")

from torch_iresnets import (  # noqa: E402  (needs torch)
    LAYERS,
    InsightFaceIR,
    insightface_input,
    randomise,
    save_insightface_checkpoint,
)


@pytest.mark.slow  # exports an IR-18 (tens of seconds)
def test_exported_import_gives_the_published_embedding(tmp_path):
    import tensorflow as tf

    reference = randomise(InsightFaceIR(LAYERS["ir_18"], num_features=32), seed=4)
    checkpoint = tmp_path / "backbone.pth"
    save_insightface_checkpoint(reference, checkpoint)
    imported = tmp_path / "backbone.keras"
    assert main(["import-weights", "--from", "insightface", "--arch", "ir_18",
                 "--checkpoint", str(checkpoint), "--out", str(imported)]) == 0
    assert main(["export", "--model", str(imported), "--out", str(tmp_path / "served")]) == 0

    faces = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = reference(insightface_input(faces)).numpy()
    loaded = tf.saved_model.load(str(tmp_path / "served" / "1"))
    outputs = loaded.signatures["serving_default"](images=tf.constant(faces))
    assert set(outputs) == {"embedding", "embedding_norm"}
    norms = np.linalg.norm(expected, axis=1)
    # Float32 through 18 layers, with the batch norms folded (as in the import test: 1e-4 of
    # the largest entry).
    np.testing.assert_allclose(outputs["embedding_norm"].numpy(), norms, rtol=1e-4)
    unit = expected / norms[:, None]
    assert np.abs(outputs["embedding"].numpy() - unit).max() < 1e-4 * np.abs(unit).max()
