"""The `recurrent-zoo` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _demo(args: argparse.Namespace) -> int:
    from recurrent_zoo.demo import run_demo

    result = run_demo(
        args.data,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        epochs=args.epochs,
        verbose=0 if args.quiet else 1,
    )
    print(
        f"demo: trained on {result['train_examples']} IMDB reviews for "
        f"{result['epochs']} epoch(s); test accuracy on "
        f"{result['test_examples']} reviews: {result['test_accuracy']:.3f} "
        f"({result['seconds']:.0f} s)"
    )
    if args.json:
        print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recurrent-zoo", description="Recurrent layers and text classifiers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train the layers on a slice of real IMDB reviews (about a minute)",
    )
    demo.add_argument(
        "--data",
        default=os.environ.get("RECURRENT_ZOO_DATA", "../shared/data"),
        help="aclImdb.tar.gz, the folder holding it, or an extracted aclImdb folder",
    )
    demo.add_argument("--train-per-class", type=int, default=2500)
    demo.add_argument("--test-per-class", type=int, default=1000)
    demo.add_argument("--epochs", type=int, default=1)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument(
        "--json", action="store_true", help="also print the metrics as JSON"
    )
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
