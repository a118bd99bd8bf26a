"""TensorFlow kernel for the (layer-normalized) LSTM recurrence.

The generic Keras loop differentiates through `tf.while_loop` automatically,
which pushes every intermediate of every step onto stacks and replays them;
on a CPU that bookkeeping, not the arithmetic, dominates a training step. This
kernel runs the recurrence over pre-projected inputs and supplies its own
back-propagation through time (the same derivation as
`recurrent_zoo.reference.layer_norm_lstm`), so the backward loop carries only
dh and dc and does one matmul per step; the weight gradients are then single
large matmuls over all steps.

Gate order is Keras's: i, f, g (candidate), o.
"""

from __future__ import annotations

import tensorflow as tf


def _normalize(x, epsilon):
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    centered = x - mean
    inv_std = tf.math.rsqrt(
        tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True) + epsilon
    )
    return centered * inv_std, inv_std


def _normalize_grad(dxhat, xhat, inv_std):
    """d/dx of xhat = (x - mean) * inv_std, given dL/dxhat."""
    return inv_std * (
        dxhat
        - tf.reduce_mean(dxhat, axis=-1, keepdims=True)
        - xhat * tf.reduce_mean(dxhat * xhat, axis=-1, keepdims=True)
    )


def lstm_recurrence(
    xw,
    h0,
    c0,
    recurrent_kernel,
    bias=None,
    input_gamma=None,
    recurrent_gamma=None,
    cell_gamma=None,
    cell_beta=None,
    mask=None,
    epsilon=1e-3,
    record=True,
):
    """Runs the LSTM recurrence over the time-major input projection.

    Computes, for t = 0..T-1 (LN = normalization over the feature axis; with
    all gains None the LSTM is plain and every LN and gain is dropped):

        z_t = gamma_x * LN(xw_t) + gamma_h * LN(h_{t-1} U) + b
        i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(gamma_c * LN(c_t) + beta_c)

    Where `mask[t, b]` is False the step is skipped: h and c carry over.

    Args:
        xw: (T, B, 4H) input projection x_t W.
        h0, c0: (B, H) initial states.
        recurrent_kernel: (H, 4H).
        bias: (4H,) or None.
        input_gamma, recurrent_gamma: (4H,); cell_gamma, cell_beta: (H,);
            all None for a plain LSTM.
        mask: optional (T, B) bool.
        epsilon: normalization epsilon.
        record: keep what the hand-written backward pass needs at every
            step. False (inference) runs a lean forward loop instead: still
            differentiable, by TensorFlow's generic while_loop gradient.

    Returns:
        (hs, h_T, c_T) with hs of shape (T, B, H).
    """
    # Read variables here: tf.custom_gradient must see tensors, not variables.
    xw, h0, c0, recurrent_kernel = (
        tf.convert_to_tensor(t) for t in (xw, h0, c0, recurrent_kernel)
    )
    units = tf.shape(h0)[-1]
    layer_norm = recurrent_gamma is not None
    use_bias = bias is not None
    bias = tf.convert_to_tensor(bias) if use_bias else tf.zeros([4 * units], xw.dtype)
    gains = (input_gamma, recurrent_gamma, cell_gamma, cell_beta)
    if layer_norm:
        gains = tuple(tf.convert_to_tensor(t) for t in gains)
    else:
        gains = (tf.zeros([0], xw.dtype),) * 4
    masked = mask is not None
    if not masked:
        mask = tf.zeros([0, 0], tf.bool)
    run = _recurrence if record else _forward
    return run(
        layer_norm, masked, epsilon, xw, h0, c0, recurrent_kernel, bias, *gains, mask
    )


def _gate_scale(units, dtype):
    # tanh(z) = 2 sigmoid(2 z) - 1 lets one sigmoid cover all four gates.
    one = tf.ones([units], dtype)
    return tf.concat([one, one, 2 * one, one], 0)


def _cell(layer_norm, masked, epsilon, t, h, c, xw, kernel, bias, gains, scale, mask):
    """One step: (h_t, c_t, the record the backward pass needs)."""
    gamma_x, gamma_h, gamma_c, beta_c = gains
    r = tf.matmul(h, kernel)
    if layer_norm:
        x_hat, x_inv = _normalize(xw[t], epsilon)
        r_hat, r_inv = _normalize(r, epsilon)
        z = gamma_x * x_hat + gamma_h * r_hat + bias
    else:
        z = xw[t] + r + bias
    a = tf.sigmoid(z * scale)
    i, f, g, o = tf.split(a, 4, axis=-1)
    c_new = f * c + i * (2.0 * g - 1.0)
    if layer_norm:
        c_hat, c_inv = _normalize(c_new, epsilon)
        y = tf.tanh(gamma_c * c_hat + beta_c)
        record = [a, x_hat, r_hat, c_hat, y, x_inv, r_inv, c_inv, c]
    else:
        y = tf.tanh(c_new)
        record = [a, y, c]
    h_new = o * y
    if masked:
        keep = tf.expand_dims(mask[t], -1)
        h_new = tf.where(keep, h_new, h)
        c_new = tf.where(keep, c_new, c)
    return h_new, c_new, record


def _forward(layer_norm, masked, epsilon, xw, h0, c0, kernel, bias, *rest):
    *gains, mask = rest
    steps = tf.shape(xw)[0]
    scale = _gate_scale(tf.shape(h0)[-1], xw.dtype)

    def step(t, h, c, outputs):
        h, c, _ = _cell(layer_norm, masked, epsilon, t, h, c, xw, kernel, bias,
                        gains, scale, mask)  # fmt: skip
        return t + 1, h, c, outputs.write(t, h)

    _, h_last, c_last, outputs = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        (0, h0, c0, tf.TensorArray(xw.dtype, size=steps)),
    )
    return outputs.stack(), h_last, c_last


