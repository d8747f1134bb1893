"""`catface export`: a trained `.keras` model as a versioned SavedModel for TF Serving.

    catface export --model runs/demo/stage1.keras --out saved_models/catface
    tensorflow_model_server --rest_api_port=8501 --model_name=catface \\
        --model_base_path=$PWD/saved_models/catface

Writes `saved_models/catface/N/` (N: 1 + the highest existing version, or 1) with the
`serving_default` (uint8 faces) and `serving_bytes` (encoded JPEG/PNG) signatures and the
warm-up file `assets.extra/tf_serving_warmup_requests`; see `catface_keras.export`.
"""

import pathlib
import sys

from catface_keras.cli.arguments import add_precision_argument, check_input_file
from catface_keras.cli.errors import report_os_error


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained model as a SavedModel for TF Serving",
        description="Export a .keras model as SAVED_MODELS/NAME/VERSION, the layout "
        "tensorflow_model_server loads (--model_base_path=SAVED_MODELS/NAME), with two "
        "signatures (serving_default: uint8 [batch, 112, 112, 3] faces; serving_bytes: encoded "
        "JPEG/PNG strings) and a warm-up file.",
    )
    parser.add_argument("--model", required=True, type=pathlib.Path, metavar="PATH.keras",
                        help="the trained model (e.g. runs/demo/stage1.keras)")
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="saved_models/NAME",
                        help="the model's base directory; its name is the served model name")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: 1 + the highest existing one, or 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing version directory")
    parser.add_argument("--max-image-pixels", type=int, default=None, metavar="N",
                        help="serving_bytes refuses images whose header announces more pixels "
                        "(default: 40000000)")
    add_precision_argument(parser, "float32", "the exported signatures compute in")
    parser.set_defaults(run=run)


def run(args):
    try:
        check_input_file(args.model, "model")
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
        from catface_keras.export import export_saved_model
        from catface_keras.export.warmup import serving_apis

        serving_apis()
        from catface_keras.export.inference_graph import serving_model
        from catface_keras.models.loading import load_model

        # Batch norms folded, at --precision: see catface_keras.export.inference_graph.
        model = serving_model(load_model(args.model, allow_embedder=True), args.precision)
        path = export_saved_model(
            model, args.out, args.version, overwrite=args.overwrite,
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
    print(f"catface export: wrote {path} (signatures serving_default, serving_bytes), "
          f"computing in {model.precision}, batch norms folded; embedding cosine to the float32 "
          f"model on {model.cosine_to_float32['images']} procedural faces: min "
          f"{model.cosine_to_float32['cosine_min']:.6f}")
    return 0
