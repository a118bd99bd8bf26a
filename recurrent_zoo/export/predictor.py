"""Prediction from an exported SavedModel or a `.keras` file, in process."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from recurrent_zoo.export.saved_model import find_saved_model
from recurrent_zoo.export.serving import (
    INPUT_KEY,
    LABELS_FILE,
    SIGNATURE_KEY,
    serving_function,
)
from recurrent_zoo.models.loading import load_model_file

__all__ = ["Predictor", "load_predictor"]


def _as_bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        # Recovers the original bytes of command-line arguments and file
        # names that Python decoded with surrogateescape.
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates, e.g. from JSON
        return text.encode("utf-8", "replace")


class Predictor:
    """Raw strings to the serving outputs, from a SavedModel or a `.keras` file.

    Both sources run the same signature (a `.keras` model through
    `serving_function`), so they return the same keys.

    Args:
        function: takes a `tf.string` tensor `[None]`, returns the outputs.
        class_names: class names in label-id order.
        source: "saved_model" or "keras", for messages.
        path: where the model was loaded from.
        batch_size: texts per call, to bound memory on long inputs.
    """

    def __init__(
        self,
        function: Callable,
        class_names: Sequence[str],
        source: str,
        path: Path,
        batch_size: int = 256,
    ) -> None:
        self.function = function
        self.class_names = tuple(class_names)
        self.source = source
        self.path = path
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str | bytes]) -> dict[str, np.ndarray]:
        """Outputs for `texts`, as NumPy arrays (strings decoded to `str`).

        Args:
            texts: str or bytes; str that cannot be UTF-8 encoded and bytes
                that are not UTF-8 are repaired (U+FFFD), never rejected.

        Returns:
            The signature's outputs, each with `len(texts)` rows.
        """
        data = [_as_bytes(t) for t in texts]
        chunks = [
            self.function(tf.constant(data[i : i + self.batch_size], tf.string))
            # One call even for no texts: the outputs keep their shapes.
            for i in range(0, max(len(data), 1), self.batch_size)
        ]
        result = {}
        for key in chunks[0]:
            value = np.concatenate([c[key].numpy() for c in chunks], axis=0)
            if value.dtype == object:
                value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(
                    value
                )
            result[key] = value
        return result


def load_predictor(
    path: str | os.PathLike[str], top_k: int = 5, batch_size: int = 256
) -> Predictor:
    """Loads a `.keras` model file or an exported SavedModel for prediction.

    Args:
        path: a `.keras` file, a SavedModel folder, or a model base path (its
            highest version is used).
        top_k: `top_k` of the signature built for a `.keras` model (an
            exported SavedModel keeps the one it was exported with).
        batch_size: texts per call.

    Returns:
        A `Predictor`.

    Raises:
        FileNotFoundError: if nothing loadable is at `path`.
        ModelFileError: (a ValueError) if `path` is a file but not a
            loadable `.keras` model.
    """
    path = Path(path)
    if path.is_file():
        model = load_model_file(path)
        function = serving_function(model, top_k=top_k)
        return Predictor(function, model.class_names, "keras", path, batch_size)
    folder = find_saved_model(path)
    loaded = tf.saved_model.load(str(folder))
    signature = loaded.signatures[SIGNATURE_KEY]
    labels = folder / LABELS_FILE
    if labels.is_file():
        names = labels.read_text(encoding="utf-8").splitlines()
    else:  # a SavedModel from elsewhere: number the classes
        width = signature.structured_outputs["probabilities"].shape[-1]
        names = [str(i) for i in range(width or 0)]

    def function(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return signature(**{INPUT_KEY: text})

    # Keeps the loaded object (and its variables) alive with the signature.
    function.loaded = loaded  # type: ignore[attr-defined]
    return Predictor(function, names, "saved_model", folder, batch_size)
