"""The report of a search: its trials as records, a table, files and a plot.

`trial_records` reads the oracle's trials; `format_table` prints them;
`write_results` writes `trials.json` / `.csv`, `best_hyperparameters.json`
and `plot_val_accuracy`'s plot into the project folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras_tuner as kt

from recurrent_zoo.run_files import write_json, write_text
from recurrent_zoo.tuning.hypermodel import TextClassifierHyperModel
from recurrent_zoo.tuning.tuners import OBJECTIVE, _units

if TYPE_CHECKING:
    from recurrent_zoo.tuning.search import SearchResult

__all__ = [
    "TrialRecord",
    "format_table",
    "plot_val_accuracy",
    "trial_records",
    "write_results",
]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the summary shows it.

    Attributes:
        trial_id: keras-tuner's id.
        status: "COMPLETED", "RUNNING", "FAILED", "INVALID"...
        units: hidden units per recurrent layer.
        embedding_dim: embedding size.
        dropout: dropout rate.
        learning_rate: Adam learning rate.
        val_accuracy: best validation accuracy (None unless completed).
        seconds: wall time of the trial.
        parameters: the model's weight count.
        epochs: epochs trained (a Hyperband continuation counts its
            parent's).
        best_epoch: the epoch (0-based) of the best validation accuracy.
        cell: the recurrent cell, where the search chooses it (else None).
        hyperparameters: every recorded value, `tuner/...` entries included.
    """

    trial_id: str
    status: str
    units: tuple[int, ...]
    embedding_dim: int
    dropout: float
    learning_rate: float
    val_accuracy: float | None = None
    seconds: float | None = None
    parameters: int | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    cell: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return len(self.units)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["units"] = list(self.units)
        row["num_layers"] = self.num_layers
        return row


def trial_records(oracle: kt.Oracle) -> list[TrialRecord]:
    """The oracle's trials, in id order.

    Args:
        oracle: a standalone or chief tuner's oracle.

    Returns:
        One `TrialRecord` per trial.
    """
    records = []
    for trial_id in sorted(oracle.trials, key=int):
        trial = oracle.trials[trial_id]
        values = dict(trial.hyperparameters.values)

        def metric(name: str, trial=trial) -> float | None:
            if trial.status != "COMPLETED" or not trial.metrics.exists(name):
                return None
            return float(trial.metrics.get_last_value(name))

        def whole(name: str) -> int | None:
            value = metric(name)
            return None if value is None else int(round(value))

        records.append(
            TrialRecord(
                trial_id=trial_id,
                status=str(trial.status),
                units=_units(values),
                embedding_dim=int(values["embedding_dim"]),
                dropout=round(float(values["dropout"]), 6),
                learning_rate=float(values["learning_rate"]),
                val_accuracy=metric(OBJECTIVE),
                seconds=metric("seconds"),
                parameters=whole("parameters"),
                epochs=whole("epochs"),
                best_epoch=whole("best_epoch"),
                cell=values.get("cell"),
                hyperparameters=values,
            )
        )
    return records


