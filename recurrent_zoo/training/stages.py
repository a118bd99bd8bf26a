"""Train a prebuilt model on a real corpus, resumably, and evaluate it.

`train("sentiment", "../shared/data", "runs/sentiment")` reads the corpus,
holds out a stratified validation part of the training split (never of
the test split), adapts the vocabulary on the rest, fits with a cosine
learning-rate decay and early stopping on the validation loss (or
accuracy: `monitor`), then scores the best epoch's model on the test
split. Everything lands in `out_dir`, a run folder (`recurrent_zoo.training.run`
lists its files); how a killed run resumes is told in
`recurrent_zoo.training.fitting`.

Distributed training (`strategy=`; see `recurrent_zoo.distribute`): the
model is built and compiled in the strategy's scope and every batch is
split across the replicas. `batch_size` is the global batch (a multiple of
the replica count) and the learning rate is not scaled, so the strategy
changes where the run trains, not what it computes; for that reason it is
not one of run.json's arguments, and a run may resume under another
strategy or cluster size. Across several workers the chief writes
everything above; every other worker keeps the same files for itself in
`out/workertemp_<index>` (its resume state: its own backup, history and
vocabulary, for machines that share no disk) and deletes them at the end.
Before training, the workers compare their states: if the chief's run is
finished they all stop; if a kill left their backups an epoch apart, the
one ahead falls back to its previous backup (kept by `double_checkpoint`),
so they all resume from the same epoch; and they check that they read the
same data. A worker that dies mid-run makes the others fail within
seconds (TensorFlow's heartbeats; any collective waits at most
`collective_timeout`) with a `ClusterError`; rerunning the same command on
every worker resumes.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from recurrent_zoo.distribute import (
    DEFAULT_COLLECTIVE_TIMEOUT_S,
    STRATEGIES,
    Distribution,
    per_replica_batch_size,
)
from recurrent_zoo.environment import machine_info
from recurrent_zoo.plots import plot_history
from recurrent_zoo.run_files import copy_atomically
from recurrent_zoo.training import precision
from recurrent_zoo.training.arguments import monitor_of, run_arguments
from recurrent_zoo.training.callbacks import stops_early
from recurrent_zoo.training.fitting import fit
from recurrent_zoo.training.history import first_best, history_series
from recurrent_zoo.training.pretraining import pretrain
from recurrent_zoo.training.refit import run_refit
from recurrent_zoo.training.run import Run
from recurrent_zoo.training.tasks import Task, task_for
from recurrent_zoo.training.workers import agree_on_state, worker_stub

__all__ = ["train"]


@dataclass
class _Splits:
    """The run's data: all training examples, their two parts, the test split."""

    full: Any
    train: Any
    validation: Any
    test: Any

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def train(
    task: str,
    data: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    corpus: str | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float | None = None,
    validation_fraction: float = 0.1,
    patience: int = 2,
    monitor: str = "val_loss",
    seed: int = 0,
    max_per_class: int | None = None,
    test_max_per_class: int | None = None,
    remove: Iterable[str] = (),
    overrides: dict[str, Any] | None = None,
    pretrain_epochs: int = 0,
    pretrain_learning_rate: float = 2e-3,
    pretrain_unlabeled: int | None = None,
    refit: bool = False,
    dtype_policy: str = "float32",
    overwrite: bool = False,
    strategy: str | tf.distribute.Strategy | None = "default",
    collective_timeout: float = DEFAULT_COLLECTIVE_TIMEOUT_S,
    command: str | None = None,
    verbose: int = 1,
) -> dict:
    """Trains `get(task)` on a corpus, resumably, and scores it on its test split.

    See the module docstring for the files written and how resuming works.
    Also seeds Python, NumPy and TensorFlow globally with `seed`.

    Args:
        task: a key of `ARCHITECTURES` ("sentiment", "topic", "char_lm").
        data: the data folder, archive or table, as
            `recurrent_zoo.data.load_corpus` takes it (for "char_lm", text:
            `recurrent_zoo.training.language_modeling.load_documents`).
        out_dir: where the run is written; rerun with the same folder and
            arguments to resume.
        corpus: the corpus to read; defaults to the task's own.
        epochs: the most epochs to train (early stopping may stop sooner).
        batch_size: examples per training step: the global batch, split
            evenly across the strategy's replicas (so a multiple of their
            number).
        learning_rate: the peak learning rate, decayed along a cosine to 0
            over all `epochs`; defaults to the architecture's. Never scaled
            with the number of replicas (the batch is global already).
        validation_fraction: share of each training class held out to
            choose the epoch and stop early, in (0, 1).
        patience: epochs without an improvement of `monitor` before stopping.
        monitor: what validation chooses by: the epoch whose model is
            shipped and scored (and, with `refit`, the epoch count) and
            when to stop early. "val_loss" (the lowest; the default) or
            "val_accuracy" (the highest); the first such epoch on ties.
        seed: seeds the weights, the validation split and the shuffling.
        max_per_class: at most this many training texts per class (before
            the validation part is held out); for a language model, at most
            this many documents in all.
        test_max_per_class: at most this many test texts per class (a
            language model: test documents).
        remove: for 20 Newsgroups, parts of each post to strip: any of
            "headers", "footers", "quotes".
        overrides: the model's arguments replacing the architecture's,
            e.g. `{"units": (32,), "vocabulary_size": 5000}` (a
            `TextClassifier`'s, or a `CharLanguageModel`'s).
        pretrain_epochs: if positive, first pretrain the embedding and the
            first recurrent layer as forward and backward language models
            (`recurrent_zoo.models.pretrain_encoder`) for this many passes
            over unlabeled text: the training part (never the validation
            or test texts) plus, for IMDB, the 50,000 `train/unsup`
            reviews. Single-replica strategies only.
        pretrain_learning_rate: Adam's peak rate for that stage.
        pretrain_unlabeled: at most this many of the unlabeled texts join
            that stage (None: all of them; 0: the training part alone).
        refit: after choosing the epoch on validation, train again on all
            training texts (the validation part included) for that many
            epochs, from the same start and on the same schedule, and ship
            and score that model (`recurrent_zoo.training.refit`). Not with a
            multi-worker strategy.
        dtype_policy: Keras's global policy while the run builds, trains
            and scores: "float32", "mixed_bfloat16" (the recurrence's
            matmuls in bfloat16: faster on a CPU with AMX) or
            "mixed_float16" (`recurrent_zoo.training.precision`).
            The saved model loads as float32.
        overwrite: delete a previous run in `out_dir` (finished or not) and
            start afresh.
        strategy: "default" (or None), "mirrored" (the GPUs of this
            machine), "multiworker" (the machines `TF_CONFIG` names; run the
            same call on each), or a `tf.distribute` strategy instance.
            A multi-worker strategy must be created before TensorFlow runs
            anything in the process.
        collective_timeout: for "multiworker", the most seconds a
            collective waits for the other workers.
        command: the command line that started the run, recorded in
            metrics.json.
        verbose: 0 silent, 1 progress bars and notices.

    Returns:
        The metrics written to metrics.json: "test" (the task's scores of
        the test split: a classifier's `classification_report`, a language
        model's bits per character), "history" (per-epoch
        series, "epoch" numbered from 1), "epochs_run", "best_epoch"
        (from 1), "stopped_early", "train_seconds" (the sum of the finished
        epochs' times), "pretraining" and "refit" (those stages' records,
        or None), "examples" per split, "arguments", "machine",
        "date", "command" and "distribution" (strategy, replicas, workers,
        this task). If `out_dir` already holds a finished run with the same
        arguments, its metrics are returned without training. A non-chief
        worker returns the metrics it computed itself, written nowhere; or,
        when the chief had nothing left to train, only "task", "corpus",
        "arguments" and "distribution".

    Raises:
        ValueError: on an invalid argument, or if `out_dir` holds a run with
            other arguments and `overwrite` is False.
        RuntimeError: if no epoch reached a finite validation loss.
        ClusterError: if a worker died, hung or disagreed with the others.
    """

    task_ = task_for(task)
    arguments = run_arguments(
        task_,
        data,
        corpus=corpus,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        validation_fraction=validation_fraction,
        patience=patience,
        monitor=monitor,
        seed=seed,
        max_per_class=max_per_class,
        test_max_per_class=test_max_per_class,
        remove=remove,
        overrides=overrides,
        pretrain_epochs=pretrain_epochs,
        pretrain_learning_rate=pretrain_learning_rate,
        pretrain_unlabeled=pretrain_unlabeled,
        refit=refit,
        dtype_policy=dtype_policy,
    )
    dist = _distribution(arguments, strategy, collective_timeout)
    run = Run(dist.output_dir(Path(out_dir)), task_.report_files)  # chief: out_dir
    saved, result = _agree(run, arguments, dist, overwrite, verbose)
    if result is not None:
        return result
    with precision.dtype_policy(arguments.get("dtype_policy", "float32")):
        return _train(run, task_, arguments, data, dist, saved, command, verbose)


