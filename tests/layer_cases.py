"""Every layer of the package by name, and the loop paths each can take.

Shared by the XLA and mixed-precision tests, which hold each layer to the
same contract: `RECURRENT` builds the recurrent layers (bare or wrapped in
`Bidirectional`), `RECURRENT_PATHS` lists the (layer, loop path) pairs that
exist, and `forced_path` sends a layer through the TF kernel ("fused") or
Keras's generic loop, checking that the kernel ran exactly when meant to.
Layers without a TF kernel (the parallel-scan MinGRU and MinLSTM) have one
path, "scan".
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from layer_checks import loop_path

from recurrent_zoo.layers import (
    Bidirectional,
    LayerNormGRU,
    LayerNormLSTM,
    MinGRU,
    MinLSTM,
    SimpleRNN,
    tf_gru_kernel,
    tf_lstm_kernel,
    tf_simple_rnn_kernel,
)

BATCH, TIME, FEATURES, UNITS = 3, 6, 4, 3
# Right-padded rows of lengths 6, 4 and 1.
LENGTHS = (6, 4, 1)
# Gains, shifts and biases of order 1 (Keras's "random_normal" has stddev
# 0.05): a dropped or misplaced one shows, and outputs are not all near 0,
# where any rounding error would look small.
RANDOM_NORM = {
    "gamma_initializer": keras.initializers.RandomNormal(1.0, 0.5, seed=1),
    "beta_initializer": keras.initializers.RandomNormal(0.0, 0.5, seed=2),
}
RANDOM_GAIN = {"gamma_initializer": RANDOM_NORM["gamma_initializer"]}  # GRU: no shift
RANDOM_BIAS = {"bias_initializer": keras.initializers.RandomNormal(0.0, 0.5, seed=3)}

# name -> (recurrent layer class, its kwargs, wrapped in Bidirectional?)
RECURRENT = {
    "simple_rnn": (SimpleRNN, {}, False),
    "simple_rnn_ln": (SimpleRNN, {"layer_norm": True, **RANDOM_NORM}, False),
    "lstm": (LayerNormLSTM, {"layer_norm": False}, False),
    "ln_lstm": (LayerNormLSTM, {"layer_norm": True, **RANDOM_NORM}, False),
    "bi_ln_lstm": (LayerNormLSTM, {"layer_norm": True, **RANDOM_NORM}, True),
    "bi_simple_rnn": (SimpleRNN, {}, True),
    "gru": (LayerNormGRU, {"layer_norm": False}, False),
    "ln_gru_reset_before": (
        LayerNormGRU,
        {"layer_norm": True, "reset_after": False, **RANDOM_GAIN},
        False,
    ),
    "bi_ln_gru": (LayerNormGRU, {"layer_norm": True, **RANDOM_GAIN}, True),
    "min_gru": (MinGRU, {}, False),
    "min_lstm": (MinLSTM, {}, False),
}
# The layer's TF kernel: (module, function name) for `loop_path`.
KERNELS = {
    LayerNormLSTM: (tf_lstm_kernel, "lstm_recurrence"),
    SimpleRNN: (tf_simple_rnn_kernel, "simple_rnn_recurrence"),
    LayerNormGRU: (tf_gru_kernel, "gru_recurrence"),
}


def has_kernel(name: str) -> bool:
    """Whether the layer has a fused path (SimpleRNN's kernel has no LN)."""
    return RECURRENT[name][0] in KERNELS and name != "simple_rnn_ln"


def paths(name: str) -> tuple[str, ...]:
    """The loop paths layer `name` can take."""
    if RECURRENT[name][0] not in KERNELS:
        return ("scan",)
    return ("fused", "generic") if has_kernel(name) else ("generic",)


# Every (layer, path) pair that exists, as pytest ids "name-path".
RECURRENT_PATHS = [(name, path) for name in RECURRENT for path in paths(name)]


def make_recurrent(name: str, **kwargs):
    """A fresh layer `name`; kwargs go to the recurrent layer.

    `go_backwards` is dropped for `Bidirectional`, which runs both
    directions itself and refuses a backwards layer.
    """
    cls, defaults, bidirectional = RECURRENT[name]
    kwargs = {**RANDOM_BIAS, **defaults, **kwargs}
    if bidirectional:
        kwargs.pop("go_backwards", None)
        return Bidirectional(cls(UNITS, **kwargs))
    return cls(UNITS, **kwargs)


@contextlib.contextmanager
def forced_path(name: str, path: str, monkeypatch):
    """Runs layer `name` through `path` ("fused", "generic" or "scan")."""
    assert path in paths(name), (name, path)
    cls = RECURRENT[name][0]
    if cls not in KERNELS:
        yield path
        return
    module, function = KERNELS[cls]
    with loop_path(path, monkeypatch, cls, module, function):
        yield path


@contextlib.contextmanager
def all_kernels_forced(path: str, monkeypatch):
    """Every recurrent layer class through `path`; for models using both."""
    with contextlib.ExitStack() as stack:
        for cls, (module, function) in KERNELS.items():
            stack.enter_context(loop_path(path, monkeypatch, cls, module, function))
        yield path


# The XLA tests' shared cases and tolerances (test_xla.py, test_kernel_xla.py).
MASK = np.arange(TIME)[None, :] < np.array(LENGTHS)[:, None]
# XLA's CPU tanh and sigmoid are approximations a few float32 ulps from
# TensorFlow's; a normalization over as few values as a tiny layer has (the
# reset-before GRU's candidate product, 3 here) divides such differences by
# their small spread: 1.02e-5 was seen, so 2e-5.
OUTPUT_ATOL = 2e-5
GRAD_TOL = 1e-4

# (masked, go_backwards, return_sequences, return_state): everything on, then
# everything off. The kernels see go_backwards only as a flipped input and
# mask, and Bidirectional's backward layer runs forwards over masked input,
# so masked forward runs are covered too.
OPTIONS = [(True, True, True, True), (False, False, False, False)]


def option_id(row):
    """A pytest id for an OPTIONS row: the options that are on."""
    names = ("masked", "backwards", "seq", "state")
    return "-".join(n for n, on in zip(names, row, strict=True) if on) or "plain"
