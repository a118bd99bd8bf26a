"""`recurrent-zoo tune`: search hidden sizes (and more) with keras-tuner.

Running the same command again resumes the search. With keras-tuner's
`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`
set, the same command runs as the chief (it holds the oracle and writes
the results) or as a worker (it runs trials the chief hands out).
"""

from __future__ import annotations

import argparse
import sys

from recurrent_zoo.catalog import TUNERS, task_names
from recurrent_zoo.cells import cell_names
from recurrent_zoo.commands.common import (
    add_corpus_arguments,
    add_remove_arguments,
    comma_separated,
    removed_parts,
)

HELP = "search hidden sizes and other hyperparameters (resumable, distributable)"


class _Deprecated(argparse.Action):
    """An old spelling of --unit-choices: still accepted, with a warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"recurrent-zoo tune: {option_string} is deprecated (in `train` it "
            "sets the layers' sizes); use --unit-choices",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Rerunning the same command resumes the search. Distributed: run the "
        "same command everywhere with KERASTUNER_TUNER_ID=chief on one process "
        "and a unique id on each worker, KERASTUNER_ORACLE_IP / "
        "KERASTUNER_ORACLE_PORT the chief's address."
    )
    parser.add_argument(
        "task",
        choices=task_names("classification"),
        help="the prebuilt classifier to tune",
    )
    add_corpus_arguments(parser)
    parser.add_argument(
        "--directory",
        default="tuning",
        help="where the search is kept; rerun with the same one to resume "
        "(default: ./tuning)",
    )
    parser.add_argument(
        "--project-name", help="the search's folder in --directory (<task>_<tuner>)"
    )
    parser.add_argument(
        "--tuner",
        choices=TUNERS,
        default="hyperband",
        help="search algorithm (default: hyperband)",
    )
    parser.add_argument(
        "--max-trials",
        type=int,
        default=20,
        help="the most trials; rerun with more to extend a search (default: 20)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="epochs per trial (Hyperband: the most a trial gets)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--train-per-class",
        type=int,
        help="use at most this many training texts per class (default: all)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.2,
        help="share of the training texts held out to score trials",
    )
    parser.add_argument("--seed", type=int, default=0)
    add_remove_arguments(parser)
    _add_space_arguments(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="start afresh instead of resuming"
    )
    parser.add_argument(
        "--no-retrain", action="store_true", help="do not retrain the best model"
    )
    parser.add_argument(
        "--retrain-on-validation",
        action="store_true",
        help="retrain the best model on the training and validation texts",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="one line per trial, then the summary"
    )


def _add_space_arguments(parser: argparse.ArgumentParser) -> None:
    """What the search tries, and what it holds fixed."""
    space = parser.add_argument_group("search space")
    space.add_argument(
        "--unit-choices",
        dest="units",
        type=comma_separated(int, "32,64"),
        help="hidden sizes to try, per layer (default 16,32,64,128,256)",
    )
    # `train --units` sets the layers' sizes; here the old spelling meant the
    # choices. Kept working, with a warning.
    space.add_argument(
        "--units",
        dest="units",
        type=comma_separated(int, "32,64"),
        action=_Deprecated,
        help=argparse.SUPPRESS,
    )
    space.add_argument("--max-layers", type=int, help="most recurrent layers (2)")
    space.add_argument(
        "--embedding-dims",
        type=comma_separated(int, "32,64"),
        help="embedding sizes (32,64,128,256)",
    )
    space.add_argument(
        "--dropout-range",
        type=comma_separated(float, "1e-3,3e-3"),
        help="min,max,step of dropout (0,0.5,0.1)",
    )
    space.add_argument(
        "--learning-rates",
        type=comma_separated(float, "1e-3,3e-3"),
        help="learning rates (0.001,0.003,0.01)",
    )
    space.add_argument(
        "--cells",
        type=comma_separated(str, "layer_norm_lstm,layer_norm_gru"),
        help=f"recurrent cells to try, of {', '.join(cell_names())} "
        "(default: the prebuilt model's only)",
    )
    fixed = parser.add_argument_group("held fixed (default: the prebuilt model's)")
    fixed.add_argument("--vocabulary-size", type=int)
    fixed.add_argument("--sequence-length", type=int)
    fixed.add_argument("--attention-units", type=int)
    fixed.add_argument("--cell", choices=cell_names())


def run(args: argparse.Namespace) -> int:
    from recurrent_zoo.distribute import enable_memory_growth

    # Before anything touches a GPU (several workers may share one).
    enable_memory_growth()

    from recurrent_zoo.tuning import load_task_data, run_search

    space = {
        name: value
        for name, value in {
            "units": args.units,
            "max_layers": args.max_layers,
            "embedding_dims": args.embedding_dims,
            "dropout_range": args.dropout_range,
            "learning_rates": args.learning_rates,
            "cells": args.cells,
        }.items()
        if value is not None
    }
    fixed = {
        name: value
        for name, value in {
            "vocabulary_size": args.vocabulary_size,
            "sequence_length": args.sequence_length,
            "attention_units": args.attention_units,
            "cell": args.cell,
        }.items()
        if value is not None
    }
    train, validation = load_task_data(
        args.task,
        args.data,
        corpus=args.corpus,
        remove=removed_parts(args),
        max_per_class=args.train_per_class,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
    )
    print(
        f"tune {args.task}: {len(train)} training and {len(validation)} validation "
        f"texts, {args.tuner}, at most {args.max_trials} trials",
        flush=True,
    )
    result = run_search(
        args.task,
        train,
        validation,
        args.directory,
        tuner=args.tuner,
        max_trials=args.max_trials,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        project_name=args.project_name,
        space=space,
        fixed=fixed,
        retrain=not args.no_retrain,
        retrain_on_validation=args.retrain_on_validation,
        overwrite=args.overwrite,
        verbose=0 if args.quiet else 2,
        log=lambda line: print(line, flush=True),
    )
    if result.role != "worker":
        print(f"results in {result.project_dir}", flush=True)
    return 0
