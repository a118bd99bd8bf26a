"""A run's arguments: validated once, and normalized as run.json holds them.

`run_arguments` is the first stage of `train`: every mistake in the
arguments fails here, before anything is read or written, and what comes
out compares equal to the run.json a resume reads back (tuples become
lists, paths are resolved). Keys that later versions added appear only
when set, so runs recorded before them still resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recurrent_zoo.catalog import REMOVABLE
from recurrent_zoo.training.precision import check_dtype_policy
from recurrent_zoo.training.tasks import Task

__all__ = ["monitor_of", "run_arguments"]


def run_arguments(task: Task, data: Any, **kw: Any) -> dict:
    """Validated arguments, JSON-normalized so they compare with run.json.

    Args:
        task: the task object.
        data: the data folder, archive or table (None: the default place).
        **kw: `train`'s keyword arguments that define the run.

    Raises:
        ValueError: naming the first invalid argument and its value.
    """
    _check_counts(kw)
    if kw["monitor"] not in task.monitors:
        raise ValueError(
            f"monitor must be one of {sorted(task.monitors)}, got {kw['monitor']!r}"
        )
    rate = kw["learning_rate"] or task.learning_rate
    if rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {rate}")
    if kw["pretrain_epochs"] and not task.pretrains:
        raise ValueError(
            f"pretrain_epochs applies to classifiers, not the {task.name!r} task, "
            f"got pretrain_epochs={kw['pretrain_epochs']}"
        )
    corpus = kw["corpus"] or task.corpus
    remove = sorted(set(kw["remove"]))
    if remove and corpus != "20newsgroups":
        raise ValueError(f"remove={remove} only applies to 20newsgroups, not {corpus}")
    unknown = set(remove) - set(REMOVABLE)
    if unknown:
        raise ValueError(f"remove takes {REMOVABLE}, got {sorted(unknown)}")
    overrides = dict(kw["overrides"] or {})
    reserved = {"class_names", "vocabulary"} & set(overrides)
    if reserved:
        raise ValueError(
            f"overrides cannot set {sorted(reserved)}: they come from the data"
        )
    arguments = {
        "task": task.name,
        "corpus": corpus,
        "data": _data_argument(task, data),
        "epochs": int(kw["epochs"]),
        "batch_size": int(kw["batch_size"]),
        "learning_rate": float(rate),
        "validation_fraction": float(kw["validation_fraction"]),
        "patience": int(kw["patience"]),
        "seed": int(kw["seed"]),
        "max_per_class": kw["max_per_class"],
        "test_max_per_class": kw["test_max_per_class"],
        "remove": remove,
        "overrides": overrides,
    }
    arguments.update(_optional_arguments(kw))
    # Tuples become lists, as they will when read back from run.json.
    return json.loads(json.dumps(arguments))


def _data_argument(task: Task, data: Any) -> str | None:
    """The data as run.json records it: a path resolved, so that "data" and
    "./data" are the same run; a name the task reads as a name (a
    forecaster's "co2") as it is."""
    if data is None:
        return None
    if str(data) in getattr(task, "named_data", ()):
        return str(data)
    return str(Path(data).expanduser().resolve())


def monitor_of(arguments: dict) -> str:
    """What the run monitors (run.json records it only when not val_loss)."""
    return arguments.get("monitor", "val_loss")


def _check_counts(kw: dict) -> None:
    for name in ("epochs", "batch_size"):
        if int(kw[name]) < 1:
            raise ValueError(f"{name} must be positive, got {kw[name]}")
    if int(kw["patience"]) < 0:
        raise ValueError(f"patience must be >= 0, got {kw['patience']}")
    if not 0.0 < kw["validation_fraction"] < 1.0:
        raise ValueError(
            f"validation_fraction must lie in (0, 1), got {kw['validation_fraction']}"
        )
    if int(kw["pretrain_epochs"]) < 0:
        raise ValueError(f"pretrain_epochs must be >= 0, got {kw['pretrain_epochs']}")


def _optional_arguments(kw: dict) -> dict:
    """The arguments recorded only when they differ from their defaults.

    Earlier runs had none of them (their run.json lacks the keys), so
    leaving a default out keeps those runs resumable.
    """
    optional: dict[str, Any] = {}
    if kw["monitor"] != "val_loss":
        optional["monitor"] = kw["monitor"]
    epochs_lm = int(kw["pretrain_epochs"])
    if epochs_lm:
        if kw["pretrain_learning_rate"] <= 0:
            raise ValueError(
                "pretrain_learning_rate must be positive, got "
                f"{kw['pretrain_learning_rate']}"
            )
        optional["pretrain_epochs"] = epochs_lm
        optional["pretrain_learning_rate"] = float(kw["pretrain_learning_rate"])
    unlabeled = kw.get("pretrain_unlabeled")
    if unlabeled is not None:
        if not epochs_lm:
            raise ValueError(
                f"pretrain_unlabeled={unlabeled} needs pretrain_epochs above 0"
            )
        if int(unlabeled) < 0:
            raise ValueError(f"pretrain_unlabeled must be >= 0, got {unlabeled}")
        optional["pretrain_unlabeled"] = int(unlabeled)
    if kw["refit"]:
        optional["refit"] = True
    policy = check_dtype_policy(kw.get("dtype_policy", "float32"))
    if policy != "float32":
        optional["dtype_policy"] = policy
    return optional