def _train(
    run: Run,
    task_: Task,
    arguments: dict,
    data: Any,
    dist: Distribution,
    saved: dict | None,
    command: str | None,
    verbose: int,
) -> dict:
    """`train` from reading the data on, once the run's state is agreed."""
    keras.utils.set_random_seed(arguments["seed"])
    splits = _read_data(task_, arguments, data)
    model, words = _build(run, task_, arguments, splits, dist, saved)
    done = run.backup_epoch()
    pretraining = None
    if arguments.get("pretrain_epochs"):
        pretraining = pretrain(
            run, model, arguments, data, splits.train, splits.validation, done, verbose
        )
    fit(
        run,
        task_,
        arguments,
        model,
        words,
        splits.train,
        splits.validation,
        dist,
        done,
        saved,
        verbose,
    )
    rows = run.history()  # every epoch of the run, resumed ones included
    monitor = monitor_of(arguments)
    best = first_best([row[monitor] for row in rows], monitor)
    shipped, refitted = _choose(
        run, task_, arguments, splits, dist, pretraining, best, verbose
    )
    scores = _score(run, task_, shipped, splits, dist)
    stages = {"pretraining": pretraining, "refit": refitted}
    return _finish(
        run, task_, arguments, splits, dist, (rows, best), scores, stages, command
    )


