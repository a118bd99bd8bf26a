"""minGRU and minLSTM in NumPy, one step at a time (Feng et al. 2024).

    minGRU:  z_t = sigmoid(W_z x_t + b_z),  h~_t = act(W_h x_t + b_h)
             h_t = (1 - z_t) h_{t-1} + z_t h~_t
    minLSTM: f_t = sigmoid(W_f x_t + b_f),  i_t = sigmoid(W_i x_t + b_i)
             h~_t = act(W_h x_t + b_h)
             h_t = f_t / (f_t + i_t) h_{t-1} + i_t / (f_t + i_t) h~_t

act is the paper's g(x) = x + 0.5 (x >= 0), sigmoid(x) (x < 0) by default.
The recurrence is run as written, a loop over t in float64, with none of
the layers' rewriting (no parallel scan, no log-space gates), so the tests
can hold the layers against the equations themselves.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Each branch only exponentiates non-positive values: no overflow.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


_ACTIVATIONS = {
    "g": lambda x: np.where(x >= 0, x + 0.5, _sigmoid(x)),
    "linear": lambda x: x,
    "tanh": np.tanh,
}


def _run(x, kernel, bias, h0, mask, blend, gates: int) -> np.ndarray:
    """The loop both cells share: h_t = blend(W x_t + b, h_{t-1})."""
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    kernel = np.asarray(kernel, np.float64)
    bias = 0.0 if bias is None else np.asarray(bias, np.float64)
    units = kernel.shape[1] // gates
    h = np.zeros((batch, units)) if h0 is None else np.array(h0, np.float64)
    hs = []
    for t in range(steps):
        h_new = blend(x[:, t] @ kernel + bias, h)
        if mask is not None:
            h_new = np.where(mask[:, t : t + 1], h_new, h)
        h = h_new
        hs.append(h)
    return np.stack(hs, axis=1)


def min_gru_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    candidate_activation: str = "g",
) -> np.ndarray:
    """minGRU states h_1..h_T, shape (batch, T, units).

    Args:
        x: (batch, T, features). kernel: (features, 2 * units), blocks
            (z, h~). bias: (2 * units,) or None.
        h0: (batch, units) initial state, zeros by default.
        mask: optional (batch, T) bool; a False step keeps the previous h.
        candidate_activation: "g", "linear" or "tanh".
    """
    act = _ACTIVATIONS[candidate_activation]

    def gru(k, h):
        k_z, k_h = np.split(k, 2, axis=-1)
        z = _sigmoid(k_z)
        return (1.0 - z) * h + z * act(k_h)

    return _run(x, kernel, bias, h0, mask, gru, gates=2)


def min_lstm_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    candidate_activation: str = "g",
) -> np.ndarray:
    """minLSTM states h_1..h_T, shape (batch, T, units).

    Args:
        x: (batch, T, features). kernel: (features, 3 * units), blocks
            (f, i, h~). bias: (3 * units,) or None.
        h0, mask, candidate_activation: as in `min_gru_forward`.
    """
    act = _ACTIVATIONS[candidate_activation]

    def lstm(k, h):
        k_f, k_i, k_h = np.split(k, 3, axis=-1)
        f, i = _sigmoid(k_f), _sigmoid(k_i)
        return f / (f + i) * h + i / (f + i) * act(k_h)

    return _run(x, kernel, bias, h0, mask, lstm, gates=3)
