"""Train a prebuilt classifier on a real corpus, resumably, and evaluate it.

`train("sentiment", "../shared/data", "runs/sentiment")` reads the corpus,
holds out a stratified validation part of the training split (never of
the test split), adapts the vocabulary on the rest, fits with a cosine
learning-rate decay and early stopping on the validation loss (or
accuracy: `monitor`), then scores the best epoch's model on the test
split. Everything lands in `out_dir`:

    run.json        the run's arguments (a resume must match them)
    vocabulary.txt  the adapted vocabulary, one word per line
    pretrained.weights.h5, pretraining.json
                    with `pretrain_epochs`: the classifier after language-
                    model pretraining, and that stage's history
    history.csv     one row per finished epoch, appended across resumes
    best.keras      the model after the best epoch by `monitor` (the lowest
                    val_loss by default, or the highest val_accuracy)
    backup/         BackupAndRestore's last-epoch state (deleted at the end)
    logs/           TensorBoard logs (if the tensorboard package is installed)
    refit/          with `refit`: the model trained again on all training
                    texts for the best epoch count (`recurrent_zoo.refit`)
    model.keras     the final model: a copy of best.keras, or of
                    refit/model.keras with `refit`
    metrics.json    test metrics, history, timings, machine; marks the run
                    as finished
    curves.png, confusion.png

Resuming: run the same call (or command) again after an interruption.
`BackupAndRestore` restores the weights, the optimizer (its step count
drives the learning-rate schedule, so the decay carries on where it
stopped) and the epoch counter; the vocabulary comes from vocabulary.txt
(the backup holds weights, not the vectorizer's vocabulary, and re-adapting
may order tied words differently). The epoch that was running when the
process died starts over from the state at the end of the last finished
epoch; finished epochs are not repeated. (An epoch's end first logs its
row, then writes the backup: a kill in the milliseconds between the two
runs that logged epoch again, and its stale row is dropped from
history.csv.) Early stopping's count and the best model are
rebuilt from history.csv and best.keras, so they behave as if the run had
never stopped. What is not reproduced is the data order: the resumed
epochs shuffle as a new run would, so a resumed run matches an
uninterrupted one in distribution, not bit for bit.

Why `restore_best_weights` is off: `EarlyStopping` keeps the best weights
in memory, which a killed process loses, and after a resume it would only
know the epochs since. `best.keras` (written atomically whenever the
monitored value improves on the best in the whole history) survives, and
the final model is always read from it.

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

import csv
import datetime
import importlib.util
import json
import math
import os
import shutil
import time
import types
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from recurrent_zoo.data import TextClassificationData, load_corpus, load_unlabeled
from recurrent_zoo.data.batching import bucketed_dataset, counted_bucketed_dataset
from recurrent_zoo.data.newsgroups import REMOVABLE
from recurrent_zoo.distribute import (
    DEFAULT_COLLECTIVE_TIMEOUT_S,
    STRATEGIES,
    ClusterError,
    Distribution,
    per_replica_batch_size,
    translate_cluster_errors,
)
from recurrent_zoo.environment import machine_info
from recurrent_zoo.metrics import classification_report
from recurrent_zoo.models import ARCHITECTURES, get
from recurrent_zoo.models.language_model import pretrain_encoder
from recurrent_zoo.models.loading import load_model_file
from recurrent_zoo.plots import plot_confusion, plot_history
from recurrent_zoo.refit import EpochRecord, refit_on_all_texts
from recurrent_zoo.run_files import (
    copy_atomically,
    read_json,
    replaced_atomically,
    write_bytes,
    write_json,
    write_text,
)

__all__ = ["evaluate", "infer_corpus", "load_finished", "train"]


# Every file and folder `train` writes: what `overwrite` (or a fresh run in
# a folder with stale leftovers) deletes, and nothing else.
_RUN_FILES = (
    "run.json",
    "vocabulary.txt",
    "pretrained.weights.h5",
    "pretraining.json",
    "history.csv",
    "best.keras",
    "model.keras",
    "metrics.json",
    "curves.png",
    "confusion.png",
)
_RUN_DIRS = ("backup", "logs", "refit")
# Validation texts whose exact language-model loss is reported while
# pretraining: a full softmax per word, so a sample is enough.
_LM_VALIDATION_TEXTS = 500


def load_finished(out_dir: str | os.PathLike[str]) -> dict | None:
    """The metrics of a finished run in `out_dir`, or None if there is none.

    Args:
        out_dir: a `train` output folder.

    Returns:
        The contents of `out_dir/metrics.json`, or None when it is absent.
    """
    path = Path(out_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


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
    refit: bool = False,
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
        task: a key of `ARCHITECTURES` ("sentiment", "topic").
        data: the data folder, archive or table, as
            `recurrent_zoo.data.load_corpus` takes it.
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
            the validation part is held out).
        test_max_per_class: at most this many test texts per class.
        remove: for 20 Newsgroups, parts of each post to strip: any of
            "headers", "footers", "quotes".
        overrides: `TextClassifier` arguments replacing the architecture's,
            e.g. `{"units": (32,), "vocabulary_size": 5000}`.
        pretrain_epochs: if positive, first pretrain the embedding and the
            first recurrent layer as forward and backward language models
            (`recurrent_zoo.models.pretrain_encoder`) for this many passes
            over unlabeled text: the training part (never the validation
            or test texts) plus, for IMDB, the 50,000 `train/unsup`
            reviews. Single-replica strategies only.
        pretrain_learning_rate: Adam's peak rate for that stage.
        refit: after choosing the epoch on validation, train again on all
            training texts (the validation part included) for that many
            epochs, from the same start and on the same schedule, and ship
            and score that model (`recurrent_zoo.refit`). Not with a
            multi-worker strategy.
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
        The metrics written to metrics.json: "test" (the
        `classification_report` of the test split), "history" (per-epoch
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
    out = Path(out_dir)
    arguments = _run_arguments(
        task,
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
        refit=refit,
    )
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
    out = dist.output_dir(out)  # the chief's is `out` itself
    saved, mistake = None, None
    try:
        per_replica_batch_size(arguments["batch_size"], dist.replicas)
        saved = read_json(out / "run.json")
        if overwrite:
            _clear_run(out)
            saved = None
        elif saved is not None and saved != arguments:
            changed = ", ".join(
                f"{key}: {saved.get(key)!r} -> {arguments.get(key)!r}"
                for key in sorted(set(saved) | set(arguments))
                if saved.get(key) != arguments.get(key)
            )
            state = "finished" if load_finished(out) is not None else "unfinished"
            raise ValueError(
                f"{out} holds a {state} run with other arguments ({changed}). "
                "Rerun with the same arguments to resume it, choose another "
                "output folder, or pass overwrite=True (--overwrite) to start "
                "afresh."
            )
    except ValueError as err:
        if not dist.multi_worker:
            raise
        mistake = err  # told to the other workers first, then raised
    finished = load_finished(out) if mistake is None else None
    if dist.multi_worker:
        outcome = _agree_on_state(
            dist,
            out,
            mistake,
            saved,
            finished,
            epochs,
            patience,
            verbose,
            monitor=arguments.get("monitor", "val_loss"),
        )
        if outcome == "stop":
            if dist.is_chief:
                _say(verbose, f"{out} already holds a finished run; not retraining.")
                return finished
            shutil.rmtree(out, ignore_errors=True)
            _say(verbose, f"{dist.task.name}: the chief has nothing left to train.")
            return _worker_stub(arguments, dist)
    elif saved is not None and finished is not None:
        _say(verbose, f"{out} already holds a finished run; not retraining.")
        return finished

    corpus = arguments["corpus"]
    keras.utils.set_random_seed(seed)
    full = _load_split(corpus, data, "train", max_per_class, seed, remove)
    train_part, validation = full.split(validation_fraction, seed)
    test = _load_split(
        corpus, data, "test", test_max_per_class, seed, remove, full.class_names
    )
    vocabulary = _read_vocabulary(out) if saved is not None else None
    # Built in the strategy's scope: every variable (the custom layers'
    # too) becomes one mirrored variable, the same on every replica.
    with dist.scope():
        model = get(
            task,
            **{**(overrides or {}), "class_names": full.class_names},
            vocabulary=vocabulary,
        )
    if saved is None:
        # A folder without run.json holds no resumable state: anything in
        # it under our names is a leftover that would mix into this run.
        _clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "run.json", arguments)
    # Deterministic (ties in frequency go by the word), so workers that
    # adapt on the same texts agree; checked below. A vocabulary read back
    # is kept; adapt then only sets what else comes from the training texts
    # (the bag of words' IDF), which a restored backup overwrites anyway.
    model.adapt(train_part.texts)
    if vocabulary is None:
        _write_vocabulary(out, model.vectorizer.get_vocabulary(False))

    done = _backup_epoch(out / "backup")
    pretraining = None
    if arguments.get("pretrain_epochs"):
        pretraining = _pretrain(
            model, arguments, data, train_part, validation, out, done, seed, verbose
        )

    length = model.sequence_length
    train_ds, steps = _batches(train_part, batch_size, length, seed=seed)
    validation_ds, _ = _batches(validation, 256, length, shuffle=False)
    schedule = keras.optimizers.schedules.CosineDecay(
        arguments["learning_rate"], decay_steps=steps * epochs
    )
    # The optimizer too: Keras ties it to the strategy it is created under.
    with dist.scope():
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0))
    dist.prepare(model)

    _trim_history(out / "history.csv", done)
    monitor = arguments.get("monitor", "val_loss")
    past = [row[monitor] for row in _read_history(out)]
    stopper = _ResumableEarlyStopping(
        past, monitor=monitor, patience=patience, verbose=int(verbose > 0)
    )
    stopper.set_model(model)
    stopper.on_train_begin()
    stopped = bool(model.stop_training)
    model.stop_training = False
    fitted = stopped or done >= epochs
    if fitted:
        _say(verbose, f"{out}: training had finished; evaluating.")
    elif done:
        _say(verbose, f"Resuming {out}: {done} of {epochs} epochs done.")
    elif saved is not None:
        _say(verbose, f"Restarting {out}: no epoch had finished.")
    if dist.multi_worker and not fitted:
        _agree_on_data(dist, model, len(train_part), len(validation), steps)
    if not fitted:
        best_so_far = _first_best(past, monitor)
        with translate_cluster_errors(dist):
            model.fit(
                dist.distribute(train_ds),
                validation_data=dist.distribute(validation_ds),
                epochs=epochs,
                shuffle=False,  # the dataset reshuffles itself every epoch
                verbose=verbose,
                callbacks=[
                    # Order matters at each epoch's end: the row is logged
                    # before the backup, so a kill in between reruns a
                    # logged epoch (its row is dropped on resume) rather
                    # than losing one.
                    EpochRecord(),
                    stopper,
                    _BestModel(
                        out / "best.keras",
                        monitor,
                        None if best_so_far is None else past[best_so_far],
                    ),
                    keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
                    *(_tensorboard(out / "logs", verbose) if dist.is_chief else []),
                    # Every worker backs up into its own folder: the same
                    # weights, and no shared disk needed to resume.
                    keras.callbacks.BackupAndRestore(
                        str(out / "backup"),
                        double_checkpoint=True,
                        delete_checkpoint=False,
                    ),
                ],
            )

    if not (out / "best.keras").is_file():
        raise RuntimeError(
            f"no epoch reached a finite validation loss (see {out / 'history.csv'}); "
            "try a lower learning rate"
        )
    rows = _read_history(out)
    best = _first_best([row[monitor] for row in rows], monitor)
    shipped, refitted = out / "best.keras", None
    if arguments.get("refit"):
        shipped, refitted = _refit(
            task, arguments, full, out, dist, best + 1, pretraining is not None, verbose
        )
    if dist.is_chief:
        # The test score is taken from the very file that is shipped.
        copy_atomically(shipped, out / "model.keras")
        final = keras.saving.load_model(out / "model.keras", compile=False)
    else:
        final = keras.saving.load_model(out / "best.keras", compile=False)
    true, predicted = _predict(final, test, batch_size=256)
    report = classification_report(true, predicted, test.class_names)

    history = _history_series(rows)
    metrics = {
        "task": task,
        "corpus": corpus,
        "test": report,
        "epochs_run": len(rows),
        "best_epoch": None if best is None else best + 1,
        "monitor": monitor,
        # Whether early stopping fired, as Keras printed (also when it fires
        # at the last epoch), not merely whether fewer epochs ran.
        "stopped_early": _stops_early(rows, patience, monitor),
        "train_seconds": float(sum(filter(None, history.get("seconds", [])))),
        "pretraining": pretraining,
        "refit": refitted,
        "examples": {
            "train": len(train_part),
            "validation": len(validation),
            "test": len(test),
        },
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
        # Only the chief writes the run; this worker's state goes.
        shutil.rmtree(out, ignore_errors=True)
        return metrics
    plot_history(history, out / "curves.png")
    plot_confusion(
        report["confusion_matrix"], report["class_names"], out / "confusion.png"
    )
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(out / "backup", ignore_errors=True)
    return metrics


def evaluate(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str] | None,
    *,
    corpus: str | None = None,
    split: str = "test",
    max_per_class: int | None = None,
    remove: Iterable[str] = (),
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """Scores a saved `.keras` classifier on a corpus split.

    Args:
        model_path: a `.keras` file holding a `TextClassifier`.
        data: the data folder, archive or table.
        corpus: the corpus to read; by default the one whose classes the
            model predicts (see `infer_corpus`).
        split: "test", "train", or another split a folder or table has.
        max_per_class: at most this many texts per class.
        remove: for 20 Newsgroups, parts of each post to strip.
        batch_size: texts per prediction batch.
        seed: the loader's seed (the order of the texts; the scores do not
            depend on it).

    Returns:
        `classification_report` of the split, plus "model", "corpus" and
        "split".

    Raises:
        ValueError: if the model file cannot be loaded (`ModelFileError`),
            the corpus cannot be inferred, or its class names differ from
            the model's.
    """
    model = load_model_file(model_path)
    names = tuple(getattr(model, "class_names", ()))
    if not names:
        raise ValueError(f"{model_path} is not a TextClassifier (no class_names)")
    corpus = corpus or infer_corpus(names)
    dataset = _load_split(corpus, data, split, max_per_class, seed, remove, names)
    if tuple(dataset.class_names) != names:
        raise ValueError(
            f"the {corpus!r} {split} split has classes {list(dataset.class_names)} "
            f"but the model {model_path} predicts {list(names)}"
        )
    true, predicted = _predict(model, dataset, batch_size)
    report = classification_report(true, predicted, names)
    return {"model": str(model_path), "corpus": corpus, "split": split, **report}


def infer_corpus(class_names: Sequence[str]) -> str:
    """The corpus of the architecture whose classes are `class_names`.

    Args:
        class_names: a model's class names, in order.

    Returns:
        e.g. "imdb" for ("neg", "pos"), "20newsgroups" for the 20 groups.

    Raises:
        ValueError: if no architecture has exactly these classes.
    """
    for architecture in ARCHITECTURES.values():
        if tuple(architecture.config["class_names"]) == tuple(class_names):
            return architecture.corpus
    raise ValueError(
        f"cannot tell the corpus from the classes {list(class_names)}; "
        "name it (corpus=..., --corpus)"
    )


# ---------------------------------------------------------------- callbacks


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that carries on counting from the logged epochs.

    Replaying the logged values of `monitor` through Keras's own rule
    restores `best`, `best_epoch` and `wait` exactly as an uninterrupted run
    would have them.
    """

    def __init__(self, past: Sequence[float], monitor: str, **kwargs: Any) -> None:
        kwargs.setdefault("mode", MONITORS[monitor])
        super().__init__(monitor=monitor, **kwargs)
        self.past = list(past)

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        for epoch, value in enumerate(self.past):
            self.on_epoch_end(epoch, {self.monitor: value})


