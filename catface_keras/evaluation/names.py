"""The names an evaluation is configured by (no TensorFlow: the CLI checks them first).

Conditions: `clean` (both sides of a pair as given), `degraded` (both sides
degraded at the model's input size) and `mixed` (first side clean, second
degraded: HQ-LQ pairs; for identification a clean gallery and degraded probes).
"""

PROTOCOLS = ("verification", "templates", "identification", "attributes")
CONDITIONS = ("clean", "degraded", "mixed")
# The images each condition takes its pairs' (first, second) sides from;
# for identification (gallery, probes).
CONDITION_SIDES = {
    "clean": ("clean", "clean"),
    "degraded": ("degraded", "degraded"),
    "mixed": ("clean", "degraded"),
}
# Threshold searches of the 10-fold accuracy (`verification.kfold_accuracy`).
THRESHOLD_SEARCHES = ("insightface", "exact")