def format_table(records: Sequence[TrialRecord]) -> str:
    """A plain-text table of the trials, best validation accuracy marked."""
    completed = [r for r in records if r.val_accuracy is not None]
    best = max(completed, key=lambda r: r.val_accuracy, default=None)
    header = (
        "trial",
        "status",
        "layers",
        "units",
        "embed",
        "dropout",
        "lr",
        "epochs",
        OBJECTIVE,
        "seconds",
        "parameters",
    )
    cells = any(r.cell is not None for r in records)
    if cells:
        header = (*header[:2], "cell", *header[2:])
    rows = [header]
    for r in records:
        rows.append(
            (
                r.trial_id + (" *" if r is best else ""),
                r.status.lower(),
                *((r.cell or "-",) if cells else ()),
                str(r.num_layers),
                ",".join(map(str, r.units)),
                str(r.embedding_dim),
                f"{r.dropout:g}",
                f"{r.learning_rate:g}",
                "-" if r.epochs is None else str(r.epochs),
                "-" if r.val_accuracy is None else f"{r.val_accuracy:.4f}",
                "-" if r.seconds is None else f"{r.seconds:.1f}",
                "-" if r.parameters is None else f"{r.parameters:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_val_accuracy(
    records: Sequence[TrialRecord], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Scatter of validation accuracy against the first layer's hidden size.

    One marker per number of layers; deeper models are labelled with all
    their sizes. The x axis is logarithmic (the choices double).

    Args:
        records: the trials (those without a validation accuracy are left
            out).
        path: the image to write (PNG).
        title: the plot's title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and workers
    import matplotlib.pyplot as plt

    done = [r for r in records if r.val_accuracy is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = "os^Dv"
    for layers in sorted({r.num_layers for r in done}):
        group = [r for r in done if r.num_layers == layers]
        ax.scatter(
            [r.units[0] for r in group],
            [r.val_accuracy for r in group],
            marker=markers[(layers - 1) % len(markers)],
            label=f"{layers} layer{'s' if layers > 1 else ''}",
            alpha=0.8,
        )
        for r in group:
            if layers > 1:
                ax.annotate(
                    "-".join(map(str, r.units)),
                    (r.units[0], r.val_accuracy),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    sizes = sorted({r.units[0] for r in done})
    if sizes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("hidden units per direction (first recurrent layer)")
    ax.set_ylabel("best validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if done:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(
    result: SearchResult,
    search: kt.Tuner,
    hypermodel: TextClassifierHyperModel,
    task: str,
    tuner: str,
    epochs: int,
    log: Callable[[str], None],
) -> None:
    """The table, `trials.json`/`.csv`, the best hyperparameters, the plot."""
    project_dir = result.project_dir
    records = trial_records(search.oracle)
    completed = [r for r in records if r.val_accuracy is not None]
    if not completed:
        raise RuntimeError(f"no trial completed in {project_dir}")
    # Ties go to the earlier trial (for Hyperband, the shorter training).
    best = max(completed, key=lambda r: (r.val_accuracy, -int(r.trial_id)))
    result.trials, result.best = records, best
    log(format_table(records))

    header = {
        "task": task,
        "tuner": tuner,
        "objective": OBJECTIVE,
        # In a distributed search, the chief's (the workers log their own).
        "role": result.role,
        "devices": list(result.devices.devices),
        "distribution": result.devices.kind,
    }
    write_json(
        project_dir / "trials.json",
        {**header, "trials": [r.to_json() for r in records]},
    )
    _write_csv(project_dir / "trials.csv", records)
    hp = search.oracle.get_trial(best.trial_id).hyperparameters
    model_arguments = hypermodel.model_arguments(hp)
    model_arguments.pop("class_names", None)
    result.best_hyperparameters = {
        "task": task,
        "trial_id": best.trial_id,
        OBJECTIVE: best.val_accuracy,
        "epochs": best.best_epoch + 1 if best.best_epoch is not None else epochs,
        "learning_rate": best.learning_rate,
        "hyperparameters": {
            k: round(v, 6) if isinstance(v, float) else v
            for k, v in best.hyperparameters.items()
            if not k.startswith("tuner/")
        },
        # `recurrent_zoo.models.get(task, **model)` builds this architecture.
        "model": json.loads(json.dumps(model_arguments)),
    }
    write_json(project_dir / "best_hyperparameters.json", result.best_hyperparameters)
    log("best hyperparameters: " + json.dumps(result.best_hyperparameters))
    result.plot_path = plot_val_accuracy(
        records,
        project_dir / "val_accuracy_vs_units.png",
        title=f"{task}: {tuner} search, {len(completed)} trials",
    )


def _write_csv(path: Path, records: Sequence[TrialRecord]) -> None:
    columns = [
        "trial_id",
        "status",
        "cell",
        "num_layers",
        "units",
        "embedding_dim",
        "dropout",
        "learning_rate",
        "epochs",
        "best_epoch",
        OBJECTIVE,
        "seconds",
        "parameters",
    ]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        row = r.to_json()
        row["units"] = " ".join(map(str, r.units))
        writer.writerow(row)
    write_text(path, table.getvalue())
