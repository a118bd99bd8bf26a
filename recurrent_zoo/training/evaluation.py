"""Scoring a saved model on a corpus split, outside of any run.

`recurrent-zoo evaluate` and the accuracy benchmark read a `.keras` file
and score it the way `train` scores its own model: a classifier by the
classification task's `score`, on any split of the corpus its classes come
from or of a corpus the caller names; a `CharLanguageModel` by the
language-model task's (bits per character), on plain text by default; a
`Forecaster` by the forecasting task's (MAE, RMSE and MASE over rolling
origins of the test stretch), on a series.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from recurrent_zoo.models import ARCHITECTURES, CharLanguageModel, Forecaster
from recurrent_zoo.models.loading import load_model_file
from recurrent_zoo.training.forecasting import load_forecast_split, score_forecaster
from recurrent_zoo.training.language_modeling import (
    load_documents,
    score_language_model,
)
from recurrent_zoo.training.tasks import load_split, score_classifier

__all__ = ["evaluate", "infer_corpus"]


def evaluate(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str] | None,
    *,
    corpus: str | None = None,
    split: str = "test",
    max_per_class: int | None = None,
    remove: Iterable[str] = (),
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """Scores a saved `.keras` classifier, language model or forecaster.

    Args:
        model_path: a `.keras` file holding a `TextClassifier`, a
            `CharLanguageModel` or a `Forecaster`, or a run folder (its
            `model.keras`).
        data: the data folder, archive or table (a language model: a
            `.txt` file, a folder of them, or IMDB's; a forecaster: a
            series name or a CSV file).
        corpus: the corpus to read; by default the one whose classes the
            model predicts (see `infer_corpus`), "text" for a language
            model, "series" for a forecaster.
        split: "test", "train", or another split a folder or table has
            ("all": every document of plain text).
        max_per_class: at most this many texts per class (a language
            model: documents in all).
        remove: for 20 Newsgroups, parts of each post to strip.
        batch_size: texts per prediction batch.
        seed: the loader's seed (the order of the texts; the scores do not
            depend on it).

    Returns:
        `classification_report` of the split (a language model:
        "bits_per_character", "characters" and "documents"; a forecaster:
        `score_forecaster`'s "mae", "rmse", "mase" and the rest), plus
        "model", "corpus" and "split".

    Raises:
        ValueError: if the model file cannot be loaded (`ModelFileError`),
            the corpus cannot be inferred, or its class names differ from
            the model's.
    """
    if Path(model_path).is_dir():
        model_path = Path(model_path) / "model.keras"
    model = load_model_file(model_path)
    if isinstance(model, Forecaster):
        corpus = corpus or "series"
        series = load_forecast_split(corpus, data, split)
        report = score_forecaster(model, series, batch_size)
        return {"model": str(model_path), "corpus": corpus, "split": split, **report}
    if isinstance(model, CharLanguageModel):
        corpus = corpus or "text"
        documents = load_documents(corpus, data, split, max_per_class, seed, remove)
        report = score_language_model(model, documents, batch_size)
        return {"model": str(model_path), "corpus": corpus, "split": split, **report}
    names = tuple(getattr(model, "class_names", ()))
    if not names:
        raise ValueError(f"{model_path} is not a TextClassifier (no class_names)")
    corpus = corpus or infer_corpus(names)
    dataset = load_split(corpus, data, split, max_per_class, seed, remove, names)
    if tuple(dataset.class_names) != names:
        raise ValueError(
            f"the {corpus!r} {split} split has classes {list(dataset.class_names)} "
            f"but the model {model_path} predicts {list(names)}"
        )
    report = score_classifier(model, dataset, batch_size)
    return {"model": str(model_path), "corpus": corpus, "split": split, **report}


def infer_corpus(class_names: Sequence[str]) -> str:
    """The corpus of the architecture whose classes are `class_names`.

    Args:
        class_names: a model's class names, in order.

    Returns:
        e.g. "imdb" for ("neg", "pos"), "20newsgroups" for the 20 groups.

    Raises:
        ValueError: if no architecture has exactly these classes.
    """
    for architecture in ARCHITECTURES.values():
        if tuple(architecture.config.get("class_names", ())) == tuple(class_names):
            return architecture.corpus
    raise ValueError(
        f"cannot tell the corpus from the classes {list(class_names)}; "
        "name it (corpus=..., --corpus)"
    )
