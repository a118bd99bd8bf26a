"""One process of the tests' training clusters (`tests/test_distribute.py`).

    python tests/distribute_worker.py multiworker DATA OUT RESULT.json
    python tests/distribute_worker.py mirrored DATA OUT RESULT.json

"multiworker" (with `TF_CONFIG` set by the test) first records which
training texts this worker receives in two epochs, through the very
functions `train` builds its input with, then trains on a slice of IMDB
with `train(..., strategy=...)`. "mirrored" splits the CPU into two logical
devices and trains under a `MirroredStrategy` over them, recording where
the model's and the optimizer's variables live. Both write what they saw
to RESULT.json.
"""

from __future__ import annotations

import json
import os
import sys
import time

STARTED = time.monotonic()


def log(message: str) -> None:
    """A timed line in the worker's log (the test shows it on failure)."""
    print(f"[{time.monotonic() - STARTED:5.1f} s] {message}", flush=True)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

SEED = 0
MAX_PER_CLASS = 40
VALIDATION_FRACTION = 0.1
BATCH_SIZE = 16
OVERRIDES = {
    "units": (8,),
    "embedding_dim": 8,
    "vocabulary_size": 2000,
    "sequence_length": 64,
}
TRAIN = dict(
    epochs=1,
    batch_size=BATCH_SIZE,
    validation_fraction=VALIDATION_FRACTION,
    patience=5,
    seed=SEED,
    max_per_class=MAX_PER_CLASS,
    test_max_per_class=10,
    overrides=OVERRIDES,
    verbose=0,
)


def received_texts(strategy: tf.distribute.Strategy, data: str) -> list[list[str]]:
    """The training texts this worker gets, per epoch, as `train` feeds them."""
    import keras

    from recurrent_zoo.distribute import distribute_text_dataset
    from recurrent_zoo.training.tasks import batches, load_split

    keras.utils.set_random_seed(SEED)  # as `train` does before its pipeline
    full = load_split("imdb", data, "train", MAX_PER_CLASS, SEED, ())
    part, _ = full.split(VALIDATION_FRACTION, SEED)
    dataset, steps = batches(part, BATCH_SIZE, OVERRIDES["sequence_length"], seed=SEED)
    distributed = distribute_text_dataset(strategy, dataset)
    epochs = []
    for _ in range(2):  # each pass reshuffles, as every epoch does
        texts, batches = [], 0
        for batch, _labels in distributed:
            batches += 1
            for local in strategy.experimental_local_results(batch):
                texts += [t.decode("utf-8") for t in local.numpy()]
        assert batches == steps, (batches, steps)
        epochs.append(texts)
    return epochs


def multiworker(data: str, out: str) -> dict:
    from recurrent_zoo.distribute import make_strategy

    # Before anything else runs an op: it sets up the process's collectives.
    strategy = make_strategy("multiworker", collective_timeout=60)
    log("cluster up")
    from recurrent_zoo.training import train

    epochs = received_texts(strategy, data)
    log("shards recorded")
    metrics = train("sentiment", data, out, strategy=strategy, **TRAIN)
    log("trained")
    return {"received": epochs, "metrics": metrics}


def mirrored(data: str, out: str) -> dict:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from recurrent_zoo import training
    from recurrent_zoo.training import tasks

    built = []
    get = tasks.get

    def get_and_keep(*args, **kwargs):
        built.append(get(*args, **kwargs))
        return built[-1]

    tasks.get = get_and_keep
    metrics = training.train("sentiment", data, out, strategy="mirrored", **TRAIN)
    model = built[-1]
    variables = [*model.variables, *model.optimizer.variables]

    def mirrored_variable(variable) -> bool:
        value = getattr(variable, "value", variable)
        return isinstance(value, tf.distribute.DistributedValues) and (
            len(value.values) == 2
        )

    return {
        "metrics": metrics,
        "variables": len(variables),
        "not_mirrored": [v.path for v in variables if not mirrored_variable(v)],
        "custom_layers": sorted(
            type(layer).__name__
            for layer in model._flatten_layers(include_self=False)
            if type(layer).__module__.startswith("recurrent_zoo")
        ),
    }


if __name__ == "__main__":
    mode, data, out, result = sys.argv[1:5]
    found = {"multiworker": multiworker, "mirrored": mirrored}[mode](data, out)
    with open(result, "w") as f:
        json.dump(found, f)