def _distribution(
    arguments: dict, strategy: Any, collective_timeout: float
) -> Distribution:
    """The run's strategy, checked against what the run asks of it."""
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    # First: a multi-worker strategy must set up collectives before any op.
    dist = Distribution.create(strategy, collective_timeout)
    if arguments.get("pretrain_epochs") and (dist.multi_worker or dist.replicas > 1):
        raise ValueError(
            "pretrain_epochs runs on one replica; pretrain with the default "
            f"strategy, not {dist.describe()['strategy']!r}"
        )
    if arguments.get("refit") and dist.multi_worker:
        raise ValueError("refit runs on one worker, not with a multi-worker strategy")
    return dist


def _agree(
    run: Run, arguments: dict, dist: Distribution, overwrite: bool, verbose: int
) -> tuple[dict | None, dict | None]:
    """Whether and where the run goes on, agreed across workers.

    Returns:
        The recorded arguments (None for a fresh start), and the result to
        return at once when there is nothing to train (else None).
    """
    saved, mistake = None, None
    try:
        per_replica_batch_size(arguments["batch_size"], dist.replicas)
        saved = run.check(arguments, overwrite)
    except ValueError as err:
        if not dist.multi_worker:
            raise
        mistake = err  # told to the other workers first, then raised
    finished = run.finished() if mistake is None else None
    if dist.multi_worker:
        outcome = agree_on_state(
            dist,
            run.out,
            mistake,
            saved,
            finished,
            arguments["epochs"],
            arguments["patience"],
            verbose,
            monitor=monitor_of(arguments),
        )
        if outcome == "stop" and not dist.is_chief:
            run.discard()
            _say(verbose, f"{dist.task.name}: the chief has nothing left to train.")
            return saved, worker_stub(arguments, dist)
        if outcome == "stop":
            _say(verbose, f"{run.out} already holds a finished run; not retraining.")
            return saved, finished
    elif saved is not None and finished is not None:
        _say(verbose, f"{run.out} already holds a finished run; not retraining.")
        return saved, finished
    return saved, None


