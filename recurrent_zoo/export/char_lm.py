"""The character language model's SavedModel: score texts, generate text.

A `CharLanguageModel` exports two signatures, TensorFlow ops only (callable
with `tf.saved_model.load` where recurrent_zoo and Keras are not installed):

    serving_default   text   string [None]
                   -> bits_per_character  float32 [None]  (0 for an empty text)
                      bits                float64 [None]  summed over the text
                      characters          int64   [None]  characters scored
    generate          prompt string [], length int32 [],
                      temperature float32 [], top_k int32 [] (0: all),
                      seed int64 []
                   -> text  string []   the generated characters only

The vocabulary travels as a code point -> id table, so a text is read as
`CharLanguageModel.stream` reads it (the boundary id, then each code
point's id; invalid UTF-8 bytes become U+FFFD first). Scoring reads each
text from a fresh state in chunks of `CHUNK` steps with the state carried,
so a long text costs memory for one chunk's logits only, as
`bits_per_character` does. Generation reads the prompt once, then takes one
recurrent step per character from the carried state; `temperature=0` is
greedy (equal to `model.generate(..., temperature=0)`), and draws are
`tf.random.stateless_categorical` seeded by (seed, step), so a seed
reproduces a text (not the NumPy draws of `model.generate`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from recurrent_zoo.models import CharLanguageModel
from recurrent_zoo.models.char_language_model import state_sizes
from recurrent_zoo.models.characters import BOUNDARY, PADDING, RESERVED, UNKNOWN

__all__ = ["CHUNK", "GENERATE_KEY", "char_lm_functions"]

GENERATE_KEY = "generate"
# Steps per scoring chunk: `CharLanguageModel.bits_per_character`'s default.
CHUNK = 2048


class _Graph:
    """The model's pieces as TensorFlow ops, shared by both signatures."""

    def __init__(self, model: CharLanguageModel) -> None:
        self.model = model
        characters = model.vocabulary.characters
        first = len(RESERVED)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([ord(c) for c in characters] or [-1], tf.int64),
                tf.constant(
                    list(range(first, first + len(characters))) or [0], tf.int64
                ),
            ),
            default_value=UNKNOWN,
        )
        self.tokens = tf.constant(model.vocabulary.tokens, tf.string)
        self.size = len(model.vocabulary)

    def streams(self, text: tf.Tensor) -> tf.RaggedTensor:
        """Each text's ids after the boundary id (ragged, int32)."""
        points = tf.strings.unicode_decode(
            text, "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        ids = tf.cast(self.table.lookup(tf.cast(points, tf.int64)), tf.int32)
        boundary = tf.fill([tf.shape(text)[0], 1], BOUNDARY)
        return tf.concat([tf.RaggedTensor.from_tensor(boundary), ids], axis=1)

    def zero_states(self, batch: tf.Tensor) -> list[list[tf.Tensor]]:
        return [
            [tf.zeros([batch, size]) for size in state_sizes(layer)]
            for layer in self.model.recurrent
        ]

    def step(self, ids: tf.Tensor, states: list) -> tuple[tf.Tensor, list]:
        logits, states = self.model.forward(ids, states, training=False)
        return tf.cast(logits, tf.float32), [
            [tf.cast(s, tf.float32) for s in x] for x in states
        ]


def _score(graph: _Graph, text: tf.Tensor) -> dict[str, tf.Tensor]:
    text = tf.ensure_shape(text, [None], name="text_must_be_a_vector")
    streams = graph.streams(text)
    characters = tf.cast(streams.row_lengths() - 1, tf.int64)
    # One padding column more, so even a batch of empty texts has a step.
    ids = tf.pad(streams.to_tensor(PADDING), [[0, 0], [0, 1]])
    steps = tf.shape(ids)[1] - 1
    batch = tf.shape(ids)[0]

    def body(start, states, nats):
        stop = tf.minimum(start + CHUNK, steps)
        logits, states = graph.step(ids[:, start:stop], states)
        log_p = tf.nn.log_softmax(tf.cast(logits, tf.float64))
        targets = ids[:, start + 1 : stop + 1]
        picked = tf.gather(log_p, targets, batch_dims=2)
        positions = tf.cast(tf.range(start, stop), tf.int64)
        real = positions[None, :] < characters[:, None]
        nats -= tf.reduce_sum(tf.where(real, picked, 0.0), axis=1)
        return stop, states, nats

    _, _, nats = tf.while_loop(
        lambda start, *_: start < steps,
        body,
        (tf.constant(0), graph.zero_states(batch), tf.zeros([batch], tf.float64)),
    )
    bits = nats / tf.math.log(tf.constant(2.0, tf.float64))
    per_character = bits / tf.cast(tf.maximum(characters, 1), tf.float64)
    return {
        "bits_per_character": tf.cast(per_character, tf.float32),
        "bits": bits,
        "characters": characters,
    }


def _pick(graph: _Graph, logits, temperature, top_k, seed, step) -> tf.Tensor:
    """The next id from one position's logits, as `models.pick_next` picks."""
    first = len(RESERVED)
    scores = logits[first : graph.size]
    count = graph.size - first

    def draw():
        scaled = scores / temperature
        k = tf.where((top_k > 0) & (top_k < count), top_k, count)
        # top_k lists ties lowest index first, as pick_next's stable sort.
        _, keep = tf.math.top_k(scaled, k=k)
        kept = tf.scatter_nd(keep[:, None], tf.ones_like(keep, tf.bool), [count])
        masked = tf.where(kept, scaled, tf.constant(-float("inf")))
        drawn = tf.random.stateless_categorical(
            masked[None, :], 1, seed=tf.stack([seed, tf.cast(step, tf.int64)])
        )
        return tf.cast(drawn[0, 0], tf.int32)

    chosen = tf.cond(
        temperature > 0, draw, lambda: tf.argmax(scores, output_type=tf.int32)
    )
    return first + chosen


def _generate(graph: _Graph, prompt, length, temperature, top_k, seed) -> dict:
    checks = [
        tf.debugging.assert_non_negative(length, message="length must be >= 0"),
        tf.debugging.assert_non_negative(
            temperature, message="temperature must be >= 0"
        ),
    ]
    # Before anything sized by them (the TensorArray fails on a negative
    # size with a message about reserving elements).
    with tf.control_dependencies(checks):
        length, temperature = tf.identity(length), tf.identity(temperature)
    ids = graph.streams(prompt[None]).to_tensor()
    logits, states = graph.step(ids, graph.zero_states(1))

    def body(step, last, states, chosen):
        next_id = _pick(graph, last, temperature, top_k, seed, step)
        logits, states = graph.step(tf.reshape(next_id, [1, 1]), states)
        return step + 1, logits[0, -1], states, chosen.write(step, next_id)

    _, _, _, chosen = tf.while_loop(
        lambda step, *_: step < length,
        body,
        (tf.constant(0), logits[0, -1], states, tf.TensorArray(tf.int32, size=length)),
    )
    characters = tf.gather(graph.tokens, chosen.stack())
    return {"text": tf.strings.reduce_join(characters)}


def char_lm_functions(model: CharLanguageModel) -> dict[str, Any]:
    """The two signatures as in-process `tf.function`s, and the table they read.

    Returns:
        {"serving_default": score, "generate": generate, "table": the
        vocabulary's lookup table (a SavedModel must own it)}.

    Raises:
        ValueError: if the model has no vocabulary (adapt it first).
    """
    if not model.vocabulary.characters:
        raise ValueError("the language model has no vocabulary yet: adapt it first")
    graph = _Graph(model)

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
        autograph=False,
    )
    def score(text):
        return _score(graph, text)

    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.string, name="prompt"),
            tf.TensorSpec([], tf.int32, name="length"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ],
        autograph=False,
    )
    def generate(prompt, length, temperature, top_k, seed):
        return _generate(graph, prompt, length, temperature, top_k, seed)

    return {"serving_default": score, GENERATE_KEY: generate, "table": graph.table}
