"""Embeddings of hashed word bigrams, aligned with the words they start."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from recurrent_zoo.layers.checks import check_positive_int

__all__ = ["HashedBigramEmbedding", "hash_bigrams"]

# An odd multiplier spreads (first, second) pairs over the buckets; any
# fixed value works as long as saved models keep using the same one.
_MULTIPLIER = 1_000_003


def hash_bigrams(ids: Any, num_buckets: int, padding_id: int = 0) -> Any:
    """Bucket ids `(batch, T)` of the bigrams `(w_t, w_{t+1})`; 0 where none.

    b_t = 1 + (w_t * 1000003 + w_{t+1}) mod num_buckets   if both != pad
    b_t = 0                                                otherwise
    """
    # int64 so that id * multiplier cannot overflow for any vocabulary.
    ids = ops.cast(ids, "int64")
    following = ops.concatenate(
        [ids[:, 1:], ops.full_like(ids[:, :1], padding_id)], axis=1
    )
    both = ops.logical_and(
        ops.not_equal(ids, padding_id), ops.not_equal(following, padding_id)
    )
    hashed = ops.mod(ids * _MULTIPLIER + following, num_buckets) + 1
    return ops.where(both, hashed, ops.zeros_like(hashed))


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class HashedBigramEmbedding(keras.layers.Layer):
    """Vectors of the bigrams that start at each word, from word ids.

        b_t = hash_bigrams(w)_t                (bucket of (w_t, w_{t+1}))
        output_t = E[b_t]                      (E: (num_buckets + 1, dim))

    Position `t` gets the bigram `(w_t, w_{t+1})`, so the output can be added
    to the word vectors: the recurrent layer then reads word order at two
    scales, the way fastText's bigram features help a linear model (Joulin et
    al., 2017). Hashing needs no bigram vocabulary (the hashing trick,
    Weinberger et al., 2009); distinct bigrams may share a bucket, which more
    buckets make rarer. Bucket 0 (the last word, or padding) has a vector of
    its own.

    Args:
        num_buckets: number of hash buckets, a positive int.
        output_dim: size of the bigram vectors, a positive int.
        embeddings_initializer: initializer for `E`.
        padding_id: the word id used for padding.

    Call arguments:
        inputs: int tensor of word ids `(batch, T)`, right-padded.
        training: unused.
        mask: unused.

    Masking: produces the words' mask (`ids != padding_id`), so that adding
    this output to a masked word embedding keeps that mask.

    Example:

    >>> ids = np.array([[5, 3, 8, 0]])
    >>> hash_bigrams(ids, 10).numpy().tolist()
    [[9, 8, 0, 0]]
    >>> HashedBigramEmbedding(10, 4)(ids).shape
    TensorShape([1, 4, 4])

    Reference:
        A. Joulin, E. Grave, P. Bojanowski, T. Mikolov. "Bag of Tricks for
        Efficient Text Classification." EACL 2017.
    """

    def __init__(
        self,
        num_buckets: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        padding_id: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_buckets = check_positive_int("num_buckets", num_buckets)
        self.output_dim = check_positive_int("output_dim", output_dim)
        if not isinstance(padding_id, int) or isinstance(padding_id, bool):
            raise ValueError(f"padding_id must be an int, got {padding_id!r}")
        self.padding_id = padding_id
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != 2:
            raise ValueError(
                "HashedBigramEmbedding expects (batch, time) ids. "
                f"Received input shape: {input_shape}"
            )
        self.embeddings = self.add_weight(
            shape=(self.num_buckets + 1, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None):
        buckets = hash_bigrams(inputs, self.num_buckets, self.padding_id)
        return ops.take(self.embeddings, buckets, axis=0)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return ops.not_equal(inputs, self.padding_id)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (*input_shape, self.output_dim)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_buckets": self.num_buckets,
            "output_dim": self.output_dim,
            "embeddings_initializer": keras.initializers.serialize(
                self.embeddings_initializer
            ),
            "padding_id": self.padding_id,
        }
