"""The refit stage: train again on every training text, for the epochs chosen.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from recurrent_zoo.distribute import Distribution
from recurrent_zoo.run_files import write_json
from recurrent_zoo.training.callbacks import (
    EpochHistory,
    EpochRecord,
    backup,
    save_model,
)
from recurrent_zoo.training.run import Run, stage_record
from recurrent_zoo.training.tasks import Task

__all__ = ["refit_on_all_texts", "run_refit"]


def run_refit(
    run: Run,
    task: Task,
    arguments: dict,
    full: Any,
    dist: Distribution,
    epochs: int,
    pretrained: bool,
    verbose: int,
) -> tuple[Path, dict]:
    """The refit stage of a run: all of `full` for `epochs`, the best count.

    The model is built with the run's vocabulary (the pretrained embedding
    rows belong to it), from the pretrained weights if there are any.
    """
    vocabulary = run.read_vocabulary()
    return refit_on_all_texts(
        lambda: task.build(arguments["overrides"], full, vocabulary),
        full,
        run / "refit",
        task=task,
        epochs=epochs,
        batch_size=arguments["batch_size"],
        learning_rate=arguments["learning_rate"],
        decay_epochs=arguments["epochs"],
        start=run / "pretrained.weights.h5" if pretrained else None,
        dist=dist,
        seed=arguments["seed"],
        verbose=verbose,
    )


def refit_on_all_texts(
    build: Callable[[], keras.Model],
    data: Any,
    out: Path,
    *,
    task: Task,
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
        task: what the model learns (its batches, loss and adaptation).
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
    record = stage_record(record_path, model_path)
    if record is not None:
        return model_path, record
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    with dist.scope():
        model = build()
    if start is not None:
        model.load_weights(start)
    # After the weights: the pretrained file holds the first stage's IDF.
    task.adapt(model, data)
    dataset, steps = task.batches(model, data, batch_size, shuffle=True, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=steps * (decay_epochs or epochs)
    )
    with dist.scope():
        task.compile(model, schedule)
    dist.prepare(model)
    history = EpochHistory(out / "history.json")
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
            backup(out / "backup"),
        ],
    )
    save_model(model, model_path)
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