class _BestModel(keras.callbacks.Callback):
    """Saves the whole model whenever `monitor` beats the best so far.

    Unlike `ModelCheckpoint(save_best_only=True)` it writes a temporary file
    and renames it, so a kill mid-write never leaves a broken best.keras;
    and it never takes a NaN loss as the best.
    """

    def __init__(self, path: Path, monitor: str, best: float | None) -> None:
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float((logs or {}).get(self.monitor, math.nan))
        if math.isfinite(value) and (
            self.best is None or _better(value, self.best, self.monitor)
        ):
            self.best = value
            with replaced_atomically(self.path) as partial:
                self.model.save(partial)


# ------------------------------------------------------------ several workers


def _agree_on_state(
    dist: Distribution,
    out: Path,
    mistake: ValueError | None,
    saved: dict | None,
    finished: dict | None,
    epochs: int,
    patience: int,
    verbose: int,
    monitor: str = "val_loss",
) -> str:
    """Brings every worker to the same resume point before anything trains.

    A collective: every worker calls it once, with its own folder's state.
    A worker that refused to start makes all of them fail (rather than the
    others waiting for it). If the chief's run is finished, or has nothing
    left to train, the others have nothing to do. Otherwise all resume from
    the fewest epochs any worker backed up: a kill between two workers'
    end-of-epoch backups leaves them one epoch apart, and the one ahead
    still holds that epoch's state in its previous backup.

    Returns:
        "stop" when this worker is done (the chief then returns its
        finished run; it only evaluates when it has nothing left to train
        but has not finished), else "go".

    Raises:
        ValueError: `mistake`, this worker's own refusal.
        ClusterError: if another worker refused, or the backups cannot be
            brought to one epoch.
    """
    done, previous, stopped = 0, -1, False
    if saved is not None and mistake is None:
        done, previous = _backup_epochs(out / "backup")
        _trim_history(out / "history.csv", done)
        stopped = _stops_early(_read_history(out), patience, monitor)
    rows = dist.gather(
        [
            dist.is_chief,
            mistake is not None,
            saved is not None and finished is not None,
            stopped or done >= epochs,
            done,
            previous,
        ]
    )
    if mistake is not None:
        raise mistake
    if any(row[1] for row in rows):
        raise ClusterError(
            "another worker refused to start (its output says why); fix it and "
            "rerun the same command on every worker"
        )
    chief = next(row for row in rows if row[0])
    if chief[2]:
        return "stop"
    if chief[3]:
        return "go" if dist.is_chief else "stop"
    target = int(min(row[4] for row in rows))
    if any(target not in (row[4], row[5]) for row in rows):
        held = sorted({int(row[4]) for row in rows})
        raise ClusterError(
            f"the workers' backups hold different numbers of finished epochs "
            f"({held}) and cannot be brought to one. A worker without its "
            "folder (e.g. a replaced machine) needs a copy of the chief's "
            "run.json, vocabulary.txt, history.csv and backup/ in its "
            "workertemp_<index> folder of the run folder; or pass --overwrite "
            "(overwrite=True) on every worker to start afresh"
        )
    if done != target:
        _restore_previous_backup(out / "backup")
        _trim_history(out / "history.csv", target)
        _say(
            verbose,
            f"{dist.task.name}: back to epoch {target}, where the other "
            "workers' backups stopped.",
        )
    return "go"


