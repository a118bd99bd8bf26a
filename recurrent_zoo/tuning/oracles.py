"""keras-tuner's oracles, made to survive a kill at any moment.

keras-tuner records each trial in `trial_<id>/trial.json` when the oracle
creates it (status RUNNING) and again when it ends, and lists the running
trials in `oracle.json`; on reload it puts those back in its retry queue.
The oracles here write those files atomically (a kill cannot leave half a
JSON file) and reconcile the two windows where `trial.json` and
`oracle.json` disagree (`_reconcile`).
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import keras_tuner as kt

from recurrent_zoo.run_files import write_json


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


class PatientOracleClient:
    """A worker's oracle client that waits before asking again when idle.

    keras-tuner's search loop re-requests a trial at once when the chief
    answers IDLE (e.g. Hyperband waiting for a round to finish elsewhere),
    which turns every waiting worker into a busy loop of gRPC calls. This
    wrapper sleeps `wait` seconds after each IDLE answer; everything else
    passes through.

    Args:
        client: keras-tuner's `OracleClient` (or any oracle).
        wait: seconds to sleep after an IDLE answer.
        sleep: the sleep function (replaceable in tests).
    """

    def __init__(self, client: Any, wait: float = 1.0, sleep: Any = time.sleep):
        self._client = client
        self._wait = wait
        self._sleep = sleep

    def create_trial(self, tuner_id: str) -> Any:
        trial = self._client.create_trial(tuner_id)
        if trial.status == "IDLE":
            self._sleep(self._wait)
        return trial

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # keras-tuner sets `multi_worker` / `should_report` on the client.
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._client, name, value)
