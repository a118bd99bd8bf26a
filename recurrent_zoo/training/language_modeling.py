"""The language-model task: a `CharLanguageModel` on plain text, in bits/char.

What the run core gets from this task (see `recurrent_zoo.training.tasks`):

- data: `TextDocuments` (`recurrent_zoo.data.plain_text`); `max_per_class`
  means at most that many documents (the run core's name for a cap on the
  training split), and the validation part is drawn by documents;
- the model: `get("char_lm", ...)`, its vocabulary adapted on the training
  part (the most frequent characters);
- a batch: (input ids, next-character ids) windows, `sequence_length` long,
  cut from each document (see `windows`);
- the loss: sparse categorical cross-entropy over real characters (padding
  targets ignored), Adam with gradient clipping; the validation loss, in
  nats per character, chooses the epoch;
- the score: the test split's bits per character, every document read
  from its start (`CharLanguageModel.bits_per_character`).

Why windows, not stateful truncated back-propagation through time: the
run core fits one `(inputs, targets)` dataset with `model.fit`, validates
with another batch size, splits each global batch over a strategy's
replicas and resumes from weights and optimizer alone. A state carried from
batch to batch would live outside all of that: sized to one batch, per
replica, lost on a resume, and shared with validation. Windows keep every
batch independent. Their cost is context: training sees at most
`sequence_length` characters of it, from a zero state, while scoring reads
each document whole from its start. `windows` bounds it from below: a
window that does not start a document re-reads the quarter of a window
before it (`WARMUP_FRACTION`) without scoring it, so every scored
character has at least that much context (and the first `sequence_length`
characters of each document have all of theirs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from recurrent_zoo.data import TextDocuments, load_corpus, load_text_documents
from recurrent_zoo.data.plain_text import imdb_documents
from recurrent_zoo.models import CharLanguageModel, get
from recurrent_zoo.models.characters import PADDING
from recurrent_zoo.training.task_base import ArchitectureTask

__all__ = [
    "LanguageModelTask",
    "load_documents",
    "read_characters",
    "score_language_model",
    "window_dataset",
    "windows",
    "written_characters",
]

# The share of a window re-read, unscored, as context (see the module).
WARMUP_FRACTION = 0.25
# `train` and `TextClassifier` option names, as a char LM takes them.
_OPTION_NAMES = {"vocabulary_size": "max_characters"}
_MODEL_OPTIONS = (
    "cell",
    "units",
    "embedding_dim",
    "max_characters",
    "sequence_length",
    "dropout",
)
# vocabulary.txt holds one entry a line, and reading it back splits at "\n"
# (and reads "\r" as a line end): those two, and the escape, are escaped.
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


def written_characters(characters: Iterable[str]) -> list[str]:
    """The vocabulary as vocabulary.txt lines (newline and backslash escaped)."""
    return [_ESCAPES.get(c, c) for c in characters]


def read_characters(lines: Sequence[str]) -> list[str]:
    """The vocabulary from vocabulary.txt lines (`written_characters` undone)."""
    if list(lines) == [""]:
        return []  # an empty vocabulary is written as an empty file
    return [_UNESCAPES.get(line, line) for line in lines]


def windows(
    streams: Sequence[np.ndarray], length: int, warmup: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each training window lies in one flat array of ids.

    A document's stream `s` (the boundary id, then its n characters) gives
    windows at starts 0, stride, 2 stride, ... (stride = length - warmup):
    inputs `s[a : a + length]`, targets `s[a + 1 : a + length + 1]`. In a
    window other than the first, the first `warmup` targets are not scored
    (they are the previous window's); so each of the n characters is
    scored exactly once. A stream's windows never reach into the next one.

    Returns:
        (flat ids, each window's start in them, whether it is its
        document's first window).
    """
    if not 0 <= warmup < length:
        raise ValueError(f"warmup must lie in [0, {length}), got {warmup!r}")
    stride = length - warmup
    pieces, starts, first, offset = [], [], [], 0
    for stream in streams:
        n = len(stream) - 1
        if n < 1:
            continue
        count = 1 + math.ceil(max(0, n - length) / stride)
        local = np.arange(count) * stride
        padded = np.zeros(local[-1] + length + 1, dtype=np.int32)
        padded[: len(stream)] = stream
        pieces.append(padded)
        starts.append(offset + local)
        first.append(np.arange(count) == 0)
        offset += len(padded)
    if not pieces:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(pieces), np.concatenate(starts), np.concatenate(first)


