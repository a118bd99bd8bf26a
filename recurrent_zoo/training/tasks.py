"""What the run core is handed: the task, as an object.

The core (`recurrent_zoo.training.stages`) knows runs, epochs, workers and
files; it knows nothing of what is learned. A task tells it that: how a
split is read, how the model is built, adapted and compiled (its loss and
metrics), what a batch is, which validation values may choose the epoch,
and how a model is scored, summed up in a line and reported. Three kinds
today: classification here (accuracy, macro-F1, the confusion matrix),
the character language model (`language_modeling`: bits per character)
and the forecaster (`forecasting`: MAE, RMSE and MASE over rolling
origins); each is a class and one line in `KINDS` (and `catalog.KINDS`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from recurrent_zoo.catalog import TASKS
from recurrent_zoo.data import TextClassificationData, load_corpus
from recurrent_zoo.data.batching import bucketed_dataset, counted_bucketed_dataset
from recurrent_zoo.metrics import classification_report
from recurrent_zoo.models import get
from recurrent_zoo.plots import plot_confusion
from recurrent_zoo.training.forecasting import ForecastTask
from recurrent_zoo.training.language_modeling import LanguageModelTask
from recurrent_zoo.training.task_base import ArchitectureTask

__all__ = ["KINDS", "ClassificationTask", "Task", "task_for"]


class Task(Protocol):
    """What the run core needs to know about what a model learns."""

    name: str
    corpus: str  # read unless the run names another
    learning_rate: float  # the peak rate unless the run names another
    monitors: tuple[str, ...]  # of `history.MONITORS`
    report_files: tuple[str, ...]  # what `report` writes into the run
    pretrains: bool  # whether `pretrain_epochs` applies

    def load_split(self, corpus: str, data: Any, split: str, **options: Any) -> Any:
        """One split of the corpus."""

    def build(self, overrides: dict, data: Any, vocabulary: list | None) -> Any:
        """The untrained model (called in the strategy's scope)."""

    def adapt(self, model: Any, data: Any) -> list[str]:
        """Adapts the model's preprocessing to `data`; its vocabulary."""

    def batches(
        self, model: Any, data: Any, batch_size: int, *, shuffle: bool, seed: Any
    ) -> tuple[tf.data.Dataset, int]:
        """A dataset of (inputs, targets) batches, and its steps per epoch."""

    def compile(self, model: Any, learning_rate: Any) -> None:
        """Compiles with the task's loss and metrics."""

    def score(self, model: Any, data: Any, batch_size: int) -> dict:
        """The test scores, JSON-ready."""

    def summary(self, scores: dict) -> str:
        """The test scores in a few words, for the command's last line."""

    def report(self, scores: dict, out: Path) -> None:
        """Writes the scores' figures into the run folder."""


class ClassificationTask(ArchitectureTask):
    """Text classification with a prebuilt `TextClassifier` architecture.

    Args:
        name: a key of `ARCHITECTURES` ("sentiment", "topic").
    """

    monitors = ("val_loss", "val_accuracy")
    report_files = ("confusion.png",)
    pretrains = True

    def load_split(
        self,
        corpus: str,
        data: str | os.PathLike[str] | None,
        split: str,
        *,
        max_per_class: int | None,
        seed: int,
        remove: Iterable[str] = (),
        class_names: Sequence[str] | None = None,
    ) -> TextClassificationData:
        return load_split(corpus, data, split, max_per_class, seed, remove, class_names)

    def build(
        self,
        overrides: dict,
        data: TextClassificationData,
        vocabulary: list[str] | None,
    ) -> keras.Model:
        return get(
            self.name,
            **{**overrides, "class_names": data.class_names},
            vocabulary=vocabulary,
        )

    def adapt(self, model: keras.Model, data: TextClassificationData) -> list[str]:
        # Deterministic (ties in frequency go by the word), so workers that
        # adapt on the same texts agree. Given a vocabulary, adapt only sets
        # what else comes from the texts (the bag of words' IDF, the NBSVM
        # part, which alone reads the labels).
        model.adapt(data.texts, labels=data.labels)
        return list(model.vectorizer.get_vocabulary(False))

    def batches(
        self,
        model: keras.Model,
        data: TextClassificationData,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> tuple[tf.data.Dataset, int]:
        return batches(data, batch_size, model.sequence_length, shuffle, seed)

    def compile(self, model: keras.Model, learning_rate: Any) -> None:
        # The model's own compile picks the loss (binary or categorical
        # cross-entropy, from its head) and accuracy.
        model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0))

    def score(
        self, model: keras.Model, data: TextClassificationData, batch_size: int
    ) -> dict:
        return score_classifier(model, data, batch_size)

    def summary(self, scores: dict) -> str:
        return (
            f"test accuracy {scores['accuracy']:.3f}, macro-F1 "
            f"{scores['macro_f1']:.3f} on {scores['examples']} texts"
        )

    def report(self, scores: dict, out: Path) -> None:
        plot_confusion(
            scores["confusion_matrix"], scores["class_names"], out / "confusion.png"
        )


# Task kinds by their `catalog.KINDS` name.
KINDS: dict[str, type] = {
    "classification": ClassificationTask,
    "language_model": LanguageModelTask,
    "forecast": ForecastTask,
}


def task_for(name: str) -> Task:
    """The task object of a prebuilt model's task name.

    Raises:
        ValueError: on a name `catalog.TASKS` does not hold.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    return KINDS[TASKS[name].kind](name)


def load_split(
    corpus: str,
    data: Any,
    split: str,
    max_per_class: int | None,
    seed: int,
    remove: Iterable[str],
    class_names: Sequence[str] | None = None,
) -> TextClassificationData:
    """One split of a corpus, as every stage and the tuner read it."""
    kwargs: dict[str, Any] = {"max_per_class": max_per_class, "seed": seed}
    remove = tuple(sorted(set(remove)))
    if remove:
        kwargs["remove"] = remove
    # A folder or table names its classes after what it holds; a test split
    # lacking one class would shift every label after it. Named corpora
    # have fixed classes.
    if class_names is not None and corpus in ("folder", "table"):
        kwargs["class_names"] = list(class_names)
    return load_corpus(corpus, data, split, **kwargs)


def batches(
    data: TextClassificationData,
    batch_size: int,
    length: int,
    shuffle: bool = True,
    seed: int | None = None,
) -> tuple[tf.data.Dataset, int]:
    """Length-bucketed (texts, labels) batches and their number per epoch."""
    return counted_bucketed_dataset(
        data.texts, data.labels, batch_size, shuffle, seed, max_length=length
    )


def score_classifier(
    model: keras.Model, data: TextClassificationData, batch_size: int
) -> dict:
    """`classification_report` of the model's predictions on `data`."""
    true, predicted = predict_classes(model, data, batch_size)
    return classification_report(true, predicted, data.class_names)


def predict_classes(
    model: keras.Model, data: TextClassificationData, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted class ids, in the order the batches came."""
    length = getattr(model, "sequence_length", 400)
    ds = bucketed_dataset(
        data.texts, data.labels, batch_size, shuffle=False, max_length=length
    )
    true, predicted = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for texts, labels in ds:
        p = np.asarray(model.predict_on_batch(texts))
        # A binary head gives P(class 1) only; > 0.5 matches the argmax of
        # predict_proba's [1 - p, p] (ties go to class 0 in both).
        ids = (p[:, 0] > 0.5) if p.shape[1] == 1 else p.argmax(axis=1)
        predicted.append(ids.astype(np.int64))
        true.append(labels.numpy().astype(np.int64))
    return np.concatenate(true), np.concatenate(predicted)
