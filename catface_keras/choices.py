"""The allowed values of configuration keys, in one module free of TensorFlow.

`catface_keras.config` checks a YAML file against these before anything loads
TensorFlow; the modules that implement each choice import their list from here,
so the two cannot drift apart.
"""

# Presets of `catface_keras.backbones.iresnet` (a test keeps the two equal).
BACKBONES = ("ir_tiny", "ir_18", "ir_34", "ir_50", "ir_100", "ir_101")
# The iResNet halves the image four times: the side must be a multiple of 16 (16 is the
# smallest, a 1x1 final feature map).
IMAGE_SIZE_MULTIPLE = 16
# Index of the first iResNet stage each branch owns (the backbone has four stages).
BRANCH_STAGES = (0, 1, 2, 3)

FUSION_KINDS = ("catf", "concat", "add", "se", "cross_attention", "ffm")
# What stage 1 distils: "cosine"/"l2" the branch self-attention (A and V, the
# paper's), "feature_cosine"/"feature_l2" the output map of one backbone stage,
# "askd" the pre-sigmoid CBAM maps of every residual block (A-SKD).
DISTILLATION_KINDS = ("cosine", "l2", "feature_cosine", "feature_l2", "askd")
DISTILLATION_STAGES = (1, 2, 3, 4)
# Stage-1 training inputs: HQ/LQ pairs, or HQ only (an A-SKD teacher).
TRAIN_ON = ("paired", "hq")
# The LQ images stage 1 trains on: the batch's degraded copies or A-SKD's low-resolution ones.
LQ_IMAGES = ("degraded", "askd_low_resolution")
# Attention in every residual block (None, or CBAM for A-SKD's CBAM-iResNet).
BLOCK_ATTENTIONS = (None, "cbam")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker")
# Keras global dtype policies for `train.mixed_precision`: "auto" picks one from the
# hardware (catface_keras.precision.choose_dtype_policy); None leaves the global policy alone.
DTYPE_POLICIES = (None, "auto", "float32", "mixed_float16", "mixed_bfloat16")
# What `catface evaluate`, `embed` and `export` compute in (`--precision`): "auto" picks
# bfloat16 on a CPU with native bf16, float16 on a GPU, float32 elsewhere
# (catface_keras.models.inference_precision).
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Face sources (`data.source`) and the attributes each can label: `catface_keras.data.registry`.

# TAR at FAR=1e-2 (the trainer's held-out metric) needs at least 100 impostor pairs, and
# the held-out pairs hold as many impostor pairs as genuine ones.
MIN_VERIFICATION_PAIRS = 100

# Output images `catface degrade` can write (OpenCV encoders).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# `catface evaluate` and the trainer's held-out evaluation (`catface_keras.evaluation`):
# protocols, conditions (clean; degraded: both sides degraded at the model's input size;
# mixed: one side clean, the other degraded) and threshold searches of the 10-fold accuracy.
EVALUATION_PROTOCOLS = ("verification", "templates", "identification", "attributes")
EVALUATION_CONDITIONS = ("clean", "degraded", "mixed")
THRESHOLD_SEARCHES = ("insightface", "exact")

# `catface export --format`; the optional packages the ONNX and LiteRT formats run with
# (installed by the setup.py extra of the same name: EXTRA_INSTALL.format(extra=...)).
EXPORT_FORMATS = ("savedmodel", "onnx", "litert")
EXPORT_FORMAT_PACKAGES = {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "litert": ("ai_edge_litert",)}
EXTRA_INSTALL = 'pip install "catface-keras[{extra}]"'
# `catface export --litert-quantize`: dynamic-range (int8 weights, float activations).
LITERT_QUANTIZATIONS = ("dynamic",)
