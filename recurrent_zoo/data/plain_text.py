"""Plain text without labels, as documents: what a language model reads.

`load_text_documents(source, split)` reads:

- a `.txt` file: its paragraphs (text between blank lines) are the
  documents;
- a folder of `.txt` files (searched recursively, in path order): every
  file's paragraphs, in order; a folder with `train/` and `test/`
  subfolders serves each split from its own subfolder;
- IMDB (`aclImdb.tar.gz`, a folder holding it, or the extracted `aclImdb`
  folder): every review is a document, `<br />` replaced by a space; the
  "train" split is the 50,000 unlabeled `train/unsup` reviews then the
  25,000 `train/{neg,pos}` ones, "test" the 25,000 test reviews.

A file or folder without split subfolders is one stream of documents: its
last tenth (at least one document) is the "test" split and the rest
"train", so the two never share a document; "all" is every document.
Bytes that are not UTF-8 are read as latin-1, with a warning counting the
files (`decode_texts`). Line ends become "\\n".
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recurrent_zoo.data.imdb import ARCHIVE_NAME, load_imdb, load_imdb_unlabeled
from recurrent_zoo.data.text_data import decode_texts

__all__ = ["TEXT_SPLITS", "TextDocuments", "load_text_documents", "paragraphs"]

TEXT_SPLITS: tuple[str, ...] = ("train", "test", "all")
_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class TextDocuments:
    """Documents of plain text, in order; no labels.

    Attributes:
        texts: the documents.
        class_names: always empty (the run core's data share this field).
    """

    texts: list[str]
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.texts)

    def characters(self) -> int:
        """How many characters all documents hold."""
        return sum(len(text) for text in self.texts)

    def split(self, fraction: float, seed: int) -> tuple[TextDocuments, TextDocuments]:
        """(the rest, a held-out part): `fraction` of the documents, drawn
        with `seed`; each part keeps the documents' order.

        Raises:
            ValueError: if `fraction` is outside (0, 1) or there are fewer
                than two documents.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
        if len(self) < 2:
            raise ValueError(
                f"cannot hold out a part of {len(self)} document(s); a "
                "validation part needs at least two (paragraphs are "
                "separated by blank lines)"
            )
        held = min(max(1, round(fraction * len(self))), len(self) - 1)
        chosen = np.zeros(len(self), dtype=bool)
        chosen[np.random.default_rng(seed).permutation(len(self))[:held]] = True
        keep = [t for t, c in zip(self.texts, chosen, strict=True) if not c]
        out = [t for t, c in zip(self.texts, chosen, strict=True) if c]
        return TextDocuments(keep), TextDocuments(out)


def paragraphs(text: str) -> list[str]:
    """The non-empty paragraphs of `text` (split at blank lines)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip("\n") for p in _BLANK_LINE.split(text) if p.strip()]


def load_text_documents(
    source: str | os.PathLike[str] | None,
    split: str = "train",
    max_documents: int | None = None,
    seed: int = 0,
) -> TextDocuments:
    """One split of a plain-text source, as documents (see the module).

    Args:
        source: a `.txt` file, a folder of them, or an IMDB source.
        split: "train", "test" or "all".
        max_documents: keep the first this many documents of the split.
        seed: the order of IMDB's labeled reviews (they come shuffled, as
            `load_imdb` returns them); text files keep their order.

    Raises:
        ValueError: on a bad split or count, no documents, or no path.
        FileNotFoundError: if `source` does not exist.
    """
    if split not in TEXT_SPLITS:
        raise ValueError(f"split must be one of {TEXT_SPLITS}, got {split!r}")
    if max_documents is not None and max_documents < 1:
        raise ValueError(f"max_documents must be positive, got {max_documents!r}")
    if source is None:
        raise ValueError("the 'text' corpus needs a data path (--data)")
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"text data not found: {path}")
    if is_imdb_source(path):
        texts = imdb_documents(path, split, max_documents, seed)
    else:
        texts = _file_documents(path, split)[:max_documents]
    if not texts:
        raise ValueError(f"no {split!r} documents in {path}")
    return TextDocuments(texts)


def is_imdb_source(path: Path) -> bool:
    """Whether `path` is IMDB's archive, a folder holding it, or `aclImdb`."""
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz"))
    return (
        (path / ARCHIVE_NAME).is_file()
        or (path / "aclImdb").is_dir()
        or (path / "train" / "unsup").is_dir()
    )


def imdb_documents(
    path: Path, split: str, max_documents: int | None, seed: int
) -> list[str]:
    """IMDB's reviews of one split as plain text (see the module)."""
    texts: list[str] = []
    if split in ("train", "all"):
        texts += load_imdb_unlabeled(path, max_texts=max_documents)
    labeled = {"train": ("train",), "test": ("test",), "all": ("train", "test")}
    for name in labeled[split]:
        left = None if max_documents is None else max_documents - len(texts)
        if left is not None and left <= 0:
            break
        per_class = None if left is None else math.ceil(left / 2)
        texts += load_imdb(path, name, max_per_class=per_class, seed=seed).texts
    return texts[:max_documents]


def _file_documents(path: Path, split: str) -> list[str]:
    if path.is_file():
        return _carve(_read_paragraphs([path], str(path)), split, path)
    has_splits = (path / "train").is_dir() or (path / "test").is_dir()
    if has_splits and split != "all":
        folder = path / split
        if not folder.is_dir():
            raise ValueError(f"no {split!r} folder in {path}")
        return _read_paragraphs(_txt_files(folder), str(folder))
    return _carve(_read_paragraphs(_txt_files(path), str(path)), split, path)


def _txt_files(folder: Path) -> list[Path]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() == ".txt" and not p.name.startswith(".")
    )
    if not files:
        raise ValueError(f"no .txt files in {folder}")
    return files


def _read_paragraphs(files: Sequence[Path], where: str) -> list[str]:
    texts = decode_texts([p.read_bytes() for p in files], where)
    return [paragraph for text in texts for paragraph in paragraphs(text)]


def _carve(documents: list[str], split: str, path: Path) -> list[str]:
    """A stream without split folders: test is its last tenth, train the rest."""
    if split == "all":
        return documents
    if len(documents) < 2:
        raise ValueError(
            f"{path} holds {len(documents)} document(s): its last tenth is the "
            "test split and the rest train, so it needs at least two "
            "(paragraphs are separated by blank lines); or use split 'all'"
        )
    test = max(1, len(documents) // 10)
    return documents[-test:] if split == "test" else documents[:-test]
