"""`catface export`: a trained `.keras` model as a versioned export for serving.

    catface export --model runs/demo/stage1.keras --out saved_models/catface
    catface export --model runs/demo/stage2.keras --out saved_models/catface \\
        --format savedmodel,onnx,litert --litert-quantize dynamic
    tensorflow_model_server --rest_api_port=8501 --model_name=catface \\
        --model_base_path=$PWD/saved_models/catface

Writes `saved_models/catface/N/` (N: 1 + the highest existing version, or 1) with, per
`--format`: `savedmodel` (the default), the SavedModel with the `serving_default` (uint8
faces) and `serving_bytes` (encoded JPEG/PNG) signatures and the warm-up file
`assets.extra/tf_serving_warmup_requests`; `onnx`, `model.onnx`; `litert`, `model.tflite`
(and `model_dynamic.tflite` with `--litert-quantize dynamic`); and always the model card,
`model_card.md` and `model_card.json`. See `catface_keras.export`.
"""

import importlib.util
import pathlib
import sys

from catface_keras.choices import (
    EXPORT_FORMAT_PACKAGES,
    EXPORT_FORMATS,
    EXTRA_INSTALL,
    LITERT_QUANTIZATIONS,
)
from catface_keras.cli.arguments import add_precision_argument, check_input_file
from catface_keras.cli.errors import report_os_error


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained model for serving: SavedModel, ONNX, LiteRT, with a model card",
        description="Export a .keras model as SAVED_MODELS/NAME/VERSION, the layout "
        "tensorflow_model_server loads (--model_base_path=SAVED_MODELS/NAME) and Triton reads "
        "(VERSION/model.onnx). savedmodel: two signatures (serving_default: uint8 [batch, 112, "
        "112, 3] faces; serving_bytes: encoded JPEG/PNG strings) and a warm-up file; onnx: "
        "model.onnx; litert: model.tflite. ONNX and LiteRT take float32 [batch, 112, 112, 3] "
        "faces in [0, 255]; every format returns the L2-normalised embedding, its norm and "
        "the attribute probabilities. A model card (model_card.md, model_card.json) is written "
        "with every export.",
    )
    parser.add_argument("--model", required=True, type=pathlib.Path, metavar="PATH.keras",
                        help="the trained model (e.g. runs/demo/stage1.keras), or an imported "
                        "backbone (catface import-weights: embedding and norm only)")
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="saved_models/NAME",
                        help="the model's base directory; its name is the served model name")
    parser.add_argument("--format", action="append", default=None, metavar="FORMAT[,FORMAT]",
                        help=f"what to write, one or more of {', '.join(EXPORT_FORMATS)}, "
                        "comma-separated or repeated (default: savedmodel)")
    parser.add_argument("--litert-quantize", choices=LITERT_QUANTIZATIONS, default=None,
                        help="also write model_dynamic.tflite, dynamic-range quantised (int8 "
                        "weights); needs --format litert")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: 1 + the highest existing one, or 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing version directory")
    parser.add_argument("--max-image-pixels", type=int, default=None, metavar="N",
                        help="serving_bytes refuses images whose header announces more pixels "
                        "(default: 40000000)")
    add_precision_argument(parser, "float32", "the exported SavedModel computes in (ONNX and "
                           "LiteRT files are float32; their runtimes pick their own kernels)")
    parser.set_defaults(run=run)


def parse_formats(values):
    """`--format` values (repeated, comma-separated) -> names in `EXPORT_FORMATS` order."""
    names = [name.strip() for value in values or ["savedmodel"] for name in value.split(",")]
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown or not names:
        raise ValueError(
            f"--format must name one or more of {', '.join(EXPORT_FORMATS)}. "
            f"Received: --format={','.join(values)}"
        )
    return tuple(name for name in EXPORT_FORMATS if name in names)


def check_format_packages(formats):
    """Refuses, before TensorFlow loads, a format whose optional packages are missing."""
    for name in formats:
        missing = [
            package for package in EXPORT_FORMAT_PACKAGES.get(name, ())
            if importlib.util.find_spec(package) is None
        ]
        if missing:
            raise ImportError(
                f"--format {name} needs {', '.join(missing)}, which is not installed. "
                f"Install it with: {EXTRA_INSTALL.format(extra=name)}"
            )


def run(args):
    try:
        check_input_file(args.model, "model")
        formats = parse_formats(args.format)
        if args.litert_quantize is not None and "litert" not in formats:
            raise ValueError(
                "--litert-quantize needs --format litert. "
                f"Received: --format={','.join(formats)}"
            )
        check_format_packages(formats)
        if args.version is not None and args.version < 0:
            raise ValueError(f"--version must be >= 0, got {args.version}")
        if args.max_image_pixels is not None and args.max_image_pixels < 1:
            raise ValueError(f"--max-image-pixels must be >= 1, got {args.max_image_pixels}")
        for candidate in (args.out, *args.out.parents):
            if candidate.exists():
                if not candidate.is_dir():
                    raise ValueError(
                        f"--out must be a directory (the model's base path), but {candidate} "
                        f"is a file. Received: --out={args.out}"
                    )
                break
        if args.version is not None and (args.out / str(args.version)).exists():
            if not args.overwrite:
                raise ValueError(
                    f"{args.out / str(args.version)} exists; pass --overwrite to replace it"
                )
        # TensorFlow is imported here, not at module level, to keep `catface --help` fast.
        from catface_keras.export.formats import check_formats, export_formats
        from catface_keras.export.inference_graph import serving_model
        from catface_keras.export.model_card import training_record
        from catface_keras.models.loading import load_model
        from catface_keras.run_directory import CONFIG_FILE, METRICS_FILE, STAGE2_CONFIG_FILE

        from catface_keras.models.fusion import FusionModel

        check_formats(formats, args.litert_quantize)
        model = load_model(args.model, allow_embedder=True)
        # Batch norms folded, at --precision: see catface_keras.export.inference_graph.
        served = serving_model(model, args.precision)
        if served.precision != "float32" and {"onnx", "litert"} & set(formats):
            raise ValueError(
                f"--format {','.join(formats)} at {served.precision}: ONNX and LiteRT files are "
                "exported in float32 (ONNX Runtime and LiteRT choose their own kernels); export "
                "them with --precision float32, and the SavedModel alone at another precision. "
                f"Received: --precision {args.precision}"
            )
        config_files = (
            (STAGE2_CONFIG_FILE, CONFIG_FILE) if isinstance(model, FusionModel) else (CONFIG_FILE,)
        )
        path, card = export_formats(
            served, args.out, formats, args.version, overwrite=args.overwrite,
            litert_quantize=args.litert_quantize, model_path=args.model,
            training=training_record(args.model, config_files, METRICS_FILE),
            max_image_pixels=args.max_image_pixels,
        )
    except (ValueError, FileExistsError, ImportError) as error:
        print(f"catface export: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        return report_os_error(
            "catface export", error, args.out,
            f"no version was written and the existing versions in {args.out} are unchanged",
        )
    signatures = " (signatures serving_default, serving_bytes)" if "savedmodel" in formats else ""
    agreement = served.cosine_to_float32
    print(f"catface export: wrote {path}{signatures}, computing in {served.precision}, batch "
          f"norms folded; embedding cosine to the float32 model on {agreement['images']} "
          f"procedural faces: min {agreement['cosine_min']:.6f}")
    for name, facts in card["exports"].items():
        if name != "savedmodel":
            print(f"  {facts['file']}: {facts['precision']}; {facts['check']}")
    print("  model_card.md, model_card.json")
    return 0
