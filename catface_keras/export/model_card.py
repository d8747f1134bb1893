"""The model card written with every export: `model_card.md` (people) and `model_card.json`.

    card = model_card(model, "runs/demo/stage2.keras", exports, training)
    write_model_card(card, "saved_models/catface/1")

A card says what the model is (architecture, parameters), how to call it (the input and
output contract of every exported file), in what precision, how it was trained and on what
data, what the run measured, which verification thresholds were calibrated for it, the
licence that imported weights carry, and what face recognition must not be used for. What
is not known (a model outside a run folder, no calibration file) reads "unknown", never a
guess.
"""

import json
import pathlib

import yaml

from catface_keras.atomic_files import write_text_atomically
from catface_keras.evaluation.calibration import calibration_path, load_calibration
from catface_keras.export.portable import output_names
from catface_keras.export.serving import SERVING_IMAGE_SIZE, serving_attribute_names

CARD_FORMAT = "catface-model-card"
CARD_VERSION = 1
MARKDOWN_FILE = "model_card.md"
JSON_FILE = "model_card.json"
UNKNOWN = "unknown"

KINDS = {
    "MultiBranchModel": "CATFace stage 1: multi-branch iResNet (face-recognition and "
                        "soft-biometric branches, self-attention)",
    "FusionModel": "CATFace stage 2: stage 1 with the CATF fusion of the two branches",
    "IResNetEmbedder": "iResNet face-recognition network (embedding only), as written by "
                       "`catface import-weights`",
}

# The licences of the checkpoints `catface import-weights` reads (what their publishers state).
IMPORTED_WEIGHTS_LICENCE = (
    "Weights imported from a published checkpoint keep its publisher's terms. insightface "
    "(github.com/deepinsight/insightface, arcface_torch): the code is MIT-licensed, but the "
    "training data and the models trained on it are available for non-commercial research "
    "purposes only. AdaFace (github.com/mk-minchul/AdaFace): the repository's LICENSE file "
    "covers its code; its README gives no separate licence for the checkpoints, which were trained on MS1MV2/MS1MV3, "
    "WebFace4M/12M, CASIA-WebFace or VGGFace2, datasets released for non-commercial research "
    "only: treat the weights as non-commercial research use. Check the terms of the exact "
    "checkpoint before any other use."
)
OWN_WEIGHTS_LICENCE = (
    "Trained with catface-keras; the weights carry the terms of the training data "
    "(see Training)."
)

INTENDED_USE = (
    "Research on face recognition from low-quality images (turbulence, low resolution, "
    "noise): verification (is this the same person?) and identification against a consented "
    "gallery, with a human reviewing every consequential match."
)
ATTRIBUTES_NOTE = (
    " The attribute probabilities ({names}) are auxiliary training signals from CelebA's "
    "annotations, not reliable descriptions of a person."
)
LIMITATIONS = (
    "Demographic differentials: face recognition error rates differ between groups of age, "
    "sex and skin tone (NIST FRVT part 3, NISTIR 8280), and training sets such as CelebA, "
    "MS1M and WebFace are not balanced; measure false match and false non-match rates per "
    "group on data like the deployment's before use, and set thresholds from that.",
    "Thresholds are only valid for the data they were calibrated on; image quality far from "
    "it (a new camera, distance, weather) moves both error rates.",
    "Consent and law: face images and templates are biometric data (GDPR art. 9, BIPA and "
    "similar laws); enrol, store and compare only with a lawful basis and the consent of the "
    "people concerned, and delete templates when that ends.",
    "Not for mass surveillance, for tracking people in public spaces, or for inferring "
    "sensitive traits; not for the sole basis of any decision about a person (arrest, "
    "access, employment, benefits): a match is evidence for a trained human reviewer.",
    "A model trained on the built-in synthetic faces recognises only those cartoons; its "
    "metrics say nothing about real faces.",
)


def architecture(model):
    """Backbone, image size, embedding dimension and parameter counts of `model`."""
    stage1 = getattr(model, "stage1", model)
    spec = getattr(stage1, "backbone_spec", None)
    return {
        "class": type(model).__name__,
        "kind": KINDS.get(type(model).__name__, UNKNOWN),
        "backbone": _plain(spec) if spec is not None else UNKNOWN,
        "fusion": getattr(model, "fusion", None),
        "image_size": int(model.image_size),
        "embedding_dim": int(model.embedding_dim),
        "attributes": list(serving_attribute_names(model)),
        "parameters": int(model.count_params()),
        "trainable_parameters": int(
            sum(int(_size(weight)) for weight in model.trainable_weights)
        ),
        "dtype_policy": model.dtype_policy.name,
    }


