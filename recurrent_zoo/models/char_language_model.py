"""A character-level language model over any recurrent cell of `cells.py`.

    x_t = Embedding(c_t)
    h_t = recurrent layers (stacked, any cell)
    p(c_{t+1} | c_1..c_t) = softmax(V h_t + b)

Every text is read from the start-of-document id (`characters.BOUNDARY`)
and a fresh state, so its first character is predicted too: a text of n
characters has n predictions. The model owns its character vocabulary
(`adapt`), scores text in bits per character and generates text one
character at a time from the state it carries.
"""

from __future__ import annotations

import math
import numbers
import weakref
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from recurrent_zoo.cells import build_recurrent_layer
from recurrent_zoo.layers.checks import check_positive_int, check_rate
from recurrent_zoo.models.characters import (
    BOUNDARY,
    RESERVED,
    CharacterVocabulary,
)

__all__ = ["CharLanguageModel", "check_sampling", "pick_next", "state_sizes"]

# Each model's compiled functional twins, by what they output (see
# `CharLanguageModel.run`).
_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class CharLanguageModel(keras.Model):
    """Next-character prediction: embedding, stacked recurrent layers, softmax.

    `call(ids)` maps int ids `(batch, time)` to the next character's logits
    `(batch, time, max_characters + 3)`: logits, not probabilities, so the
    loss and `bits_per_character` take the log-softmax in one stable step.

    Args:
        cell: a name of `recurrent_zoo.cells.CELLS`.
        units: units of each recurrent layer, bottom first.
        embedding_dim: size of each character's embedding.
        max_characters: the most distinct characters the vocabulary holds
            (the ids add three reserved ones: padding, unknown, boundary).
        sequence_length: the window length training reads
            (`recurrent_zoo.training.language_modeling`); scoring and
            generation take text of any length.
        dropout: input dropout of each recurrent layer, in [0, 1).
        vocabulary: the characters, most frequent first; None leaves the
            vocabulary empty until `adapt`.
        **kwargs: `keras.Model`'s (name, trainable, dtype).

    Example:

    >>> model = CharLanguageModel(cell="lstm", units=(8,), embedding_dim=4)
    >>> model.adapt(["hello world"])
    >>> 0 < model.bits_per_character(["hello"]) < 10
    True
    >>> len(model.generate("he", 5, seed=0))
    5
    """

    def __init__(
        self,
        cell: str = "layer_norm_lstm",
        units: Sequence[int] = (256,),
        embedding_dim: int = 64,
        max_characters: int = 253,
        sequence_length: int = 128,
        dropout: float = 0.0,
        vocabulary: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(units, numbers.Integral):
            units = (units,)
        if not units:
            raise ValueError(f"units must name at least one layer, got {units!r}")
        self.cell = cell
        self.units = tuple(check_positive_int("units", u) for u in units)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.max_characters = check_positive_int("max_characters", max_characters)
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.dropout = check_rate("dropout", dropout)
        self.vocabulary = CharacterVocabulary([])
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        width = self.max_characters + len(RESERVED)
        self.embedding = keras.layers.Embedding(width, self.embedding_dim)
        extra = {"dropout": self.dropout} if self.dropout else {}
        # return_state: scoring long texts in chunks and generating one
        # character at a time both carry each layer's state across calls.
        self.recurrent = [
            build_recurrent_layer(
                cell,
                size,
                return_sequences=True,
                return_state=True,
                name=f"recurrent_{i}",
                **extra,
            )
            for i, size in enumerate(self.units)
        ]
        self.head = keras.layers.Dense(width, name="next_character")
        # Built now, in the caller's scope (a distribution strategy's, say),
        # rather than at the first batch.
        self(np.zeros((1, 1), dtype="int32"))

    def call(self, ids: Any, training: bool = False) -> Any:
        """Next-character logits of `ids`, every text read from zero states."""
        logits, _ = self.forward(ids, None, training)
        return logits

    def forward(
        self, ids: Any, states: list | None, training: bool = False
    ) -> tuple[Any, list]:
        """Logits of `ids` read from `states` (None: fresh), and the new states.

        Args:
            ids: int ids `(batch, time)`.
            states: one list of state tensors per recurrent layer, as this
                method returned them, or None for zero states.
            training: whether dropout is active.
        """
        x = self.embedding(ids)
        carried = []
        for i, layer in enumerate(self.recurrent):
            initial = None if states is None else states[i]
            x, *state = layer(x, initial_state=initial, training=training)
            carried.append(state)
        return self.head(x), carried

    def run(self, ids: np.ndarray, states: list | None) -> tuple[np.ndarray, list]:
        """`forward` outside training, compiled: NumPy logits and states.

        Eagerly, a recurrent layer loops over time step by step in Python;
        this goes through Keras's compiled `predict_on_batch` of a
        functional twin sharing this model's layers, as fast as a graph.
        """
        ids = np.asarray(ids, dtype=np.int32)
        return self._predict("logits", [ids], states)

    def nats(
        self, ids: np.ndarray, targets: np.ndarray, states: list | None
    ) -> tuple[np.ndarray, list]:
        """Each position's -log p(target) in nats `(batch, time)`, and the states.

        As `run`, but the log-softmax and the pick happen in the compiled
        graph (float32): scoring then moves a number per character out of
        it, not a distribution, which made NumPy's share most of the time.
        """
        ids = np.asarray(ids, dtype=np.int32)
        targets = np.asarray(targets, dtype=np.int32)
        return self._predict("nats", [ids, targets], states)

    def _predict(self, kind: str, inputs: list, states: list | None) -> tuple:
        if states is None:
            states = [
                [
                    np.zeros((len(inputs[0]), size), "float32")
                    for size in state_sizes(layer)
                ]
                for layer in self.recurrent
            ]
        flat = [state for layer_states in states for state in layer_states]
        output, *new = self._runner(kind).predict_on_batch([*inputs, *flat])
        carried, at = [], 0
        for layer in self.recurrent:
            count = len(state_sizes(layer))
            carried.append(new[at : at + count])
            at += count
        return output, carried

    def _runner(self, kind: str) -> keras.Model:
        twins = _RUNNERS.setdefault(self, {})
        if kind not in twins:
            ids = keras.Input(shape=(None,), dtype="int32")
            inputs = [
                [keras.Input(shape=(size,)) for size in state_sizes(layer)]
                for layer in self.recurrent
            ]
            output, states = self.forward(ids, inputs)
            extra = []
            if kind == "nats":
                targets = keras.Input(shape=(None,), dtype="int32")
                extra = [targets]
                output = keras.ops.sparse_categorical_crossentropy(
                    targets, keras.ops.cast(output, "float32"), from_logits=True
                )
            # Kept outside the model's attributes: Keras would save the
            # twin's (shared) layers a second time under another path.
            twins[kind] = keras.Model(
                [ids, *extra, *sum(inputs, [])], [output, *sum(states, [])]
            )
        return twins[kind]

    def set_vocabulary(self, characters: Sequence[str]) -> None:
        """Uses `characters` (most frequent first) as the vocabulary.

        Raises:
            ValueError: on more than `max_characters` characters, or an
                entry that is not one character.
        """
        if len(characters) > self.max_characters:
            raise ValueError(
                f"the vocabulary holds {len(characters)} characters, more than "
                f"max_characters={self.max_characters}"
            )
        self.vocabulary = CharacterVocabulary(characters)

    def adapt(self, texts: Sequence[str], max_characters: int | None = None) -> None:
        """Builds the vocabulary from the most frequent characters of `texts`.

        Args:
            texts: the training texts.
            max_characters: keep at most this many (at most, and by default,
                the model's `max_characters`).
        """
        keep = self.max_characters if max_characters is None else max_characters
        keep = check_positive_int("max_characters", keep)
        if keep > self.max_characters:
            raise ValueError(
                f"max_characters={keep} exceeds the model's "
                f"max_characters={self.max_characters}"
            )
        self.vocabulary = CharacterVocabulary.from_texts(_texts(texts), keep)

    def bits_per_character(
        self, texts: Sequence[str], batch_size: int = 32, chunk_length: int = 2048
    ) -> float:
        """The mean cross-entropy of every character of `texts`, in bits.

        Each text is read from a fresh state and the boundary id, so all its
        characters are predicted; characters the vocabulary lacks are
        scored as the unknown id. An empty text adds no character, and the
        mean is over all characters of all texts (a long text weighs more).
        Long texts are read `chunk_length` steps at a time with the state
        carried, so memory does not grow with a text's length.

        Raises:
            ValueError: if `texts` is not a list of strings, or holds no
                character at all (the mean of nothing is undefined).
        """
        texts = _texts(texts)
        batch_size = check_positive_int("batch_size", batch_size)
        chunk_length = check_positive_int("chunk_length", chunk_length)
        total = sum(len(text) for text in texts)
        if total == 0:
            raise ValueError(f"no characters to score: {len(texts)} text(s), all empty")
        streams = [self.stream(text) for text in texts if text]
        streams.sort(key=len)
        nats = 0.0
        for start in range(0, len(streams), batch_size):
            nats += self._batch_nats(streams[start : start + batch_size], chunk_length)
        return nats / total / math.log(2.0)

    def stream(self, text: str) -> np.ndarray:
        """The ids the model reads for `text`: the boundary, then its characters."""
        return np.concatenate([[BOUNDARY], self.vocabulary.encode(text)]).astype(
            np.int32
        )

    def _batch_nats(self, streams: list[np.ndarray], chunk_length: int) -> float:
        """The summed negative log-likelihood (nats) of a batch's characters."""
        longest = max(len(s) for s in streams)
        ids = np.zeros((len(streams), longest), dtype=np.int32)
        for row, stream in enumerate(streams):
            ids[row, : len(stream)] = stream
        # Position t predicts ids[t + 1]; padding lies to the right, so it
        # never changes the states at a text's real positions.
        real = (
            np.arange(longest - 1)[None, :]
            < np.array([len(s) - 1 for s in streams])[:, None]
        )
        states, nats = None, 0.0
        for start in range(0, longest - 1, chunk_length):
            stop = min(start + chunk_length, longest - 1)
            step_nats, states = self.nats(
                ids[:, start:stop], ids[:, start + 1 : stop + 1], states
            )
            nats += float(np.sum(step_nats[real[:, start:stop]], dtype=np.float64))
        return nats

    def generate(
        self,
        prompt: str,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> str:
        """`length` characters continuing `prompt`, one recurrent step each.

        The prompt (after the boundary id) is read once; every new character
        is then one step from the carried state, so each costs the same
        whatever came before. Only the vocabulary's characters are drawn
        (never padding, unknown or boundary).

        Args:
            prompt: the text to continue (may be empty: a document's start).
            length: how many characters to generate (0: none).
            temperature: divides the logits; 0 takes the most likely
                character every step (greedy).
            top_k: draw among the k most likely characters only.
            seed: seeds the draws; the same seed gives the same text.

        Returns:
            The generated characters, without the prompt.

        Raises:
            ValueError: on a bad argument, or a model with no vocabulary.
        """
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {prompt!r}")
        length = _count("length", length)
        check_sampling(temperature, top_k)
        if not self.vocabulary.characters:
            raise ValueError("the model has no vocabulary yet: adapt it first")
        rng = np.random.default_rng(seed)
        logits, states = self.run(self.stream(prompt)[None, :], None)
        chosen: list[int] = []
        for step in range(length):
            size = len(self.vocabulary)
            chosen.append(pick_next(logits[0, -1], size, temperature, top_k, rng))
            if step + 1 < length:
                logits, states = self.run(np.array([[chosen[-1]]]), states)
        return self.vocabulary.decode(chosen)

    def get_config(self) -> dict:
        """Every constructor argument, the vocabulary included."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "cell": self.cell,
            "units": list(self.units),
            "embedding_dim": self.embedding_dim,
            "max_characters": self.max_characters,
            "sequence_length": self.sequence_length,
            "dropout": self.dropout,
            "vocabulary": list(self.vocabulary.characters),
        }

    @classmethod
    def from_config(cls, config: dict) -> CharLanguageModel:
        """The model `get_config` describes (weights not included)."""
        return cls(**config)


def check_sampling(temperature: float, top_k: int | None) -> None:
    """Raises ValueError, quoting the value, on a bad temperature or top_k."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise ValueError(
            f"temperature must be a finite number >= 0, got {temperature!r}"
        )
    if top_k is not None:
        check_positive_int("top_k", top_k)


def pick_next(
    logits: np.ndarray,
    vocabulary_size: int,
    temperature: float,
    top_k: int | None,
    rng: np.random.Generator,
) -> int:
    """The next id: the most likely character (temperature 0) or a draw.

    Args:
        logits: the model's logits over every id at one position.
        vocabulary_size: ids in use (reserved + characters); only the
            characters, ids `len(RESERVED)` to `vocabulary_size - 1`, can
            be picked.
        temperature: 0 (greedy) or the divisor of the logits.
        top_k: draw among the k most likely characters only (None: all).
        rng: the draws' generator.
    """
    first = len(RESERVED)
    scores = np.asarray(logits, dtype=np.float64)[first:vocabulary_size]
    if temperature == 0:
        return first + int(np.argmax(scores))
    scores = scores / temperature
    if top_k is not None and top_k < len(scores):
        # Keep exactly k: ties at the k-th score go by id (stable sort).
        keep = np.argsort(-scores, kind="stable")[:top_k]
        masked = np.full_like(scores, -np.inf)
        masked[keep] = scores[keep]
        scores = masked
    p = np.exp(scores - scores.max())
    return first + int(rng.choice(len(p), p=p / p.sum()))


def state_sizes(layer: Any) -> list[int]:
    """The width of each state tensor a recurrent layer carries (h, or h and c)."""
    size = layer.cell.state_size
    return list(size) if isinstance(size, (list, tuple)) else [size]


def _texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError(
            f"texts must be a list of strings, got {type(texts).__name__}: "
            f"{str(texts)[:60]!r}"
        )
    return list(texts)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)
