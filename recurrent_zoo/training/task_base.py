"""What every task object shares: it is named after a prebuilt architecture.

The task kinds (`tasks.ClassificationTask`, `language_modeling.LanguageModelTask`,
`forecasting.ForecastTask`) take their default corpus and peak learning rate
from the architecture of the same name (`recurrent_zoo.models.ARCHITECTURES`);
the run core reads both unless a run names others.
"""

from __future__ import annotations

from recurrent_zoo.models import ARCHITECTURES

__all__ = ["ArchitectureTask"]


class ArchitectureTask:
    """A task named after a key of `ARCHITECTURES` ("sentiment", "char_lm", ...)."""

    def __init__(self, name: str) -> None:
        architecture = ARCHITECTURES[name]
        self.name = name
        self.corpus = architecture.corpus
        self.learning_rate = architecture.learning_rate
