"""The experiment sizes of a stage-1 run in a few seconds, shared by the training tests."""

TINY = {
    "data": {
        "num_train_identities": 8,
        "num_test_identities": 12,
        "images_per_identity": 4,
        "test_images_per_identity": 6,
        "image_size": 32,
    },
    "model": {"backbone": "ir_tiny", "embedding_dim": 16, "dropout": 0.1},
    "train": {"epochs": 2, "batch_size": 8, "distribution": "none"},
    "evaluation": {"num_pairs": 150, "batch_size": 32},
}
