"""Published face-recognition weights: import (`catface import-weights`) and `model.init`.

    from catface_keras.weights.iresnet_import import import_weights
    info = import_weights("backbone.pth", "insightface", "ir_50", "backbone.keras")

- `torch_checkpoint`: reads PyTorch checkpoints without torch and without
  running pickled code;
- `iresnet_import`: maps AdaFace's and insightface's iResNet layouts onto
  `IResNetEmbedder`;
- `pretrained`: starts a stage-1 `MultiBranchModel` from such a model;
- `names`: the sources and architectures (no TensorFlow import).
"""
