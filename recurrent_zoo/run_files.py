"""Small atomic file helpers shared by the stages of a training run.

A run is resumable only if a kill never leaves a half-written record that a
rerun would trust, so every record is written to a temporary name first and
renamed over the old one (`os.replace` is atomic on one file system).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = ["copy_atomically", "read_json", "write_json"]


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None if there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, payload: dict) -> None:
    """Writes `payload` to `path` as indented JSON, atomically."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(partial, path)


def copy_atomically(source: Path, target: Path) -> None:
    """Copies `source` to `target`; a kill leaves the old target or the new."""
    partial = target.with_name(target.stem + ".partial" + target.suffix)
    shutil.copyfile(source, partial)
    os.replace(partial, target)
