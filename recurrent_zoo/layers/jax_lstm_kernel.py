"""JAX kernel for the layer-normalized LSTM recurrence.

Keras's generic loop on JAX (the cell in `jax.lax.scan`, differentiated by
JAX) runs at about half the speed of JAX's own `keras.layers.LSTM`. Most of
the gap is not the normalization's arithmetic but memory: the loop reads a
(T, B, 4H) input projection computed before it (26 MB at batch 64, T=200,
H=128), written batch-major and then transposed, and autodiff of the scan
keeps and replays several 4H-wide intermediates per step and accumulates
dU one small matmul per step. This kernel (the maths of
`recurrent_zoo.layers.tf_lstm_kernel`, whose identities it reuses):

- Normalizes both matmul products on their narrow side. With the rows of a
  kernel centred (K_c = K - rowmean(K)) and M = K_c K_c^T / 4H,
  gamma * LN(v K) = (v * rsqrt(v M v^T + eps)) (K_c * gamma): the input
  side scales the (T, B, F) inputs once, for all steps; the recurrent side
  scales the H-wide h_{t-1} at each step. Each step is then one matmul,
  [x_t / rms, h_{t-1} / rms] @ [W_c * gamma_x; U_c * gamma_h], like
  `keras.layers.LSTM`'s step, plus the (H, H) h M; no (T, B, 4H) tensor
  is read.
- Has its own backward pass (`jax.custom_vjp`): the forward scan keeps
  h, c, the gates, 1/rms, h M and LN(c_t) with its 1/std and tanh; the
  backward scan runs one matmul per step (dz K^T) and returns dz, from
  which dW, dK, db and dM are reduced after the loop as single large
  matmuls rather than T small ones.
- Without a gradient (inference) the scan keeps nothing but h.

`fused_loop` is `LayerNormLSTM`'s entry point on JAX: it applies where the
TensorFlow kernel does (default activations, no active recurrent dropout,
`unroll=False`), and with `layer_norm=True`; elsewhere the layer falls back
to Keras's loop. Outputs at masked steps follow the TensorFlow kernel's rule
(`rnn_base.batch_major_outputs`), which is Keras's on TensorFlow and
PyTorch: before a sequence's first real step the output is zeros. (Keras's
own JAX loop outputs h_0 there, which differs only with a non-zero
initial state.)

The recurrence runs in float32 (under a mixed-precision policy inputs are cast
up and outputs back), as the TensorFlow kernel does. Gate order is Keras's:
i, f, g (candidate), o.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def _normalize(v, epsilon):
    """((v - mean) * inv_std, inv_std) over the last axis."""
    deviation = v - jnp.mean(v, axis=-1, keepdims=True)
    inv_std = jax.lax.rsqrt(
        jnp.mean(jnp.square(deviation), axis=-1, keepdims=True) + epsilon
    )
    return deviation * inv_std, inv_std


def _normalize_grad(d_hat, hat, inv_std):
    """d/dv of hat = (v - mean(v)) * inv_std, given dL/dhat."""
    return inv_std * (
        d_hat
        - jnp.mean(d_hat, axis=-1, keepdims=True)
        - hat * jnp.mean(d_hat * hat, axis=-1, keepdims=True)
    )


def _centered(kernel, gamma):
    """(K_c * gamma, K_c K_c^T / N) for K_c = kernel - its row means:
    gamma * LN(v kernel) = (v * rsqrt(v M v^T + eps)) (K_c * gamma)."""
    kernel = kernel - jnp.mean(kernel, axis=-1, keepdims=True)
    return kernel * gamma, kernel @ kernel.T / kernel.shape[-1]


def _inverse_rms(v, moments, epsilon):
    """(rsqrt(v M v^T + eps), v M): 1/std of v K over its N outputs."""
    v_moments = v @ moments
    return jax.lax.rsqrt(jnp.sum(v * v_moments, -1, keepdims=True) + epsilon), v_moments


def _step(options, weights, h, c, x_t, keep):
    """One step: (h_t, c_t, record) with what the backward pass reads.

    x_t is already x_t / rms(x_t W_c); `stacked` is [W_c * gamma_x;
    U_c * gamma_h], so one matmul gives both normalized shares.
    """
    epsilon, masked, _ = options
    stacked, bias, moments, gamma_c, beta_c = weights
    inv, h_moments = _inverse_rms(h, moments, epsilon)
    a = jnp.concatenate([x_t, h * inv], -1) @ stacked + bias
    z_i, z_f, z_g, z_o = jnp.split(a, 4, axis=-1)
    i, f, g, o = (jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jnp.tanh(z_g),
                  jax.nn.sigmoid(z_o))  # fmt: skip
    c_new = f * c + i * g
    c_hat, c_inv = _normalize(c_new, epsilon)
    y = jnp.tanh(gamma_c * c_hat + beta_c)
    h_new = o * y
    if masked:
        h_new = jnp.where(keep, h_new, h)
        c_new = jnp.where(keep, c_new, c)
    record = (jnp.concatenate([i, f, g, o], -1), inv, h_moments, c_hat, c_inv, y)
    return h_new, c_new, record


def _scan(options, x, h0, c0, weights, keep, record):
    def body(carry, xs):
        h, c = carry
        x_t, keep_t = xs
        h, c, saved = _step(options, weights, h, c, x_t, keep_t)
        return (h, c), ((h, c, saved) if record else h)

    return jax.lax.scan(body, (h0, c0), (x, keep))


def _weights(x_kernel, recurrent, bias, moments, gamma_c, beta_c):
    return (jnp.concatenate([x_kernel, recurrent], 0), bias, moments, gamma_c, beta_c)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _recurrence(options, x, h0, c0, x_kernel, recurrent, bias, moments, gamma_c,
                beta_c, keep):  # fmt: skip
    weights = _weights(x_kernel, recurrent, bias, moments, gamma_c, beta_c)
    (h_last, c_last), hs = _scan(options, x, h0, c0, weights, keep, False)
    return hs, h_last, c_last


def _recurrence_fwd(options, x, h0, c0, x_kernel, recurrent, bias, moments, gamma_c,
                    beta_c, keep):  # fmt: skip
    weights = _weights(x_kernel, recurrent, bias, moments, gamma_c, beta_c)
    (h_last, c_last), (hs, cs, saved) = _scan(options, x, h0, c0, weights, keep, True)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], 0)
    c_prev = jnp.concatenate([c0[None], cs[:-1]], 0)
    residuals = (x, x_kernel, recurrent, gamma_c, keep, h_prev, c_prev, saved)
    return (hs, h_last, c_last), residuals


def _recurrence_bwd(options, residuals, upstream):
    """Through the recurrent normalization, with inv = rsqrt(h M h^T + eps)
    and q = dz K^T: dh = inv q - inv^3 (h . q) (h M), dK = sum (inv h)^T dz
    and dM = sum (-inv^3 (h . q) / 2) h^T h (see `tf_lstm_kernel`)."""
    _, masked, sequences = options
    x, x_kernel, recurrent, gamma_c, keep, h_prev, c_prev, saved = residuals
    d_hs, d_h_last, d_c_last = upstream
    recurrent_t = recurrent.T
    steps, batch, units = h_prev.shape
    zero, one = jnp.zeros([units], jnp.float32), jnp.ones([units], jnp.float32)
    candidate = jnp.concatenate([zero, zero, one, zero])

    def back(carry, xs):
        dh, dc = carry
        d_h_t, keep_t, h_t, c_prev_t, (a, inv, h_moments, c_hat, c_inv, y) = xs
        if sequences:
            dh = dh + d_h_t
        dh_new = jnp.where(keep_t, dh, 0.0) if masked else dh
        i, f, g, o = jnp.split(a, 4, axis=-1)
        d_y = dh_new * o * (1.0 - y * y)
        dc_new = dc + _normalize_grad(d_y * gamma_c, c_hat, c_inv)
        if masked:
            dc_new = jnp.where(keep_t, dc_new, 0.0)
        d_a = jnp.concatenate(
            [dc_new * g, dc_new * c_prev_t, dc_new * i, dh_new * y], -1
        )
        # a (1 - a) for the sigmoids, (1 + g)(1 - g) for the tanh: one product.
        dz = d_a * (a + candidate) * (1.0 - a)
        q = dz @ recurrent_t
        dm = -(inv**3) * jnp.sum(h_t * q, -1, keepdims=True)
        dh_prev = inv * q + dm * h_moments
        dc_prev = dc_new * f
        if masked:
            dh_prev = jnp.where(keep_t, dh_prev, dh)
            dc_prev = jnp.where(keep_t, dc_prev, dc)
        return (dh_prev, dc_prev), (dz, dm, d_y)

    (dh0, dc0), (dz, dm, d_y) = jax.lax.scan(
        back,
        (d_h_last, d_c_last),
        (d_hs if sequences else keep, keep, h_prev, c_prev, saved),
        reverse=True,
    )
    _, inv, _, c_hat, _, _ = saved
    flat_dz = dz.reshape(steps * batch, 4 * units)
    flat_h = h_prev.reshape(steps * batch, units)
    d_x = dz @ x_kernel.T
    d_x_kernel = x.reshape(steps * batch, -1).T @ flat_dz
    d_recurrent = (flat_h * inv.reshape(-1, 1)).T @ flat_dz
    d_bias = jnp.sum(flat_dz, 0)
    d_moments = (flat_h * (0.5 * dm).reshape(-1, 1)).T @ flat_h
    d_gamma_c = jnp.sum(d_y * c_hat, axis=(0, 1))
    d_beta_c = jnp.sum(d_y, axis=(0, 1))
    return (d_x, dh0, dc0, d_x_kernel, d_recurrent, d_bias, d_moments, d_gamma_c,
            d_beta_c, None)  # fmt: skip


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def lstm_recurrence(
    inputs,
    h0,
    c0,
    kernel,
    recurrent_kernel,
    bias,
    input_gamma,
    recurrent_gamma,
    cell_gamma,
    cell_beta,
    mask=None,
    epsilon=1e-3,
    reverse=False,
    sequences=True,
    custom_gradient=True,
):
    """Runs the layer-normalized LSTM over batch-major inputs.

    The maths of `recurrent_zoo.layers.tf_lstm_kernel.lstm_recurrence`
    (see `LayerNormLSTMCell`); where `mask[t, b]` is False the step is
    skipped: h and c carry over.

    Args:
        inputs: (B, T, F) inputs x_t (after any dropout).
        h0, c0: (B, H) initial states.
        kernel: (F, 4H) W; recurrent_kernel: (H, 4H) U; bias: (4H,) or None.
        input_gamma, recurrent_gamma: (4H,); cell_gamma, cell_beta: (H,).
        mask: optional (T, B) bool, in processing order.
        epsilon: normalization epsilon.
        reverse: process the steps last to first (hs in processing order).
        sequences: False promises that hs is not differentiated (a layer
            returning its last state only): the backward pass then reads no
            (T, B, H) gradient for it.
        custom_gradient: False differentiates the scan with JAX's autodiff
            (for comparison).

    Returns:
        (hs, h_T, c_T) with hs of shape (T, B, H), in the inputs' dtype.
    """
    dtype = inputs.dtype
    f32 = lambda t: None if t is None else jnp.asarray(t, jnp.float32)  # noqa: E731
    x = jnp.swapaxes(f32(inputs), 0, 1)
    if reverse:
        x = jnp.flip(x, 0)
    # The input side's normalization for all steps at once, on the narrow x:
    # x / rms(x W_c), with W_c * gamma_x multiplied inside the loop.
    x_kernel, x_moments = _centered(f32(kernel), f32(input_gamma))
    x = x * _inverse_rms(x, x_moments, epsilon)[0]
    recurrent, moments = _centered(f32(recurrent_kernel), f32(recurrent_gamma))
    units = recurrent.shape[0]
    bias = jnp.zeros([4 * units], jnp.float32) if bias is None else f32(bias)
    masked = mask is not None
    keep = (
        jnp.expand_dims(mask.astype(bool), -1)
        if masked
        else jnp.zeros([x.shape[0], 0, 0], bool)
    )
    options = (float(epsilon), masked, bool(sequences))
    args = (x, f32(h0), f32(c0), x_kernel, recurrent, bias, moments,
            f32(cell_gamma), f32(cell_beta), keep)  # fmt: skip
    if custom_gradient:
        hs, h_last, c_last = _recurrence(options, *args)
    else:
        hs, h_last, c_last = _recurrence.fun(options, *args)
    return tuple(t.astype(dtype) for t in (hs, h_last, c_last))


def fused_loop(layer, sequences, initial_state, mask, training, custom_gradient=True):
    """`LayerNormLSTM`'s loop on JAX, or None where the kernel does not apply
    (a plain LSTM, other activations, active recurrent dropout): Keras's
    (last_output, outputs, states) triple."""
    import keras

    from recurrent_zoo.layers.rnn_base import wants_sequences

    cell = layer.cell
    if not (
        cell.layer_norm
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and not (training and cell.recurrent_dropout > 0)
    ):
        return None
    inputs, mask = layer.fused_inputs(sequences, mask, training)
    hs, h_last, c_last = lstm_recurrence(
        inputs,
        initial_state[0],
        initial_state[1],
        epsilon=cell.norm_epsilon,
        mask=mask,
        reverse=layer.go_backwards,
        sequences=wants_sequences(layer, mask),
        custom_gradient=custom_gradient,
        **layer.kernel_weights(),
    )
    return layer.kernel_result(hs, h_last, mask, [h_last, c_last])
