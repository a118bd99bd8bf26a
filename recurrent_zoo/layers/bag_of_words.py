"""A TF-IDF bag of words computed from word ids inside the model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
from keras import ops

from recurrent_zoo.layers.checks import check_positive_int

__all__ = ["TfIdfBagOfWords"]

# TextVectorization's reserved ids: padding and the out-of-vocabulary token.
_PADDING_ID = 0
_OOV_ID = 1


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class TfIdfBagOfWords(keras.layers.Layer):
    """L2-normalized TF-IDF vector of each text, from its word ids.

        c_w   = occurrences of word id w in the text    (w >= 2)
        tf_w  = 1 + log(c_w)  if c_w > 0,  else 0        (sublinear TF)
        idf_w = log((1 + n) / (1 + df_w)) + 1            (smooth IDF)
        x     = tf * idf / ||tf * idf||_2

    These are scikit-learn's `TfidfVectorizer(sublinear_tf=True)` features,
    the ones the TF-IDF + linear SVM baseline uses, so a `Dense` layer on
    this output is that linear model trained inside a Keras model: beside a
    recurrent encoder it makes a wide & deep classifier (Cheng et al., 2016)
    in which rare but telling words (names, addresses, jargon) reach the
    output directly instead of through an RNN state.

    `n` and the document frequencies `df_w` come from `adapt(ids)` on
    training texts and are stored in the non-trainable weight `idf`, so they
    are saved and restored with the other weights. Before `adapt` every
    `idf_w` is 1. Padding (id 0) and out-of-vocabulary words (id 1) are not
    counted, as a vectorizer with a fixed vocabulary ignores unknown words.

    Args:
        vocabulary_size: number of word ids, including the two reserved ones
            (`TextVectorization`'s `max_tokens`).

    Call arguments:
        inputs: int tensor of word ids `(batch, T)`.
        training: unused.
        mask: unused (padding is recognized by its id).

    Masking: consumes the words' mask and produces none; the output is one
    vector per text.

    Example:

    >>> bag = TfIdfBagOfWords(6)
    >>> bag.adapt(np.array([[2, 3, 0], [2, 4, 4]]))
    >>> np.round(bag(np.array([[4, 4, 1, 0]])).numpy(), 3).tolist()
    [[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]

    Reference:
        H.-T. Cheng et al. "Wide & Deep Learning for Recommender Systems."
        DLRS 2016.
    """

    def __init__(self, vocabulary_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocabulary_size = check_positive_int("vocabulary_size", vocabulary_size)
        if vocabulary_size <= _OOV_ID + 1:
            raise ValueError(
                "vocabulary_size must leave room for words beside the padding "
                "and out-of-vocabulary ids. "
                f"Received: vocabulary_size={vocabulary_size}"
            )
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        self.idf = self.add_weight(
            shape=(self.vocabulary_size,),
            initializer="ones",
            trainable=False,
            name="idf",
        )
        self.built = True

    def adapt(self, ids: Any, batch_size: int = 512) -> None:
        """Sets `idf` from the word ids of the training texts.

        Args:
            ids: `(num_texts, T)` int array or tensor, or an iterable of such
                batches (a `tf.data.Dataset` of id batches works).
            batch_size: rows counted at a time when `ids` is one array.
        """
        if not self.built:
            self.build(None)
        if hasattr(ids, "shape") and len(ids.shape) == 2:
            array = np.asarray(ids)
            ids = (array[i : i + batch_size] for i in range(0, len(array), batch_size))
        document_frequency = np.zeros(self.vocabulary_size, np.int64)
        texts = 0
        for batch in _batches(ids):
            batch = np.asarray(batch, dtype=np.int64)
            if batch.ndim != 2:
                raise ValueError(
                    f"adapt expects batches of shape (texts, T), got {batch.shape}"
                )
            if batch.size and (batch.min() < 0 or batch.max() >= self.vocabulary_size):
                raise ValueError(
                    f"word ids must lie in [0, {self.vocabulary_size}), got "
                    f"{batch.min()}..{batch.max()}"
                )
            rows = np.repeat(np.arange(len(batch)), batch.shape[1])
            present = np.zeros((len(batch), self.vocabulary_size), bool)
            present[rows, batch.reshape(-1)] = True
            document_frequency += present.sum(axis=0)
            texts += len(batch)
        if texts == 0:
            raise ValueError("adapt needs at least one text; got none")
        idf = np.log((1.0 + texts) / (1.0 + document_frequency)) + 1.0
        self.idf.assign(idf.astype(self.idf.dtype))

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        ids = ops.cast(inputs, "int32")
        counted = ops.cast(ops.greater(ids, _OOV_ID), self.compute_dtype)
        # Counts per text, (batch, vocabulary_size): bincount is row-wise for
        # a 2-D input, and padding and unknown words add a weight of 0.
        counts = ops.bincount(ids, weights=counted, minlength=self.vocabulary_size)
        counts = ops.cast(counts, self.compute_dtype)
        # 1 + log(c) where c > 0; the inner maximum keeps log away from 0.
        tf = ops.where(counts > 0, 1.0 + ops.log(ops.maximum(counts, 1.0)), 0.0)
        weighted = tf * ops.cast(self.idf, self.compute_dtype)
        norm = ops.sqrt(ops.sum(ops.square(weighted), axis=-1, keepdims=True))
        # A text with no known word stays all zeros instead of 0 / 0.
        return weighted / ops.maximum(norm, keras.config.epsilon())

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.vocabulary_size)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"vocabulary_size": self.vocabulary_size})
        return config


def _batches(ids: Iterable[Any]) -> Iterable[Any]:
    for batch in ids:
        yield batch.numpy() if hasattr(batch, "numpy") else batch
