"""Refit: train once more on every training text, for the epochs validation chose.

Model selection holds out a validation part of the training split to choose
the number of epochs; the model it picks has never learned from those texts.
Refitting is the usual last step (the accuracy benchmark's TF-IDF + SVM
baseline does the same with its `C`): train again from the same starting
point on all training texts for the chosen number of epochs, on the same
learning-rate schedule (a cosine decay over the first stage's epoch budget,
counted in the new, larger epochs), so the refit stops at the point of
the schedule where the chosen model did. No held-out text is left, so
nothing is chosen or stopped early in this stage: it runs exactly `epochs`
epochs.

The starting point is the one the first stage started from: the pretrained
encoder when the run pretrained one, else a fresh initialization from the
run's seed. The vocabulary is the run's own (the pretrained embedding rows
belong to it); the bag of words' IDF, if any, is adapted on all training
texts.

Files, in the stage's folder (`out/refit/` of a run):

    history.json   loss, learning rate and seconds per finished epoch
    backup/        BackupAndRestore's state: a killed refit resumes at its
                   last finished epoch (deleted at the end)
    model.keras    the refitted model
    refit.json     the stage's record; written last, it marks it finished
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras

from recurrent_zoo.data import TextClassificationData
from recurrent_zoo.data.batching import counted_bucketed_dataset
from recurrent_zoo.distribute import Distribution
from recurrent_zoo.run_files import read_json, replaced_atomically, write_json

__all__ = ["EpochRecord", "refit_on_all_texts"]


def refit_on_all_texts(
    build: Callable[[], keras.Model],
    data: TextClassificationData,
    out: Path,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    decay_epochs: int | None = None,
    start: Path | None,
    dist: Distribution,
    seed: int,
    verbose: int = 1,
) -> tuple[Path, dict]:
    """Trains `build()` on all of `data` for `epochs` epochs, resumably.

    Args:
        build: makes the untrained model, with the run's vocabulary; called
            in `dist`'s scope.
        data: every training text (the validation part included).
        out: the stage's folder.
        epochs: the number of epochs the first stage chose.
        batch_size: the global batch.
        learning_rate: the peak rate, cosine-decayed to 0 over
            `decay_epochs` epochs.
        decay_epochs: the first stage's epoch budget (its schedule's
            length); defaults to `epochs`.
        start: weights to start from (the pretrained encoder), or None for
            the initialization `build` makes after seeding with `seed`.
        dist: the run's strategy (one worker).
        seed: seeds the initialization and the shuffling.
        verbose: 0 silent, 1 progress bars and notices.

    Returns:
        The refitted model's `.keras` path and the stage's record: "epochs",
        "examples", per epoch "loss", "learning_rate" (at its first step)
        and "seconds", and their sum "train_seconds".
    """
    record_path, model_path = out / "refit.json", out / "model.keras"
    record = read_json(record_path)
    if record is not None and model_path.is_file():
        return model_path, record
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    with dist.scope():
        model = build()
    if start is not None:
        model.load_weights(start)
    # After the weights: the pretrained file holds the first stage's IDF.
    model.adapt(data.texts)
    dataset, steps = counted_bucketed_dataset(
        data.texts,
        data.labels,
        batch_size,
        True,
        seed,
        max_length=model.sequence_length,
    )
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=steps * (decay_epochs or epochs)
    )
    with dist.scope():
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0))
    dist.prepare(model)
    history = _History(out / "history.json")
    if verbose:
        print(
            f"Refitting on all {len(data)} training texts for {epochs} epoch(s).",
            flush=True,
        )
    model.fit(
        dist.distribute(dataset),
        epochs=epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        verbose=verbose,
        callbacks=[
            EpochRecord(),
            # Before the backup: a kill between the two reruns an epoch
            # whose row is then overwritten, never one that has no row.
            history,
            keras.callbacks.BackupAndRestore(
                str(out / "backup"), double_checkpoint=True, delete_checkpoint=False
            ),
        ],
    )
    with replaced_atomically(model_path) as partial:
        model.save(partial)
    rows = [history.rows[str(epoch)] for epoch in range(epochs)]
    record = {
        "epochs": epochs,
        "examples": len(data),
        "loss": [row["loss"] for row in rows],
        "learning_rate": [row["learning_rate"] for row in rows],
        "seconds": [row["seconds"] for row in rows],
        "train_seconds": float(sum(row["seconds"] for row in rows)),
    }
    write_json(record_path, record)
    shutil.rmtree(out / "backup", ignore_errors=True)
    return model_path, record


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


class _History(keras.callbacks.Callback):
    """Keeps each finished epoch's loss, rate and wall time (the latter two
    from `EpochRecord`) in a JSON file.

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