def _read_data(task: Task, arguments: dict, data: Any) -> _Splits:
    """The training split, its validation part held out, and the test split."""
    options = {"seed": arguments["seed"], "remove": arguments["remove"]}
    corpus = arguments["corpus"]
    full = task.load_split(
        corpus, data, "train", max_per_class=arguments["max_per_class"], **options
    )
    train_part, validation = full.split(
        arguments["validation_fraction"], arguments["seed"]
    )
    test = task.load_split(
        corpus,
        data,
        "test",
        max_per_class=arguments["test_max_per_class"],
        class_names=full.class_names,
        **options,
    )
    return _Splits(full, train_part, validation, test)


def _build(
    run: Run,
    task: Task,
    arguments: dict,
    splits: _Splits,
    dist: Distribution,
    saved: dict | None,
) -> tuple[keras.Model, list[str]]:
    """The model, adapted to the training part; and its vocabulary.

    A resumed run reads its vocabulary back (the backup holds weights, not
    the vectorizer's words, and re-adapting may order tied words otherwise).
    """
    vocabulary = run.read_vocabulary() if saved is not None else None
    # Built in the strategy's scope: every variable (the custom layers'
    # too) becomes one mirrored variable, the same on every replica.
    with dist.scope():
        model = task.build(arguments["overrides"], splits.full, vocabulary)
    if saved is None:
        run.start(arguments)
    words = task.adapt(model, splits.train)
    if vocabulary is None:
        run.write_vocabulary(words)
    return model, words


def _choose(
    run: Run,
    task: Task,
    arguments: dict,
    splits: _Splits,
    dist: Distribution,
    pretraining: dict | None,
    best: int | None,
    verbose: int,
) -> tuple[Path, dict | None]:
    """The model to ship: the best epoch's, or its refit on all training data.

    Returns:
        The shipped `.keras` file and the refit stage's record (or None).
    """
    if not (run / "best.keras").is_file():
        raise RuntimeError(
            f"no epoch reached a finite validation loss (see {run / 'history.csv'}); "
            "try a lower learning rate"
        )
    if not arguments.get("refit"):
        return run / "best.keras", None
    return run_refit(
        run,
        task,
        arguments,
        splits.full,
        dist,
        best + 1,
        pretraining is not None,
        verbose,
    )


def _score(
    run: Run, task: Task, shipped: Path, splits: _Splits, dist: Distribution
) -> dict:
    """The test scores, taken from the very file that is shipped."""
    if dist.is_chief:
        copy_atomically(shipped, run / "model.keras")
        final = keras.saving.load_model(run / "model.keras", compile=False)
    else:
        final = keras.saving.load_model(run / "best.keras", compile=False)
    return task.score(final, splits.test, 256)


def _finish(
    run: Run,
    task: Task,
    arguments: dict,
    splits: _Splits,
    dist: Distribution,
    epochs: tuple[list[dict[str, float]], int | None],
    scores: dict,
    stages: dict[str, dict | None],
    command: str | None,
) -> dict:
    """Writes metrics.json and the figures (the chief); the metrics.

    `epochs` is history.csv's rows and the index of the best one.
    """
    rows, best = epochs
    monitor = monitor_of(arguments)
    history = history_series(rows)
    metrics = {
        "task": arguments["task"],
        "corpus": arguments["corpus"],
        "test": scores,
        "epochs_run": len(rows),
        "best_epoch": None if best is None else best + 1,
        "monitor": monitor,
        # Whether early stopping fired, as Keras printed (also when it fires
        # at the last epoch), not merely whether fewer epochs ran.
        "stopped_early": stops_early(rows, arguments["patience"], monitor),
        "train_seconds": float(sum(filter(None, history.get("seconds", [])))),
        **stages,
        "examples": splits.sizes(),
        "history": history,
        "arguments": arguments,
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": command,
        "distribution": dist.describe(),
    }
    if not dist.is_chief:
        run.discard()  # only the chief writes the run; this worker's copy goes
        return metrics
    plot_history(history, run / "curves.png")
    task.report(scores, run.out)
    run.finish(metrics)
    return metrics


def _say(verbose: int, message: str) -> None:
    if verbose:
        print(message, flush=True)