def _recurrence(layer_norm, masked, epsilon, *tensors):
    @tf.custom_gradient
    def run(xw, h0, c0, kernel, bias, gamma_x, gamma_h, gamma_c, beta_c, mask):
        steps = tf.shape(xw)[0]
        units = tf.shape(h0)[-1]
        dtype = xw.dtype
        gate_scale = _gate_scale(units, dtype)
        gains = (gamma_x, gamma_h, gamma_c, beta_c)
        # The per-step record the backward pass reads back, one TensorArray
        # per piece, each stacked once: packing the record into one tensor
        # cost a concat per step and a split per step on the way back.
        pieces = 9 if layer_norm else 3

        def new_array():
            return tf.TensorArray(dtype, size=steps)

        def step(t, h, c, outputs, saved):
            h_new, c_new, record = _cell(
                layer_norm, masked, epsilon, t, h, c, xw, kernel, bias, gains,
                gate_scale, mask,
            )  # fmt: skip
            saved = [
                array.write(t, piece)
                for array, piece in zip(saved, record, strict=True)
            ]
            return t + 1, h_new, c_new, outputs.write(t, h_new), saved

        _, h_last, c_last, outputs, saved = tf.while_loop(
            lambda t, *_: t < steps,
            step,
            (0, h0, c0, new_array(), [new_array() for _ in range(pieces)]),
        )
        hs = outputs.stack()
        # Stacked tensors, not the TensorArrays: a gradient function that
        # captures TensorList variants cannot be written into a SavedModel.
        saved = [array.stack() for array in saved]

        def grad(d_hs, d_h_last, d_c_last):
            kernel_t = tf.transpose(kernel)
            # dg/dz_g = 1 - g^2 = 4 a_g (1 - a_g) under the sigmoid rewrite.
            deriv_scale = gate_scale * gate_scale
            zeros_4h = tf.zeros([4 * units], dtype)
            zeros_h = tf.zeros([units], dtype)

            def back(t, dh, dc, d_xw, d_r, d_b, d_gx, d_gh, d_gc, d_bc):
                record = [piece[t] for piece in saved]
                if layer_norm:
                    a, x_hat, r_hat, c_hat, y, x_inv, r_inv, c_inv, c_prev = record
                else:
                    a, y, c_prev = record
                i, f, g, o = tf.split(a, 4, axis=-1)
                g = 2.0 * g - 1.0
                dh = dh + d_hs[t]
                if masked:
                    keep = tf.expand_dims(mask[t], -1)
                    dh_new = tf.where(keep, dh, 0.0)
                else:
                    dh_new = dh
                d_arg = dh_new * o * (1.0 - y * y)
                if layer_norm:
                    d_gc += tf.reduce_sum(d_arg * c_hat, 0)
                    d_bc += tf.reduce_sum(d_arg, 0)
                    dc_new = dc + _normalize_grad(d_arg * gamma_c, c_hat, c_inv)
                else:
                    dc_new = dc + d_arg
                if masked:
                    dc_new = tf.where(keep, dc_new, 0.0)
                da = tf.concat([dc_new * g, dc_new * c_prev, dc_new * i,
                                dh_new * y], -1)  # fmt: skip
                dz = da * a * (1.0 - a) * deriv_scale
                d_b += tf.reduce_sum(dz, 0)
                if layer_norm:
                    d_gx += tf.reduce_sum(dz * x_hat, 0)
                    d_gh += tf.reduce_sum(dz * r_hat, 0)
                    d_xw = d_xw.write(t, _normalize_grad(dz * gamma_x, x_hat, x_inv))
                    dr = _normalize_grad(dz * gamma_h, r_hat, r_inv)
                    d_r = d_r.write(t, dr)
                else:
                    d_xw = d_xw.write(t, dz)
                    dr = dz
                dh_prev = tf.matmul(dr, kernel_t)
                dc_prev = dc_new * f
                if masked:
                    dh_prev = tf.where(keep, dh_prev, dh)
                    dc_prev = tf.where(keep, dc_prev, dc)
                return t - 1, dh_prev, dc_prev, d_xw, d_r, d_b, d_gx, d_gh, d_gc, d_bc

            loop_vars = (steps - 1, d_h_last, d_c_last, new_array(), new_array(),
                         zeros_4h, zeros_4h, zeros_4h, zeros_h, zeros_h)  # fmt: skip
            _, dh0, dc0, d_xw, d_r, d_b, d_gx, d_gh, d_gc, d_bc = tf.while_loop(
                lambda t, *_: t >= 0, back, loop_vars
            )
            d_xw = d_xw.stack()
            d_r = d_r.stack() if layer_norm else d_xw
            h_prev = tf.reshape(tf.concat([h0[None], hs[:-1]], 0), [-1, units])
            d_kernel = tf.matmul(
                h_prev, tf.reshape(d_r, [-1, 4 * units]), transpose_a=True
            )
            if not layer_norm:
                d_gx = d_gh = d_gc = d_bc = tf.zeros([0], dtype)
            return d_xw, dh0, dc0, d_kernel, d_b, d_gx, d_gh, d_gc, d_bc, None

        return (hs, h_last, c_last), grad

    return run(*tensors)
