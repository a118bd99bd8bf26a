"""Generic corpora: one folder per class, or a CSV / JSON-lines table.

Both end up as the same `TextClassificationData` as the named corpora, so a
user's own data trains with the same command. Errors name the folder, file and
line at fault, because a bad row in a 100,000-line table is otherwise hard to
find.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recurrent_zoo.data.text_data import (
    TextClassificationData,
    decode_per_class,
    decode_texts,
    gather,
    name_key,
)

__all__ = ["load_table", "load_text_folder"]

TABLE_SUFFIXES = (".csv", ".jsonl", ".json")
_INT = re.compile(r"[+-]?\d+")


def load_text_folder(
    path: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    max_per_class: int | None = None,
    seed: int | None = 0,
    extensions: Sequence[str] | None = None,
) -> TextClassificationData:
    """Read a "one folder per class" corpus, as `text_dataset_from_directory` does.

    Every file under a class folder (subfolders included, hidden names such as
    `.DS_Store` skipped) is one document. Files are taken in path order, with
    all-digit names ordered by value (`999` before `1000`); `max_per_class`
    keeps the first N of that order, so the subset never depends on `seed`.

    Args:
        path: The folder holding one subfolder per class.
        class_names: The class folders to read, in label order; others (such
            as IMDB's `unsup`) are ignored. None: every subfolder, sorted.
        max_per_class: Keep at most this many files of each class.
        seed: Seed of the returned order; None keeps class-then-path order.
        extensions: Only read files ending with one of these (e.g. `[".txt"]`,
            case-insensitive). None: every file.

    Returns:
        A `TextClassificationData` whose `class_names` are the folder names.

    Raises:
        FileNotFoundError: If `path` is not a folder.
        ValueError: On a non-positive `max_per_class`, no class folder, a
            named class without a folder, or a class folder without files.

    Warns:
        RuntimeWarning: With the count of files that were not valid UTF-8
            (decoded as latin-1 instead).

    Example:
        >>> data = load_text_folder("aclImdb/train", class_names=["neg", "pos"])
    """
    root = Path(path).expanduser()
    raw = read_class_folders(root, class_names, max_per_class, extensions)
    return gather(decode_per_class(raw, str(root)), seed)


def read_class_folders(
    root: Path,
    class_names: Sequence[str] | None = None,
    max_per_class: int | None = None,
    extensions: Sequence[str] | None = None,
) -> dict[str, list[bytes]]:
    """File contents per class folder, in `load_text_folder`'s order."""
    _check_max_per_class(max_per_class)
    if not root.is_dir():
        raise FileNotFoundError(f"text folder not found: {root}")
    found = sorted(
        (p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=name_key,
    )
    if class_names is None:
        if not found:
            raise ValueError(f"no class folders in {root}")
        class_names = found
    missing = [name for name in class_names if name not in found]
    if missing:
        raise ValueError(f"no folder for classes {missing} in {root} (found {found})")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names has duplicates: {list(class_names)}")
    suffixes = tuple(("." + e.lstrip(".")).lower() for e in extensions or ())
    per_class = {}
    for name in class_names:
        folder = root / name
        files = [
            p
            for p in folder.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and (not suffixes or p.name.lower().endswith(suffixes))
        ]
        if not files:
            only = f" ending with {list(suffixes)}" if suffixes else ""
            raise ValueError(f"class folder {folder} holds no files{only}")
        files.sort(key=lambda p: [name_key(s) for s in p.relative_to(folder).parts])
        per_class[name] = [p.read_bytes() for p in files[:max_per_class]]
    return per_class


def load_table(
    path: str | os.PathLike[str],
    text_column: str = "text",
    label_column: str = "label",
    class_names: Sequence[str] | None = None,
    max_per_class: int | None = None,
    seed: int | None = None,
) -> TextClassificationData:
    """Read a `.csv`, `.jsonl` or `.json` table of texts and labels.

    Labels are class names (strings) or label indices (integers; in a CSV, a
    column holding only integer literals). String labels give `class_names`
    sorted unique values unless `class_names` is passed; integer labels index
    `class_names`, which default to `"0"`, `"1"`, ... up to the largest label.
    A `.json` file is JSON lines too, unless it starts with `[` (one array of
    objects). The file is UTF-8 (a BOM is fine), or latin-1 as a fallback.

    Args:
        path: The table file.
        text_column: Column (CSV header field, JSON key) of the text.
        label_column: Column of the label.
        class_names: Class names in label order; a row whose label is not
            among them is an error.
        max_per_class: Keep at most the first N rows of each class.
        seed: Seed of the returned order; None keeps file order.

    Returns:
        A `TextClassificationData`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: Naming the file (and line or record) for an unknown
            suffix, an empty file, a missing column or value, malformed JSON,
            a label that is neither a string nor an integer, or an unknown
            or out-of-range label.

    Example:
        >>> data = load_table("reviews.csv", class_names=["neg", "pos"])
    """
    _check_max_per_class(max_per_class)
    file = Path(path).expanduser()
    if file.suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"{file}: unsupported table type; use one of {TABLE_SUFFIXES}")
    if not file.is_file():
        raise FileNotFoundError(f"table not found: {file}")
    (text,) = decode_texts([file.read_bytes()], str(file), what="tables")
    text = text.removeprefix("\ufeff")  # a BOM is not part of the first header
    if not text.strip():
        raise ValueError(f"{file} is empty")
    if file.suffix.lower() == ".csv":
        rows = _csv_rows(file, text, (text_column, label_column))
    else:
        rows = _json_rows(file, text)

    pairs: list[tuple[str, str, Any]] = []  # (where, text, label)
    for where, row in rows:
        values = []
        for column in (text_column, label_column):
            if column not in row or row[column] is None:
                raise ValueError(f"{where}: missing {column!r} (fields: {list(row)})")
            values.append(row[column])
        if not isinstance(values[0], str):
            raise ValueError(f"{where}: text must be a string, got {values[0]!r}")
        if values[1] == "":
            raise ValueError(f"{where}: empty {label_column!r}")
        pairs.append((where, values[0], values[1]))
    if not pairs:
        raise ValueError(f"{file} has no rows")

    labels = [label for _, _, label in pairs]
    if file.suffix.lower() == ".csv" and all(_INT.fullmatch(x) for x in labels):
        labels = [int(x) for x in labels]
    names, indices = _label_indices(pairs, labels, class_names)
    texts, kept, counts = [], [], [0] * len(names)
    for (_, body, _), index in zip(pairs, indices, strict=True):
        if max_per_class is None or counts[index] < max_per_class:
            counts[index] += 1
            texts.append(body)
            kept.append(index)
    data = TextClassificationData(texts, np.asarray(kept, np.int32), names)
    if seed is None:
        return data
    return data.subset(np.random.default_rng(seed).permutation(len(data)))


def _csv_rows(
    file: Path, text: str, columns: Sequence[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    for column in columns:
        if column not in header:
            raise ValueError(f"{file}, line 1: no column {column!r} in {header}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:  # e.g. a field over csv.field_size_limit()
            raise ValueError(f"{file}, line {reader.line_num}: {err}") from err
        if None in row:  # more fields than the header names
            raise ValueError(f"{file}, line {reader.line_num}: more fields than header")
        yield f"{file}, line {reader.line_num}", row


def _json_rows(file: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if file.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: malformed JSON: {err}") from err
        numbered = [(f"{file}, record {i}", r) for i, r in enumerate(records, 1)]
    else:
        numbered = []
        # Not splitlines(): U+2028 and friends may appear raw inside JSON strings.
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue  # blank lines (often a trailing one) carry no record
            where = f"{file}, line {number}"
            try:
                numbered.append((where, json.loads(line)))
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: malformed JSON: {err}") from err
    for where, record in numbered:
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {record!r:.60}")
        yield where, record


def _label_indices(
    pairs: list[tuple[str, str, Any]],
    labels: list[Any],
    class_names: Sequence[str] | None,
) -> tuple[tuple[str, ...], list[int]]:
    kind = type(labels[0])
    for (where, _, _), label in zip(pairs, labels, strict=True):
        # bool is an int subclass and 1.0 is "almost" one: both are mistakes.
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise ValueError(f"{where}: label must be a string or integer: {label!r}")
        if type(label) is not kind:
            raise ValueError(
                f"{where}: label {label!r} is a {type(label).__name__}, but the "
                f"first row's is a {kind.__name__}"
            )
    if kind is str:
        names = tuple(class_names) if class_names else tuple(sorted(set(labels)))
        lookup = {name: i for i, name in enumerate(names)}
        for (where, _, _), label in zip(pairs, labels, strict=True):
            if label not in lookup:
                raise ValueError(f"{where}: unknown label {label!r}; classes: {names}")
        return names, [lookup[label] for label in labels]
    names = (
        tuple(class_names) if class_names else tuple(map(str, range(max(labels) + 1)))
    )
    for (where, _, _), label in zip(pairs, labels, strict=True):
        if not 0 <= label < len(names):
            raise ValueError(f"{where}: label {label} outside 0..{len(names) - 1}")
    return names, labels


def _check_max_per_class(max_per_class: int | None) -> None:
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be positive, got {max_per_class}")
