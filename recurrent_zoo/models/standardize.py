"""The text vectorizer every model here uses, with the standardization of
`recurrent_zoo.layers.standardize`."""

from __future__ import annotations

import keras

from recurrent_zoo.layers.standardize import standardize_text

__all__ = ["standardize_text", "text_vectorizer"]


def text_vectorizer(
    vocabulary_size: int, sequence_length: int | None = None, name: str | None = None
) -> keras.layers.TextVectorization:
    """The `TextVectorization` every model here uses: one place, so that a
    vocabulary computed on its own (e.g. once per tuning search) is the one a
    model would adapt."""
    return keras.layers.TextVectorization(
        max_tokens=vocabulary_size,
        output_sequence_length=sequence_length,
        standardize=standardize_text,
        name=name,
    )
