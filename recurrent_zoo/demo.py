"""A short end-to-end run: the package's layers on a slice of real IMDB reviews.

Builds a small version of the prebuilt sentiment model (TextVectorization ->
Embedding with masking -> Bidirectional(LayerNormLSTM) -> AttentionPooling ->
sigmoid), trains it for one epoch on a balanced slice of the IMDB training
reviews and reports accuracy on a slice of the test reviews: the layers at
work together on real text in about a minute.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from recurrent_zoo.data import load_imdb
from recurrent_zoo.models import get


def build_demo_model(train_texts: list[str]) -> keras.Model:
    """A small `sentiment` classifier, its vocabulary adapted on `train_texts`."""
    model = get(
        "sentiment",
        vocabulary_size=10_000,
        sequence_length=200,
        units=(32,),
        attention_units=32,
        # One epoch on 5,000 reviews is too short to overfit; dropout would
        # only slow it down.
        embedding_dropout=0.0,
        dropout=0.0,
    )
    model.adapt(train_texts)
    # A layer-normalized LSTM tolerates (and here needs, for one epoch) a
    # larger step than a plain LSTM: at 2e-3 it was still near chance.
    model.compile(learning_rate=1e-2)
    return model


def run_demo(
    data: str,
    train_per_class: int = 2500,
    test_per_class: int = 1000,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    verbose: int = 1,
) -> dict:
    """Trains the demo model and returns its test metrics and timings."""
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    train = load_imdb(data, "train", max_per_class=train_per_class, seed=seed)
    test = load_imdb(data, "test", max_per_class=test_per_class, seed=seed)
    model = build_demo_model(train.texts)
    # The dataset reshuffles itself every epoch; fit's own shuffle can't.
    history = model.fit(
        train.to_dataset(batch_size, seed=seed),
        epochs=epochs,
        shuffle=False,
        verbose=verbose,
    )
    probabilities = model.predict(test.to_dataset(256, shuffle=False), verbose=0)
    predicted = (probabilities[:, 0] > 0.5).astype("int32")
    return {
        "train_examples": len(train),
        "test_examples": len(test),
        "epochs": epochs,
        "train_loss": float(history.history["loss"][-1]),
        "test_accuracy": float(np.mean(predicted == test.labels)),
        "seconds": time.perf_counter() - started,
    }
