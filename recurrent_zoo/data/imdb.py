"""IMDB movie reviews (Maas et al., 2011) as a binary text-classification set.

Reads the original `aclImdb.tar.gz` distribution (packed or extracted) without
extracting it to disk, or falls back to `tensorflow_datasets` for users with a
network. Only `{train,test}/{neg,pos}` are ever read: the 50,000 unlabeled
`train/unsup` reviews sit beside them and must never leak into a labeled split.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from recurrent_zoo.data.text_data import (
    TextClassificationData,
    open_archive,
    read_to_end,
)

__all__ = ["CLASS_NAMES", "load_imdb", "load_imdb_unlabeled"]

CLASS_NAMES: tuple[str, ...] = ("neg", "pos")
SPLITS = ("train", "test")
ARCHIVE_NAME = "aclImdb.tar.gz"
_TOP = "aclImdb"
# The corpus only uses `<br />`, but hand-edited copies and other HTML dumps
# write `<br>`, `<BR/>` or `<br >`; all mean the same line break.
_BR = re.compile(r"<br\s*/?\s*>", re.IGNORECASE)


def load_imdb(
    source: str | os.PathLike[str] | None = None,
    split: str = "train",
    max_per_class: int | None = None,
    seed: int = 0,
    clean: bool = True,
) -> TextClassificationData:
    """Load one labeled IMDB split as texts and `neg`=0 / `pos`=1 labels.

    With `max_per_class`, each class keeps its first N reviews: in file-name
    order (plain string sort: `0_2.txt`, `10000_4.txt`, ...) for a folder, in
    member order for an archive, so that the gzip stream can stop early. The
    official archive stores members in exactly that name order, so both give
    the same subset. The subset does not depend on `seed`; only the returned
    order does: examples are shuffled with `seed` so a slice is not
    all-neg-then-all-pos. A full split is the same whatever the member order.

    Args:
        source: `aclImdb.tar.gz`, a folder containing it, an extracted
            `aclImdb` folder, or that folder's parent. When a folder holds
            both the archive and an extracted tree, the archive wins. None
            downloads `imdb_reviews` with `tensorflow_datasets` (needs a
            network; `max_per_class` then keeps the first N in TFDS order).
        split: "train" or "test".
        max_per_class: Keep at most this many reviews of each class.
        seed: Seed for the order of the returned examples.
        clean: Replace `<br />` line-break markup with a space.

    Returns:
        A `TextClassificationData` with `class_names == ("neg", "pos")`.

    Raises:
        ValueError: On an unknown split, a non-positive `max_per_class`, a
            file that is not a readable gzip tar archive (corrupt or
            truncated: the error names the file), or a missing or empty
            `aclImdb/<split>/<class>` folder.
        FileNotFoundError: If `source` (or a corpus inside it) does not exist.

    Warns:
        RuntimeWarning: With the count of reviews that were not valid UTF-8
            (their bad bytes become U+FFFD).

    Example:
        >>> data = load_imdb("../shared/data", split="test", max_per_class=200)
        >>> len(data), data.class_names
        (400, ('neg', 'pos'))
        >>> ds = data.to_dataset(batch_size=32, shuffle=False)
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be positive, got {max_per_class}")
    if source is None:
        per_class = _read_tfds(split, max_per_class)
        where = f"tensorflow_datasets imdb_reviews[{split}]"
    else:
        kind, path = _resolve_source(Path(source).expanduser())
        read = _read_archive if kind == "archive" else _read_folder
        per_class = read(path, split, max_per_class)
        where = str(path)

    raw, labels = [], []
    for label, name in enumerate(CLASS_NAMES):
        # Sorting by file name makes the result independent of archive member
        # order, so an archive and its extracted tree give identical data.
        for _, payload in sorted(per_class[name], key=lambda item: item[0]):
            raw.append(payload)
            labels.append(label)
    texts = _decode(raw, where)
    if clean:
        texts = [_BR.sub(" ", text) for text in texts]
    order = np.random.default_rng(seed).permutation(len(texts))
    return TextClassificationData(
        texts=[texts[i] for i in order],
        labels=np.asarray(labels, dtype=np.int32)[order],
        class_names=CLASS_NAMES,
    )


def load_imdb_unlabeled(
    source: str | os.PathLike[str] | None = None,
    max_texts: int | None = None,
    clean: bool = True,
) -> list[str]:
    """The 50,000 unlabeled `train/unsup` reviews, for pretraining only.

    They are a separate split with no labels and no overlap with
    `train/{neg,pos}` or `test`; `load_imdb` never reads them.

    Args:
        source: as `load_imdb`'s (archive, folders, or None for
            `tensorflow_datasets`' "unsupervised" split).
        max_texts: keep at most this many (the first in file-name order for
            a folder, member order for the archive, TFDS order otherwise).
        clean: Replace `<br />` line-break markup with a space.

    Returns:
        The reviews, in file-name order.

    Raises:
        ValueError: on a non-positive `max_texts`, an unreadable archive or
            a missing or empty `aclImdb/train/unsup` folder.
        FileNotFoundError: if `source` does not exist.
    """
    if max_texts is not None and max_texts < 1:
        raise ValueError(f"max_texts must be positive, got {max_texts}")
    if source is None:
        import tensorflow_datasets as tfds

        ds = tfds.load("imdb_reviews", split="unsupervised", as_supervised=True)
        if max_texts is not None:
            ds = ds.take(max_texts)
        rows = enumerate(ds.as_numpy_iterator())
        raw = [(f"{i:08d}", bytes(text)) for i, (text, _) in rows]
        where = "tensorflow_datasets imdb_reviews[unsupervised]"
    else:
        kind, path = _resolve_source(Path(source).expanduser())
        where = str(path)
        if kind == "archive":
            raw = _read_archive_folder(path, f"{_TOP}/train/unsup", max_texts)
        else:
            folder = path / "train" / "unsup"
            files = sorted(folder.glob("*.txt"), key=lambda p: p.name)
            raw = [(p.name, p.read_bytes()) for p in files[:max_texts]]
    if not raw:
        raise ValueError(
            f"no review files (*.txt) under '{_TOP}/train/unsup' in {where}"
        )
    texts = _decode([payload for _, payload in sorted(raw)], where)
    return [_BR.sub(" ", text) for text in texts] if clean else texts


