"""keras-tuner's tuners by name, recording what the search reports.

`make_tuner` builds Hyperband, Bayesian optimization or random search over
a `TextClassifierHyperModel`, maximizing validation accuracy, with the
durable oracles of `oracles.py`; each trial gets its own seed and returns
its best epoch's metrics, its time and its size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from recurrent_zoo.catalog import TUNERS
from recurrent_zoo.run_files import write_json
from recurrent_zoo.tuning.hypermodel import TextClassifierHyperModel
from recurrent_zoo.tuning.oracles import (
    PatientOracleClient,
    _BayesianOracle,
    _HyperbandOracle,
    _RandomOracle,
)

__all__ = ["OBJECTIVE", "TUNERS", "make_tuner"]

OBJECTIVE = "val_accuracy"


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
