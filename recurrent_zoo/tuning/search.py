"""Running a resumable hyperparameter search and reporting on it.

`run_search` ties the pieces together: one vocabulary for every trial,
length-bucketed batches, a keras-tuner tuner chosen by name (Hyperband by
default), the devices trials run on, then a table of the trials, the best
hyperparameters, a plot of validation accuracy against hidden size and the
best model retrained and saved.

Resuming. The tuner never overwrites a project unless asked, so running the
same search again continues it. keras-tuner records each trial in
`trial_<id>/trial.json` when the oracle creates it (status RUNNING) and
again when it ends (COMPLETED, FAILED or INVALID), and lists the running
trials in `oracle.json`; on reload it puts those back in its retry queue,
so a trial interrupted by a kill runs again, under the same id and with the
same hyperparameters, from its first epoch (a Hyperband continuation from
its parent's checkpoint again), and completed trials are left alone. The
oracles (`oracles.py`) also write their files atomically (a kill cannot
leave half a JSON file) and reconcile the two windows where `trial.json`
and `oracle.json` disagree: a trial that ended just before the kill is not
run again, and a trial created but not yet recorded in `oracle.json` (it
never started) is dropped, its id reused. The tuners are built in
`tuners.py`, the report of the trials in `report.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from recurrent_zoo.data import TextClassificationData
from recurrent_zoo.data.batching import bucketed_dataset
from recurrent_zoo.distribute import (
    DevicePlan,
    distribute_text_dataset,
    role,
    trial_devices,
)
from recurrent_zoo.run_files import read_json, write_json
from recurrent_zoo.training.callbacks import save_model
from recurrent_zoo.training.run import describe_changes
from recurrent_zoo.training.tasks import task_for
from recurrent_zoo.tuning.hypermodel import TextClassifierHyperModel, build_vocabulary
from recurrent_zoo.tuning.report import (
    TrialRecord,
    format_table,
    plot_val_accuracy,
    trial_records,
    write_results,
)
from recurrent_zoo.tuning.tuners import OBJECTIVE, TUNERS, make_tuner

__all__ = [
    "OBJECTIVE",
    "TUNERS",
    "SearchResult",
    "TrialRecord",
    "format_table",
    "load_task_data",
    "make_tuner",
    "plot_val_accuracy",
    "run_search",
    "trial_records",
]

SETTINGS_FILE = "search_settings.json"


def load_task_data(
    task: str,
    data: str | os.PathLike[str],
    max_per_class: int | None = None,
    validation_fraction: float = 0.2,
    seed: int = 0,
    corpus: str | None = None,
    remove: Sequence[str] = (),
) -> tuple[TextClassificationData, TextClassificationData]:
    """The task's training split, with a stratified validation part carved out.

    The test split is never read: a search that chose its model on test
    data would report an optimistic accuracy.

    Args:
        task: a key of `ARCHITECTURES`.
        data: the data folder or archive, or the user's folder or table.
        max_per_class: at most this many training texts per class (before
            the validation part is taken out).
        validation_fraction: the share of each class held out.
        seed: the order and the split's seed.
        corpus: a name of `recurrent_zoo.data.CORPORA` ("folder" and
            "table" read the user's own texts); None loads the task's.
        remove: for 20 Newsgroups, parts of each post to strip.

    Returns:
        `(train, validation)`.

    Raises:
        ValueError: on an unknown task, a fraction outside (0, 1), or the
            loader's own errors (e.g. a class with a single text).
        FileNotFoundError: if `data` does not exist.
    """
    kind = task_for(task)
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must lie in (0, 1), got {validation_fraction}"
        )
    full = kind.load_split(
        corpus or kind.corpus,
        data,
        "train",
        max_per_class=max_per_class,
        seed=seed,
        remove=remove,
    )
    return full.split(validation_fraction, seed=seed)


@dataclass
class SearchResult:
    """What `run_search` produced.

    Attributes:
        role: "standalone", "chief" or "worker" (a worker only runs trials;
            the other fields are then empty).
        devices: where this process ran its trials.
        project_dir: the keras-tuner project folder (results are written
            there too).
        trials: every trial, in id order.
        best: the trial with the best validation accuracy.
        best_hyperparameters: the best trial's values and model arguments.
        best_model_path: the retrained best model, or None.
        retrained_val_accuracy: its validation accuracy (None when the
            validation texts were trained on or nothing was retrained).
        plot_path: the validation accuracy against hidden size plot.
        resumed: ids of completed trials found when the run started.
    """

    role: str
    devices: DevicePlan
    project_dir: Path
    trials: list[TrialRecord] = field(default_factory=list)
    best: TrialRecord | None = None
    best_hyperparameters: dict[str, Any] = field(default_factory=dict)
    best_model_path: Path | None = None
    retrained_val_accuracy: float | None = None
    plot_path: Path | None = None
    resumed: list[str] = field(default_factory=list)


def _data_digest(*parts: TextClassificationData) -> str:
    digest = hashlib.sha256()
    for part in parts:
        for text in part.texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(np.asarray(part.labels, dtype="<i4").tobytes())
    return digest.hexdigest()


def _check_settings(path: Path, settings: dict[str, Any], write: bool) -> None:
    # A project resumed with another space, data or tuner would mix trials
    # that are not comparable (and keras-tuner would not notice).
    previous = read_json(path)
    if previous is not None:
        if previous != settings:
            raise ValueError(
                f"{path.parent} holds a search with other settings "
                f"({describe_changes(previous, settings)}); rerun with the same "
                "arguments to resume it, or pass --overwrite / another "
                "--project-name"
            )
    elif write:
        write_json(path, settings)


def _run_trials(
    search,
    train,
    validation,
    *,
    batch_size: int,
    length: int,
    epochs: int,
    seed: int,
    strategy,
    verbose: int,
) -> None:
    """The tuner's trials, over length-bucketed batches (split over
    `strategy`'s replicas)."""
    train_ds = _batches(train.texts, train.labels, batch_size, length, strategy, seed)
    val_ds = _batches(
        validation.texts, validation.labels, batch_size, length, strategy, None
    )
    with warnings.catch_warnings():
        # Bucketed datasets have no known length, so Keras warns at the end
        # of every first epoch that the data "ran out"; it is expected.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        search.search(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            # The dataset reshuffles itself every epoch; fit's own can't.
            shuffle=False,
            verbose=verbose,
        )


