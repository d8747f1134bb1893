"""tf-keras-vis Grad-CAM, Grad-CAM++ and Saliency maps of attributes and of the embedding."""

import numpy as np
import pytest

from catface_keras.visualization.gradient_maps import (
    GRADIENT_METHODS,
    attribute_gradient_maps,
    embedding_gradient_maps,
    unit_maps,
)
from tiny_models import SIZE


def assert_unit_maps(maps, batch):
    assert set(maps) == set(GRADIENT_METHODS)
    for method, value in maps.items():
        assert value.shape == (batch, SIZE, SIZE), method
        assert value.min() >= 0.0 and value.max() <= 1.0, method
        assert np.isfinite(value).all()


def test_attribute_maps_for_every_attribute(model, images):
    maps, logits = attribute_gradient_maps(model, images)
    assert list(maps) == list(model.attribute_names)
    np.testing.assert_allclose(logits, model(images)["attribute_logits"], atol=1e-5)
    for attribute in model.attribute_names:
        assert_unit_maps(maps[attribute], 2)
    assert maps["Male"]["Saliency"].max() > 0.5  # an actual gradient, normalised


def test_embedding_maps_score_similarity_to_the_reference(model, images):
    embeddings = model(images)["embedding"].numpy()
    maps, scores = embedding_gradient_maps(model, images, embeddings[0], [True, False])
    norms = np.linalg.norm(embeddings, axis=-1)
    cosine = embeddings[1] @ embeddings[0] / (norms[0] * norms[1])
    # On the reference itself the score is the projection on its direction: its norm.
    np.testing.assert_allclose(scores, [norms[0], cosine], rtol=1e-4)
    assert_unit_maps(maps, 2)
    # The reference's maps are not flat (the cosine's gradient would vanish there).
    assert maps["Saliency"][0].max() > 0.5


def test_unit_maps_resizes_and_clips():
    maps = unit_maps(np.array([[[0.0, 2.0], [-1.0, 0.5]]]), (4, 4))
    assert maps.shape == (1, 4, 4) and maps.min() >= 0.0 and maps.max() <= 1.0
    with pytest.raises(ValueError, match=r"\(batch, height, width\). Received: shape"):
        unit_maps(np.zeros((4, 4)), (4, 4))
