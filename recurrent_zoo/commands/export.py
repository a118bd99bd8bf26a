"""`recurrent-zoo export`: a `.keras` model to a versioned SavedModel."""

from __future__ import annotations

import argparse
import sys

HELP = (
    "export a .keras classifier, language model or forecaster as a SavedModel "
    "for TF Serving"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the trained model, a .keras file")
    parser.add_argument(
        "out_dir",
        help="the model base path; the export goes to OUT_DIR/<version>/",
    )
    parser.add_argument(
        "--version",
        type=int,
        default=None,
        help="version number (default: one more than the highest in OUT_DIR, or 1)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace that version if it exists (otherwise an error)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=5,
        help="best classes in the top_k_* outputs of multi-class models (0: none)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.model).is_file():
        print(f"export: no model file at {args.model}", file=sys.stderr)
        return 2

    from recurrent_zoo.export import export_saved_model
    from recurrent_zoo.models.loading import ModelFileError, load_model_file

    try:
        model = load_model_file(args.model)
    except ModelFileError as err:
        print(f"export: {err}", file=sys.stderr)
        return 2
    try:
        path = export_saved_model(
            model,
            args.out_dir,
            version=args.version,
            overwrite=args.overwrite,
            top_k=args.top_k,
        )
    except (FileExistsError, TypeError, ValueError) as err:
        print(f"export: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