def _agree_on_data(
    dist: Distribution,
    model: keras.Model,
    train_size: int,
    validation_size: int,
    steps: int,
) -> None:
    """Fails unless every worker has the same vocabulary and data sizes.

    Workers shard batches of a pipeline each runs in full: on different
    data (another corpus copy, another `--data`), the parts would not add
    up to batches, and the step counts might not even match.
    """
    words = "\n".join(str(w) for w in model.vectorizer.get_vocabulary(False))
    mine = [zlib.crc32(words.encode("utf-8")), train_size, validation_size, steps]
    rows = dist.gather(mine)
    if len(set(rows)) > 1:
        seen = "; ".join(
            f"vocabulary crc32 {int(r[0])}, {int(r[1])} training and {int(r[2])} "
            f"validation texts, {int(r[3])} steps"
            for r in rows
        )
        raise ClusterError(
            "the workers read different data; every machine needs the same "
            f"corpus and the same command ({seen})"
        )


def _worker_stub(arguments: dict, dist: Distribution) -> dict:
    """What a non-chief worker returns when it had nothing to train."""
    return {
        "task": arguments["task"],
        "corpus": arguments["corpus"],
        "arguments": arguments,
        "distribution": dist.describe(),
    }


def _backup_epochs(backup: Path) -> tuple[int, int]:
    """Finished epochs in the backup and in its previous copy (-1: none)."""
    previous = read_json(backup / "training_metadata.json.bkp")
    return _backup_epoch(backup), int(previous["epoch"]) if previous else -1


