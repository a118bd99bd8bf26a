"""Training curves and confusion matrices as PNG files.

Figures are drawn on matplotlib's Agg canvas directly, without `pyplot`:
no window ever opens, it works on machines without a display, and the
caller's own pyplot backend and state are left alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_confusion", "plot_history"]


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=110)
    return path


def plot_history(
    history: Mapping[str, Sequence[float]], path: str | os.PathLike[str]
) -> Path:
    """Loss and accuracy per epoch, training against validation.

    Args:
        history: per-epoch series as in `keras.callbacks.History.history`:
            "loss" and optionally "val_loss", "accuracy", "val_accuracy";
            an "epoch" series, if present, numbers the x axis (otherwise
            1, 2, ...).
        path: the PNG to write (parent folders are created).

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: if "loss" is missing or empty, or a series' length
            differs from it.
    """
    loss = list(history.get("loss", []))
    if not loss:
        raise ValueError(f"history needs a non-empty 'loss' series: {list(history)}")
    epochs = list(history.get("epoch", range(1, len(loss) + 1)))
    for key in ("epoch", "val_loss", "accuracy", "val_accuracy"):
        if key in history and len(history[key]) != len(loss):
            raise ValueError(
                f"history[{key!r}] has {len(history[key])} values for "
                f"{len(loss)} epochs"
            )
    panels = ["loss"]
    if "accuracy" in history or "val_accuracy" in history:
        panels.append("accuracy")

    figure = Figure(figsize=(5.2 * len(panels), 3.8), layout="constrained")
    for i, key in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        for name, label, style in (
            (key, "training", "o-"),
            (f"val_{key}", "validation", "s--"),
        ):
            if name in history:
                # metrics.json stores a NaN loss as null.
                values = [math.nan if v is None else v for v in history[name]]
                axes.plot(epochs, values, style, label=label, markersize=4)
        axes.set_title(key)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend()
        # Whole epochs only: a 3-epoch run should not show ticks at 1.5.
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(figure, path)


def plot_confusion(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """A confusion matrix: colour is the row share, numbers are counts.

    Colouring by the share of each true class (rows sum to 1) keeps small
    classes as visible as large ones; the counts are written in every
    non-zero cell. The figure grows with the number of classes and the
    predicted-class labels are rotated, so 20 newsgroup names stay legible.

    Args:
        matrix: square counts, rows true class, columns predicted class.
        class_names: one name per row/column.
        path: the PNG to write (parent folders are created).

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: if `matrix` is not square or does not match
            `class_names`.
    """
    counts = np.asarray(matrix)
    n = len(class_names)
    if counts.shape != (n, n):
        raise ValueError(
            f"matrix must be {n}x{n} for {n} class names, got shape {counts.shape}"
        )
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)

    side = max(4.0, 1.6 + 0.42 * n)
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02, label="share of row")
    axes.set_xticks(range(n), [str(c) for c in class_names], rotation=60, ha="right")
    axes.set_yticks(range(n), [str(c) for c in class_names])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    font = 9 if n <= 10 else 6
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                dark = share[i, j] > 0.5
                axes.text(
                    j,
                    i,
                    str(int(counts[i, j])),
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if dark else "black",
                )
    total = int(counts.sum())
    correct = int(np.trace(counts))
    accuracy = correct / total if total else float("nan")
    axes.set_title(f"{total} examples, accuracy {accuracy:.3f}")
    return _save(figure, path)
