"""Atomic file writes: every record a run, a search or a preset writes.

A run is resumable only if a kill never leaves a half-written record that a
rerun would trust, so every file is written under a temporary name beside
its target, flushed to disk, and renamed over the target (`os.replace` is
atomic within one file system): a reader, or a rerun after a kill or a
power loss, sees the old file or the new one, never a mix. This module is
the one place that does it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "copy_atomically",
    "read_json",
    "replaced_atomically",
    "write_bytes",
    "write_json",
    "write_text",
]


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside `path` to write the new file to.

    When the block ends without an error, the file written there is flushed
    to disk and renamed over `path`; on an error it is removed and `path`
    is untouched. The temporary name keeps `path`'s suffix (Keras saves a
    model only to a name ending in ".keras") and is unique, so concurrent
    writers (workers of a distributed search) never share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        yield partial
        _fsync(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with replaced_atomically(path) as partial:
        partial.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8, with "\\n" line ends whatever the platform."""
    write_bytes(path, text.encode("utf-8"))


def write_json(
    path: str | os.PathLike[str], payload: Any, indent: int | None = 2
) -> None:
    """`payload` as JSON (indented, with a final newline, unless `indent`
    is None: then compact, as keras-tuner writes its own state)."""
    text = json.dumps(payload, indent=indent)
    write_text(path, text + "\n" if indent is not None else text)


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None if there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def copy_atomically(source: Path, target: Path) -> None:
    """Copies `source` to `target`; a kill leaves the old target or the new."""
    with replaced_atomically(target) as partial:
        shutil.copyfile(source, partial)