def _restore_previous_backup(backup: Path) -> None:
    """Makes BackupAndRestore's previous copy (`double_checkpoint`) current."""
    # The weights first: the metadata's epoch is what says which state it is.
    for name in ("latest.weights.h5", "training_metadata.json"):
        copy_atomically(backup / f"{name}.bkp", backup / name)


def _stops_early(rows: list[dict[str, float]], patience: int, monitor: str) -> bool:
    """Whether early stopping had stopped after these logged epochs."""
    stopper = _ResumableEarlyStopping(
        [row[monitor] for row in rows], monitor=monitor, patience=patience
    )
    # The replay only sets `stop_training`; no model is needed for it.
    stopper.set_model(types.SimpleNamespace(stop_training=False))
    stopper.on_train_begin()
    return bool(stopper.model.stop_training)


# ----------------------------------------------------------------- helpers


def _run_arguments(task: str, data: Any, **kw: Any) -> dict:
    """Validated arguments, JSON-normalized so they compare with run.json."""
    if task not in ARCHITECTURES:
        raise ValueError(f"unknown task {task!r}; available: {sorted(ARCHITECTURES)}")
    architecture = ARCHITECTURES[task]
    for name in ("epochs", "batch_size"):
        if int(kw[name]) < 1:
            raise ValueError(f"{name} must be positive, got {kw[name]}")
    if int(kw["patience"]) < 0:
        raise ValueError(f"patience must be >= 0, got {kw['patience']}")
    if kw["monitor"] not in MONITORS:
        raise ValueError(
            f"monitor must be one of {sorted(MONITORS)}, got {kw['monitor']!r}"
        )
    if not 0.0 < kw["validation_fraction"] < 1.0:
        raise ValueError(
            f"validation_fraction must lie in (0, 1), got {kw['validation_fraction']}"
        )
    rate = kw["learning_rate"] or architecture.learning_rate
    if rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {rate}")
    corpus = kw["corpus"] or architecture.corpus
    remove = sorted(set(kw["remove"]))
    if remove and corpus != "20newsgroups":
        raise ValueError(f"remove={remove} only applies to 20newsgroups, not {corpus}")
    unknown = set(remove) - set(REMOVABLE)
    if unknown:
        raise ValueError(f"remove takes {REMOVABLE}, got {sorted(unknown)}")
    overrides = dict(kw["overrides"] or {})
    reserved = {"class_names", "vocabulary"} & set(overrides)
    if reserved:
        raise ValueError(
            f"overrides cannot set {sorted(reserved)}: they come from the data"
        )
    arguments = {
        "task": task,
        "corpus": corpus,
        # Resolved, so that "data" and "./data" are the same run.
        "data": None if data is None else str(Path(data).expanduser().resolve()),
        "epochs": int(kw["epochs"]),
        "batch_size": int(kw["batch_size"]),
        "learning_rate": float(rate),
        "validation_fraction": float(kw["validation_fraction"]),
        "patience": int(kw["patience"]),
        "seed": int(kw["seed"]),
        "max_per_class": kw["max_per_class"],
        "test_max_per_class": kw["test_max_per_class"],
        "remove": remove,
        "overrides": overrides,
    }
    if kw["monitor"] != "val_loss":
        # Only when not the default, so earlier runs (which all monitored
        # val_loss, and whose run.json has no such key) still resume.
        arguments["monitor"] = kw["monitor"]
    epochs_lm = int(kw["pretrain_epochs"])
    if epochs_lm < 0:
        raise ValueError(f"pretrain_epochs must be >= 0, got {epochs_lm}")
    if epochs_lm:
        # Only when used, so runs from before pretraining existed still
        # resume: their run.json has no such keys.
        if kw["pretrain_learning_rate"] <= 0:
            raise ValueError(
                "pretrain_learning_rate must be positive, got "
                f"{kw['pretrain_learning_rate']}"
            )
        arguments["pretrain_epochs"] = epochs_lm
        arguments["pretrain_learning_rate"] = float(kw["pretrain_learning_rate"])
    if kw["refit"]:
        arguments["refit"] = True  # only when set, as above
    # Tuples become lists, as they will when read back from run.json.
    return json.loads(json.dumps(arguments))