def _read_archive_folder(
    path: Path, wanted: str, max_texts: int | None
) -> list[tuple[str, bytes]]:
    found = []
    with open_archive(path) as archive:
        for _, filename, member in _txt_members(archive, {wanted}):
            found.append((filename, _read_member(archive, member)))
            if max_texts is not None and len(found) >= max_texts:
                break
        else:
            read_to_end(archive)
    return found


def _resolve_source(path: Path) -> tuple[str, Path]:
    """Return ("archive", file) or ("folder", the aclImdb folder)."""
    if not path.exists():
        raise FileNotFoundError(f"IMDB source not found: {path}")
    if path.is_file():
        return "archive", path
    if (path / ARCHIVE_NAME).is_file():
        return "archive", path / ARCHIVE_NAME
    for root in (path, path / _TOP):
        if any((root / split).is_dir() for split in SPLITS):
            return "folder", root
    raise FileNotFoundError(
        f"no {ARCHIVE_NAME} and no extracted {_TOP}/{{train,test}} folder in {path}"
    )


_PerClass = dict[str, list[tuple[str, bytes]]]


def _txt_members(archive, folders: set[str]):
    """(folder, file name, member) of every `*.txt` file directly in `folders`."""
    for member in archive:
        folder, _, filename = member.name.removeprefix("./").rpartition("/")
        if folder in folders and member.isfile() and filename.endswith(".txt"):
            yield folder, filename, member


def _read_archive(path: Path, split: str, max_per_class: int | None) -> _PerClass:
    wanted = {f"{_TOP}/{split}/{name}": name for name in CLASS_NAMES}
    per_class: _PerClass = {name: [] for name in CLASS_NAMES}
    with open_archive(path) as archive:
        # One sequential pass: gzip cannot seek backwards cheaply, and member
        # bytes are only read (decompressed into memory) for wanted files.
        for folder, filename, member in _txt_members(archive, set(wanted)):
            bucket = per_class[wanted[folder]]
            if max_per_class is not None and len(bucket) >= max_per_class:
                continue
            bucket.append((filename, _read_member(archive, member)))
            if max_per_class is not None and all(
                len(b) >= max_per_class for b in per_class.values()
            ):
                break  # the rest (e.g. 50k train/unsup) needn't be inflated
        else:
            read_to_end(archive)  # a full pass: let gzip verify its checksum
    _check_nonempty(per_class, split, f"archive {path}")
    return per_class


def _read_member(archive, member) -> bytes:
    reader = archive.extractfile(member)
    assert reader is not None  # regular files always have a reader
    return reader.read()


def _read_folder(root: Path, split: str, max_per_class: int | None) -> _PerClass:
    per_class: _PerClass = {}
    for name in CLASS_NAMES:
        folder = root / split / name
        files = (
            sorted(
                (p for p in folder.iterdir() if p.is_file() and p.suffix == ".txt"),
                key=lambda p: p.name,
            )
            if folder.is_dir()
            else []
        )
        per_class[name] = [(p.name, p.read_bytes()) for p in files[:max_per_class]]
    _check_nonempty(per_class, split, f"folder {root}")
    return per_class


def _read_tfds(split: str, max_per_class: int | None) -> _PerClass:
    import tensorflow_datasets as tfds  # heavy, and only needed on this path

    ds = tfds.load("imdb_reviews", split=split, as_supervised=True)
    per_class: _PerClass = {name: [] for name in CLASS_NAMES}
    for index, (text, label) in enumerate(ds.as_numpy_iterator()):
        if not 0 <= int(label) < len(CLASS_NAMES):
            raise ValueError(f"imdb_reviews[{split}] has unexpected label {label}")
        bucket = per_class[CLASS_NAMES[int(label)]]
        if max_per_class is not None and len(bucket) >= max_per_class:
            continue
        # Zero-padded position as the sort key keeps TFDS order.
        bucket.append((f"{index:08d}", bytes(text)))
        if max_per_class is not None and all(
            len(b) >= max_per_class for b in per_class.values()
        ):
            break
    _check_nonempty(per_class, split, "tensorflow_datasets imdb_reviews")
    return per_class


def _check_nonempty(per_class: _PerClass, split: str, where: str) -> None:
    for name, items in per_class.items():
        if not items:
            raise ValueError(
                f"no review files (*.txt) under '{_TOP}/{split}/{name}' in {where}"
            )


def _decode(raw: Iterable[bytes], where: str) -> list[str]:
    texts, bad = [], 0
    for payload in raw:
        try:
            texts.append(payload.decode("utf-8"))
        except UnicodeDecodeError:
            bad += 1
            texts.append(payload.decode("utf-8", errors="replace"))
    if bad:
        warnings.warn(
            f"{bad} of {len(texts)} IMDB reviews in {where} are not valid UTF-8; "
            "their undecodable bytes were replaced with U+FFFD",
            RuntimeWarning,
            stacklevel=3,
        )
    return texts
