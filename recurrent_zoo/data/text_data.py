"""The container every loader returns, and the helpers the loaders share.

`TextClassificationData` is deliberately plain (a list of strings, an int32
label array, the class names) so that any corpus, archive or table ends up in
the same shape, and so that hold-out splits and subsets are cheap copies.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import warnings
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = ["TextClassificationData"]


@dataclass(frozen=True, eq=False)
class TextClassificationData:
    """Raw texts with integer labels, ready for a `TextVectorization` pipeline.

    `eq=False` because element-wise `==` on the label array makes the generated
    `__eq__` ambiguous; compare fields explicitly instead.

    Attributes:
        texts: The documents, one string each.
        labels: int32 array, `labels[i]` indexes `class_names`.
        class_names: Class names in label order.
    """

    texts: list[str]
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int32)
        if labels.shape != (len(self.texts),):
            raise ValueError(
                f"labels shape {labels.shape} does not match {len(self.texts)} texts"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(f"labels must lie in [0, {len(self.class_names)})")
        # Frozen in spirit too: a shared loader result must not be edited in place.
        labels.setflags(write=False)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TextClassificationData:
        """The examples at `indices` (in that order), or where a mask is True.

        Args:
            indices: Integer positions (repeats allowed), or a boolean mask
                with one entry per example.

        Returns:
            A new `TextClassificationData` with the same `class_names`.

        Raises:
            TypeError: If `indices` are neither integers nor a boolean mask.
            IndexError: If a position is out of range or a mask has the wrong
                length.

        Example:
            >>> first_ten = data.subset(range(10))
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"mask of shape {idx.shape} for {len(self)} examples")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64).reshape(0)
        elif idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(
                f"indices must be a 1-D integer sequence or a boolean mask, got "
                f"{idx.dtype} of shape {idx.shape}"
            )
        labels = self.labels[idx]  # raises IndexError before the texts are copied
        return TextClassificationData(
            texts=[self.texts[i] for i in idx.tolist()],
            labels=labels,
            class_names=self.class_names,
        )

    def split(
        self, fraction: float, seed: int = 0
    ) -> tuple[TextClassificationData, TextClassificationData]:
        """A stratified, seeded hold-out: e.g. a validation set carved from train.

        Each class gives `round(fraction * its size)` examples to the held-out
        part, but at least one and never all, so both parts see every class.
        Both parts keep the original relative order of their examples (the
        loaders already shuffled it). The same data, fraction and seed always
        give the same parts.

        Args:
            fraction: Share of each class to hold out, strictly in (0, 1).
            seed: Seed of the choice of held-out examples.

        Returns:
            `(rest, held_out)`: disjoint, together exactly the original examples.

        Raises:
            ValueError: If `fraction` is outside (0, 1), or a class has fewer
                than two examples (it cannot give both parts one).

        Example:
            >>> train, validation = load_imdb(data_dir).split(0.1, seed=0)
        """
        if not 0.0 < fraction < 1.0:  # also rejects NaN
            raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
        rng = np.random.default_rng(seed)
        held = np.zeros(len(self), dtype=bool)
        for label, name in enumerate(self.class_names):
            members = np.flatnonzero(self.labels == label)
            if len(members) < 2:
                raise ValueError(
                    f"class {name!r} has {len(members)} example(s): split("
                    f"fraction={fraction!r}) needs at least 2 per class so that "
                    "both parts get one"
                )
            count = min(max(round(fraction * len(members)), 1), len(members) - 1)
            held[rng.permutation(members)[:count]] = True
        return self.subset(~held), self.subset(held)

    def to_dataset(
        self, batch_size: int, shuffle: bool = True, seed: int | None = None
    ) -> tf.data.Dataset:
        """Batches of `(text, label)`: a string tensor and an int32 tensor.

        Args:
            batch_size: Examples per batch; the last batch may be smaller.
            shuffle: Reshuffle the whole set at every pass (epoch). Use False
                for evaluation.
            seed: Shuffle seed; None defers to TensorFlow's global seed.

        Returns:
            A `tf.data.Dataset` yielding `(texts[batch], labels[batch])`.

        Raises:
            ValueError: If `batch_size` is not positive.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        texts = tf.constant(self.texts, dtype=tf.string, shape=[len(self.texts)])
        ds = tf.data.Dataset.from_tensor_slices((texts, self.labels))
        if shuffle and len(self):
            ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --- helpers shared by the loaders ---------------------------------------------


def gather(
    per_class: Mapping[str, Sequence[str]], seed: int | None
) -> TextClassificationData:
    """Labels from the mapping's key order; shuffled with `seed` unless None.

    Shuffling keeps a slice from being all of one class then all of the next;
    the subset itself is fixed before this point and never depends on `seed`.
    """
    texts, labels = [], []
    for label, items in enumerate(per_class.values()):
        texts.extend(items)
        labels.extend([label] * len(items))
    order = (
        np.arange(len(texts))
        if seed is None
        else np.random.default_rng(seed).permutation(len(texts))
    )
    return TextClassificationData(
        texts=[texts[i] for i in order],
        labels=np.asarray(labels, dtype=np.int32)[order],
        class_names=tuple(per_class),
    )


def decode_texts(
    payloads: Iterable[bytes], where: str, what: str = "files"
) -> list[str]:
    """UTF-8, falling back to latin-1 per payload; warns with the fallback count.

    Latin-1 maps every byte to a character, so the fallback never fails; old
    Usenet posts and hand-made corpora are the usual latin-1 sources.
    """
    texts, fallbacks = [], 0
    for payload in payloads:
        try:
            texts.append(payload.decode("utf-8"))
        except UnicodeDecodeError:
            fallbacks += 1
            texts.append(payload.decode("latin-1"))
    if fallbacks:
        warnings.warn(
            f"{fallbacks} of {len(texts)} {what} in {where} are not valid UTF-8; "
            "they were decoded as latin-1",
            RuntimeWarning,
            stacklevel=3,
        )
    return texts


def decode_per_class(
    raw: Mapping[str, Sequence[bytes]], where: str, what: str = "files"
) -> dict[str, list[str]]:
    """`decode_texts` over every class at once, so that one warning counts all."""
    texts = decode_texts([p for items in raw.values() for p in items], where, what)
    per_class, start = {}, 0
    for name, items in raw.items():
        per_class[name] = texts[start : start + len(items)]
        start += len(items)
    return per_class


def name_key(name: str) -> tuple[int, int, str]:
    """Sort key: all-digit names by value (`999` before `1000`), then the rest."""
    if name.isascii() and name.isdigit():
        return (0, int(name), name)
    return (1, 0, name)


@contextmanager
def open_archive(path: str | os.PathLike[str]) -> Iterator[tarfile.TarFile]:
    """`tarfile.open(path, "r:gz")`, with damage reported as ValueError.

    Truncation and corruption may only surface mid-stream (while iterating or
    reading a member), so the whole `with` body is covered, not just the open.
    """
    try:
        with tarfile.open(Path(path), "r:gz") as archive:
            yield archive
    except (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(
            f"{path} is not a readable gzip-compressed tar archive "
            f"(truncated or corrupt?): {type(err).__name__}: {err}"
        ) from err


def read_to_end(archive: tarfile.TarFile) -> None:
    """Inflate what follows the last member, so that gzip checks its CRC.

    `tarfile` stops at the end-of-archive blocks, before the gzip trailer: a
    damaged payload that still inflates would otherwise go unnoticed. Call it
    inside `open_archive` after a loop that reached the last member.
    """
    assert archive.fileobj is not None
    while archive.fileobj.read(1 << 20):
        pass