def _pretrain(
    model: Any,
    arguments: dict,
    data: Any,
    train_part: TextClassificationData,
    validation: TextClassificationData,
    out: Path,
    done: int,
    seed: int,
    verbose: int,
) -> dict:
    """Language-model pretraining before the first epoch, done once per run.

    Its result (the whole classifier's weights) is kept in out, so a resume
    after it skips it; once an epoch has finished, the backup holds newer
    weights and this only reports the stage's record.
    """
    weights, record = out / "pretrained.weights.h5", out / "pretraining.json"
    if record.is_file() and weights.is_file():
        if not done:
            model.load_weights(weights)
            _say(verbose, f"Pretrained encoder read from {weights}.")
        return read_json(record)
    # A sliced run (max_per_class) gets as many unlabeled texts as labeled
    # ones, not all 50,000 of IMDB's.
    cap = None if arguments["max_per_class"] is None else len(train_part)
    extra = load_unlabeled(arguments["corpus"], data, max_texts=cap)
    unlabeled = len(extra)
    texts = list(train_part.texts) + extra
    _say(
        verbose,
        f"Pretraining the encoder as a language model on {len(texts)} texts "
        f"({unlabeled} unlabeled) for {arguments['pretrain_epochs']} epoch(s).",
    )
    started = time.perf_counter()
    history = pretrain_encoder(
        model,
        texts,
        epochs=arguments["pretrain_epochs"],
        batch_size=arguments["batch_size"],
        learning_rate=arguments["pretrain_learning_rate"],
        validation_texts=validation.texts[:_LM_VALIDATION_TEXTS],
        seed=seed,
        verbose=verbose,
    ).history
    result = {
        "epochs": arguments["pretrain_epochs"],
        "texts": len(texts),
        "unlabeled_texts": unlabeled,
        "loss": [float(v) for v in history["loss"]],
        "val_loss": [float(v) for v in history.get("val_loss", [])],
        "seconds": time.perf_counter() - started,
    }
    model.save_weights(weights)
    write_json(record, result)  # last: marks the stage as finished
    return result


