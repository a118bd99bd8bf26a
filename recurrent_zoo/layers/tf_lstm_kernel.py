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
    xz,
    h0,
    c0,
    recurrent_kernel,
    recurrent_gamma=None,
    cell_gamma=None,
    cell_beta=None,
    mask=None,
    epsilon=1e-3,
):
    """Runs the LSTM recurrence over time-major pre-projected inputs.

    Computes, for t = 0..T-1 (LN = normalization over the feature axis,
    omitted with all of `recurrent_gamma`, `cell_gamma`, `cell_beta` None):

        z_t = xz_t + gamma_h * LN(h_{t-1} U)
        i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(gamma_c * LN(c_t) + beta_c)

    Where `mask[t, b]` is False the step is skipped: h and c carry over.

    Args:
        xz: (T, B, 4H) input pre-activations, bias included.
        h0, c0: (B, H) initial states.
        recurrent_kernel: (H, 4H).
        recurrent_gamma: (4H,) or None; cell_gamma, cell_beta: (H,) or None.
        mask: optional (T, B) bool.
        epsilon: normalization epsilon.

    Returns:
        (hs, h_T, c_T) with hs of shape (T, B, H).
    """
    # Read variables here: tf.custom_gradient must see tensors, not variables.
    xz, h0, c0, recurrent_kernel = (
        tf.convert_to_tensor(t) for t in (xz, h0, c0, recurrent_kernel)
    )
    layer_norm = recurrent_gamma is not None
    masked = mask is not None
    if layer_norm:
        recurrent_gamma, cell_gamma, cell_beta = (
            tf.convert_to_tensor(t) for t in (recurrent_gamma, cell_gamma, cell_beta)
        )
    else:
        units = tf.shape(h0)[-1]
        recurrent_gamma = tf.ones([4 * units], xz.dtype)
        cell_gamma = tf.ones([units], xz.dtype)
        cell_beta = tf.zeros([units], xz.dtype)
    if not masked:
        mask = tf.zeros([0, 0], tf.bool)
    return _recurrence(
        layer_norm, masked, epsilon, xz, h0, c0, recurrent_kernel,
        recurrent_gamma, cell_gamma, cell_beta, mask,
    )  # fmt: skip


