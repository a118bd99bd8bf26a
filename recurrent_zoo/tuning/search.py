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
oracles here also write their files atomically (a kill cannot leave half a
JSON file) and reconcile the two windows where `trial.json` and
`oracle.json` disagree: a trial that ended just before the kill is not run
again, and a trial created but not yet recorded in `oracle.json` (it never
started) is dropped, its id reused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from recurrent_zoo.data import TextClassificationData, load_corpus
from recurrent_zoo.data.batching import bucketed_dataset
from recurrent_zoo.models import ARCHITECTURES
from recurrent_zoo.run_files import replaced_atomically, write_json, write_text
from recurrent_zoo.tuning.distributed import (
    DevicePlan,
    PatientOracleClient,
    distribute_text_dataset,
    role,
    trial_devices,
)
from recurrent_zoo.tuning.hypermodel import TextClassifierHyperModel, build_vocabulary

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

TUNERS: tuple[str, ...] = ("hyperband", "bayesian", "random")
OBJECTIVE = "val_accuracy"
SETTINGS_FILE = "search_settings.json"


class _DurableOracle:
    """Oracle mixin: atomic writes, and a reload that survives any kill."""

    # Trials the last reload forgot (see `_reconcile`).
    dropped_trials: tuple[str, ...] = ()

    def save(self) -> None:
        write_json(self._get_oracle_fname(), self.get_state(), indent=None)

    def _save_trial(self, trial: kt.engine.trial.Trial) -> None:
        trial_dir = self._get_trial_dir(trial.trial_id)
        write_json(
            os.path.join(trial_dir, "trial.json"), trial.get_state(), indent=None
        )

    def end_trial(self, trial: kt.engine.trial.Trial) -> None:
        # A worker that kept training through a restart of the chief reports
        # a trial the reloaded chief had queued to run again: it is done.
        if trial.trial_id in self._retry_queue:
            self._retry_queue.remove(trial.trial_id)
        # keras-tuner's display times trials from their start in this
        # process; one started before a restart would fail its lookup.
        display, now = self._display, datetime.now()
        display.trial_start.setdefault(trial.trial_id, now)
        display.trial_number.setdefault(trial.trial_id, len(self.trials))
        display.search_start = display.search_start or now
        super().end_trial(trial)
        # keras-tuner saves before it drops the trial from `ongoing_trials`;
        # without a second save a chief's `oracle.json` keeps listing the
        # last trials as running, and a resumed search would run them again.
        self.save()

    def reload(self) -> None:
        super().reload()
        self.dropped_trials = tuple(_reconcile(self))


def _reconcile(oracle: Any) -> list[str]:
    """Settles trials whose files disagree with `oracle.json` after a kill.

    Returns:
        The ids of trials that had been created but never started; they are
        forgotten (their ids are reused by the next trials).
    """
    started = set(oracle.start_order)
    dropped = []
    for trial_id in list(oracle.trials):
        # `create_trial` writes `trial.json` before `oracle.json`: a kill in
        # between leaves a trial the oracle's state (and Hyperband's
        # brackets) never heard of, and that no tuner received.
        if trial_id not in started:
            del oracle.trials[trial_id]
            Path(oracle._get_trial_dir(trial_id), "trial.json").unlink(missing_ok=True)
            dropped.append(trial_id)
    for trial_id in list(oracle._retry_queue):
        trial = oracle.trials.get(trial_id)
        # `end_trial` writes `trial.json` before `oracle.json`: a kill in
        # between leaves a finished trial listed as running.
        if trial is not None and trial.status in ("COMPLETED", "FAILED"):
            oracle._retry_queue.remove(trial_id)
            if trial_id not in oracle.end_order:
                oracle.end_order.append(trial_id)
    return dropped


class _HyperbandOracle(_DurableOracle, kt.oracles.HyperbandOracle):
    pass


class _BayesianOracle(_DurableOracle, kt.oracles.BayesianOptimizationOracle):
    pass


class _RandomOracle(_DurableOracle, kt.oracles.RandomSearchOracle):
    pass