def _refit(
    task: str,
    arguments: dict,
    full: TextClassificationData,
    out: Path,
    dist: Distribution,
    epochs: int,
    pretrained: bool,
    verbose: int,
) -> tuple[Path, dict]:
    """Trains again on all of `full` for `epochs`, the best epoch count."""
    vocabulary = _read_vocabulary(out)
    overrides = {**arguments["overrides"], "class_names": full.class_names}
    path, record = refit_on_all_texts(
        lambda: get(task, **overrides, vocabulary=vocabulary),
        full,
        out / "refit",
        epochs=epochs,
        batch_size=arguments["batch_size"],
        learning_rate=arguments["learning_rate"],
        decay_epochs=arguments["epochs"],
        start=out / "pretrained.weights.h5" if pretrained else None,
        dist=dist,
        seed=arguments["seed"],
        verbose=verbose,
    )
    return path, record


def _load_split(
    corpus: str,
    data: Any,
    split: str,
    max_per_class: int | None,
    seed: int,
    remove: Iterable[str],
    class_names: Sequence[str] | None = None,
) -> TextClassificationData:
    kwargs: dict[str, Any] = {"max_per_class": max_per_class, "seed": seed}
    remove = tuple(sorted(set(remove)))
    if remove:
        kwargs["remove"] = remove
    # A folder or table names its classes after what it holds; a test split
    # lacking one class would shift every label after it. Named corpora
    # have fixed classes.
    if class_names is not None and corpus in ("folder", "table"):
        kwargs["class_names"] = list(class_names)
    return load_corpus(corpus, data, split, **kwargs)


