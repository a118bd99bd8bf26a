"""One SGD step of a wide & deep model under a two-replica strategy.

    python tests/models/wide_and_deep_replicas.py RESULT.json

Splits the CPU into two logical devices, trains one step on the same batch
under a `MirroredStrategy` over them and on one device, from the same
weights, and writes both results to RESULT.json
(`tests/models/test_text_classifier.py` compares them).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from recurrent_zoo.distribute import (  # noqa: E402
    distribute_text_dataset,
    string_input_safe,
)
from recurrent_zoo.models import TextClassifier  # noqa: E402

TEXTS = ["a good film", "a dull film", "great cast", "dull dull", "bad", "good"]
LABELS = np.array([0, 1, 2, 1, 0, 2])


def one_step(weights: list | None, strategy: tf.distribute.Strategy) -> dict:
    with strategy.scope():
        model = TextClassifier(
            ("a", "b", "c"),
            vocabulary=["good", "dull", "film", "a", "great", "cast", "bad"],
            vocabulary_size=20,
            sequence_length=8,
            embedding_dim=4,
            units=(4,),
            attention_units=4,
            embedding_dropout=0.0,
            dropout=0.0,
            bag_of_words=True,
        )
        model.adapt(TEXTS)
        if weights is not None:
            model.set_weights(weights)
        start = model.get_weights()
        model.compile(optimizer=keras.optimizers.SGD(0.5), metrics=["accuracy"])
    texts = tf.constant(TEXTS)
    batch = tf.data.Dataset.from_tensor_slices((texts, LABELS)).batch(len(TEXTS))
    if strategy.num_replicas_in_sync > 1:  # as `train` does
        batch = distribute_text_dataset(strategy, batch)
        string_input_safe(model)
    history = model.fit(batch, verbose=0).history
    return {
        "replicas": strategy.num_replicas_in_sync,
        "start": [w.tolist() for w in start],
        "end": [w.tolist() for w in model.get_weights()],
        "loss": history["loss"][0],
        "accuracy": history["accuracy"][0],
    }


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    mirrored = one_step(None, tf.distribute.MirroredStrategy(devices))
    weights = [np.asarray(w, "float32") for w in mirrored["start"]]
    single = one_step(weights, tf.distribute.get_strategy())
    with open(sys.argv[1], "w") as f:
        json.dump({"mirrored": mirrored, "single": single}, f)
