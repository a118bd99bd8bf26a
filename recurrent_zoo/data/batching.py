"""Length-bucketed batches: similar-length texts share a batch.

A recurrent layer runs as many steps as the longest text of its batch.
Random batches of IMDB reviews (10 to 2,500 words) are mostly padding;
grouping texts of similar length before batching (and cutting the padding
in the model, `TrimPadding`) makes an epoch roughly twice as cheap without
changing what the model sees. Batches are still drawn in random order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

__all__ = ["bucketed_dataset", "counted_bucketed_dataset"]


def bucketed_dataset(
    texts: Sequence[str],
    labels: np.ndarray | None,
    batch_size: int,
    shuffle: bool = True,
    seed: int | None = None,
    bucket_width: int = 25,
    max_length: int = 400,
) -> tf.data.Dataset:
    """Batches of `(text, label)` grouped by word count.

    Args:
        texts: the documents.
        labels: their labels, one per text; None for unlabeled texts (e.g.
            language-model pretraining), which gives batches of texts only.
        batch_size: examples per batch (a bucket's last batch may be smaller).
        shuffle: reshuffle every epoch (the examples, then the order in which
            buckets fill). False keeps evaluation deterministic.
        seed: shuffle seed.
        bucket_width: words per bucket: texts whose lengths differ by less
            than this may share a batch.
        max_length: lengths at or above this share the last bucket (the
            model cuts texts there anyway).

    Returns:
        A `tf.data.Dataset` of `(string (batch,), label (batch,))`, or of
        `string (batch,)` when `labels` is None.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if bucket_width < 1 or max_length < 1:
        raise ValueError(
            f"bucket_width and max_length must be positive, got "
            f"{bucket_width} and {max_length}"
        )
    texts_t = tf.constant(list(texts), dtype=tf.string, shape=[len(texts)])
    unlabeled = labels is None
    if unlabeled:
        labels = np.zeros(len(texts), "int32")
    ds = tf.data.Dataset.from_tensor_slices((texts_t, np.asarray(labels)))
    if shuffle and len(texts):
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    boundaries = list(range(bucket_width, max_length, bucket_width))
    ds = ds.bucket_by_sequence_length(
        # Whitespace words approximate the vectorizer's tokens well enough
        # for grouping; the model does the exact split.
        lambda text, label: tf.size(tf.strings.split(text)),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    if shuffle:
        # Buckets fill in length order within a pass; mixing a few batches
        # keeps consecutive steps from all being short or all long.
        ds = ds.shuffle(64, seed=seed, reshuffle_each_iteration=True)
    if unlabeled:
        ds = ds.map(lambda text, label: text)
    return ds.prefetch(tf.data.AUTOTUNE)


def counted_bucketed_dataset(
    texts: Sequence[str],
    labels: np.ndarray | None,
    batch_size: int,
    shuffle: bool = True,
    seed: int | None = None,
    max_length: int = 400,
) -> tuple[tf.data.Dataset, int]:
    """`bucketed_dataset` with its batch count, which it cannot know itself.

    Bucketing fixes which texts share a bucket, so the count is the same
    every epoch whatever the shuffle, and one unshuffled pass finds it.
    Declaring it gives progress bars their length, spares Keras its
    "ran out of data" warning, and sizes learning-rate schedules.

    Returns:
        The dataset (its cardinality declared) and its number of batches.
    """
    count = bucketed_dataset(
        texts, labels, batch_size, shuffle=False, max_length=max_length
    ).reduce(np.int64(0), lambda n, _: n + 1)
    ds = bucketed_dataset(
        texts, labels, batch_size, shuffle, seed, max_length=max_length
    )
    steps = int(count)
    return ds.apply(tf.data.experimental.assert_cardinality(steps)), steps
