"""A character vocabulary: characters to ids and back, for any language.

A character is a Unicode code point (a Python `str` of length one), so
UTF-8 text of any script is read as it is; combining marks are characters
of their own. Three ids are reserved before the characters:

    0  padding      (never an input the model reads as text, never a target)
    1  unknown      (a character the vocabulary lacks)
    2  boundary     (the start of a document: the first input of every text)

Encoding is vectorized over code points (a sorted table and
`np.searchsorted`), so millions of characters encode in well under a
second, without a Python loop per character.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "BOUNDARY",
    "PADDING",
    "RESERVED",
    "UNKNOWN",
    "CharacterVocabulary",
    "count_characters",
]

PADDING, UNKNOWN, BOUNDARY = 0, 1, 2
# What `CharacterVocabulary.tokens` shows for the reserved ids: none of them
# is a single character, so none can collide with a real one.
RESERVED: tuple[str, ...] = ("", "[UNK]", "[DOC]")


def count_characters(texts: Iterable[str]) -> Counter:
    """How often each character occurs in `texts`."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(text)
    return counts


def _code_points(text: str) -> np.ndarray:
    # surrogatepass: a lone surrogate (what `errors="surrogateescape"`
    # decoding leaves for a bad byte) is a code point like any other.
    raw = text.encode("utf-32-le", errors="surrogatepass")
    return np.frombuffer(raw, dtype=np.uint32)


class CharacterVocabulary:
    """Characters by id: the reserved ids, then the characters in order.

    Args:
        characters: distinct single characters, most frequent first (ids
            3, 4, ... in this order).

    Raises:
        ValueError: on an entry that is not one character, or a repeat.

    Example:

    >>> vocabulary = CharacterVocabulary(["a", "b"])
    >>> vocabulary.encode("abz").tolist()
    [3, 4, 1]
    >>> vocabulary.decode([3, 1, 4])
    'ab'
    """

    def __init__(self, characters: Sequence[str]) -> None:
        characters = list(characters)
        for character in characters:
            if not isinstance(character, str) or len(character) != 1:
                raise ValueError(
                    f"a vocabulary entry must be one character, got {character!r}"
                )
        if len(set(characters)) != len(characters):
            repeated = sorted(c for c, n in Counter(characters).items() if n > 1)
            raise ValueError(f"the vocabulary repeats characters: {repeated!r}")
        self.characters = characters
        codes = np.array([ord(c) for c in characters], dtype=np.uint32)
        order = np.argsort(codes, kind="stable")
        self._codes = codes[order]
        self._ids = (order + len(RESERVED)).astype(np.int32)

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], max_characters: int
    ) -> CharacterVocabulary:
        """The `max_characters` most frequent characters of `texts`.

        Ties in frequency go by code point, so the same texts always give
        the same vocabulary (workers that adapt apart agree).
        """
        counts = count_characters(texts)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([character for character, _ in ranked[:max_characters]])

    def __len__(self) -> int:
        """Every id: the reserved ones and the characters."""
        return len(RESERVED) + len(self.characters)

    @property
    def tokens(self) -> list[str]:
        """What each id stands for, by id."""
        return [*RESERVED, *self.characters]

    def encode(self, text: str) -> np.ndarray:
        """The ids of `text`'s characters (int32; unknown ones get id 1)."""
        points = _code_points(text)
        if not len(self._codes):
            return np.full(len(points), UNKNOWN, dtype=np.int32)
        at = np.minimum(np.searchsorted(self._codes, points), len(self._codes) - 1)
        found = self._codes[at] == points
        return np.where(found, self._ids[at], UNKNOWN).astype(np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of `ids`; reserved ids (padding, unknown,
        boundary) give nothing."""
        first = len(RESERVED)
        return "".join(
            self.characters[i - first]
            for i in (int(i) for i in ids)
            if first <= i < len(self)
        )
