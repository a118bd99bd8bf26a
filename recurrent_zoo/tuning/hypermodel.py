"""The search space over the prebuilt text classifiers' sizes.

`TextClassifierHyperModel` builds `recurrent_zoo.models.get(task, ...)` from
keras-tuner hyperparameters. Hidden units per recurrent layer are the main
axis; the number of layers, the embedding size, the dropout rate and the
learning rate come with them. Each hyperparameter's default is the prebuilt
architecture's own value, so the default build *is* `get(task)`: a search
starts from, and can always be compared with, the model the package ships.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from recurrent_zoo.catalog import task_names
from recurrent_zoo.cells import CELLS
from recurrent_zoo.distribute import string_input_safe
from recurrent_zoo.models import ARCHITECTURES, TextClassifier, get
from recurrent_zoo.models.standardize import text_vectorizer

__all__ = [
    "DEFAULT_DROPOUT_RANGE",
    "DEFAULT_EMBEDDING_DIMS",
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_UNITS",
    "TUNED",
    "TextClassifierHyperModel",
    "build_vocabulary",
]

DEFAULT_UNITS: tuple[int, ...] = (16, 32, 64, 128, 256)
DEFAULT_EMBEDDING_DIMS: tuple[int, ...] = (32, 64, 128, 256)
DEFAULT_LEARNING_RATES: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
# (min, max, step): a stepped range keeps Hyperband's and the Bayesian
# oracle's duplicate detection meaningful (no two trials at 0.3 and 0.3001).
DEFAULT_DROPOUT_RANGE: tuple[float, float, float] = (0.0, 0.5, 0.1)
# `TextClassifier` arguments the search owns; the rest may be held fixed.
TUNED: tuple[str, ...] = ("units", "embedding_dim", "dropout")


def _nearest(values: Sequence[float], target: float, log: bool = False) -> float:
    """The element of `values` closest to `target` (in log space if `log`)."""

    def distance(v: float) -> float:
        return abs(math.log(v) - math.log(target)) if log else abs(v - target)

    return min(values, key=distance)


def _sorted_unique(name: str, values: Sequence[float], kind: type) -> list:
    values = sorted({kind(v) for v in values})
    if not values or values[0] <= 0:
        raise ValueError(f"{name} must be a non-empty list of positive numbers")
    return values


class TextClassifierHyperModel(kt.HyperModel):
    """A keras-tuner `HyperModel` over `recurrent_zoo.models.get(task)`.

    Hyperparameters (the names keras-tuner records):

        num_layers     Int 1..max_layers     default: len(prebuilt units)
        units_{i}      Choice over `units`   default: prebuilt units[i]
                       (units_i exists only when num_layers > i)
        embedding_dim  Choice                default: prebuilt embedding_dim
        dropout        Float, stepped        default: prebuilt dropout
        learning_rate  Choice (log-spaced)   default: the architecture's rate
        cell           Choice over `cells`   default: the prebuilt cell if
                       among them, else the first (only when `cells` is
                       given: by default the cell is not searched)

    A default the caller's choices leave out falls back to the nearest
    choice (for the learning rate, nearest in log space); with the default
    choices the default build equals `get(task)` exactly.

    Args:
        task: a key of `recurrent_zoo.models.ARCHITECTURES`.
        class_names: the data's class names, in label order; None keeps the
            architecture's.
        vocabulary: word list (most frequent first, without the padding and
            `[UNK]` entries; see `build_vocabulary`), shared by every trial
            so none re-adapts. None adapts each trial's model in `fit`.
        units: hidden sizes to choose from, per direction of each layer.
        max_layers: the most stacked recurrent layers a trial may have.
        embedding_dims: embedding sizes to choose from.
        dropout_range: `(min, max, step)` of the dropout rate.
        learning_rates: Adam learning rates to choose from.
        cells: recurrent cells to choose from (names of
            `recurrent_zoo.cells.CELLS`, e.g. LSTM and GRU with and without
            layer normalization); None keeps the prebuilt (or fixed) cell.
        name: the hypermodel's name.
        **fixed: any other `TextClassifier` argument, held fixed in every
            trial (e.g. `vocabulary_size=5000`, `cell="keras_gru"`).

    Attributes:
        adapt_texts: if set (`run_search` sets the training texts), `fit`
            adapts each model on these rather than on its training data:
            under a `tf.distribute` strategy that data is a
            `DistributedDataset`, which cannot be mapped to its texts.

    Raises:
        ValueError: on an unknown task, an empty or non-positive list of
            choices, `max_layers < 1`, a bad dropout range, or a fixed
            argument the search itself tunes.

    Example:

    >>> hypermodel = TextClassifierHyperModel("sentiment", units=(32, 64, 128))
    >>> [hp["name"] for hp in hypermodel.search_space()]
    ['num_layers', 'units_0', 'units_1', 'embedding_dim', 'dropout',
     'learning_rate']
    >>> hypermodel.defaults["units_0"]          # the prebuilt model's size
    64
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> model.units
    (64,)
    """

    def __init__(
        self,
        task: str = "sentiment",
        class_names: Sequence[str] | None = None,
        vocabulary: Sequence[str] | None = None,
        units: Sequence[int] = DEFAULT_UNITS,
        max_layers: int = 2,
        embedding_dims: Sequence[int] = DEFAULT_EMBEDDING_DIMS,
        dropout_range: tuple[float, float, float] = DEFAULT_DROPOUT_RANGE,
        learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES,
        cells: Sequence[str] | None = None,
        name: str | None = None,
        **fixed: Any,
    ) -> None:
        if task not in task_names("classification"):
            raise ValueError(
                f"unknown task {task!r}; the tuner searches classifiers: "
                f"{sorted(task_names('classification'))}"
            )
        searched = {*TUNED, "learning_rate", "vocabulary"}
        if cells is not None:
            searched.add("cell")
            unknown = sorted(set(cells) - set(CELLS))
            if unknown or not cells:
                raise ValueError(
                    f"cells must be a non-empty list of {list(CELLS)}. "
                    f"Received: cells={cells!r}"
                )
        clash = sorted(set(fixed) & searched)
        if clash:
            raise ValueError(
                f"{clash} are searched (or passed as their own argument), so "
                "they cannot be held fixed; narrow their choices instead"
            )
        if int(max_layers) < 1:
            raise ValueError(f"max_layers must be at least 1, got {max_layers}")
        low, high, step = (float(v) for v in dropout_range)
        if not 0.0 <= low <= high < 1.0 or step <= 0:
            raise ValueError(
                "dropout_range must be (min, max, step) with 0 <= min <= max < 1 "
                f"and step > 0, got {dropout_range!r}"
            )
        super().__init__(name=name or f"{task}_hypermodel")
        self.task = task
        self.class_names = None if class_names is None else tuple(class_names)
        self.vocabulary = None if vocabulary is None else list(vocabulary)
        self.adapt_texts: Sequence[str] | None = None
        self.units = _sorted_unique("units", units, int)
        self.max_layers = int(max_layers)
        self.embedding_dims = _sorted_unique("embedding_dims", embedding_dims, int)
        self.dropout_range = (low, high, step)
        self.learning_rates = _sorted_unique("learning_rates", learning_rates, float)
        self.cells = None if cells is None else tuple(dict.fromkeys(cells))
        self.fixed = dict(fixed)

        prebuilt = self.prebuilt_arguments()
        default_units = tuple(prebuilt["units"])
        self.defaults: dict[str, Any] = {
            "num_layers": min(len(default_units), self.max_layers),
            **{
                f"units_{i}": _nearest(
                    self.units, default_units[min(i, len(default_units) - 1)]
                )
                for i in range(self.max_layers)
            },
            "embedding_dim": _nearest(self.embedding_dims, prebuilt["embedding_dim"]),
            "dropout": self._nearest_dropout(prebuilt["dropout"]),
            "learning_rate": _nearest(
                self.learning_rates, ARCHITECTURES[task].learning_rate, log=True
            ),
        }
        if self.cells is not None:
            cell = prebuilt["cell"]
            self.defaults["cell"] = cell if cell in self.cells else self.cells[0]

    def prebuilt_arguments(self) -> dict[str, Any]:
        """Every `TextClassifier` argument of the task's prebuilt model.

        Returns:
            `TextClassifier`'s own defaults, updated with the architecture's
            config (which leaves e.g. dropout at the class default), then
            with the arguments this hypermodel holds fixed.
        """
        signature = inspect.signature(TextClassifier.__init__).parameters
        arguments = {
            name: p.default
            for name, p in signature.items()
            if p.default is not inspect.Parameter.empty
        }
        return {**arguments, **ARCHITECTURES[self.task].config, **self.fixed}

    def _nearest_dropout(self, target: float) -> float:
        low, high, step = self.dropout_range
        steps = round((min(max(target, low), high) - low) / step)
        return round(low + steps * step, 6)

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """Declares the whole space in `hp` and returns the active values.

        Args:
            hp: the trial's hyperparameters (or an empty container).

        Returns:
            name -> value for the active hyperparameters (inactive layers'
            units are left out).
        """
        d = self.defaults
        values: dict[str, Any] = {
            "num_layers": hp.Int(
                "num_layers", 1, self.max_layers, default=d["num_layers"]
            )
        }
        for i in range(self.max_layers):
            # Layer i exists only in models with more than i layers; the
            # condition keeps the oracles from tuning (and hashing) units of
            # layers a trial does not have.
            condition = (
                {}
                if i == 0
                else {
                    "parent_name": "num_layers",
                    "parent_values": list(range(i + 1, self.max_layers + 1)),
                }
            )
            size = hp.Choice(
                f"units_{i}", self.units, default=d[f"units_{i}"], **condition
            )
            if size is not None:
                values[f"units_{i}"] = size
        values["embedding_dim"] = hp.Choice(
            "embedding_dim", self.embedding_dims, default=d["embedding_dim"]
        )
        low, high, step = self.dropout_range
        values["dropout"] = hp.Float(
            "dropout", low, high, step=step, default=d["dropout"]
        )
        values["learning_rate"] = hp.Choice(
            "learning_rate", self.learning_rates, default=d["learning_rate"]
        )
        if self.cells is not None:
            values["cell"] = hp.Choice("cell", list(self.cells), default=d["cell"])
        return values

    def model_arguments(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """The `get(task, **arguments)` overrides a trial's values stand for.

        Args:
            hp: the trial's hyperparameters.

        Returns:
            `TextClassifier` arguments: the fixed ones, the class names and
            the tuned `units` (a tuple), `embedding_dim`, `dropout` and (when
            searched) `cell`. The
            vocabulary and the learning rate are not included.
        """
        values = self.declare_hyperparameters(hp)
        arguments = dict(self.fixed)
        if self.class_names is not None:
            arguments["class_names"] = self.class_names
        arguments["units"] = tuple(
            int(values[f"units_{i}"]) for i in range(int(values["num_layers"]))
        )
        arguments["embedding_dim"] = int(values["embedding_dim"])
        # Stepped floats come back as e.g. 0.30000000000000004.
        arguments["dropout"] = round(float(values["dropout"]), 6)
        if "cell" in values:
            arguments["cell"] = values["cell"]
        return arguments

    def build(self, hp: kt.HyperParameters) -> TextClassifier:
        """A compiled `TextClassifier` for the trial's hyperparameters.

        Args:
            hp: the trial's hyperparameters.

        Returns:
            The model, its vocabulary set when the hypermodel has one,
            compiled with Adam at the trial's learning rate (and, in a
            `tf.distribute` strategy's scope, made to accept its string
            inputs: `distributed.string_input_safe`).
        """
        model = get(self.task, vocabulary=self.vocabulary, **self.model_arguments(hp))
        model.compile(learning_rate=float(hp.get("learning_rate")))
        # Built in a strategy's scope (several GPUs), it needs this to train.
        return string_input_safe(model)

    def fit(
        self, hp: kt.HyperParameters, model: TextClassifier, *args: Any, **kwargs: Any
    ) -> keras.callbacks.History:
        """`model.fit`, after adapting the model to the training texts.

        Adapting builds the vocabulary if none was given, and the IDF
        weights if the model has a bag of words.

        Args:
            hp: the trial's hyperparameters.
            model: the model `build` returned.
            *args: `fit`'s positional arguments; the first is the training
                data, a `tf.data.Dataset` of `(text, label)` batches.
            **kwargs: `fit`'s keyword arguments (`x=` is read too).

        Returns:
            The `History` of the fit.
        """
        # With a vocabulary given, adapt keeps it: it then only sets the bag
        # of words' IDF, and does nothing for a model without one.
        if self.adapt_texts is not None:
            model.adapt(self.adapt_texts)
        else:
            data = args[0] if args else kwargs["x"]
            model.adapt(data.map(lambda text, label: text))
        return model.fit(*args, **kwargs)

    def search_space(self) -> list[dict[str, Any]]:
        """A description of every hyperparameter, in declaration order.

        Returns:
            One dict per hyperparameter with `name`, `type` ("int",
            "choice" or "float"), `values` (choices; for a stepped range
            every value it can take), `default` and `condition` (None, or
            `{"num_layers": [...]}` for the units of deeper layers).
        """
        hp = kt.HyperParameters()
        self.declare_hyperparameters(hp)
        described = []
        for param in hp.space:
            if isinstance(param, kt.engine.hyperparameters.Choice):
                kind, values = "choice", list(param.values)
            elif isinstance(param, kt.engine.hyperparameters.Int):
                kind = "int"
                values = list(
                    range(param.min_value, param.max_value + 1, param.step or 1)
                )
            else:
                kind = "float"
                count = round((param.max_value - param.min_value) / param.step)
                values = [
                    round(float(v), 6)
                    for v in np.linspace(param.min_value, param.max_value, count + 1)
                ]
            condition = None
            if param.conditions:
                condition = {c.name: list(c.values) for c in param.conditions}
            described.append(
                {
                    "name": param.name,
                    "type": kind,
                    "values": values,
                    "default": param.default,
                    "condition": condition,
                }
            )
        return described


def build_vocabulary(texts: Sequence[str], vocabulary_size: int) -> list[str]:
    """The word list a `TextClassifier` would adapt on `texts`.

    Computed once before a search and passed to every trial's model, so that
    no trial re-reads the training texts to adapt.

    Args:
        texts: training texts (never validation or test texts).
        vocabulary_size: the models' `vocabulary_size` (padding and `[UNK]`
            included, as in `TextClassifier`).

    Returns:
        Words, most frequent first, without the padding and `[UNK]` entries:
        what `TextClassifier(vocabulary=...)` expects.
    """
    # The output length does not affect the vocabulary.
    vectorizer = text_vectorizer(vocabulary_size)
    vectorizer.adapt(np.asarray(list(texts), dtype=object))
    return [str(word) for word in vectorizer.get_vocabulary()[2:]]