def input_contract(model):
    """The contract every exported file follows (`serving.py`, `portable.py`)."""
    return {
        "faces": f"aligned RGB face crops, {SERVING_IMAGE_SIZE}x{SERVING_IMAGE_SIZE} "
                 "(insightface's 5-point alignment, as `catface align` writes them), "
                 "values in [0, 255]",
        "savedmodel": "serving_default: `images` uint8 (batch, 112, 112, 3); serving_bytes: "
                      "`image_bytes` string (batch,) of encoded JPEG/PNG",
        "onnx_litert": "`images` float32 (batch, 112, 112, 3), any batch size (cast uint8 "
                       "faces to float32)",
        "resize": f"faces are resized in the graph to the model's {model.image_size}x"
                  f"{model.image_size} (antialiased bilinear)",
        "outputs": {
            name: _output_description(name) for name in output_names(model)
        },
        "compare": "cosine similarity of two `embedding`s (their dot product); accept a pair "
                   "when it is >= a calibrated threshold",
    }


def training_record(model_path, config_files, metrics_file):
    """What the run folder around `model_path` says about its training, or "unknown"s.

    Args:
        model_path: the exported `.keras` file.
        config_files: names of the run's configuration files to look for, most specific
            first (stage 2's own before the shared one).
        metrics_file: name of the run's metrics file (`{"stage1": ..., "stage2": ...}`); the
            entry named like the model file's stem is taken when there is one.

    Returns:
        dict: `run_directory`, `config_file`, `config` (dict), `data` (its `data` section),
        `metrics`; each "unknown" when the file is missing or unreadable.
    """
    folder = pathlib.Path(model_path).resolve().parent
    record = {"run_directory": UNKNOWN, "config_file": UNKNOWN, "config": UNKNOWN,
              "data": UNKNOWN, "metrics": UNKNOWN}
    for name in config_files:
        config = _read(folder / name, yaml.safe_load)
        if isinstance(config, dict):
            record.update(run_directory=str(folder), config_file=name, config=config,
                          data=config.get("data", UNKNOWN))
            break
    metrics = _read(folder / metrics_file, json.loads)
    if isinstance(metrics, dict):
        record["run_directory"] = str(folder)
        record["metrics"] = metrics.get(pathlib.Path(model_path).stem, metrics)
    return record


def calibration_record(model_path):
    """The thresholds `catface evaluate` stored beside `model_path`, or "unknown"."""
    try:
        if model_path is None:
            raise ValueError("no model file")
        content = load_calibration(model_path)
    except ValueError:
        return {"file": UNKNOWN, "source": UNKNOWN, "thresholds": UNKNOWN}
    return {
        "file": str(calibration_path(model_path)),
        "source": content.get("source", UNKNOWN),
        "thresholds": content["thresholds"],
    }


def model_card(model, model_path, exports, training=None):
    """The card as a JSON-ready dict.

    Args:
        model: the exported model.
        model_path: its `.keras` file (the calibration file sits beside it), or None.
        exports: format name -> dict of facts about its file (`file`, `precision`, checks).
        training: `training_record(...)`, or None when there is no run folder to read.
    """
    training = training or {"run_directory": UNKNOWN, "config_file": UNKNOWN,
                            "config": UNKNOWN, "data": UNKNOWN, "metrics": UNKNOWN}
    imported = _imported_weights(model, training)
    names = serving_attribute_names(model)
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "model_file": UNKNOWN if model_path is None else str(model_path),
        "architecture": architecture(model),
        "input_contract": input_contract(model),
        "exports": exports,
        "training": {key: value for key, value in training.items() if key != "metrics"},
        "metrics": training["metrics"],
        "calibration": calibration_record(model_path),
        "weights": {
            "imported": imported,
            "licence": {
                True: IMPORTED_WEIGHTS_LICENCE,
                False: OWN_WEIGHTS_LICENCE,
                UNKNOWN: f"unknown. If the weights came from a published checkpoint: "
                         f"{IMPORTED_WEIGHTS_LICENCE}",
            }[imported["imported"]],
        },
        "intended_use": INTENDED_USE + (
            ATTRIBUTES_NOTE.format(names=", ".join(names)) if names else ""
        ),
        "limitations_and_bias": list(LIMITATIONS),
    }