def run_search(
    task: str,
    train: TextClassificationData,
    validation: TextClassificationData,
    directory: str | os.PathLike[str],
    *,
    tuner: str = "hyperband",
    max_trials: int = 10,
    epochs: int = 3,
    batch_size: int = 32,
    seed: int = 0,
    project_name: str | None = None,
    space: dict[str, Any] | None = None,
    fixed: dict[str, Any] | None = None,
    retrain: bool = True,
    retrain_on_validation: bool = False,
    overwrite: bool = False,
    devices: DevicePlan | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = print,
) -> SearchResult:
    """Searches hidden sizes (and the rest of the space) for a task.

    Runs standalone, or as keras-tuner's chief or a worker when the
    `KERASTUNER_*` variables say so (see `distributed.role`). Only a
    standalone search or the chief writes the results, into the project
    folder: `trials.json`, `trials.csv`, `best_hyperparameters.json`,
    `val_accuracy_vs_units.png` and `best_model.keras`.

    Args:
        task: "sentiment" or "topic" (`ARCHITECTURES`).
        train: the texts trials train on (the vocabulary comes from them).
        validation: the texts trials are scored on.
        directory: where projects are kept.
        tuner: "hyperband", "bayesian" or "random".
        max_trials: the most trials.
        epochs: epochs per trial (Hyperband's maximum).
        batch_size: examples per batch.
        seed: seeds the oracle, the trials and the batch order.
        project_name: the project's folder; default "<task>_<tuner>".
        space: `TextClassifierHyperModel` choices (`units`, `max_layers`,
            `embedding_dims`, `dropout_range`, `learning_rates`).
        fixed: `TextClassifier` arguments held fixed in every trial.
        retrain: retrain the best hyperparameters and save the model.
        retrain_on_validation: retrain on train + validation.
        overwrite: discard an existing project instead of resuming it.
        devices: where trials run; default: all of this machine's GPUs
            (`trial_devices`).
        verbose: 0 silent; 1 keras-tuner's trial display with a progress bar
            per epoch; 2 the display with one line per epoch.
        log: receives the progress lines and the summary.

    Returns:
        A `SearchResult`.

    Raises:
        ValueError: on bad arguments, a worker asked to overwrite, or a
            project that holds a search with other settings.
        RuntimeError: if no trial completed.
    """
    process_role = role()
    if overwrite and process_role == "worker":
        raise ValueError("only the chief may overwrite a distributed search")
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {TUNERS}, got {tuner!r}")
    fixed = dict(fixed or {})
    hypermodel = TextClassifierHyperModel(
        task, class_names=train.class_names, **(space or {}), **fixed
    )
    devices = devices or trial_devices()
    _log_role(process_role, devices, log)
    # One vocabulary for every trial (and every process of a distributed
    # search: adapting is deterministic for the same texts).
    hypermodel.vocabulary = build_vocabulary(
        train.texts, int(hypermodel.prebuilt_arguments()["vocabulary_size"])
    )
    # The batches below may be distributed, and then cannot be adapted on.
    hypermodel.adapt_texts = list(train.texts)
    project_dir = Path(directory) / (project_name or f"{task}_{tuner}")
    settings = _search_settings(
        hypermodel, tuner, epochs, batch_size, seed, fixed, train, validation
    )
    if not overwrite:
        _check_settings(project_dir / SETTINGS_FILE, settings, write=False)

    strategy = devices.strategy()
    search = make_tuner(
        hypermodel,
        tuner,
        directory=directory,
        project_name=project_dir.name,
        max_trials=max_trials,
        epochs=epochs,
        seed=seed,
        distribution_strategy=strategy,
        overwrite=overwrite,
        log=log,
    )
    result = SearchResult(process_role, devices, project_dir)
    if process_role != "worker":
        _check_settings(project_dir / SETTINGS_FILE, settings, write=True)
        result.resumed = _completed_trials(search.oracle, project_dir, log)

    length = int(hypermodel.prebuilt_arguments()["sequence_length"])
    _run_trials(
        search,
        train,
        validation,
        batch_size=batch_size,
        length=length,
        epochs=epochs,
        seed=seed,
        strategy=strategy,
        verbose=verbose,
    )
    if process_role == "worker":
        log(f"worker {search.tuner_id}: no trials left; the chief writes the results")
        return result

    write_results(result, search, hypermodel, task, tuner, epochs, log)
    if retrain:
        result.best_model_path, result.retrained_val_accuracy = _retrain(
            hypermodel,
            search.oracle.get_trial(result.best.trial_id).hyperparameters,
            train,
            validation,
            epochs=result.best_hyperparameters["epochs"],
            batch_size=batch_size,
            seed=seed,
            strategy=strategy,
            include_validation=retrain_on_validation,
            path=project_dir / "best_model.keras",
            verbose=verbose,
            log=log,
        )
    return result


