"""Argument and input checks shared by the layers, with messages that quote."""

from __future__ import annotations

import numbers
from typing import Any

import keras


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def check_xla(value: Any) -> bool | str:
    """A recurrent layer's `use_xla`: True, False or "inference"."""
    if not (isinstance(value, bool) or value == "inference"):
        raise ValueError(
            f'`use_xla` must be True, False or "inference". Received: use_xla={value!r}'
        )
    return value


def check_rate(name: str, value: Any, allow_one: bool = False) -> float:
    """A dropout-like rate: a real number in [0, 1), or [0, 1] with `allow_one`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (0.0 <= value <= 1.0 if allow_one else 0.0 <= value < 1.0)
    ):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(
            f"`{name}` must be a float in {interval}. Received: {name}={value!r}"
        )
    return float(value)


def check_float_dtype(layer_name: str, name: str, tensor: Any) -> None:
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if not keras.backend.is_float_dtype(dtype):
        raise ValueError(
            f"{layer_name} expects a floating-point `{name}`. Received dtype={dtype}"
            " (embed integer token ids first, e.g. with keras.layers.Embedding)"
        )


def check_sequence_input(layer_name: str, sequences: Any) -> None:
    """Raise a clear error for inputs a recurrent layer cannot take."""
    if len(sequences.shape) != 3:
        raise ValueError(
            f"{layer_name} expects a 3-D input (batch, timesteps, features), "
            f"received shape {tuple(sequences.shape)}"
        )
    check_float_dtype(layer_name, "sequences", sequences)
