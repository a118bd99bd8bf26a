"""`recurrent-zoo demo`: the layers on a slice of real IMDB reviews."""

from __future__ import annotations

import argparse
import json

from recurrent_zoo.commands.common import add_data_argument

HELP = "train the layers on a slice of real IMDB reviews (about a minute)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_argument(parser)
    parser.add_argument("--train-per-class", type=int, default=2500)
    parser.add_argument("--test-per-class", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--json", action="store_true", help="also print the metrics as JSON"
    )


def run(args: argparse.Namespace) -> int:
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