def _log_role(process_role: str, devices: DevicePlan, log: Callable) -> None:
    if process_role == "chief":
        log(
            "chief process: serves trials to the workers on "
            f"{os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']}; retrains on "
            f"{devices.describe()}"
        )
    else:
        log(f"{process_role} process; trials run on {devices.describe()}")


def _completed_trials(oracle: Any, project_dir: Path, log: Callable) -> list[str]:
    """The ids of the trials a resumed search has already completed."""
    completed = sorted(
        (i for i, t in oracle.trials.items() if t.status == "COMPLETED"), key=int
    )
    if oracle.trials:
        again = sorted(oracle._retry_queue, key=int)
        log(
            f"resuming {project_dir}: {len(completed)} trial(s) "
            f"completed, interrupted trial(s) to re-run: {again or 'none'}"
        )
    return completed


def _search_settings(
    hypermodel: TextClassifierHyperModel,
    tuner: str,
    epochs: int,
    batch_size: int,
    seed: int,
    fixed: dict[str, Any],
    train: TextClassificationData,
    validation: TextClassificationData,
) -> dict[str, Any]:
    """What must not change between the runs of one search.

    `max_trials` is left out: raising it continues a finished search.
    """
    settings = {
        "task": hypermodel.task,
        "tuner": tuner,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "search_space": hypermodel.search_space(),
        "fixed": fixed,
        "class_names": train.class_names,
        "train_examples": len(train),
        "validation_examples": len(validation),
        "data_sha256": _data_digest(train, validation),
    }
    # As a reload would read it (JSON has lists, not tuples).
    return json.loads(json.dumps(settings))


def _batches(
    texts: Sequence[str],
    labels: np.ndarray,
    batch_size: int,
    length: int,
    strategy: Any,
    seed: int | None,
) -> Any:
    """Length-bucketed batches, shuffled when a seed is given, distributed."""
    dataset = bucketed_dataset(
        texts,
        labels,
        batch_size,
        shuffle=seed is not None,
        seed=seed,
        max_length=length,
    )
    return distribute_text_dataset(strategy, dataset)


def _retrain(
    hypermodel: TextClassifierHyperModel,
    hp: kt.HyperParameters,
    train: TextClassificationData,
    validation: TextClassificationData,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    strategy: Any,
    include_validation: bool,
    path: Path,
    verbose: int,
    log: Callable,
) -> tuple[Path, float | None]:
    """Trains the best architecture afresh, saves it as a `.keras` file and
    logs where, with its validation accuracy unless it trained on that."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    texts, labels = list(train.texts), np.asarray(train.labels)
    if include_validation:
        texts += list(validation.texts)
        labels = np.concatenate([labels, validation.labels])
    length = int(hypermodel.prebuilt_arguments()["sequence_length"])
    if strategy is None:
        model = hypermodel.build(hp)
    else:
        with strategy.scope():
            model = hypermodel.build(hp)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(
            _batches(texts, labels, batch_size, length, strategy, seed),
            epochs=max(1, int(epochs)),
            shuffle=False,
            verbose=0 if verbose == 0 else 2,
        )
    accuracy = None
    if not include_validation:
        val_ds = _batches(
            validation.texts, validation.labels, batch_size, length, strategy, None
        )
        accuracy = float(
            model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"]
        )
    save_model(model, path)  # a kill never leaves a truncated model
    note = (
        "trained on validation too"
        if accuracy is None
        else f"{OBJECTIVE} {accuracy:.4f}"
    )
    log(f"best model retrained ({note}) and saved to {path}")
    return path, accuracy