def _batches(
    data: TextClassificationData,
    batch_size: int,
    length: int,
    shuffle: bool = True,
    seed: int | None = None,
) -> tuple[tf.data.Dataset, int]:
    return counted_bucketed_dataset(
        data.texts, data.labels, batch_size, shuffle, seed, max_length=length
    )


def _predict(
    model: keras.Model, data: TextClassificationData, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted class ids, in the order the batches came."""
    length = getattr(model, "sequence_length", 400)
    ds = bucketed_dataset(
        data.texts, data.labels, batch_size, shuffle=False, max_length=length
    )
    true, predicted = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for texts, labels in ds:
        p = np.asarray(model.predict_on_batch(texts))
        # A binary head gives P(class 1) only; > 0.5 matches the argmax of
        # predict_proba's [1 - p, p] (ties go to class 0 in both).
        ids = (p[:, 0] > 0.5) if p.shape[1] == 1 else p.argmax(axis=1)
        predicted.append(ids.astype(np.int64))
        true.append(labels.numpy().astype(np.int64))
    return np.concatenate(true), np.concatenate(predicted)


def _backup_epoch(backup: Path) -> int:
    """Finished epochs recorded by BackupAndRestore (0 without a backup)."""
    info = read_json(backup / "training_metadata.json")
    return int(info["epoch"]) if info else 0


def _trim_history(path: Path, done: int) -> None:
    """Keeps only the complete rows of the `done` epochs the backup holds.

    A kill between logging an epoch and backing it up leaves a row for an
    epoch that is about to run again, and a kill mid-write a partial line
    that the next row would be glued to.
    """
    if not path.is_file():
        return
    data = path.read_bytes()
    # Bytes, split at "\n" only: CSVLogger ends lines with "\r\n", which
    # stay as they are. The last piece is b"" or a partial line.
    lines = data.split(b"\n")[:-1]
    if not lines:
        path.unlink()  # not even a whole header: CSVLogger writes a new one
        return
    kept = [lines[0]] + [row for row in lines[1:] if int(row.split(b",")[0]) < done]
    trimmed = b"".join(line + b"\n" for line in kept)
    if trimmed != data:
        write_bytes(path, trimmed)


def _read_history(out: Path) -> list[dict[str, float]]:
    """history.csv's rows as numbers, in epoch order."""
    path = out / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = [
            {
                **{key: _number(value) for key, value in raw.items()},
                "epoch": int(raw["epoch"]),
            }
            for raw in csv.DictReader(f)
        ]
    return sorted(rows, key=lambda row: row["epoch"])


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan  # CSVLogger writes "NA" for a missing value


def _history_series(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    keys = sorted({key for row in rows for key in row} - {"epoch"})
    series = {"epoch": [row["epoch"] + 1 for row in rows]}
    # NaN is not JSON; None is.
    for key in keys:
        series[key] = [
            None if not math.isfinite(v := row.get(key, math.nan)) else v
            for row in rows
        ]
    return series


# What a run may choose its epoch by, and which way is better.
MONITORS = {"val_loss": "min", "val_accuracy": "max"}


def _better(value: float, best: float, monitor: str) -> bool:
    return value < best if MONITORS[monitor] == "min" else value > best


def _first_best(values: Sequence[float], monitor: str) -> int | None:
    """The index of the first best finite value (NaN is never the best)."""
    best = None
    for i, value in enumerate(values):
        if math.isfinite(value) and (
            best is None or _better(value, values[best], monitor)
        ):
            best = i
    return best


def _read_vocabulary(out: Path) -> list[str] | None:
    path = out / "vocabulary.txt"
    if not path.is_file():
        return None  # killed before it was written: adapt again
    # Not splitlines(): it also splits at U+2028 and friends, which may sit
    # inside a token. Tokens never hold "\n" (the vectorizer splits there).
    return path.read_text(encoding="utf-8").split("\n")


def _write_vocabulary(out: Path, words: Sequence[str]) -> None:
    write_text(out / "vocabulary.txt", "\n".join(str(w) for w in words))


def _clear_run(out: Path) -> None:
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    if out.is_dir():
        for partial in out.glob("*.partial*"):  # from an interrupted write
            partial.unlink()
    for name in _RUN_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


def _tensorboard(logs: Path, verbose: int) -> list[keras.callbacks.Callback]:
    # tf.summary needs the tensorboard package, which TensorFlow no longer
    # installs; training must not fail for want of its logs.
    if importlib.util.find_spec("tensorboard") is None:
        _say(verbose, "tensorboard is not installed: no TensorBoard logs written.")
        return []
    return [keras.callbacks.TensorBoard(str(logs), write_graph=False)]


def _say(verbose: int, message: str) -> None:
    if verbose:
        print(message, flush=True)
