"""The callbacks that make a Keras `fit` resumable after a kill.

Keras's own `BackupAndRestore` restores weights, optimizer and epoch; these
restore the rest from what the run wrote down: early stopping's count
(replayed from history.csv), the best model so far (written atomically, so
a kill never leaves a broken one), and each epoch's learning rate and wall
time (recorded before the backup, so a rerun epoch overwrites its row).
"""

from __future__ import annotations

import importlib.util
import math
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from recurrent_zoo.run_files import read_json, replaced_atomically, write_json
from recurrent_zoo.training.history import MONITORS, better

__all__ = [
    "BestModel",
    "EpochHistory",
    "EpochRecord",
    "ResumableEarlyStopping",
    "backup",
    "save_model",
    "stops_early",
    "tensorboard",
]


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
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


def stops_early(rows: list[dict[str, float]], patience: int, monitor: str) -> bool:
    """Whether early stopping had stopped after these logged epochs."""
    stopper = ResumableEarlyStopping(
        [row[monitor] for row in rows], monitor=monitor, patience=patience
    )
    # The replay only sets `stop_training`; no model is needed for it.
    stopper.set_model(types.SimpleNamespace(stop_training=False))
    stopper.on_train_begin()
    return bool(stopper.model.stop_training)


def save_model(model: keras.Model, path: Path) -> None:
    """`model.save(path)`, written beside and renamed: never half a file."""
    with replaced_atomically(path) as partial:
        model.save(partial)


class BestModel(keras.callbacks.Callback):
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
            self.best is None or better(value, self.best, self.monitor)
        ):
            self.best = value
            save_model(self.model, self.path)


class EpochRecord(keras.callbacks.Callback):
    """Adds the epoch's learning rate (at its first step) and wall time to
    the logs, so CSVLogger and History record them."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()
        rate = self.model.optimizer.learning_rate
        self._rate = float(keras.ops.convert_to_numpy(rate))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self._rate
            logs["seconds"] = time.perf_counter() - self._started


class EpochHistory(keras.callbacks.Callback):
    """Keeps each finished epoch's loss, rate and wall time (the latter two
    from `EpochRecord`) in a JSON file: a stage's history without a
    validation set, where no CSV needs trimming.

    Rows are keyed by epoch, so an epoch rerun after a kill replaces its
    row instead of adding a second one.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.rows: dict[str, dict[str, float]] = read_json(path) or {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows[str(epoch)] = {
            key: float(logs[key]) for key in ("loss", "learning_rate", "seconds")
        }
        write_json(self.path, self.rows)


def backup(folder: Path) -> keras.callbacks.BackupAndRestore:
    """Keras's end-of-epoch backup, keeping the previous one too.

    The previous copy (`double_checkpoint`) lets workers a kill left an
    epoch apart meet at the earlier one; the backup stays at the end of
    `fit` (the stage deletes it once its results are written).
    """
    return keras.callbacks.BackupAndRestore(
        str(folder), double_checkpoint=True, delete_checkpoint=False
    )


def tensorboard(logs: Path, verbose: int) -> list[keras.callbacks.Callback]:
    """TensorBoard's callback, or none when its package is missing."""
    # tf.summary needs the tensorboard package, which TensorFlow no longer
    # installs; training must not fail for want of its logs.
    if importlib.util.find_spec("tensorboard") is None:
        if verbose:
            print("tensorboard is not installed: no TensorBoard logs written.")
        return []
    return [keras.callbacks.TensorBoard(str(logs), write_graph=False)]
