"""`catface benchmark`: the published benchmarks' own protocols, for comparing with papers."""

import pathlib
import sys

from catface_keras.cli.arguments import add_precision_argument, check_input_file, output_directory
from catface_keras.cli.errors import report_os_error
from catface_keras.evaluation.official.run import (
    KNOWN_BENCHMARKS,
    find_benchmarks,
    parse_only,
    run_benchmarks,
)
from catface_keras.evaluation.run import check_output_folder


def register(subparsers):
    parser = subparsers.add_parser(
        "benchmark",
        help="run the official benchmarks found in a folder (LFW ... CALFW .bin files, IJB-B/C, "
        "TinyFace, SCface) and write a table in the paper's columns",
        description="Find in --root whatever official benchmark layouts are there and run "
        "each by its published protocol: insightface's verification .bin files (10-fold "
        "accuracy), IJB-B/C (TAR at FAR 1e-4), TinyFace (AdaFace's rank-1/5/20 against "
        "matches and distractors), SCface (rank-1 per distance). Writes OUT/table.md, "
        "table.csv and results.json (one row per model) and each benchmark's report and "
        "figures under OUT/MODEL/BENCHMARK/. Embeddings are saved under OUT/MODEL/features/ "
        "as they are computed, so an interrupted run resumes where it stopped. The expected "
        "layouts are in the README, 'Comparing with published numbers'.",
    )
    parser.add_argument("--model", required=True, action="append", type=pathlib.Path,
                        metavar="PATH", help="a saved model (.keras); repeat for more rows")
    parser.add_argument("--root", required=True, type=pathlib.Path, metavar="DIR",
                        help="folder holding the benchmark files")
    parser.add_argument("--out", required=True, type=output_directory, metavar="DIR",
                        help="results folder")
    parser.add_argument("--only", default=None, metavar="LIST",
                        help=f"comma-separated benchmarks among {', '.join(KNOWN_BENCHMARKS)} "
                        "(default: every one found)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of an earlier finished run in --out (saved "
                        "embeddings are reused either way)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images per model call (default: 64)")
    add_precision_argument(parser, "float32", "the models compute in (float32 reproduces "
                           "published numbers; bfloat16 moves 10-fold accuracy in the fourth "
                           "decimal)")
    parser.add_argument("--no-flip", dest="flip", action="store_false",
                        help="embed each image alone, without adding its mirror image's "
                        "embedding (the published numbers use the flip test)")
    parser.add_argument("--no-norm-score", dest="norm_score", action="store_false",
                        help="IJB: normalise each image's embedding before template pooling")
    parser.add_argument("--no-detector-score", dest="detector_score", action="store_false",
                        help="IJB: do not weight the images by their face-detector score")
    parser.add_argument("--scface-test-subjects", type=pathlib.Path, default=None,
                        metavar="FILE",
                        help="SCface subjects to test, one number a line, for a model "
                        "fine-tuned on the others (default: all 130)")
    parser.set_defaults(run=run)


def _check_arguments(args):
    for path in args.model:
        check_input_file(path, "--model")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1. Received: --batch-size {args.batch_size}")
    if args.scface_test_subjects is not None:
        check_input_file(args.scface_test_subjects, "--scface-test-subjects")
    args.only = None if args.only is None else parse_only(args.only)
    check_output_folder(args.out, args.overwrite)
    find_benchmarks(args.root, args.only)


def run(args):
    program = "catface benchmark"
    try:
        _check_arguments(args)
        report = run_benchmarks(
            args.model, args.root, args.out, only=args.only, overwrite=args.overwrite,
            batch_size=args.batch_size, flip=args.flip, norm_score=args.norm_score,
            detector_score=args.detector_score, scface_test_subjects=args.scface_test_subjects,
            precision=args.precision,
        )
    except ValueError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        return report_os_error(program, error, args.out,
                               f"earlier results in {args.out} are unchanged")
    print(f"{program}: {', '.join(report['benchmarks'])} for {len(report['models'])} model(s): "
          f"wrote {args.out / 'table.md'}, {args.out / 'table.csv'} and "
          f"{args.out / 'results.json'}")
    return 0
