"""Layer-normalized LSTM in NumPy: forward pass and back-propagation through time.

Gate order i, f, g, o (Keras's). LN(v) = (v - mean v) / sqrt(var v + eps)
over the feature axis; with `layer_norm=False` every LN and gain is dropped
and this is the plain LSTM.

    z_t = gx * LN(x_t W) + gh * LN(h_{t-1} U) + b
    i, f, o = sigmoid(z_i, z_f, z_o),  g = tanh(z_g)
    c_t = f c_{t-1} + i g
    q_t = gc * LN(c_t) + bc,   y_t = tanh(q_t),   h_t = o y_t

Backward, with dh_t = dL/dh_t (loss term plus what step t+1 sends back) and
dc_t likewise:

    do = dh_t y_t,   dq = dh_t o (1 - y_t^2)
    dc_t += LN'(dq * gc)                      (through the cell normalization)
    di = dc_t g,  df = dc_t c_{t-1},  dg = dc_t i,   dc_{t-1} = dc_t f
    dz = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
    dh_{t-1} = LN'(dz * gh) U^T,   dU += h_{t-1}^T LN'(dz * gh)
    dx_t = LN'(dz * gx) W^T,       dW += x_t^T LN'(dz * gx)

where LN'(d) = inv_std * (d - mean(d) - xhat * mean(d * xhat)) is the
gradient through xhat = (v - mean v) * inv_std.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _ln(v, eps):
    centered = v - v.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt((centered**2).mean(axis=-1, keepdims=True) + eps)
    return centered * inv_std, inv_std


def _ln_grad(d_hat, v_hat, inv_std):
    return inv_std * (
        d_hat
        - d_hat.mean(axis=-1, keepdims=True)
        - v_hat * (d_hat * v_hat).mean(axis=-1, keepdims=True)
    )


def _step(x_t, h, c, p, layer_norm, eps):
    """One step; returns h, c and everything the backward pass needs."""
    xw, rh = x_t @ p["kernel"], h @ p["recurrent_kernel"]
    cache = {}
    if layer_norm:
        xw, cache["x_inv"] = _ln(xw, eps)
        rh, cache["r_inv"] = _ln(rh, eps)
        z = p["input_gamma"] * xw + p["recurrent_gamma"] * rh
    else:
        z = xw + rh
    if p.get("bias") is not None:
        z = z + p["bias"]
    zi, zf, zg, zo = np.split(z, 4, axis=-1)
    i, f, g, o = _sigmoid(zi), _sigmoid(zf), np.tanh(zg), _sigmoid(zo)
    c_new = f * c + i * g
    if layer_norm:
        c_hat, cache["c_inv"] = _ln(c_new, eps)
        y = np.tanh(p["cell_gamma"] * c_hat + p["cell_beta"])
        cache["c_hat"] = c_hat
    else:
        y = np.tanh(c_new)
    h_new = o * y
    cache.update(xw=xw, rh=rh, i=i, f=f, g=g, o=o, y=y, c_prev=c, h_prev=h)
    return h_new, c_new, cache


def layer_norm_lstm_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    layer_norm: bool = True,
    eps: float = 1e-3,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden and cell states for all steps, each (batch, T, units).

    Args:
        x: (batch, T, features).
        params: "kernel" (features, 4u), "recurrent_kernel" (u, 4u), optional
            "bias" (4u); with layer_norm also "input_gamma", "recurrent_gamma"
            (4u), "cell_gamma", "cell_beta" (u). Keras weight names.
        layer_norm: False gives the plain LSTM.
        eps: normalization epsilon.
        h0, c0: (batch, u) initial states, zeros by default.
        mask: optional (batch, T) bool; a False step keeps h and c.
    """
    p = {k: None if v is None else np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    units = p["recurrent_kernel"].shape[0]
    h = np.zeros((batch, units)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((batch, units)) if c0 is None else np.asarray(c0, np.float64)
    hs, cs = [], []
    for t in range(steps):
        h_new, c_new, _ = _step(x[:, t], h, c, p, layer_norm, eps)
        if mask is not None:
            keep = mask[:, t : t + 1]
            h_new, c_new = np.where(keep, h_new, h), np.where(keep, c_new, c)
        h, c = h_new, c_new
        hs.append(h)
        cs.append(c)
    return np.stack(hs, axis=1), np.stack(cs, axis=1)


def layer_norm_lstm_bptt(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    d_hs: np.ndarray,
    layer_norm: bool = True,
    eps: float = 1e-3,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Gradients of L given d_hs = dL/dh_t (batch, T, units), no mask.

    Returns a dict keyed like `params` plus "x", "h0" and "c0".
    """
    p = {k: None if v is None else np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    units = p["recurrent_kernel"].shape[0]
    h = np.zeros((batch, units)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((batch, units)) if c0 is None else np.asarray(c0, np.float64)
    caches = []
    for t in range(steps):
        h, c, cache = _step(x[:, t], h, c, p, layer_norm, eps)
        caches.append(cache)

    grads = {k: np.zeros_like(v) for k, v in p.items() if v is not None}
    grads["x"] = np.zeros_like(x)
    dh_next, dc_next = np.zeros((batch, units)), np.zeros((batch, units))
    for t in reversed(range(steps)):
        k = caches[t]
        dh = d_hs[:, t] + dh_next
        do = dh * k["y"]
        dq = dh * k["o"] * (1.0 - k["y"] ** 2)
        if layer_norm:
            grads["cell_gamma"] += (dq * k["c_hat"]).sum(axis=0)
            grads["cell_beta"] += dq.sum(axis=0)
            dc = dc_next + _ln_grad(dq * p["cell_gamma"], k["c_hat"], k["c_inv"])
        else:
            dc = dc_next + dq
        i, f, g, o = k["i"], k["f"], k["g"], k["o"]
        dz = np.concatenate(
            [dc * g * i * (1 - i), dc * k["c_prev"] * f * (1 - f),
             dc * i * (1 - g**2), do * o * (1 - o)], axis=-1,
        )  # fmt: skip
        if "bias" in grads:
            grads["bias"] += dz.sum(axis=0)
        if layer_norm:
            grads["input_gamma"] += (dz * k["xw"]).sum(axis=0)
            grads["recurrent_gamma"] += (dz * k["rh"]).sum(axis=0)
            dxw = _ln_grad(dz * p["input_gamma"], k["xw"], k["x_inv"])
            drh = _ln_grad(dz * p["recurrent_gamma"], k["rh"], k["r_inv"])
        else:
            dxw = drh = dz
        grads["kernel"] += x[:, t].T @ dxw
        grads["x"][:, t] = dxw @ p["kernel"].T
        grads["recurrent_kernel"] += k["h_prev"].T @ drh
        dh_next = drh @ p["recurrent_kernel"].T
        dc_next = dc * f
    grads["h0"], grads["c0"] = dh_next, dc_next
    return grads
