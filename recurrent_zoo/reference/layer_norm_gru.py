"""Layer-normalized GRU in NumPy: forward pass and back-propagation through time.

Gate order z, r, h (Keras's). LN(v) = (v - mean v) / sqrt(var v + eps) over
the feature axis; with `layer_norm=False` every LN and gain is dropped and
this is the plain GRU (`keras.layers.GRU`).

reset_after=True (bias b = [b_x; b_h], each 3H):

    a = gx * LN(x_t W) + b_x,   s = gh * LN(h_{t-1} U) + b_h
    z = sigmoid(a_z + s_z),  r = sigmoid(a_r + s_r),  n = tanh(a_h + r s_h)
    h_t = z h_{t-1} + (1 - z) n

reset_after=False (bias b, 3H):

    a = gx * LN(x_t W) + b,     s = gh_zr * LN(h_{t-1} U_zr)
    z, r as above,  q = gh_h * LN((r h_{t-1}) U_h),  n = tanh(a_h + q)

Backward, with dh = dL/dh_t (loss term plus what step t+1 sends back):

    dz = dh (h_{t-1} - n),   dn = dh (1 - z),   du = dn (1 - n^2)
    reset_after:  ds_h = du r,  dr = du s_h
    otherwise:    dq = LN'(du gh_h),  d(r h) = dq U_h^T,  dr = d(r h) h_{t-1}
    dz~ = dz z (1 - z),  dr~ = dr r (1 - r)
    da = [dz~, dr~, du],  ds = [dz~, dr~, ds_h] (or [dz~, dr~])
    dh_{t-1} = dh z + LN'(ds gh) U^T (+ d(r h) r)

where LN'(d) = inv_std * (d - mean(d) - v_hat * mean(d * v_hat)) is the
gradient through v_hat = (v - mean v) * inv_std.
"""

from __future__ import annotations

import numpy as np

from recurrent_zoo.reference.layer_norm_lstm import _ln, _ln_grad, _sigmoid


class _Norm:
    """gamma * LN(v) (or v itself without layer norm), with its gradient."""

    def __init__(self, v, gamma, layer_norm: bool, eps: float):
        self.gamma, self.layer_norm = gamma, layer_norm
        if layer_norm:
            self.hat, self.inv = _ln(v, eps)
            self.out = gamma * self.hat
        else:
            self.out = v

    def backward(self, d_out, grads: dict, key: str, part: slice):
        """dL/dv; adds dL/dgamma to grads[key][part]."""
        if not self.layer_norm:
            return d_out
        grads[key][part] += (d_out * self.hat).sum(axis=0)
        return _ln_grad(d_out * self.gamma, self.hat, self.inv)


def _split_bias(p, reset_after: bool, width: int):
    bias = p.get("bias")
    if bias is None:
        return np.zeros(width), np.zeros(width)
    return (bias[0], bias[1]) if reset_after else (bias, np.zeros(width))


def _step(x_t, h, p, layer_norm, reset_after, eps):
    """One step; returns h_t and everything the backward pass needs."""
    units = h.shape[-1]
    zr = slice(0, 2 * units)
    cand = slice(2 * units, 3 * units)
    gx = p.get("input_gamma")
    gh = p.get("recurrent_gamma")
    b_x, b_h = _split_bias(p, reset_after, 3 * units)
    k = {"h_prev": h, "x": x_t}
    k["a_norm"] = _Norm(x_t @ p["kernel"], gx, layer_norm, eps)
    a = k["a_norm"].out + b_x
    U = p["recurrent_kernel"]
    if reset_after:
        k["s_norm"] = _Norm(h @ U, gh, layer_norm, eps)
        s = k["s_norm"].out + b_h
    else:
        gain = None if gh is None else gh[zr]
        k["s_norm"] = _Norm(h @ U[:, zr], gain, layer_norm, eps)
        s = k["s_norm"].out
    z = _sigmoid(a[:, :units] + s[:, :units])
    r = _sigmoid(a[:, units : 2 * units] + s[:, units : 2 * units])
    if reset_after:
        k["s_h"] = s[:, cand]
        n = np.tanh(a[:, cand] + r * k["s_h"])
    else:
        gain = None if gh is None else gh[cand]
        k["q_norm"] = _Norm((r * h) @ U[:, cand], gain, layer_norm, eps)
        n = np.tanh(a[:, cand] + k["q_norm"].out)
    k.update(z=z, r=r, n=n)
    return z * h + (1 - z) * n, k


