"""Reversing each sequence within its real span, padding left in place.

What a backward recurrent direction reads: `Bidirectional` and the encoder's
backward language model both run a sequence from its own last real token,
not from the end of the padding.
"""

from __future__ import annotations

from keras import ops

__all__ = ["reversal_indices", "reverse_within_spans"]


def reversal_indices(mask):
    """Per-row time indices that reverse each row within its real span.

    The span of a row ends at its last unmasked step, so trailing padding stays
    in place; applying the same gather twice is the identity.
    """
    mask = ops.cast(mask, "int32")
    positions = ops.cumsum(ops.ones_like(mask), axis=1)  # 1..T, works for dynamic T
    ends = ops.max(positions * mask, axis=1, keepdims=True)
    return ops.where(positions <= ends, ends - positions, positions - 1)


def reverse_within_spans(x, indices):
    """Reverses time within each row's span; all of it when `indices` is None."""
    if indices is None:
        return ops.flip(x, axis=1)  # Same as go_backwards: matches Keras exactly.
    if len(x.shape) == 3:
        indices = ops.expand_dims(indices, -1)
    return ops.take_along_axis(x, indices, axis=1)
