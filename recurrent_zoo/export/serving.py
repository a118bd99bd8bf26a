"""The serving signature: raw strings in, named outputs out, TensorFlow ops only.

The outputs are listed in `recurrent_zoo.export`'s docstring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf

__all__ = [
    "INPUT_KEY",
    "LABELS_FILE",
    "METADATA_FILE",
    "SIGNATURE_KEY",
    "serving_function",
]

SIGNATURE_KEY = "serving_default"
INPUT_KEY = "text"
LABELS_FILE = "assets.extra/labels.txt"
METADATA_FILE = "assets.extra/recurrent_zoo.json"


def check_model(model: Any) -> None:
    names = getattr(model, "class_names", None)
    if not isinstance(model, keras.Model) or not names:
        raise TypeError(
            "expected a recurrent_zoo TextClassifier (a keras.Model with "
            f"`class_names`) or CharLanguageModel, got {type(model).__name__}"
        )
    if len(model.inputs) != 1 or model.inputs[0].dtype != "string":
        raise ValueError(
            "the model must take a single string input, got inputs "
            f"{[(t.name, t.dtype) for t in model.inputs]}"
        )


def check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
    return top_k


def _serve(model: keras.Model, text: tf.Tensor, top_k: int) -> dict[str, tf.Tensor]:
    """The signature's body: raw strings to the named outputs."""
    names = tf.constant(list(model.class_names), dtype=tf.string)
    # A signature called directly (as TF Serving does) does not check the
    # input's shape: without this, a matrix fails deep in the tokenizer.
    text = tf.ensure_shape(text, [None], name="text_must_be_a_vector")
    # Identity on valid UTF-8, so parity with the Keras model holds; invalid
    # bytes get a defined meaning whatever `standardize` the vectorizer uses.
    text = tf.strings.unicode_transcode(
        text, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace"
    )
    p = tf.cast(model(text, training=False), tf.float32)
    if len(model.class_names) == 2:
        p = tf.concat([1.0 - p, p], axis=1)  # as TextClassifier.predict_proba
    label_id = tf.argmax(p, axis=1, output_type=tf.int64)
    outputs = {
        "probabilities": p,
        "label_id": label_id,
        "label": tf.gather(names, label_id),
        "probability": tf.reduce_max(p, axis=1),
    }
    k = min(top_k, len(model.class_names))
    if len(model.class_names) > 2 and k:
        values, ids = tf.math.top_k(p, k=k)
        outputs["top_k_ids"] = tf.cast(ids, tf.int64)
        outputs["top_k_labels"] = tf.gather(names, ids)
        outputs["top_k_probabilities"] = values
    return outputs


@contextlib.contextmanager
def cudnn_disabled(model: keras.Model) -> Iterator[None]:
    """Keras LSTM/GRU layers trace their portable loop, not cuDNN, meanwhile.

    Keras picks cuDNN at trace time when a GPU is visible and bakes the
    `CudnnRNN` op into the graph; that op has no CPU kernel, so such an export
    fails on a CPU-only server. This package's layers never use cuDNN.
    """
    saved = []
    # `_flatten_layers` also reaches layers held by wrappers (Bidirectional).
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if hasattr(layer, "use_cudnn"):
            saved.append((layer, layer.use_cudnn))
            layer.use_cudnn = False
    try:
        yield
    finally:
        for layer, value in saved:
            layer.use_cudnn = value


def serving_function(model: keras.Model, top_k: int = 5) -> Callable:
    """The exported signature as an in-process `tf.function` (no SavedModel).

    Args:
        model: a `TextClassifier` (or any keras.Model over one string input
            with `class_names`).
        top_k: number of best classes in the `top_k_*` outputs for models with
            more than two classes; 0 leaves them out.

    Returns:
        A `tf.function` taking a `tf.string` tensor of shape `[None]` and
        returning the dict of outputs described in this module's docstring.

    Raises:
        TypeError: if `model` has no `class_names`.
        ValueError: if the model does not take one string input, or on a bad
            `top_k`.
    """
    check_model(model)
    top_k = check_top_k(top_k)

    # No Python control flow depends on tensors: autograph would only slow
    # tracing down.
    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)],
        autograph=False,
    )
    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return _serve(model, text, top_k)

    return serve
