"""The recurrent cells the prebuilt models, the tuner and the CLI can use.

One entry per name, read by `TextClassifier(cell=...)`, the tuner's cell
choice, `recurrent-zoo train --cell` and the docs. Nothing here imports Keras
or TensorFlow (the CLI reads the names before any heavy import); `build`
imports the layer's module when a model is built. Adding a cell to the
models is its layer plus one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CELLS", "CellSpec", "build_recurrent_layer", "cell_names"]


@dataclass(frozen=True)
class CellSpec:
    """How a cell name becomes a recurrent layer.

    Attributes:
        layer: "module:Class" of the layer, built as `Class(units, **options)`.
        options: fixed keyword arguments that make this cell of the layer.
        summary: one line for `--help` and the docs.
    """

    layer: str
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        """Keras's own layer (kept for comparison runs)."""
        return self.layer.startswith("keras.")

    def layer_class(self) -> type:
        module, name = self.layer.split(":")
        return getattr(importlib.import_module(module), name)

    def build(self, units: int, **kwargs: Any):
        return self.layer_class()(units, **{**self.options, **kwargs})


CELLS: dict[str, CellSpec] = {
    "layer_norm_lstm": CellSpec(
        "recurrent_zoo.layers:LayerNormLSTM",
        "LSTM with layer normalization (Ba et al. 2016); the default",
    ),
    "lstm": CellSpec(
        "recurrent_zoo.layers:LayerNormLSTM",
        "this package's LSTM, no normalization (equals keras.layers.LSTM)",
        {"layer_norm": False},
    ),
    "layer_norm_gru": CellSpec(
        "recurrent_zoo.layers:LayerNormGRU",
        "GRU with layer normalization (reset after the recurrent matmul)",
    ),
    "gru": CellSpec(
        "recurrent_zoo.layers:LayerNormGRU",
        "this package's GRU, no normalization (equals keras.layers.GRU)",
        {"layer_norm": False},
    ),
    "simple_rnn": CellSpec(
        "recurrent_zoo.layers:SimpleRNN",
        "layer-normalized Elman RNN",
        {"layer_norm": True},
    ),
    "min_gru": CellSpec(
        "recurrent_zoo.layers:MinGRU", "minGRU: gates of x_t only, parallel in time"
    ),
    "min_lstm": CellSpec(
        "recurrent_zoo.layers:MinLSTM", "minLSTM: gates of x_t only, parallel in time"
    ),
    # The paper's candidate g is unbounded above; a classifier fine-tuned
    # from a g language model carries heavy-tailed states (README, minGRU).
    "min_gru_tanh": CellSpec(
        "recurrent_zoo.layers:MinGRU",
        "minGRU with a bounded (tanh) candidate",
        {"candidate_activation": "tanh"},
    ),
    "min_lstm_tanh": CellSpec(
        "recurrent_zoo.layers:MinLSTM",
        "minLSTM with a bounded (tanh) candidate",
        {"candidate_activation": "tanh"},
    ),
    "keras_lstm": CellSpec("keras.layers:LSTM", "Keras's own LSTM, for comparison"),
    "keras_gru": CellSpec("keras.layers:GRU", "Keras's own GRU, for comparison"),
}


def cell_names() -> tuple[str, ...]:
    return tuple(CELLS)


def build_recurrent_layer(cell: str, units: int, **kwargs: Any):
    """The recurrent layer named `cell` with `units` units per direction."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {cell_names()}. Received: cell={cell!r}")
    return CELLS[cell].build(units, **kwargs)
