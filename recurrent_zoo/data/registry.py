"""One entry point for every corpus: `load_corpus(corpus, data, split, ...)`.

Commands take a corpus name and a data path from the user and must not care
which loader reads them. A source without train/test splits (a flat class
folder, a single table) only ever serves the train split: evaluating on it as
"test" would score the model on its own training data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recurrent_zoo.catalog import CORPORA
from recurrent_zoo.data.imdb import load_imdb, load_imdb_unlabeled
from recurrent_zoo.data.newsgroups import load_newsgroups
from recurrent_zoo.data.text_data import TextClassificationData
from recurrent_zoo.data.text_files import TABLE_SUFFIXES, load_table, load_text_folder

__all__ = ["CORPORA", "load_corpus", "load_unlabeled"]

# Folder names that mark a split layout (`data/<split>/<class>/...`): their
# presence means a missing requested split is an error, not a flat layout.
_SPLIT_NAMES = ("train", "test", "validation", "valid", "val", "dev")


def load_corpus(
    corpus: str,
    data: str | os.PathLike[str] | None,
    split: str = "train",
    **kwargs: Any,
) -> TextClassificationData:
    """Load one split of a named corpus or of the user's own files.

    Args:
        corpus: One of `CORPORA`:
            "imdb": `load_imdb(data, split, **kwargs)`.
            "20newsgroups": `load_newsgroups(data, split, **kwargs)`.
            "folder": `data/<split>/<class>/<file>`, or a flat
            `data/<class>/<file>` folder (train split only), read by
            `load_text_folder`.
            "table": `data` is a `.csv`/`.jsonl`/`.json` file (train split, or
            the split its name says: `test.csv` serves "test"), or a folder
            holding `<split>.csv` / `<split>.jsonl` / `<split>.json`, read by
            `load_table`.
            "text": plain text has no labels; it serves language models
            (`recurrent_zoo.data.load_text_documents`), and here raises.
            "series": one time series, for forecasters
            (`recurrent_zoo.data.load_series`); here raises too.
        data: The file or folder; None lets "imdb" and "20newsgroups"
            download their corpus.
        split: "train", "test", or any split a folder or table provides.
        **kwargs: Passed to the loader, e.g. `max_per_class`, `seed`,
            `remove` (20newsgroups), `class_names`, `text_column`.

    Returns:
        A `TextClassificationData`.

    Raises:
        ValueError: On an unknown corpus, "folder" or "table" without `data`,
            a split the source does not have, or the loader's own errors.
        FileNotFoundError: If `data` does not exist.
        TypeError: If a keyword is not an argument of the chosen loader.

    Example:
        >>> train = load_corpus("20newsgroups", "../shared/data", "train",
        ...                     max_per_class=100, seed=0)
        >>> train, validation = train.split(0.1, seed=0)
    """
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; available: {list(CORPORA)}")
    if corpus == "imdb":
        return load_imdb(data, split, **kwargs)
    if corpus == "20newsgroups":
        return load_newsgroups(data, split, **kwargs)
    if corpus == "text":
        raise ValueError(
            "the 'text' corpus is plain text without labels: it trains language "
            "models (char_lm), not classifiers"
        )
    if corpus == "series":
        raise ValueError("the 'series' corpus is a time series: it trains forecasters")
    if data is None:
        raise ValueError(f"the {corpus!r} corpus needs a data path")
    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{corpus} data not found: {path}")
    if corpus == "folder":
        return load_text_folder(_folder_for(path, split), **kwargs)
    return load_table(_table_for(path, split), **kwargs)


def load_unlabeled(
    corpus: str, data: str | os.PathLike[str] | None, max_texts: int | None = None
) -> list[str]:
    """The unlabeled texts a corpus ships beside its splits, for pretraining.

    Only IMDB has some (`train/unsup`, `load_imdb_unlabeled`); every other
    corpus gives an empty list.

    Args:
        corpus: One of `CORPORA`.
        data: As `load_corpus`'s.
        max_texts: Keep at most this many.
    """
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; available: {list(CORPORA)}")
    if corpus == "imdb":
        return load_imdb_unlabeled(data, max_texts=max_texts)
    return []


def _folder_for(path: Path, split: str) -> Path:
    if (path / split).is_dir():
        return path / split
    present = [name for name in _SPLIT_NAMES if (path / name).is_dir()]
    if present:
        raise ValueError(f"no {split!r} folder in {path} (it has {present})")
    if split != "train":
        raise ValueError(
            f"{path} has no split folders, so it is only the train split; "
            f"add {path}/{split}/<class>/ for a {split!r} split"
        )
    return path


def _table_for(path: Path, split: str) -> Path:
    if path.is_file():
        if split in ("train", path.stem):
            return path
        raise ValueError(
            f"{path} is a single table, so it is only the train split; name a "
            f"file {split}{path.suffix} (or a folder holding one) for a {split!r} "
            "split, or carve one from train with `.split(fraction)`"
        )
    found = [p for s in TABLE_SUFFIXES if (p := path / f"{split}{s}").is_file()]
    if len(found) != 1:
        wanted = ", ".join(f"{split}{s}" for s in TABLE_SUFFIXES)
        raise ValueError(
            f"{path} must hold exactly one of {wanted}; found "
            f"{[p.name for p in found] or 'none'}"
        )
    return found[0]
