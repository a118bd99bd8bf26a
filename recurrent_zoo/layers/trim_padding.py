"""Drop the all-padding tail of a batch of token ids."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from recurrent_zoo.layers.checks import check_positive_int

__all__ = ["TrimPadding"]


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class TrimPadding(keras.layers.Layer):
    """Cuts a right-padded `(batch, T)` id tensor to the batch's longest row.

    `TextVectorization(output_sequence_length=T)` pads every batch to `T`; a
    recurrent layer then spends the same time on padding as on words. With
    length-bucketed batches most rows are far shorter than `T`, and cutting
    the shared tail of zeros makes an epoch proportionally cheaper. Nothing
    else changes: the cut steps were padding, which a mask-aware model skips
    anyway.

        L = max_b #{t : ids[b, t] != padding_id}  (at least `min_length`)
        output = ids[:, :L]

    The row lengths are counted, not located, so ids must be right-padded
    (padding only after the last token), as `TextVectorization` produces.

    Args:
        padding_id: the id used for padding (0 for `TextVectorization`).
        min_length: never cut below this many steps, a positive int, so a
            batch of empty texts still has a time axis.

    Call arguments:
        inputs: int tensor `(batch, T)`.
        training: unused.
        mask: unused; no mask is produced (let `Embedding(mask_zero=True)`
            derive it from the ids).

    Example:

    >>> ids = np.array([[5, 3, 0, 0, 0], [7, 0, 0, 0, 0]])
    >>> TrimPadding()(ids).shape
    TensorShape([2, 2])
    """

    def __init__(self, padding_id: int = 0, min_length: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(padding_id, int) or isinstance(padding_id, bool):
            raise ValueError(f"padding_id must be an int, got {padding_id!r}")
        self.padding_id = padding_id
        self.min_length = check_positive_int("min_length", min_length)

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != 2:
            raise ValueError(
                "TrimPadding expects (batch, time) ids. "
                f"Received input shape: {input_shape}"
            )

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None):
        lengths = ops.sum(ops.cast(ops.not_equal(inputs, self.padding_id), "int32"), 1)
        longest = ops.maximum(ops.max(lengths), self.min_length)
        longest = ops.minimum(longest, ops.shape(inputs)[1])
        return inputs[:, :longest]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], None)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "padding_id": self.padding_id,
            "min_length": self.min_length,
        }
