"""The fit stage: train until early stopping fires or the epochs run out.

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
"""

from __future__ import annotations

from typing import Any

import keras

from recurrent_zoo.distribute import Distribution, translate_cluster_errors
from recurrent_zoo.training.arguments import monitor_of
from recurrent_zoo.training.callbacks import (
    BestModel,
    EpochRecord,
    ResumableEarlyStopping,
    backup,
    tensorboard,
)
from recurrent_zoo.training.history import first_best
from recurrent_zoo.training.run import Run
from recurrent_zoo.training.tasks import Task
from recurrent_zoo.training.workers import agree_on_data

__all__ = ["fit"]


def fit(
    run: Run,
    task: Task,
    arguments: dict,
    model: keras.Model,
    words: list[str],
    train_part: Any,
    validation: Any,
    dist: Distribution,
    done: int,
    saved: dict | None,
    verbose: int,
) -> None:
    """Trains, resumably, until the epochs run out or early stopping fires."""
    epochs, seed = arguments["epochs"], arguments["seed"]
    train_ds, steps = task.batches(
        model, train_part, arguments["batch_size"], shuffle=True, seed=seed
    )
    validation_ds, _ = task.batches(model, validation, 256, shuffle=False)
    schedule = keras.optimizers.schedules.CosineDecay(
        arguments["learning_rate"], decay_steps=steps * epochs
    )
    # The optimizer too: Keras ties it to the strategy it is created under.
    with dist.scope():
        task.compile(model, schedule)
    dist.prepare(model)

    run.trim_history(done)
    monitor = monitor_of(arguments)
    past = [row[monitor] for row in run.history()]
    stopper = ResumableEarlyStopping(
        past, monitor=monitor, patience=arguments["patience"], verbose=int(verbose > 0)
    )
    stopper.set_model(model)
    stopper.on_train_begin()
    stopped = bool(model.stop_training)
    model.stop_training = False
    if stopped or done >= epochs:
        _say(verbose, f"{run.out}: training had finished; evaluating.")
        return
    if done:
        _say(verbose, f"Resuming {run.out}: {done} of {epochs} epochs done.")
    elif saved is not None:
        _say(verbose, f"Restarting {run.out}: no epoch had finished.")
    if dist.multi_worker:
        agree_on_data(dist, words, len(train_part), len(validation), steps)
    best = first_best(past, monitor)
    with translate_cluster_errors(dist):
        model.fit(
            dist.distribute(train_ds),
            validation_data=dist.distribute(validation_ds),
            epochs=epochs,
            shuffle=False,  # the dataset reshuffles itself every epoch
            verbose=verbose,
            callbacks=[
                # Order matters at each epoch's end: the row is logged
                # before the backup, so a kill in between reruns a logged
                # epoch (its row is dropped on resume) rather than losing one.
                EpochRecord(),
                stopper,
                BestModel(
                    run / "best.keras", monitor, None if best is None else past[best]
                ),
                keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
                *(tensorboard(run / "logs", verbose) if dist.is_chief else []),
                # Every worker backs up into its own folder: the same
                # weights, and no shared disk needed to resume.
                backup(run.backup),
            ],
        )


def _say(verbose: int, message: str) -> None:
    if verbose:
        print(message, flush=True)
