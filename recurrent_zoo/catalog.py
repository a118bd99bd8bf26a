"""The names the package offers, in one place that imports nothing heavy.

The command line reads its choices here before TensorFlow is imported (so
`--help` is instant), and the modules that implement each name read the
same tuples, so a command can never offer what the library lacks, nor the
other way round. Recurrent cells have their own registry, `cells.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CORPORA",
    "KINDS",
    "MONITORS",
    "REMOVABLE",
    "TASKS",
    "TUNERS",
    "TaskEntry",
    "task_names",
]

# How the run core trains and scores a task: what a batch is, its loss,
# its scores and report (`recurrent_zoo.training.tasks`).
KINDS: tuple[str, ...] = ("classification", "language_model", "forecast")


@dataclass(frozen=True)
class TaskEntry:
    """A prebuilt model's task: the corpus it is meant for, and its kind."""

    corpus: str
    kind: str


# Prebuilt models (`recurrent_zoo.models.ARCHITECTURES`) by task name.
TASKS: dict[str, TaskEntry] = {
    "sentiment": TaskEntry("imdb", "classification"),
    "topic": TaskEntry("20newsgroups", "classification"),
    "char_lm": TaskEntry("text", "language_model"),
    "forecaster": TaskEntry("series", "forecast"),
}


def task_names(kind: str) -> tuple[str, ...]:
    """The task names of one kind, in `TASKS` order (the tuner's choices are
    the classification ones)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return tuple(name for name, entry in TASKS.items() if entry.kind == kind)


# What `recurrent_zoo.data.load_corpus` reads: two named corpora, and a
# user's own texts as one folder per class or as a table; and, for language
# models only, plain text without labels (`recurrent_zoo.data.plain_text`);
# for forecasters, one time series (`recurrent_zoo.data.series`).
CORPORA: tuple[str, ...] = (
    "imdb",
    "20newsgroups",
    "folder",
    "table",
    "text",
    "series",
)

# Parts of a 20 Newsgroups post that can be stripped (scikit-learn's names).
REMOVABLE: tuple[str, ...] = ("headers", "footers", "quotes")

# What a run may choose its epoch by and stop early on, and which way is
# better (`recurrent_zoo.training.history`).
MONITORS: dict[str, str] = {"val_loss": "min", "val_accuracy": "max"}

# Keras's dtype policies a run may train under (`training.precision`).
DTYPE_POLICIES: tuple[str, ...] = ("float32", "mixed_bfloat16", "mixed_float16")

# keras-tuner search algorithms (`recurrent_zoo.tuning.make_tuner`).
TUNERS: tuple[str, ...] = ("hyperband", "bayesian", "random")
