"""Prebuilt recurrent text classifiers, their trained presets, the
character language model and the time-series forecaster."""

from recurrent_zoo.models.char_language_model import CharLanguageModel
from recurrent_zoo.models.compact import save_compact
from recurrent_zoo.models.forecaster import Forecaster, ForecastLoss
from recurrent_zoo.models.language_model import EncoderLanguageModel, pretrain_encoder
from recurrent_zoo.models.registry import (
    ARCHITECTURES,
    from_preset,
    get,
    list_models,
    list_presets,
)
from recurrent_zoo.models.text_classifier import CELLS, TextClassifier

__all__ = [
    "ARCHITECTURES",
    "CELLS",
    "CharLanguageModel",
    "EncoderLanguageModel",
    "ForecastLoss",
    "Forecaster",
    "TextClassifier",
    "from_preset",
    "get",
    "list_models",
    "list_presets",
    "pretrain_encoder",
    "save_compact",
]
