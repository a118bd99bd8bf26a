"""`recurrent-zoo train`: train a prebuilt model, resumably, and test it.

Running the same command again after an interruption carries on from the
last finished epoch; on a finished run it only prints the summary.

`--strategy mirrored` trains on all GPUs of the machine, `--strategy
multiworker` on every machine `TF_CONFIG` names (run the same command on
each; the chief writes `--out`). `--batch-size` is the global batch, split
across all replicas; the learning rate is not scaled.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from recurrent_zoo.catalog import DTYPE_POLICIES, MONITORS, TASKS
from recurrent_zoo.cells import cell_names
from recurrent_zoo.commands.common import (
    REMOVABLE,
    add_corpus_arguments,
    add_remove_arguments,
    comma_separated,
    removed_parts,
)
from recurrent_zoo.distribute import DEFAULT_COLLECTIVE_TIMEOUT_S, STRATEGIES

HELP = "train a prebuilt model on its corpus (resumable) and score it on test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task", choices=tuple(TASKS), help="the prebuilt model to train"
    )
    add_corpus_arguments(parser)
    parser.add_argument(
        "--out",
        help="the run's folder; rerun with the same one to resume (runs/<task>)",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="the global batch: split evenly across all replicas (default: 64)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        help=(
            "peak rate, cosine-decayed to 0; never scaled with the replicas "
            "(default: the architecture's)"
        ),
    )
    parser.add_argument(
        "--dtype-policy",
        choices=DTYPE_POLICIES,
        default="float32",
        help=(
            "Keras's policy while training: mixed_bfloat16 runs the recurrent "
            "matmuls in bfloat16, faster on a CPU with AMX (the saved model "
            "loads as float32)"
        ),
    )
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument(
        "--patience",
        type=int,
        default=2,
        help="epochs without an improvement of --monitor before stopping",
    )
    parser.add_argument(
        "--monitor",
        choices=tuple(MONITORS),
        default="val_loss",
        help="what picks the epoch shipped (and refit's epoch count) and stops "
        "early: the lowest val_loss (default) or the highest val_accuracy",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-per-class",
        type=int,
        help="training texts per class; char_lm: documents (default: all)",
    )
    parser.add_argument(
        "--test-max-per-class",
        type=int,
        help="test texts per class; char_lm: documents (default: all)",
    )
    add_remove_arguments(parser)
    _add_model_arguments(parser)
    _add_stage_arguments(parser)
    _add_distributed_arguments(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete a previous run in --out (finished or not) and start afresh",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model (default: the architecture's)")
    model.add_argument(
        "--units",
        type=comma_separated(int, "64,64"),
        help="sizes per layer, e.g. 64,64",
    )
    model.add_argument("--embedding-dim", type=int)
    model.add_argument(
        "--vocabulary-size",
        type=int,
        help="words kept; char_lm: characters kept (its max_characters)",
    )
    model.add_argument(
        "--sequence-length",
        type=int,
        help="tokens read per text; char_lm: characters per training window",
    )
    model.add_argument(
        "--cell", choices=cell_names(), help="recurrent cell (default: the task's)"
    )
    model.add_argument("--dropout", type=float)
    model.add_argument(
        "--bag-of-words",
        action=argparse.BooleanOptionalAction,
        help=(
            "add a linear classifier over the TF-IDF bag of words beside the "
            "recurrent one (wide & deep)"
        ),
    )
    model.add_argument(
        "--naive-bayes-buckets",
        type=int,
        help=(
            "add NBSVM beside the recurrent classifier: unigrams and bigrams "
            "of the whole text hashed into this many buckets (0: none)"
        ),
    )
    model.add_argument(
        "--wide-weight",
        type=float,
        help=(
            "with a bag of words or NBSVM, the linear classifier's share of the output"
        ),
    )
    _add_forecaster_arguments(parser)


def _add_forecaster_arguments(parser: argparse.ArgumentParser) -> None:
    forecaster = parser.add_argument_group(
        "forecaster (--data co2, elnino, sunspots or a CSV file)"
    )
    forecaster.add_argument("--horizon", type=int, help="values forecast at once")
    forecaster.add_argument("--window", type=int, help="past values read")
    forecaster.add_argument(
        "--quantiles",
        type=comma_separated(float, "0.1,0.5,0.9"),
        help="forecast these quantiles (pinball loss), e.g. 0.1,0.5,0.9",
    )
    forecaster.add_argument(
        "--calendar",
        action=argparse.BooleanOptionalAction,
        help="read the position in the year (sine, cosine) as covariates",
    )
    forecaster.add_argument(
        "--relative",
        action=argparse.BooleanOptionalAction,
        help="forecast the change from the last value (default) or the level",
    )
    forecaster.add_argument(
        "--linear-skip",
        action=argparse.BooleanOptionalAction,
        help="add a linear map of the window to the forecasts (LSTNet's highway)",
    )


def _add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    pretraining = parser.add_argument_group(
        "language-model pretraining (Dai & Le 2015)"
    )
    pretraining.add_argument(
        "--pretrain-epochs",
        type=int,
        help=(
            "first pretrain the embedding and first recurrent layer as "
            "forward/backward language models for this many passes over the "
            "training texts (plus IMDB's train/unsup reviews); default: none"
        ),
    )
    pretraining.add_argument(
        "--pretrain-learning-rate",
        type=float,
        help="Adam's peak rate while pretraining (default: 2e-3)",
    )
    pretraining.add_argument(
        "--pretrain-unlabeled",
        type=int,
        metavar="N",
        help=(
            "at most N of the unlabeled texts (IMDB's train/unsup) join the "
            "pretraining; 0: the training texts alone (default: all)"
        ),
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help=(
            "after choosing the epoch on validation, train again on all "
            "training texts for that many epochs and ship that model"
        ),
    )


def _add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    distributed = parser.add_argument_group("distributed training")
    distributed.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help=(
            "default: one device; mirrored: all GPUs of this machine; "
            "multiworker: the machines in TF_CONFIG, each running this command"
        ),
    )
    distributed.add_argument(
        "--collective-timeout",
        type=float,
        default=DEFAULT_COLLECTIVE_TIMEOUT_S,
        metavar="SECONDS",
        help=(
            "multiworker: fail when the other workers do not answer within "
            "this time (default: %(default)s)"
        ),
    )


_MODEL_OPTIONS = (
    "units",
    "embedding_dim",
    "vocabulary_size",
    "sequence_length",
    "cell",
    "dropout",
    "bag_of_words",
    "naive_bayes_buckets",
    "wide_weight",
    "horizon",
    "window",
    "quantiles",
    "calendar",
    "relative",
    "linear_skip",
)


def command_line(args: argparse.Namespace) -> str:
    """The command, rebuilt from the parsed arguments with every option set.

    Args:
        args: `recurrent-zoo train`'s parsed arguments.

    Returns:
        A shell-quoted `recurrent-zoo train ...` line that repeats the run.
    """
    words = ["recurrent-zoo", "train", args.task]
    skip = {"task", "handler", "command", "remove"}
    skip |= {f"remove_{part}" for part in REMOVABLE}
    for name, value in vars(args).items():
        if name in skip or value is None:
            continue
        if value is False:
            if name in _MODEL_OPTIONS:  # a --no-... switch
                words.append("--no-" + name.replace("_", "-"))
            continue
        words.append("--" + name.replace("_", "-"))
        if isinstance(value, tuple):
            words.append(",".join(str(v) for v in value))
        elif value is not True:
            words.append(str(value))
    if removed_parts(args):
        words += ["--remove", ",".join(removed_parts(args))]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from recurrent_zoo.distribute import ClusterError
    from recurrent_zoo.training import load_finished, train
    from recurrent_zoo.training.tasks import task_for

    out = Path(args.out or f"runs/{args.task}")
    args.out = str(out)
    overrides = {
        name: getattr(args, name)
        for name in _MODEL_OPTIONS
        if getattr(args, name) is not None
    }
    already = not args.overwrite and load_finished(out) is not None
    try:
        metrics = train(
            args.task,
            args.data,
            out,
            corpus=args.corpus,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            validation_fraction=args.validation_fraction,
            patience=args.patience,
            monitor=args.monitor,
            seed=args.seed,
            max_per_class=args.max_per_class,
            test_max_per_class=args.test_max_per_class,
            remove=removed_parts(args),
            overrides=overrides,
            pretrain_epochs=args.pretrain_epochs or 0,
            pretrain_learning_rate=args.pretrain_learning_rate or 2e-3,
            pretrain_unlabeled=args.pretrain_unlabeled,
            refit=args.refit,
            dtype_policy=args.dtype_policy,
            overwrite=args.overwrite,
            strategy=args.strategy,
            collective_timeout=args.collective_timeout,
            command=command_line(args),
            verbose=0 if args.quiet else 1,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"recurrent-zoo train: error: {err}", file=sys.stderr)
        return 2
    except ClusterError as err:
        print(f"recurrent-zoo train: error: {err}", file=sys.stderr)
        return 1
    task = task_for(args.task)
    if metrics.get("distribution", {}).get("chief") is False:
        _print_worker_summary(args, metrics, out, task)
    else:
        _print_summary(args, metrics, out, already, task)
    return 0


def _print_worker_summary(
    args: argparse.Namespace, metrics: dict, out: Path, task: Any
) -> None:
    """A worker, not the chief: it wrote nothing of the run."""
    distribution = metrics["distribution"]
    scored = f": {task.summary(metrics['test'])}" if "test" in metrics else ""
    print(
        f"train {args.task} ({distribution['task']} of "
        f"{distribution['workers']}, done){scored}; the chief writes the "
        f"run to {out}"
    )


def _print_summary(
    args: argparse.Namespace, metrics: dict, out: Path, already: bool, task: Any
) -> None:
    distribution = metrics.get("distribution", {})
    status = "already finished" if already else "done"
    print(
        f"train {args.task} ({status}): {task.summary(metrics['test'])}; "
        f"{metrics['epochs_run']} epoch(s)"
        f"{' (stopped early)' if metrics['stopped_early'] else ''}, best "
        f"{metrics['best_epoch']} by {metrics.get('monitor', 'val_loss')}, "
        f"{metrics['train_seconds']:.0f} s of training"
        + (
            f" after {metrics['pretraining']['seconds']:.0f} s of pretraining"
            if metrics.get("pretraining")
            else ""
        )
        + (
            f", then {metrics['refit']['train_seconds']:.0f} s refitting on "
            f"all {metrics['refit']['examples']} training texts"
            if metrics.get("refit")
            else ""
        )
    )
    if distribution.get("strategy", "default") != "default":
        print(
            f"  trained: {distribution['strategy']}, {distribution['replicas']} "
            f"replica(s) over {distribution['workers']} worker(s)"
        )
    print(f"  model:   {out / 'model.keras'}")
    print(f"  metrics: {out / 'metrics.json'}")
    plots = ", ".join(str(out / name) for name in ("curves.png", *task.report_files))
    print(f"  plots:   {plots}")
    if (out / "logs").is_dir():
        print(f"  logs:    tensorboard --logdir {out / 'logs'}")
