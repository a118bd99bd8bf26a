"""`recurrent-zoo evaluate`: score a saved model on a corpus split.

A classifier: accuracy, macro-F1 and the confusion matrix. A character
language model: bits per character. A forecaster: MAE, RMSE and MASE over
every origin of the series' test stretch.
"""

from __future__ import annotations

import argparse
import json
import sys

from recurrent_zoo.catalog import CORPORA
from recurrent_zoo.commands.common import (
    add_data_argument,
    add_remove_arguments,
    removed_parts,
)

HELP = (
    "score a .keras model on a corpus split: a classifier's accuracy, macro-F1 "
    "and confusion; a language model's bits per character; a forecaster's "
    "MAE, RMSE and MASE"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", help="a .keras file written by `train`, or a run folder"
    )
    add_data_argument(parser)
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        help="default: the corpus whose classes the model predicts; for a "
        "language model, text (.txt files, or IMDB's reviews); for a "
        "forecaster, series",
    )
    parser.add_argument(
        "--split",
        default="test",
        help="test (default), train, or another split a folder or table has; "
        "plain text also has all (every document)",
    )
    parser.add_argument(
        "--max-per-class",
        type=int,
        help="texts per class; a language model: documents (default: all)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    add_remove_arguments(parser)
    parser.add_argument(
        "--json", action="store_true", help="print the full report as JSON only"
    )


def format_confusion(matrix: list[list[int]], class_names: list[str]) -> str:
    """The matrix as text: one row per true class, columns by class index.

    Args:
        matrix: `matrix[i][j]` counts class `i` predicted as `j`.
        class_names: the row labels.

    Returns:
        Lines headed "true \\ predicted", columns numbered like the rows.
    """
    n = len(class_names)
    cell = max(3, *(len(str(v)) for row in matrix for v in row)) + 1
    label = max(len(name) for name in class_names) + len(str(n - 1)) + 1
    lines = [" " * label + "".join(f"{j:>{cell}}" for j in range(n))]
    for i, (name, row) in enumerate(zip(class_names, matrix, strict=True)):
        head = f"{i:>{len(str(n - 1))}} {name}".ljust(label)
        lines.append(head + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from recurrent_zoo.training import evaluate

    try:
        report = evaluate(
            args.model,
            args.data,
            corpus=args.corpus,
            split=args.split,
            max_per_class=args.max_per_class,
            remove=removed_parts(args),
            batch_size=args.batch_size,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"recurrent-zoo evaluate: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
        return 0
    if "mase" in report:
        print(_forecast_line(args.model, report))
        return 0
    if "bits_per_character" in report:
        print(
            f"evaluate {args.model} on {report['corpus']} {report['split']} "
            f"({report['documents']} documents, {report['characters']:,} "
            f"characters): {report['bits_per_character']:.4f} bits per character"
        )
        return 0
    print(
        f"evaluate {args.model} on {report['corpus']} {report['split']} "
        f"({report['examples']} texts): accuracy {report['accuracy']:.3f}, "
        f"macro-F1 {report['macro_f1']:.3f}"
    )
    print("confusion matrix (rows: true class, columns: predicted class):")
    print(format_confusion(report["confusion_matrix"], report["class_names"]))
    return 0


def _forecast_line(model: str, report: dict) -> str:
    """A forecaster's scores in one line."""
    mase = "undefined" if report["mase"] is None else f"{report['mase']:.4f}"
    return (
        f"evaluate {model} on {report['series']} {report['split']} "
        f"({report['forecasts']} forecasts of {report['horizon']} steps, "
        f"{report['count']} values scored): MAE {report['mae']:.4g}, "
        f"RMSE {report['rmse']:.4g}, MASE {mase}"
    )