def window_dataset(
    streams: Sequence[np.ndarray],
    length: int,
    batch_size: int,
    shuffle: bool,
    seed: int | None,
) -> tuple[tf.data.Dataset, int]:
    """Batches of (inputs, targets) windows, and their number per epoch."""
    warmup = int(length * WARMUP_FRACTION)
    flat, starts, first = windows(streams, length, warmup)
    if not len(starts):
        raise ValueError("no characters to train on: every document is empty")
    # The whole corpus sits in the input pipeline: one byte an id when the
    # ids fit (the default 253 characters + 3 reserved ids do).
    flat = tf.constant(flat.astype(np.uint8 if flat.max() < 256 else np.int32))
    offsets = tf.range(length + 1, dtype=tf.int64)
    unscored = tf.range(length) < warmup

    def cut(start: tf.Tensor, is_first: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        ids = tf.cast(tf.gather(flat, start[:, None] + offsets), tf.int32)
        hidden = tf.logical_and(unscored[None, :], tf.logical_not(is_first)[:, None])
        targets = tf.where(hidden, tf.constant(PADDING, tf.int32), ids[:, 1:])
        return ids[:, :-1], targets

    ds = tf.data.Dataset.from_tensor_slices((starts, first))
    if shuffle:
        ds = ds.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(cut, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), math.ceil(len(starts) / batch_size)


def load_documents(
    corpus: str,
    data: str | os.PathLike[str] | None,
    split: str,
    max_documents: int | None,
    seed: int,
    remove: Iterable[str] = (),
) -> TextDocuments:
    """One split of a corpus as documents, at most `max_documents` of them.

    "text" reads `load_text_documents` (text files, or IMDB's reviews);
    "imdb" the IMDB reviews; the classification corpora their texts,
    labels dropped.
    """
    if max_documents is not None and max_documents < 1:
        raise ValueError(f"max_documents must be positive, got {max_documents!r}")
    if corpus == "text":
        return load_text_documents(data, split, max_documents, seed)
    if corpus == "imdb":
        if data is None:
            raise ValueError("the 'imdb' corpus needs a data path (--data)")
        return TextDocuments(imdb_documents(Path(data), split, max_documents, seed))
    options: dict[str, Any] = {"seed": seed}
    if tuple(remove):
        options["remove"] = tuple(sorted(set(remove)))
    labeled = load_corpus(corpus, data, split, **options)
    return TextDocuments(list(labeled.texts[:max_documents]))


def score_language_model(
    model: CharLanguageModel, data: TextDocuments, batch_size: int = 32
) -> dict:
    """Bits per character of `data` and what they were taken over, read
    `batch_size` texts at a time (a run scores with its training batch)."""
    return {
        "bits_per_character": model.bits_per_character(
            data.texts, batch_size=batch_size
        ),
        "characters": data.characters(),
        "documents": len(data),
    }


class LanguageModelTask(ArchitectureTask):
    """A character language model on plain text (see the module).

    Args:
        name: a key of `ARCHITECTURES` whose model is a `CharLanguageModel`
            ("char_lm").
    """

    monitors = ("val_loss",)
    report_files: tuple[str, ...] = ()
    pretrains = False

    def load_split(
        self,
        corpus: str,
        data: str | os.PathLike[str] | None,
        split: str,
        *,
        max_per_class: int | None,
        seed: int,
        remove: Iterable[str] = (),
        class_names: Sequence[str] | None = None,
    ) -> TextDocuments:
        """One split as documents (`load_documents`); `max_per_class` caps
        the documents, and `class_names` is ignored (there are none)."""
        return load_documents(corpus, data, split, max_per_class, seed, remove)

    def build(
        self, overrides: dict, data: TextDocuments, vocabulary: list[str] | None
    ) -> CharLanguageModel:
        """The model; `overrides` may name `train`'s options (its
        `vocabulary_size` is the char LM's `max_characters`)."""
        options = {_OPTION_NAMES.get(k, k): v for k, v in overrides.items()}
        unknown = sorted(set(options) - set(_MODEL_OPTIONS))
        if unknown:
            raise ValueError(
                f"{self.name} does not take {unknown}; its options are "
                f"{list(_MODEL_OPTIONS)} (vocabulary_size sets max_characters)"
            )
        characters = None if vocabulary is None else read_characters(vocabulary)
        return get(self.name, **options, vocabulary=characters)

    def adapt(self, model: CharLanguageModel, data: TextDocuments) -> list[str]:
        """The vocabulary, as vocabulary.txt lines; adapted on `data` unless
        the model was given one (a resumed run keeps what it wrote)."""
        if not model.vocabulary.characters:
            model.adapt(data.texts)
        return written_characters(model.vocabulary.characters)

    def batches(
        self,
        model: CharLanguageModel,
        data: TextDocuments,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> tuple[tf.data.Dataset, int]:
        """Windows of the documents (`window_dataset`), and their batches'
        number per epoch."""
        streams = [model.stream(text) for text in data.texts]
        return window_dataset(streams, model.sequence_length, batch_size, shuffle, seed)

    def compile(self, model: CharLanguageModel, learning_rate: Any) -> None:
        """Adam clipped to a gradient norm of 1 (recurrent nets' exploding
        gradients), and the cross-entropy of every real next character."""
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=PADDING
            ),
        )

    def score(
        self, model: CharLanguageModel, data: TextDocuments, batch_size: int
    ) -> dict:
        """`score_language_model` of the test documents."""
        return score_language_model(model, data, batch_size)

    def summary(self, scores: dict) -> str:
        """The test bits per character, for `train`'s last line."""
        return (
            f"test {scores['bits_per_character']:.3f} bits per character on "
            f"{scores['characters']:,} characters ({scores['documents']} documents)"
        )

    def report(self, scores: dict, out: Path) -> None:
        """Nothing beyond metrics.json and the learning curves."""
