"""A run's per-epoch record, `history.csv`, and what validation chooses from it.

Keras's `CSVLogger` appends one row per finished epoch; a resumed run keeps
appending to the same file, so the file is the run's memory of its epochs:
early stopping's count, the best epoch and the curves are all rebuilt from
it. What may be monitored, and which way is better, is `MONITORS`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from recurrent_zoo.catalog import MONITORS
from recurrent_zoo.run_files import write_bytes

__all__ = [
    "MONITORS",
    "better",
    "first_best",
    "history_series",
    "read_history",
    "trim_history",
]


def better(value: float, best: float, monitor: str) -> bool:
    return value < best if MONITORS[monitor] == "min" else value > best


def first_best(values: Sequence[float], monitor: str) -> int | None:
    """The index of the first best finite value (NaN is never the best)."""
    best = None
    for i, value in enumerate(values):
        if math.isfinite(value) and (
            best is None or better(value, values[best], monitor)
        ):
            best = i
    return best


def read_history(out: Path) -> list[dict[str, float]]:
    """`out/history.csv`'s rows as numbers, in epoch order."""
    path = out / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = [
            {
                **{key: _number(value) for key, value in raw.items()},
                "epoch": int(raw["epoch"]),
            }
            for raw in csv.DictReader(f)
        ]
    return sorted(rows, key=lambda row: row["epoch"])


def trim_history(path: Path, done: int) -> None:
    """Keeps only the complete rows of the `done` epochs the backup holds.

    A kill between logging an epoch and backing it up leaves a row for an
    epoch that is about to run again, and a kill mid-write a partial line
    that the next row would be glued to.
    """
    if not path.is_file():
        return
    data = path.read_bytes()
    # Bytes, split at "\n" only: CSVLogger ends lines with "\r\n", which
    # stay as they are. The last piece is b"" or a partial line.
    lines = data.split(b"\n")[:-1]
    if not lines:
        path.unlink()  # not even a whole header: CSVLogger writes a new one
        return
    kept = [lines[0]] + [row for row in lines[1:] if int(row.split(b",")[0]) < done]
    trimmed = b"".join(line + b"\n" for line in kept)
    if trimmed != data:
        write_bytes(path, trimmed)


def history_series(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """Rows as one series per column, epochs numbered from 1, NaN as None."""
    keys = sorted({key for row in rows for key in row} - {"epoch"})
    series = {"epoch": [row["epoch"] + 1 for row in rows]}
    # NaN is not JSON; None is.
    for key in keys:
        series[key] = [
            None if not math.isfinite(v := row.get(key, math.nan)) else v
            for row in rows
        ]
    return series


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan  # CSVLogger writes "NA" for a missing value