def _recurrence(layer_norm, masked, epsilon, *tensors):
    @tf.custom_gradient
    def run(xz, h0, c0, kernel, gamma_h, gamma_c, beta_c, mask):
        steps = tf.shape(xz)[0]
        units = tf.shape(h0)[-1]
        # tanh(z) = 2 sigmoid(2 z) - 1 lets one sigmoid cover all four gates.
        gate_scale = tf.concat(
            [tf.ones([2 * units], xz.dtype), 2 * tf.ones([units], xz.dtype),
             tf.ones([units], xz.dtype)], 0,
        )  # fmt: skip
        xz_scaled = xz * gate_scale
        gamma_h_scaled = gamma_h * gate_scale

        def new_array():
            return tf.TensorArray(xz.dtype, size=steps)

        def step(t, h, c, outputs, saved):
            r = tf.matmul(h, kernel)
            if layer_norm:
                r, r_inv = _normalize(r, epsilon)
                z = xz_scaled[t] + gamma_h_scaled * r
            else:
                z = xz_scaled[t] + r * gate_scale
            a = tf.sigmoid(z)
            i, f, g, o = tf.split(a, 4, axis=-1)
            g = 2.0 * g - 1.0
            c_new = f * c + i * g
            if layer_norm:
                c_hat, c_inv = _normalize(c_new, epsilon)
                y = tf.tanh(gamma_c * c_hat + beta_c)
                record = [a, r, c_hat, y, r_inv, c_inv]
            else:
                y = tf.tanh(c_new)
                record = [a, y]
            h_new = o * y
            if masked:
                keep = tf.expand_dims(mask[t], -1)
                h_new = tf.where(keep, h_new, h)
                c_new = tf.where(keep, c_new, c)
            record.append(c)
            return (t + 1, h_new, c_new, outputs.write(t, h_new),
                    saved.write(t, tf.concat(record, -1)))  # fmt: skip

        _, h_last, c_last, outputs, saved = tf.while_loop(
            lambda t, *_: t < steps,
            step,
            (0, h0, c0, new_array(), new_array()),
            parallel_iterations=1,
        )
        hs = outputs.stack()
        saved = saved.stack()

        def grad(d_hs, d_h_last, d_c_last):
            if layer_norm:
                sizes = [4 * units, 4 * units, units, units, 1, 1, units]
                a_all, r_all, c_hat_all, y_all, r_inv_all, c_inv_all, c_prev_all = (
                    tf.split(saved, sizes, axis=-1)
                )
            else:
                a_all, y_all, c_prev_all = tf.split(
                    saved, [4 * units, units, units], axis=-1
                )
            kernel_t = tf.transpose(kernel)
            # dg/dz_g = 1 - g^2 = 4 a_g (1 - a_g) under the sigmoid rewrite.
            deriv_scale = gate_scale * gate_scale

            def back(t, dh, dc, d_zs):
                dh = dh + d_hs[t]
                i, f, g, o = tf.split(a_all[t], 4, axis=-1)
                g = 2.0 * g - 1.0
                y = y_all[t]
                dh_new = (
                    tf.where(tf.expand_dims(mask[t], -1), dh, 0.0) if masked else dh
                )
                d_arg = dh_new * o * (1.0 - y * y)
                if layer_norm:
                    dc_new = dc + _normalize_grad(
                        d_arg * gamma_c, c_hat_all[t], c_inv_all[t]
                    )
                else:
                    dc_new = dc + d_arg
                if masked:
                    dc_new = tf.where(tf.expand_dims(mask[t], -1), dc_new, 0.0)
                da = tf.concat([dc_new * g, dc_new * c_prev_all[t], dc_new * i,
                                dh_new * y], -1)  # fmt: skip
                dz = da * a_all[t] * (1.0 - a_all[t]) * deriv_scale
                if layer_norm:
                    dr = _normalize_grad(dz * gamma_h, r_all[t], r_inv_all[t])
                else:
                    dr = dz
                dh_prev = tf.matmul(dr, kernel_t)
                dc_prev = dc_new * f
                if masked:
                    keep = tf.expand_dims(mask[t], -1)
                    dh_prev = tf.where(keep, dh_prev, dh)
                    dc_prev = tf.where(keep, dc_prev, dc)
                record = tf.concat([dz, d_arg], -1) if layer_norm else dz
                return t - 1, dh_prev, dc_prev, d_zs.write(t, record)

            _, dh0, dc0, d_zs = tf.while_loop(
                lambda t, *_: t >= 0,
                back,
                (steps - 1, d_h_last, d_c_last, new_array()),
                parallel_iterations=1,
            )
            d_xz = d_zs.stack()
            if layer_norm:
                d_xz, d_arg_all = tf.split(d_xz, [4 * units, units], axis=-1)
            h_prev = tf.reshape(tf.concat([h0[None], hs[:-1]], 0), [-1, units])
            if layer_norm:
                d_r = _normalize_grad(d_xz * gamma_h, r_all, r_inv_all)
                d_gamma_h = tf.reduce_sum(d_xz * r_all, [0, 1])
                d_gamma_c = tf.reduce_sum(d_arg_all * c_hat_all, [0, 1])
                d_beta_c = tf.reduce_sum(d_arg_all, [0, 1])
            else:
                d_r = d_xz
                d_gamma_h = tf.zeros_like(gamma_h)
                d_gamma_c = tf.zeros_like(gamma_c)
                d_beta_c = tf.zeros_like(beta_c)
            d_kernel = tf.matmul(
                h_prev, tf.reshape(d_r, [-1, 4 * units]), transpose_a=True
            )
            return d_xz, dh0, dc0, d_kernel, d_gamma_h, d_gamma_c, d_beta_c, None

        return (hs, h_last, c_last), grad

    return run(*tensors)
