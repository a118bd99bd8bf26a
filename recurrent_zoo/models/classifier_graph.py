"""The layers of a `TextClassifier`, wired: the encoder and the head.

Kept apart from the model class so each stays readable; the layer names
here are the ones saved weights and presets are keyed by, and the order
layers are created in is part of what a seeded model reproduces.
"""

from __future__ import annotations

from typing import Any

import keras

from recurrent_zoo.cells import build_recurrent_layer
from recurrent_zoo.layers import Bidirectional
from recurrent_zoo.layers.bag_of_words import TfIdfBagOfWords
from recurrent_zoo.layers.checks import check_positive_int, check_rate
from recurrent_zoo.layers.hashed_bigrams import HashedBigramEmbedding
from recurrent_zoo.layers.naive_bayes_ngrams import NaiveBayesNgrams

__all__ = ["encoder", "head"]

# Input scale of the wide (bag-of-words) logits: see `head` and `TextClassifier`.
_WIDE_SCALE = 10.0


def encoder(
    ids: Any,
    vocabulary_size: int,
    embedding_dim: int,
    bigram_buckets: int,
    embedding_dropout: float,
    units: tuple[int, ...],
    cell: str,
    dropout: float,
    recurrent_dropout: float,
) -> Any:
    """Word ids to the last bidirectional layer's sequence of states."""
    x = keras.layers.Embedding(
        vocabulary_size,
        check_positive_int("embedding_dim", embedding_dim),
        mask_zero=True,
        name="embedding",
    )(ids)
    if bigram_buckets:
        bigrams = HashedBigramEmbedding(
            check_positive_int("bigram_buckets", bigram_buckets),
            embedding_dim,
            name="bigram_embedding",
        )(ids)
        x = keras.layers.Add(name="word_and_bigram")([x, bigrams])
    x = keras.layers.SpatialDropout1D(
        check_rate("embedding_dropout", embedding_dropout),
        name="embedding_dropout",
    )(x)
    check_rate("dropout", dropout)
    check_rate("recurrent_dropout", recurrent_dropout)
    for i, size in enumerate(units):
        if i:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        rnn = build_recurrent_layer(
            cell,
            size,
            return_sequences=True,
            recurrent_dropout=recurrent_dropout,
            name=f"{cell}_{i}",
        )
        x = Bidirectional(rnn, name=f"bidirectional_{i}")(x)
    return x


def head(
    text: Any,
    ids: Any,
    pooled: Any,
    classes: int,
    vocabulary_size: int,
    bag_of_words: bool,
    naive_bayes_buckets: int,
    wide_weight: float,
) -> tuple[Any, keras.Model | None]:
    """The class probabilities over the pooled sequence (and, with a bag of
    words, the model of the deep and wide parts that `train_step` fits)."""
    binary = classes == 2
    outputs = 1 if binary else classes
    activation = "sigmoid" if binary else "softmax"
    if not (bag_of_words or naive_bayes_buckets):
        probabilities = keras.layers.Dense(
            outputs, activation=activation, name="probabilities"
        )(pooled)
        return probabilities, None
    deep = keras.layers.Activation(activation, name="deep_probabilities")(
        keras.layers.Dense(outputs, name="deep_logits")(pooled)
    )
    if naive_bayes_buckets:
        # Fitted by `adapt`, from the raw text (all of it, not the ids).
        wide_logits = NaiveBayesNgrams(
            naive_bayes_buckets, classes, name="naive_bayes"
        )(text)
    else:
        bag = TfIdfBagOfWords(vocabulary_size, name="bag_of_words")(ids)
        # Adam moves each weight by about the learning rate whatever its
        # gradient, so a logit over a unit-norm input moves slowly. x10
        # came from the one-logit model, where at x1 the linear part
        # barely learned before the pair fitted the training set; it was
        # kept, not measured again, when the parts got their own losses.
        bag = keras.layers.Rescaling(_WIDE_SCALE, name="bag_scale")(bag)
        # Zeros, as a linear model starts: uniform until it learns.
        wide_logits = keras.layers.Dense(
            outputs, kernel_initializer="zeros", name="wide_logits"
        )(bag)
    wide = keras.layers.Activation(activation, name="wide_probabilities")(wide_logits)
    probabilities = keras.layers.Add(name="probabilities")(
        [
            keras.layers.Rescaling(1.0 - wide_weight, name="deep_share")(deep),
            keras.layers.Rescaling(wide_weight, name="wide_share")(wide),
        ]
    )
    # Not an attribute Keras tracks: a second model over the same
    # layers for `train_step`, which would otherwise be saved twice.
    parts = keras.Model(text, [deep, wide, probabilities], name="parts")
    return probabilities, parts