def model_card_markdown(card):
    """`card` as Markdown."""
    arch, contract = card["architecture"], card["input_contract"]
    lines = [
        f"# Model card: {pathlib.Path(card['model_file']).name}",
        "",
        "## Architecture",
        "",
        f"- Kind: {arch['kind']} (`{arch['class']}`)",
        f"- Backbone: {_inline(arch['backbone'])}"
        + (f"; fusion: {arch['fusion']}" if arch["fusion"] else ""),
        f"- Input image size: {arch['image_size']}x{arch['image_size']}; "
        f"embedding dimension: {arch['embedding_dim']}",
        f"- Parameters: {arch['parameters']:,} ({arch['trainable_parameters']:,} trainable)",
        f"- Attributes: {', '.join(arch['attributes']) or 'none (embedding only)'}",
        "",
        "## Input and outputs",
        "",
        f"- Faces: {contract['faces']}",
        f"- SavedModel: {contract['savedmodel']}",
        f"- ONNX and LiteRT: {contract['onnx_litert']}",
        f"- Resize: {contract['resize']}",
        *[f"- Output `{name}`: {text}" for name, text in contract["outputs"].items()],
        f"- Comparing faces: {contract['compare']}",
        "",
        "## Exported files and precision",
        "",
        f"Model dtype policy: {arch['dtype_policy']}.",
        "",
        "| format | file | precision | check against the Keras model |",
        "|---|---|---|---|",
        *[
            f"| {name} | {facts.get('file', '')} | {facts.get('precision', '')} | "
            f"{facts.get('check', '')} |"
            for name, facts in card["exports"].items()
        ],
        "",
        "## Training",
        "",
    ]
    training = card["training"]
    if training["config"] == UNKNOWN:
        lines += ["Unknown: the model file is not in a run folder with a configuration file."]
    else:
        lines += [
            f"Run folder `{training['run_directory']}`, configuration `{training['config_file']}`"
            f"; data: {_data_summary(training['data'])} (the `data` section below).",
            "",
            "```yaml",
            yaml.safe_dump(training["config"], sort_keys=False).rstrip(),
            "```",
        ]
    lines += ["", "## Metrics", ""]
    metrics = _flatten(card["metrics"]) if card["metrics"] != UNKNOWN else {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {name} | {_number(value)} |" for name, value in metrics.items()]
    else:
        lines += ["Unknown: no metrics file of the run beside the model."]
    calibration = card["calibration"]
    lines += ["", "## Verification thresholds", ""]
    if calibration["thresholds"] == UNKNOWN:
        lines += [
            f"Unknown: no calibration file ({calibration_path(card['model_file']).name} beside "
            "the model); "
            "`catface evaluate` writes one. Do not use a threshold that was not calibrated on "
            "data like the deployment's."
        ]
    else:
        lines += [
            f"From `{calibration['file']}` ({calibration['source']}); accept a pair when its "
            "cosine is >= the threshold.",
            "",
            "| false accept rate | threshold |",
            "|---|---|",
            *[f"| {far} | {_number(value)} |" for far, value in calibration["thresholds"].items()],
        ]
    weights = card["weights"]
    lines += [
        "", "## Weights and licence", "",
        f"Imported weights: {weights['imported']['detail']}.",
        "",
        f"Licence: {weights['licence']}",
        "", "## Intended use", "", card["intended_use"],
        "", "## Limitations, bias and misuse", "",
        *[f"- {item}" for item in card["limitations_and_bias"]],
        "",
    ]
    return "\n".join(lines)


def write_model_card(card, directory):
    """Writes `model_card.md` and `model_card.json` into `directory`, each atomically."""
    directory = pathlib.Path(directory)
    write_text_atomically(json.dumps(card, indent=2, default=str) + "\n", directory / JSON_FILE)
    write_text_atomically(model_card_markdown(card), directory / MARKDOWN_FILE)
    return directory / MARKDOWN_FILE, directory / JSON_FILE


def _imported_weights(model, training):
    if type(model).__name__ == "IResNetEmbedder":
        return {"imported": True, "detail": "yes: the model is an imported backbone (`catface "
                "import-weights`)"}
    config = training["config"]
    init = config.get("model", {}).get("init") if isinstance(config, dict) else None
    if init:
        return {"imported": True, "detail": f"yes: stage 1 started from `{init}` (model.init)"}
    if config == UNKNOWN:
        return {"imported": UNKNOWN, "detail": "unknown (no run configuration)"}
    return {"imported": False, "detail": "no: trained from scratch (model.init not set)"}


def _data_summary(data):
    """`synthetic`, or `image_folder at /data/faces`, from a config's `data` section."""
    if not isinstance(data, dict):
        return _inline(data)
    source = data.get("source", UNKNOWN)
    return f"{source} at {data['path']}" if data.get("path") else str(source)


def _output_description(name):
    if name == "embedding":
        return "float32 (batch, D), L2-normalised"
    if name == "embedding_norm":
        return "float32 (batch,), the norm before normalisation (AdaFace's quality proxy)"
    return "float32 (batch,), attribute probability (sigmoid)"


def _read(path, parse):
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None


def _size(weight):
    size = 1
    for dimension in weight.shape:
        size *= int(dimension)
    return size


def _plain(value):
    """JSON-ready copy (tuples to lists)."""
    return json.loads(json.dumps(value, default=str))


def _inline(value):
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _flatten(value, prefix=""):
    """Scalar leaves of nested dicts as `{"a.b": 0.9}`."""
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    if isinstance(value, (int, float, str, bool)) or value is None:
        return {prefix.rstrip("."): value}
    return {}


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)
