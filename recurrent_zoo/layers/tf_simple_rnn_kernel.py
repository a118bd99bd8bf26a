"""TensorFlow kernel for the simple (Elman) RNN recurrence.

Same idea as `tf_lstm_kernel`: the loop runs over the input projection x_t W
and supplies its own back-propagation through time (the derivation in
`recurrent_zoo.reference.simple_rnn`), so the backward loop is one matmul
and three elementwise operations per step, and dL/dU is a single matmul
over all steps instead of one small matmul accumulated per step.
"""

from __future__ import annotations

import tensorflow as tf

# Activations whose derivative can be written from the output alone.
DERIVATIVES = {
    "tanh": lambda h: 1.0 - h * h,
    "relu": lambda h: tf.cast(h > 0, h.dtype),
    "linear": None,
}
_FUNCTIONS = {"tanh": tf.tanh, "relu": tf.nn.relu, "linear": None}


def simple_rnn_recurrence(
    xw, h0, recurrent_kernel, bias=None, activation="tanh", mask=None
):
    """h_t = act(xw_t + h_{t-1} U + b) over time-major xw of shape (T, B, H).

    Where `mask[t, b]` is False the step is skipped and h carries over.
    `activation` is "tanh", "relu" or "linear". Returns (hs, h_T).
    """
    xw, h0, recurrent_kernel = (
        tf.convert_to_tensor(t) for t in (xw, h0, recurrent_kernel)
    )
    use_bias = bias is not None
    bias = (
        tf.convert_to_tensor(bias)
        if use_bias
        else tf.zeros([tf.shape(h0)[-1]], xw.dtype)
    )
    masked = mask is not None
    if not masked:
        mask = tf.zeros([0, 0], tf.bool)
    return _recurrence(activation, masked, xw, h0, recurrent_kernel, bias, mask)


def _recurrence(activation, masked, *tensors):
    act, derivative = _FUNCTIONS[activation], DERIVATIVES[activation]

    @tf.custom_gradient
    def run(xw, h0, kernel, bias, mask):
        steps = tf.shape(xw)[0]

        def step(t, h, outputs):
            h_new = xw[t] + tf.matmul(h, kernel) + bias
            if act is not None:
                h_new = act(h_new)
            if masked:
                h_new = tf.where(tf.expand_dims(mask[t], -1), h_new, h)
            return t + 1, h_new, outputs.write(t, h_new)

        _, h_last, outputs = tf.while_loop(
            lambda t, *_: t < steps,
            step,
            (0, h0, tf.TensorArray(xw.dtype, size=steps)),
        )
        hs = outputs.stack()

        def grad(d_hs, d_h_last):
            kernel_t = tf.transpose(kernel)

            def back(t, dh, d_a):
                dh = dh + d_hs[t]
                da = dh if derivative is None else dh * derivative(hs[t])
                if masked:
                    keep = tf.expand_dims(mask[t], -1)
                    da = tf.where(keep, da, 0.0)
                    dh_prev = tf.where(keep, tf.matmul(da, kernel_t), dh)
                else:
                    dh_prev = tf.matmul(da, kernel_t)
                return t - 1, dh_prev, d_a.write(t, da)

            _, dh0, d_a = tf.while_loop(
                lambda t, *_: t >= 0,
                back,
                (steps - 1, d_h_last, tf.TensorArray(xw.dtype, size=steps)),
            )
            d_a = d_a.stack()
            units = tf.shape(h0)[-1]
            h_prev = tf.reshape(tf.concat([h0[None], hs[:-1]], 0), [-1, units])
            flat_da = tf.reshape(d_a, [-1, units])
            d_kernel = tf.matmul(h_prev, flat_da, transpose_a=True)
            return d_a, dh0, d_kernel, tf.reduce_sum(flat_da, 0), None

        return (hs, h_last), grad

    return run(*tensors)