class _RecordingTuner:
    """Tuner mixin: per-trial seed, time, size and a one-line progress report.

    Each trial returns its best epoch's metrics plus `seconds` (wall time of
    the trial), `parameters` (the model's weight count), `epochs` (epochs
    trained, counting a Hyperband parent's) and `best_epoch` (0-based, the
    same count); they travel to the chief with the objective, so the
    chief's `trial.json` files hold everything the summary needs.
    """

    def __init__(
        self,
        oracle: kt.Oracle,
        hypermodel: kt.HyperModel,
        seed: int = 0,
        log: Callable[[str], None] = print,
        **kwargs: Any,
    ) -> None:
        # The tuner classes' own `__init__` only builds their oracle; ours
        # (with durable saves) is given instead.
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        self._seed = seed
        self._log = log
        self._trial_seed = seed
        self._parameters = 0
        self._metrics: dict[str, float] = {}
        if self._is_worker():
            self.oracle = PatientOracleClient(self.oracle)

    def on_search_begin(self) -> None:
        # Without this a standalone search killed in its first trial has no
        # tuner file, and the next run would not reload the oracle's state.
        self.save()
        super().on_search_begin()

    def on_trial_begin(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_begin(trial)
        # Per trial, not per process: an interrupted trial re-runs with the
        # initialization it had, whichever process or run picks it up.
        self._trial_seed = (self._seed * 1_000_003 + int(trial.trial_id)) % 2**31

    def _build_hypermodel(self, hp: kt.HyperParameters) -> keras.Model:
        keras.utils.set_random_seed(self._trial_seed)
        return super()._build_hypermodel(hp)

    def _configure_tensorboard_dir(
        self, callbacks: list, trial: kt.engine.trial.Trial, execution: int = 0
    ) -> None:
        # keras-tuner imports `tensorboard` here whether or not a TensorBoard
        # callback is present, and TensorFlow no longer installs it.
        if any(type(c).__name__ == "TensorBoard" for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def _try_build(self, hp: kt.HyperParameters) -> keras.Model:
        model = super()._try_build(hp)
        self._parameters = int(model.count_params())
        return model

    def run_trial(
        self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any
    ) -> dict[str, float]:
        started = time.perf_counter()
        histories = super().run_trial(trial, *args, **kwargs)
        metrics = _best_epoch_metrics(histories)
        metrics["seconds"] = time.perf_counter() - started
        metrics["parameters"] = float(self._parameters)
        self._metrics = metrics
        return metrics

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_end(trial)
        values = trial.hyperparameters.values
        units = _units(values)
        line = f"trial {trial.trial_id} {trial.status.lower()}: units {units}"
        if trial.status == "COMPLETED" and self._metrics:
            m = self._metrics
            line += (
                f", {OBJECTIVE} {m[OBJECTIVE]:.4f} after {int(m['epochs'])} "
                f"epoch(s), {m['seconds']:.1f} s, {int(m['parameters']):,} "
                f"parameters ({self.tuner_id})"
            )
        elif trial.message:
            line += f" ({trial.message.strip().splitlines()[-1]})"
        self._metrics = {}
        self._log(line)

    def save(self) -> None:
        if not self._is_worker():
            self.oracle.save()
        write_json(self._get_tuner_fname(), self.get_state(), indent=None)


class _HyperbandTuner(_RecordingTuner, kt.Hyperband):
    pass


class _BayesianTuner(_RecordingTuner, kt.BayesianOptimization):
    pass


class _RandomTuner(_RecordingTuner, kt.RandomSearch):
    pass


def _best_epoch_metrics(histories: Sequence[keras.callbacks.History]) -> dict:
    """The metrics at each execution's best epoch, averaged over executions."""
    rows = []
    for history in histories:
        scores = history.history[OBJECTIVE]
        best = int(np.nanargmax(scores))
        row = {name: float(values[best]) for name, values in history.history.items()}
        # `History.epoch` holds absolute epochs (a Hyperband continuation
        # starts at its parent's `initial_epoch`).
        row["best_epoch"] = float(history.epoch[best])
        row["epochs"] = float(history.epoch[-1] + 1)
        rows.append(row)
    return {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}


def _units(values: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(values[f"units_{i}"]) for i in range(int(values["num_layers"])))


def make_tuner(
    hypermodel: TextClassifierHyperModel,
    tuner: str = "hyperband",
    *,
    directory: str | os.PathLike[str],
    project_name: str,
    max_trials: int,
    epochs: int,
    seed: int = 0,
    distribution_strategy: Any = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> kt.Tuner:
    """A keras-tuner tuner by name, maximizing validation accuracy.

    Args:
        hypermodel: the search space.
        tuner: "hyperband" (successive halving over epochs), "bayesian"
            (Gaussian-process Bayesian optimization, after a third of the
            trials drawn at random; needs scikit-learn) or "random".
        directory: where projects are kept.
        project_name: the project's folder under `directory`.
        max_trials: the most trials to run (for Hyperband too: brackets
            repeat until this many trials ran).
        epochs: epochs per trial; Hyperband's `max_epochs` (its shortest
            trials train `epochs / 3**k` epochs).
        seed: the oracle's seed (and each trial's, derived from it).
        distribution_strategy: a `tf.distribute` strategy every trial runs
            under, or None.
        overwrite: start afresh, deleting the project; False resumes it.
        log: receives one line per finished trial.

    Returns:
        The tuner; its project is reloaded when one exists.

    Raises:
        ValueError: on an unknown tuner name or non-positive counts.
    """
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {TUNERS}, got {tuner!r}")
    if max_trials < 1 or epochs < 1:
        raise ValueError(
            f"max_trials and epochs must be positive, got {max_trials} and {epochs}"
        )
    objective = kt.Objective(OBJECTIVE, direction="max")
    if tuner == "hyperband":
        # Unbounded iterations: `max_trials` is the budget, as for the others.
        oracle = _HyperbandOracle(
            objective, max_epochs=epochs, factor=3, hyperband_iterations=None, seed=seed
        )
        oracle.max_trials = max_trials
        tuner_class = _HyperbandTuner
    elif tuner == "bayesian":
        # keras-tuner's default is 3 random trials per hyperparameter (18
        # here), which would leave most searches without a single Bayesian
        # proposal; a third of the budget explores at random instead.
        oracle = _BayesianOracle(
            objective,
            max_trials=max_trials,
            num_initial_points=max(3, max_trials // 3),
            seed=seed,
        )
        tuner_class = _BayesianTuner
    else:
        oracle = _RandomOracle(objective, max_trials=max_trials, seed=seed)
        tuner_class = _RandomTuner
    return tuner_class(
        oracle,
        hypermodel,
        seed=seed,
        log=log,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        distribution_strategy=distribution_strategy,
    )


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the summary shows it.

    Attributes:
        trial_id: keras-tuner's id.
        status: "COMPLETED", "RUNNING", "FAILED", "INVALID"...
        units: hidden units per recurrent layer.
        embedding_dim: embedding size.
        dropout: dropout rate.
        learning_rate: Adam learning rate.
        val_accuracy: best validation accuracy (None unless completed).
        seconds: wall time of the trial.
        parameters: the model's weight count.
        epochs: epochs trained (a Hyperband continuation counts its
            parent's).
        best_epoch: the epoch (0-based) of the best validation accuracy.
        cell: the recurrent cell, where the search chooses it (else None).
        hyperparameters: every recorded value, `tuner/...` entries included.
    """

    trial_id: str
    status: str
    units: tuple[int, ...]
    embedding_dim: int
    dropout: float
    learning_rate: float
    val_accuracy: float | None = None
    seconds: float | None = None
    parameters: int | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    cell: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return len(self.units)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["units"] = list(self.units)
        row["num_layers"] = self.num_layers
        return row


def trial_records(oracle: kt.Oracle) -> list[TrialRecord]:
    """The oracle's trials, in id order.

    Args:
        oracle: a standalone or chief tuner's oracle.

    Returns:
        One `TrialRecord` per trial.
    """
    records = []
    for trial_id in sorted(oracle.trials, key=int):
        trial = oracle.trials[trial_id]
        values = dict(trial.hyperparameters.values)

        def metric(name: str, trial=trial) -> float | None:
            if trial.status != "COMPLETED" or not trial.metrics.exists(name):
                return None
            return float(trial.metrics.get_last_value(name))

        def whole(name: str) -> int | None:
            value = metric(name)
            return None if value is None else int(round(value))

        records.append(
            TrialRecord(
                trial_id=trial_id,
                status=str(trial.status),
                units=_units(values),
                embedding_dim=int(values["embedding_dim"]),
                dropout=round(float(values["dropout"]), 6),
                learning_rate=float(values["learning_rate"]),
                val_accuracy=metric(OBJECTIVE),
                seconds=metric("seconds"),
                parameters=whole("parameters"),
                epochs=whole("epochs"),
                best_epoch=whole("best_epoch"),
                cell=values.get("cell"),
                hyperparameters=values,
            )
        )
    return records


def format_table(records: Sequence[TrialRecord]) -> str:
    """A plain-text table of the trials, best validation accuracy marked."""
    completed = [r for r in records if r.val_accuracy is not None]
    best = max(completed, key=lambda r: r.val_accuracy, default=None)
    header = (
        "trial",
        "status",
        "layers",
        "units",
        "embed",
        "dropout",
        "lr",
        "epochs",
        OBJECTIVE,
        "seconds",
        "parameters",
    )
    cells = any(r.cell is not None for r in records)
    if cells:
        header = (*header[:2], "cell", *header[2:])
    rows = [header]
    for r in records:
        rows.append(
            (
                r.trial_id + (" *" if r is best else ""),
                r.status.lower(),
                *((r.cell or "-",) if cells else ()),
                str(r.num_layers),
                ",".join(map(str, r.units)),
                str(r.embedding_dim),
                f"{r.dropout:g}",
                f"{r.learning_rate:g}",
                "-" if r.epochs is None else str(r.epochs),
                "-" if r.val_accuracy is None else f"{r.val_accuracy:.4f}",
                "-" if r.seconds is None else f"{r.seconds:.1f}",
                "-" if r.parameters is None else f"{r.parameters:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_val_accuracy(
    records: Sequence[TrialRecord], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Scatter of validation accuracy against the first layer's hidden size.

    One marker per number of layers; deeper models are labelled with all
    their sizes. The x axis is logarithmic (the choices double).

    Args:
        records: the trials (those without a validation accuracy are left
            out).
        path: the image to write (PNG).
        title: the plot's title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and workers
    import matplotlib.pyplot as plt

    done = [r for r in records if r.val_accuracy is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = "os^Dv"
    for layers in sorted({r.num_layers for r in done}):
        group = [r for r in done if r.num_layers == layers]
        ax.scatter(
            [r.units[0] for r in group],
            [r.val_accuracy for r in group],
            marker=markers[(layers - 1) % len(markers)],
            label=f"{layers} layer{'s' if layers > 1 else ''}",
            alpha=0.8,
        )
        for r in group:
            if layers > 1:
                ax.annotate(
                    "-".join(map(str, r.units)),
                    (r.units[0], r.val_accuracy),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    sizes = sorted({r.units[0] for r in done})
    if sizes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("hidden units per direction (first recurrent layer)")
    ax.set_ylabel("best validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if done:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    if task not in ARCHITECTURES:
        raise ValueError(f"unknown task {task!r}; available: {sorted(ARCHITECTURES)}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must lie in (0, 1), got {validation_fraction}"
        )
    full = load_corpus(
        corpus or ARCHITECTURES[task].corpus,
        data,
        "train",
        max_per_class=max_per_class,
        seed=seed,
        **({"remove": tuple(remove)} if remove else {}),
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
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = sorted(
            k
            for k in set(previous) | set(settings)
            if previous.get(k) != settings.get(k)
        )
        if changed:
            raise ValueError(
                f"{path.parent} holds a search with other settings "
                f"({', '.join(changed)}); rerun with the same arguments to "
                "resume it, or pass --overwrite / another --project-name"
            )
    elif write:
        write_json(path, settings)


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
    if process_role == "chief":
        log(
            "chief process: serves trials to the workers on "
            f"{os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']}; retrains on "
            f"{devices.describe()}"
        )
    else:
        log(f"{process_role} process; trials run on {devices.describe()}")
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
        oracle = search.oracle
        result.resumed = sorted(
            (i for i, t in oracle.trials.items() if t.status == "COMPLETED"), key=int
        )
        if oracle.trials:
            again = sorted(oracle._retry_queue, key=int)
            log(
                f"resuming {project_dir}: {len(result.resumed)} trial(s) "
                f"completed, interrupted trial(s) to re-run: {again or 'none'}"
            )

    length = int(hypermodel.prebuilt_arguments()["sequence_length"])
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
    if process_role == "worker":
        log(f"worker {search.tuner_id}: no trials left; the chief writes the results")
        return result

    _write_results(result, search, hypermodel, task, tuner, epochs, log)
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
        )
        note = (
            "trained on validation too"
            if result.retrained_val_accuracy is None
            else f"{OBJECTIVE} {result.retrained_val_accuracy:.4f}"
        )
        log(f"best model retrained ({note}) and saved to {result.best_model_path}")
    return result


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


def _write_results(
    result: SearchResult,
    search: kt.Tuner,
    hypermodel: TextClassifierHyperModel,
    task: str,
    tuner: str,
    epochs: int,
    log: Callable[[str], None],
) -> None:
    """The table, `trials.json`/`.csv`, the best hyperparameters, the plot."""
    project_dir = result.project_dir
    records = trial_records(search.oracle)
    completed = [r for r in records if r.val_accuracy is not None]
    if not completed:
        raise RuntimeError(f"no trial completed in {project_dir}")
    # Ties go to the earlier trial (for Hyperband, the shorter training).
    best = max(completed, key=lambda r: (r.val_accuracy, -int(r.trial_id)))
    result.trials, result.best = records, best
    log(format_table(records))

    header = {
        "task": task,
        "tuner": tuner,
        "objective": OBJECTIVE,
        # In a distributed search, the chief's (the workers log their own).
        "role": result.role,
        "devices": list(result.devices.devices),
        "distribution": result.devices.kind,
    }
    write_json(
        project_dir / "trials.json",
        {**header, "trials": [r.to_json() for r in records]},
    )
    _write_csv(project_dir / "trials.csv", records)
    hp = search.oracle.get_trial(best.trial_id).hyperparameters
    model_arguments = hypermodel.model_arguments(hp)
    model_arguments.pop("class_names", None)
    result.best_hyperparameters = {
        "task": task,
        "trial_id": best.trial_id,
        OBJECTIVE: best.val_accuracy,
        "epochs": best.best_epoch + 1 if best.best_epoch is not None else epochs,
        "learning_rate": best.learning_rate,
        "hyperparameters": {
            k: round(v, 6) if isinstance(v, float) else v
            for k, v in best.hyperparameters.items()
            if not k.startswith("tuner/")
        },
        # `recurrent_zoo.models.get(task, **model)` builds this architecture.
        "model": json.loads(json.dumps(model_arguments)),
    }
    write_json(project_dir / "best_hyperparameters.json", result.best_hyperparameters)
    log("best hyperparameters: " + json.dumps(result.best_hyperparameters))
    result.plot_path = plot_val_accuracy(
        records,
        project_dir / "val_accuracy_vs_units.png",
        title=f"{task}: {tuner} search, {len(completed)} trials",
    )


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


def _write_csv(path: Path, records: Sequence[TrialRecord]) -> None:
    columns = [
        "trial_id",
        "status",
        "cell",
        "num_layers",
        "units",
        "embedding_dim",
        "dropout",
        "learning_rate",
        "epochs",
        "best_epoch",
        OBJECTIVE,
        "seconds",
        "parameters",
    ]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        row = r.to_json()
        row["units"] = " ".join(map(str, r.units))
        writer.writerow(row)
    write_text(path, table.getvalue())


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
) -> tuple[Path, float | None]:
    """Trains the best architecture afresh and saves it as a `.keras` file."""
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
    # Written beside, then moved: a kill never leaves a truncated model.
    with replaced_atomically(path) as partial:
        model.save(partial)
    return path, accuracy
