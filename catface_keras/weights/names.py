"""The sources and architectures `catface import-weights` knows (TF-free, for the CLI)."""

SOURCES = ("adaface", "insightface")
ARCHS = ("ir_18", "ir_34", "ir_50", "ir_100", "ir_101")
# The pixel channel order each source's published models take.
SOURCE_CHANNEL_ORDER = {"adaface": "bgr", "insightface": "rgb"}
