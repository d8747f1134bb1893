"""`catface import-weights`: a published PyTorch iResNet checkpoint as a Keras model.

    catface import-weights --from adaface --arch ir_101 \\
        --checkpoint adaface_ir101_webface12m.ckpt --out backbone.keras
    catface import-weights --from insightface --arch ir_50 --checkpoint backbone.pth \\
        --out backbone.keras

Writes an `IResNetEmbedder` (RGB faces in [0, 255] -> `{"embedding"}`) that
`model.init` / `catface train --init-backbone` start stage 1 from. The
checkpoint is read without PyTorch and without running its pickled code.
"""

import argparse
import pathlib
import sys
import time

from catface_keras.cli.arguments import check_output_file
from catface_keras.weights.names import ARCHS, SOURCES


def register(subparsers):
    parser = subparsers.add_parser(
        "import-weights",
        help="turn a published AdaFace / insightface iResNet checkpoint into a .keras model",
        description="Convert a PyTorch iResNet checkpoint (AdaFace Lightning .ckpt, insightface "
        "arcface_torch backbone.pth) into the package's iResNet with its embedding head, a "
        ".keras file that takes RGB faces and that stage-1 training can start from "
        "(model.init). The checkpoint is read without PyTorch; a pickle that calls anything "
        "but a tensor rebuild is refused.",
    )

    parser.add_argument("--from", dest="source", required=True, choices=SOURCES,
                        help="who published the checkpoint (its layout and colour order)")
    parser.add_argument("--arch", required=True, choices=ARCHS,
                        help="network depth (ir_100 and ir_101 are the same network)")
    parser.add_argument("--checkpoint", required=True, type=pathlib.Path, metavar="FILE",
                        help="the PyTorch checkpoint (.ckpt, .pth, .pt)")
    parser.add_argument("--out", required=True, type=pathlib.Path, metavar="FILE.keras",
                        help="the Keras model to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(run=run)


def run(args):
    program = "catface import-weights"
    if args.out.suffix != ".keras":
        print(f"{program}: error: --out must end in .keras. Received: {args.out}", file=sys.stderr)
        return 2
    try:
        check_output_file(args.out)
    except argparse.ArgumentTypeError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.overwrite:
        print(f"{program}: error: {args.out} exists; pass --overwrite to replace it",
              file=sys.stderr)
        return 2
    if args.checkpoint.is_dir():
        print(f"{program}: error: checkpoint {args.checkpoint} is a directory; give the "
              "checkpoint file (.ckpt, .pth, .pt)", file=sys.stderr)
        return 2
    if not args.checkpoint.is_file():
        print(f"{program}: error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    started = time.monotonic()
    # TensorFlow loads here, after the arguments are checked.
    from catface_keras.weights.iresnet_import import import_weights

    try:
        info = import_weights(args.checkpoint, args.source, args.arch, args.out,
                              overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print(
        f"{program}: wrote {args.out}: {info['source']} {info['arch']}, "
        f"{info['image_size']}x{info['image_size']} faces -> {info['embedding_dim']}-d embedding, "
        f"{info['tensors']} tensors imported."
    )
    if info["channel_order"] == "bgr":
        print("The checkpoint takes BGR; its first convolution was reordered, so the Keras "
              "model takes RGB like every model here.")
    if info["ignored"]:
        shown = ", ".join(info["ignored"][:4]) + (" ..." if len(info["ignored"]) > 4 else "")
        print(f"Left out {len(info['ignored'])} training-head entries: {shown}")
    print(f"Wall time: {time.monotonic() - started:.1f} s")
    return 0
