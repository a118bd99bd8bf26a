"""Named architectures and trained presets, in the spirit of keras-hub.

`get("sentiment")` builds an untrained model (adapt, compile, fit);
`get("char_lm")` an untrained character language model;
`get("forecaster", horizon=13)` an untrained time-series forecaster;
`from_preset("imdb_sentiment")` loads trained weights shipped with the
package, ready to classify raw strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from recurrent_zoo.catalog import TASKS
from recurrent_zoo.data.newsgroups import NEWSGROUPS
from recurrent_zoo.models.char_language_model import CharLanguageModel
from recurrent_zoo.models.forecaster import Forecaster
from recurrent_zoo.models.text_classifier import TextClassifier

__all__ = ["ARCHITECTURES", "get", "list_models", "list_presets", "from_preset"]

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


@dataclass(frozen=True)
class Architecture:
    """A named model recipe: the corpus it is meant for, its model class
    (a `TextClassifier` unless said) and its defaults."""

    description: str
    corpus: str
    config: dict[str, Any] = field(default_factory=dict)
    learning_rate: float = 3e-3
    model_class: type = TextClassifier


ARCHITECTURES: dict[str, Architecture] = {
    "sentiment": Architecture(
        description="IMDB-style binary sentiment: neg / pos",
        corpus=TASKS["sentiment"].corpus,
        config=dict(
            class_names=("neg", "pos"),
            vocabulary_size=20_000,
            sequence_length=400,
            embedding_dim=64,
            units=(64,),
        ),
    ),
    "topic": Architecture(
        description="20 Newsgroups topics (20 classes)",
        corpus=TASKS["topic"].corpus,
        config=dict(
            class_names=NEWSGROUPS,
            # A linear model over every word leans on rare ones: 60,000
            # scored higher on validation than 30,000 (see the README).
            vocabulary_size=60_000,
            sequence_length=400,
            embedding_dim=64,
            units=(64,),
            # Wide & deep: a linear classifier over the TF-IDF bag of words
            # beside the encoder (what it gave: the README's Accuracy).
            bag_of_words=True,
        ),
    ),
    "char_lm": Architecture(
        description="character-level language model of plain text (bits/char)",
        # "text": .txt files, or IMDB's reviews as plain text when the data
        # holds the IMDB archive (`recurrent_zoo.data.plain_text`).
        corpus=TASKS["char_lm"].corpus,
        config=dict(
            cell="layer_norm_lstm",
            units=(256,),
            embedding_dim=64,
            max_characters=253,
            sequence_length=128,
        ),
        learning_rate=2e-3,
        model_class=CharLanguageModel,
    ),
    "forecaster": Architecture(
        description="direct multi-step time-series forecaster (MAE, RMSE, MASE)",
        # "series": co2, elnino, sunspots or a CSV (`recurrent_zoo.data.series`).
        corpus=TASKS["forecaster"].corpus,
        # Two years of weekly values in, a quarter out; `--window` and
        # `--horizon` fit other series.
        config=dict(cell="layer_norm_lstm", units=(64,), window=104, horizon=13),
        learning_rate=3e-3,
        model_class=Forecaster,
    ),
}


def list_models() -> list[str]:
    """Names accepted by `get`."""
    return sorted(ARCHITECTURES)


def get(name: str, **overrides: Any) -> TextClassifier | CharLanguageModel | Forecaster:
    """An untrained model built from a named architecture.

    Args:
        name: one of `list_models()`.
        **overrides: any argument of the architecture's model class
            (`TextClassifier`, `CharLanguageModel` for "char_lm",
            `Forecaster` for "forecaster"), e.g.
            `units=(128,)` or `class_names=data.class_names`.

    Returns:
        The model, not yet adapted nor compiled.

    Example:

    >>> model = get("sentiment", units=(32,), vocabulary_size=5000)
    >>> model.units
    (32,)
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    architecture = ARCHITECTURES[name]
    return architecture.model_class(**{**architecture.config, **overrides})


def list_presets() -> dict[str, dict[str, Any]]:
    """Shipped presets: name -> the card recorded when it was trained."""
    cards = {}
    for card in sorted(PRESET_DIR.glob("*.json")):
        cards[card.stem] = json.loads(card.read_text())
    return cards


def from_preset(name: str, compile: bool = True) -> TextClassifier | CharLanguageModel:
    """A trained model shipped with the package, ready for raw strings.

    Args:
        name: a key of `list_presets()`: "imdb_sentiment" and
            "newsgroups_topic" (`TextClassifier`s), "imdb_char_lm" (a
            `CharLanguageModel`).
        compile: restore the training configuration too (needed to keep
            fitting; not needed to predict).

    Example:

    >>> model = from_preset("imdb_sentiment")
    >>> model.predict_labels(["A moving, beautifully acted film. Loved it."])
    ['pos']
    """
    path = PRESET_DIR / f"{name}.keras"
    presets = list_presets()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; available: {list(presets)}")
    if not path.is_file():
        raise FileNotFoundError(f"preset {name!r} has a card but no weights: {path}")
    return keras.saving.load_model(path, compile=compile)