def _prepare(x, params, h0):
    p = {k: None if v is None else np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    units = p["recurrent_kernel"].shape[0]
    h = np.zeros((x.shape[0], units)) if h0 is None else np.asarray(h0, np.float64)
    return p, x, h


def layer_norm_gru_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    layer_norm: bool = True,
    reset_after: bool = True,
    eps: float = 1e-3,
    h0: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Hidden states for all steps, (batch, T, units).

    Args:
        x: (batch, T, features).
        params: "kernel" (features, 3u), "recurrent_kernel" (u, 3u), optional
            "bias" ((2, 3u) with reset_after, (3u,) without); with
            layer_norm also "input_gamma", "recurrent_gamma" (3u). Keras
            weight names.
        layer_norm: False gives the plain GRU.
        reset_after: where the reset gate applies (see the module docstring).
        eps: normalization epsilon.
        h0: (batch, u) initial state, zeros by default.
        mask: optional (batch, T) bool; a False step keeps h.
    """
    p, x, h = _prepare(x, params, h0)
    hs = []
    for t in range(x.shape[1]):
        h_new, _ = _step(x[:, t], h, p, layer_norm, reset_after, eps)
        if mask is not None:
            h_new = np.where(mask[:, t : t + 1], h_new, h)
        h = h_new
        hs.append(h)
    return np.stack(hs, axis=1)


def _step_backward(dh, k, p, grads, reset_after):
    """Gradients of one step given dL/dh_t; returns dL/dh_{t-1}."""
    units = dh.shape[-1]
    zr, cand = slice(0, 2 * units), slice(2 * units, 3 * units)
    z, r, n, h = k["z"], k["r"], k["n"], k["h_prev"]
    U = p["recurrent_kernel"]
    du = dh * (1 - z) * (1 - n**2)
    dh_prev = dh * z
    if reset_after:
        ds_h, dr = du * r, du * k["s_h"]
    else:
        dq = k["q_norm"].backward(du, grads, "recurrent_gamma", cand)
        grads["recurrent_kernel"][:, cand] += (r * h).T @ dq
        d_rh = dq @ U[:, cand].T
        dr, dh_prev = d_rh * h, dh_prev + d_rh * r
    dz_pre = dh * (h - n) * z * (1 - z)
    dr_pre = dr * r * (1 - r)
    da = np.concatenate([dz_pre, dr_pre, du], axis=-1)
    if reset_after:
        ds = np.concatenate([dz_pre, dr_pre, ds_h], axis=-1)
        part = slice(0, 3 * units)
    else:
        ds, part = np.concatenate([dz_pre, dr_pre], axis=-1), zr
    if "bias" in grads:
        if reset_after:
            grads["bias"][0] += da.sum(axis=0)
            grads["bias"][1] += ds.sum(axis=0)
        else:
            grads["bias"] += da.sum(axis=0)
    d_xw = k["a_norm"].backward(da, grads, "input_gamma", slice(None))
    d_rec = k["s_norm"].backward(ds, grads, "recurrent_gamma", part)
    grads["kernel"] += k["x"].T @ d_xw
    grads["recurrent_kernel"][:, part] += h.T @ d_rec
    return dh_prev + d_rec @ U[:, part].T, d_xw @ p["kernel"].T


def layer_norm_gru_bptt(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    d_hs: np.ndarray,
    layer_norm: bool = True,
    reset_after: bool = True,
    eps: float = 1e-3,
    h0: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Gradients of L given d_hs = dL/dh_t (batch, T, units), no mask.

    Returns a dict keyed like `params` plus "x" and "h0".
    """
    p, x, h = _prepare(x, params, h0)
    caches = []
    for t in range(x.shape[1]):
        h, cache = _step(x[:, t], h, p, layer_norm, reset_after, eps)
        caches.append(cache)
    grads = {k: np.zeros_like(v) for k, v in p.items() if v is not None}
    grads["x"] = np.zeros_like(x)
    dh_next = np.zeros_like(h)
    for t in reversed(range(x.shape[1])):
        dh_next, grads["x"][:, t] = _step_backward(
            d_hs[:, t] + dh_next, caches[t], p, grads, reset_after
        )
    grads["h0"] = dh_next
    return grads
