"""Elman RNN in NumPy: forward pass and back-propagation through time.

    a_t = x_t W + h_{t-1} U + b,    h_t = act(a_t)

BPTT, the classic derivation: with delta_t = dL/da_t,

    dL/dh_t   = g_t + delta_{t+1} U^T       (g_t: loss gradient at step t)
    delta_t   = dL/dh_t * act'(a_t)
    dL/dW     = sum_t x_t^T delta_t,   dL/dU = sum_t h_{t-1}^T delta_t,
    dL/db     = sum_t delta_t,         dL/dx_t = delta_t W^T

For a many-to-one network (loss on the last state only) g_t = 0 for t < T.
"""

from __future__ import annotations

import numpy as np

_ACTIVATIONS = {
    # name: (function, derivative written in terms of the output h)
    "tanh": (np.tanh, lambda h: 1.0 - h * h),
    "linear": (lambda a: a, np.ones_like),
    "relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(h.dtype)),
}


def simple_rnn_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    activation: str = "tanh",
    mask: np.ndarray | None = None,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    eps: float = 1e-3,
) -> np.ndarray:
    """Hidden states h_1..h_T, shape (batch, T, units).

    Args:
        x: (batch, T, features). kernel: (features, units).
        recurrent_kernel: (units, units). bias: (units,) or None.
        h0: (batch, units) initial state, zeros by default.
        activation: "tanh", "linear" or "relu".
        mask: optional (batch, T) bool; a False step keeps the previous h.
        gamma, beta: (units,) to layer-normalize a_t (forward only):
            h_t = act(gamma * (a_t - mean a_t) / sqrt(var a_t + eps) + beta).
    """
    act, _ = _ACTIVATIONS[activation]
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    h = (
        np.zeros((batch, recurrent_kernel.shape[0]))
        if h0 is None
        else np.array(h0, np.float64)
    )
    b = 0.0 if bias is None else bias
    hs = []
    for t in range(steps):
        a = x[:, t] @ kernel + h @ recurrent_kernel + b
        if gamma is not None:
            centered = a - a.mean(axis=-1, keepdims=True)
            a = gamma * centered / np.sqrt((centered**2).mean(-1, keepdims=True) + eps)
            a = a + beta
        h_new = act(a)
        if mask is not None:
            h_new = np.where(mask[:, t : t + 1], h_new, h)
        h = h_new
        hs.append(h)
    return np.stack(hs, axis=1)


def simple_rnn_bptt(
    x: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray | None,
    d_hs: np.ndarray,
    h0: np.ndarray | None = None,
    activation: str = "tanh",
) -> dict[str, np.ndarray]:
    """Gradients of a loss L given d_hs = dL/dh_t, shape (batch, T, units).

    For the many-to-one case pass d_hs zero everywhere but the last step.
    Returns a dict with "x", "kernel", "recurrent_kernel", "bias", "h0".
    """
    _, act_grad = _ACTIVATIONS[activation]
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    h0 = np.zeros((batch, units)) if h0 is None else np.asarray(h0, np.float64)
    hs = simple_rnn_forward(x, kernel, recurrent_kernel, bias, h0, activation)
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    grads = {
        "x": np.zeros_like(x),
        "kernel": np.zeros_like(kernel, dtype=np.float64),
        "recurrent_kernel": np.zeros_like(recurrent_kernel, dtype=np.float64),
        "bias": np.zeros(units),
    }
    dh_next = np.zeros((batch, units))  # delta_{t+1} U^T
    for t in reversed(range(steps)):
        delta = (d_hs[:, t] + dh_next) * act_grad(hs[:, t])
        grads["x"][:, t] = delta @ kernel.T
        grads["kernel"] += x[:, t].T @ delta
        grads["recurrent_kernel"] += h_prev[:, t].T @ delta
        grads["bias"] += delta.sum(axis=0)
        dh_next = delta @ recurrent_kernel.T
    grads["h0"] = dh_next
    return grads
