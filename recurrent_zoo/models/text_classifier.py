"""A raw-strings-in, probabilities-out recurrent text classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from recurrent_zoo.cells import CELLS as CELL_SPECS
from recurrent_zoo.layers import AttentionPooling
from recurrent_zoo.layers.checks import check_positive_int, check_rate
from recurrent_zoo.layers.trim_padding import TrimPadding
from recurrent_zoo.models.classifier_graph import encoder, head
from recurrent_zoo.models.loss_scaling import SparseSafeLossScaleOptimizer
from recurrent_zoo.models.standardize import text_vectorizer

__all__ = ["CELLS", "TextClassifier"]

# Every name of `recurrent_zoo.cells.CELLS` (Keras's own LSTM/GRU among them,
# for comparison runs: same model, other cell).
CELLS: tuple[str, ...] = tuple(CELL_SPECS)


def _checked_arguments(
    class_names: Sequence[str],
    units: Sequence[int],
    cell: str,
    bag_of_words: bool,
    naive_bayes_buckets: int,
    wide_weight: float,
) -> tuple[tuple[str, ...], tuple[int, ...], float]:
    """`TextClassifier`'s arguments checked (a ValueError quoting the bad
    one), and the backend: (class names, units, wide weight) as stored."""
    if keras.backend.backend() != "tensorflow":
        # Raw strings in, vectorized in the graph: only TensorFlow has
        # string tensors (the layers themselves run on every backend).
        raise ValueError(
            "TextClassifier reads raw strings, which only the TensorFlow "
            f"backend carries; KERAS_BACKEND is {keras.backend.backend()!r}. "
            "Run it with KERAS_BACKEND=tensorflow (recurrent_zoo.layers "
            "work on JAX and PyTorch too)"
        )
    class_names = tuple(str(c) for c in class_names)
    if len(class_names) < 2 or len(set(class_names)) != len(class_names):
        raise ValueError(
            "class_names must hold at least two distinct names. "
            f"Received: class_names={class_names!r}"
        )
    if isinstance(units, int) or not units:
        raise ValueError(f"units must be a non-empty list of ints, got {units!r}")
    units = tuple(check_positive_int("units", u) for u in units)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}. Received: cell={cell!r}")
    if not isinstance(bag_of_words, bool):
        raise ValueError(
            f"bag_of_words must be True or False. Received: {bag_of_words!r}"
        )
    if not isinstance(naive_bayes_buckets, int) or naive_bayes_buckets < 0:
        raise ValueError(
            "naive_bayes_buckets must be a non-negative int. "
            f"Received: naive_bayes_buckets={naive_bayes_buckets!r}"
        )
    if bag_of_words and naive_bayes_buckets:
        raise ValueError(
            "bag_of_words and naive_bayes_buckets are two wide parts; "
            f"choose one. Received: bag_of_words={bag_of_words}, "
            f"naive_bayes_buckets={naive_bayes_buckets}"
        )
    wide_weight = check_rate("wide_weight", wide_weight, allow_one=True)
    return class_names, units, wide_weight


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class TextClassifier(keras.Model):
    """Bidirectional recurrent text classifier over raw strings.

    The whole pipeline lives in the model, so `fit`, `predict`, `.keras`
    files and exported SavedModels all take plain strings:

        ids = TextVectorization(text)     (`standardize_text`: lower-cased
                                          words without punctuation)
        x   = Embedding(ids)          with mask = ids != 0
            (+ HashedBigramEmbedding(ids) if bigram_buckets > 0)
        h   = [Bidirectional(RNN_i)]  for i in range(len(units)), stacked
        p   = AttentionPooling(h)     (Yang et al., 2016)
        y   = sigmoid(w^T p + b)                    (two classes)
            = softmax(W p + b)                      (more than two)

    and with `bag_of_words=True` (softmax or sigmoid alike):

        y_deep = softmax(W p + b)
        y_wide = softmax(10 U tfidf(ids) + c)
        y      = (1 - wide_weight) y_deep + wide_weight y_wide
        loss   = L(y_deep) + L(y_wide)             (training only)

    and with `naive_bayes_buckets=N` instead, the same average with

        y_wide = sigmoid(NBSVM(text))    (softmax for more than two classes)

    where `NBSVM` (`recurrent_zoo.layers.NaiveBayesNgrams`) is a linear
    classifier over the binary unigrams and bigrams of the whole text,
    hashed into N buckets and scaled by their naive-Bayes log-count ratios
    (Wang & Manning 2012). It is fitted in closed form by
    `adapt(texts, labels)` and not trained by gradient: `fit` trains the
    recurrent part on `L(y_deep)`. On IMDB, averaging the two at
    `wide_weight=0.5` is what lifted the sentiment preset above either
    alone (README, Accuracy).

    Padding is cut per batch (`TrimPadding`) before the embedding, so short
    batches cost less than `sequence_length` steps. With two classes the
    output is `(batch, 1)`, the probability of `class_names[1]`;
    `predict_proba` always returns `(batch, num_classes)`.

    With `bag_of_words=True` the model is a wide & deep pair (Cheng et al.,
    2016): beside the recurrent classifier, a linear classifier over the
    text's TF-IDF vector (`TfIdfBagOfWords`, the features of the TF-IDF +
    linear SVM baseline). Topic classification leans on rare words (names,
    addresses, jargon) that a linear model over every word uses directly;
    the recurrent encoder adds what word order and context carry. The parts
    train in one pass over the same batches, each on its own loss (`L`, the
    compiled loss), and the output is the weighted average of their
    probabilities. Trained through one summed logit instead, the pair fitted
    the training set within a few epochs, after which neither part got much
    gradient, and validated lower (the README's Accuracy section has the
    figures). `fit` still reports `L(y)`, the loss of the output, as `loss`,
    like `val_loss`, and the output's metrics.

    The vocabulary is empty until `adapt(texts)` is called on training text
    (or `vocabulary=` is given); it is saved with the model, and so are the
    bag of words' IDF weights, which `adapt` also sets.

    Args:
        class_names: names of the classes, in label order (at least two).
        vocabulary_size: most frequent words kept, including the padding and
            out-of-vocabulary ids.
        sequence_length: words kept per text (the rest are cut).
        embedding_dim: size of the word vectors.
        units: hidden size per direction of each stacked recurrent layer.
        cell: recurrent cell, a name of `recurrent_zoo.cells.CELLS`:
            "layer_norm_lstm" (default, Ba et al. 2016), "lstm" (no
            normalization), "layer_norm_gru", "gru", "simple_rnn"
            (layer-normalized Elman RNN), or Keras's own "keras_lstm" /
            "keras_gru" for comparison.
        attention_units: size of the attention pooling's hidden space.
        embedding_dropout: dropout rate on whole word vectors (a dropped word
            is zeroed in every feature).
        dropout: dropout rate between recurrent layers and before the head.
        recurrent_dropout: dropout on the recurrent state (slow: it forces
            the generic per-step loop).
        bigram_buckets: if positive, each word vector also gets the vector
            of the bigram it starts, hashed into this many buckets
            (`HashedBigramEmbedding`); 0 uses words only.
        bag_of_words: if True, add a linear classifier over the TF-IDF bag
            of words of each text's first `sequence_length` words (see above).
        naive_bayes_buckets: if positive, add instead NBSVM over the whole
            text's unigrams and bigrams hashed into this many buckets (see
            above; `adapt` then needs the labels); 0: none.
        wide_weight: with `bag_of_words` or `naive_bayes_buckets`, the
            weight in `[0, 1]` of the linear classifier's probabilities in
            the output (the recurrent one gets `1 - wide_weight`). Ignored
            otherwise.
        vocabulary: optional word list (most frequent first, without the
            padding and `[UNK]` entries) instead of `adapt`.
        name: the model's name.

    Call arguments:
        inputs: string tensor `(batch,)`.
        training: whether dropout is active.

    Example:

    >>> model = TextClassifier(["neg", "pos"], vocabulary_size=100,
    ...                        embedding_dim=8, units=(4,), attention_units=4)
    >>> model.adapt(["a good film", "a bad film"])
    >>> model.predict_proba(["good"]).shape
    (1, 2)

    Reference:
        Z. Yang et al. "Hierarchical Attention Networks for Document
        Classification." NAACL 2016 (the attention pooling).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        vocabulary_size: int = 20_000,
        sequence_length: int = 400,
        embedding_dim: int = 128,
        units: Sequence[int] = (64,),
        cell: str = "layer_norm_lstm",
        attention_units: int = 64,
        embedding_dropout: float = 0.2,
        dropout: float = 0.3,
        recurrent_dropout: float = 0.0,
        bigram_buckets: int = 0,
        bag_of_words: bool = False,
        naive_bayes_buckets: int = 0,
        wide_weight: float = 0.8,
        vocabulary: Sequence[str] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        class_names, units, wide_weight = _checked_arguments(
            class_names, units, cell, bag_of_words, naive_bayes_buckets, wide_weight
        )

        vectorizer = text_vectorizer(
            check_positive_int("vocabulary_size", vocabulary_size),
            check_positive_int("sequence_length", sequence_length),
            name="vectorizer",
        )
        if vocabulary is not None:
            # Set, not passed to the constructor: a constructor vocabulary
            # lives in the layer's config, which this model's config omits,
            # and Keras then saves no vocabulary asset either.
            vectorizer.set_vocabulary(list(vocabulary))
        text = keras.Input(shape=(), dtype="string", name="text")
        ids = TrimPadding(name="trim_padding")(vectorizer(text))
        x = encoder(
            ids,
            vocabulary_size,
            embedding_dim,
            bigram_buckets,
            embedding_dropout,
            units,
            cell,
            dropout,
            recurrent_dropout,
        )
        pooled, scores = AttentionPooling(
            check_positive_int("attention_units", attention_units),
            name="attention_pooling",
        )(x, return_attention_scores=True)
        pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
        probabilities, parts = head(
            text,
            ids,
            pooled,
            len(class_names),
            vocabulary_size,
            bag_of_words,
            naive_bayes_buckets,
            wide_weight,
        )
        super().__init__(inputs=text, outputs=probabilities, name=name, **kwargs)

        self.class_names = class_names
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.attention_units = attention_units
        self.embedding_dropout = embedding_dropout
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.bigram_buckets = bigram_buckets
        self.bag_of_words = bag_of_words
        self.naive_bayes_buckets = naive_bayes_buckets
        self.wide_weight = wide_weight
        object.__setattr__(self, "_parts", parts)
        self._given_vocabulary = vocabulary is not None
        # Kept for `attention()`: a second model over the same layers that
        # ends at the ids and the pooling weights.
        self._ids = ids
        self._scores = scores

    @property
    def vectorizer(self) -> keras.layers.TextVectorization:
        # Looked up, not stored: a layer stored as an attribute is also
        # tracked under that name, and Keras's loader then visits the
        # vectorizer by two paths and can look for its vocabulary asset
        # under the one it was not saved under.
        return self.get_layer("vectorizer")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def adapt(
        self, texts: Any, batch_size: int | None = None, labels: Any = None
    ) -> None:
        """Learns what the model needs from training texts (never test data).

        Builds the vocabulary, unless the model was given one (`vocabulary=`
        is kept as it is), then, with `bag_of_words`, the IDF weights, or,
        with `naive_bayes_buckets`, fits the NBSVM part to `labels`.

        Args:
            texts: strings: a list, an array, or a `tf.data.Dataset` of
                string batches (a list or array with `naive_bayes_buckets`).
            batch_size: texts per batch when `texts` is not a dataset.
            labels: class ids, one per text; needed with
                `naive_bayes_buckets`, ignored otherwise.
        """
        if self.naive_bayes_buckets and labels is None:
            raise ValueError(
                "this model's NBSVM part (naive_bayes_buckets="
                f"{self.naive_bayes_buckets}) learns from labels: call "
                "adapt(texts, labels=labels)"
            )
        if isinstance(texts, (list, tuple)):
            texts = np.asarray(texts, dtype=object)
        if not self._given_vocabulary:
            self.vectorizer.adapt(texts, batch_size=batch_size)
        if self.bag_of_words:
            self.get_layer("bag_of_words").adapt(self._word_ids(texts, batch_size))
        if self.naive_bayes_buckets:
            self.get_layer("naive_bayes").adapt(texts, labels)

    def _word_ids(self, texts: Any, batch_size: int | None) -> Any:
        if hasattr(texts, "map"):
            return texts.map(self.vectorizer)
        step = batch_size or 512
        return (
            self.vectorizer(np.asarray(texts[i : i + step], dtype=object))
            for i in range(0, len(texts), step)
        )

    def compile(
        self,
        optimizer: Any = "auto",
        loss: Any = "auto",
        metrics: Any = "auto",
        learning_rate: float = 3e-3,
        **kwargs: Any,
    ) -> None:
        """`keras.Model.compile` with defaults that suit this model.

        "auto" gives Adam at `learning_rate` with gradient clipping (long
        sequences occasionally produce large recurrent gradients), the
        cross-entropy matching the head, and accuracy. Under the
        "mixed_float16" policy the optimizer is wrapped in a
        `SparseSafeLossScaleOptimizer` (dynamic loss scaling, as Keras
        does, but with an overflow check that also covers the embedding's
        sparse gradient).
        """
        binary = self.num_classes == 2
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(learning_rate, clipnorm=1.0)
        if (
            self.dtype_policy.name == "mixed_float16"
            and kwargs.get("auto_scale_loss", True)
            and optimizer is not None
        ):
            # What Keras's compile would wrap it in, with the check above.
            optimizer = keras.optimizers.get(optimizer)
            if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer = SparseSafeLossScaleOptimizer(
                    optimizer, name="loss_scale_optimizer"
                )
        if loss == "auto":
            loss = (
                "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
            )
        if metrics == "auto":
            metrics = ["accuracy"]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config: dict) -> None:
        # The parent skips models with a custom `compile`. Saved settings are
        # concrete objects ("auto" never reaches here), so ours restores them
        # exactly, and the optimizer's variables are then built so that its
        # saved state can be loaded into them.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data: Any) -> dict:
        """One step; a wide & deep model trains each part on its own loss."""
        if self._parts is None:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            deep, wide, probabilities = self._parts(x, training=True)
            # `compute_loss` is the compiled loss, averaged over the global
            # batch under a multi-replica strategy, as Keras's own step does
            # (it adds `self.losses` too: this model has none).
            loss = self.compute_loss(
                x, y, deep, sample_weight, training=True
            ) + self.compute_loss(x, y, wide, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        # Reported like `val_loss`: the loss of what the model outputs, in
        # the tracker `fit` reads as `loss` (unscaled, as Keras's step does).
        reported = self.compute_loss(x, y, probabilities, sample_weight)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(
            reported * replicas, sample_weight=tf.shape(x)[0]
        )
        return self.compute_metrics(x, y, probabilities, sample_weight)

    def predict_proba(self, texts: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities `(len(texts), num_classes)` for raw strings."""
        texts = np.asarray(list(texts) if not hasattr(texts, "shape") else texts)
        if texts.size == 0:
            return np.zeros((0, self.num_classes), "float32")
        p = self.predict(texts.astype(object), batch_size=batch_size, verbose=0)
        p = np.asarray(p, dtype="float32")
        return np.concatenate([1.0 - p, p], axis=1) if self.num_classes == 2 else p

    def predict_labels(self, texts: Any, batch_size: int = 256) -> list[str]:
        """The most probable class name for each text."""
        ids = self.predict_proba(texts, batch_size).argmax(axis=1)
        return [self.class_names[i] for i in ids]

    def attention(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """Per text, the `(word, attention weight)` pairs the pooling used.

        Words are the model's own tokens (lower-cased, out-of-vocabulary words
        shown as `[UNK]`), cut at `sequence_length`; the weights of one text
        sum to 1.
        """
        # Built per call (cheap) rather than kept: a stored model would be
        # tracked and saved with this one.
        probe = keras.Model(self.inputs, [self._ids, self._scores])
        ids, scores = probe.predict(np.asarray(list(texts), dtype=object), verbose=0)
        words = [str(w) for w in self.vectorizer.get_vocabulary()]
        return [
            [
                (words[i], float(s))
                for i, s in zip(row_ids, row_scores, strict=True)
                if i != 0
            ]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def get_config(self) -> dict:
        # The vocabulary is not config: it is saved as an asset of the
        # vectorizer and restored with the weights.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "class_names": list(self.class_names),
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "embedding_dim": self.embedding_dim,
            "units": list(self.units),
            "cell": self.cell,
            "attention_units": self.attention_units,
            "embedding_dropout": self.embedding_dropout,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "bigram_buckets": self.bigram_buckets,
            "bag_of_words": self.bag_of_words,
            "naive_bayes_buckets": self.naive_bayes_buckets,
            "wide_weight": self.wide_weight,
        }

    @classmethod
    def from_config(cls, config: dict) -> TextClassifier:
        return cls(**config)
