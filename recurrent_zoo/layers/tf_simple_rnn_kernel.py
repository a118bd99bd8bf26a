"""TensorFlow kernel for the simple (Elman) RNN recurrence.

Same design as `tf_lstm_kernel`: each step multiplies x_t by W and h_{t-1}
by U itself, the loop keeps only h, and the hand-written back-propagation
through time (the derivation in `recurrent_zoo.reference.simple_rnn`)
accumulates dW, dU and db step by step, writing only the narrow input
gradient dx_t, so a training step holds about what Keras's own loop holds.
The recurrence runs in float32 whatever the inputs' dtype, its matmuls
too: unlike an LSTM's c or a GRU's gated h, a simple RNN's whole state
passes through h U, so bfloat16 operands would round the state itself to 8
bits at every step.
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_zoo.layers.tf_kernel_parts import (
    inference_compiler,
    loop_compiler,
    time_index,
)

# Activations whose derivative can be written from the output alone.
DERIVATIVES = {
    "tanh": lambda h: 1.0 - h * h,
    "relu": lambda h: tf.cast(h > 0, h.dtype),
    "linear": None,
}
_FUNCTIONS = {"tanh": tf.tanh, "relu": tf.nn.relu, "linear": None}


def simple_rnn_recurrence(
    inputs,
    h0,
    kernel,
    recurrent_kernel,
    bias=None,
    activation="tanh",
    mask=None,
    record=True,
    sequences=True,
    reverse=False,
    xla=False,
):
    """h_t = act(x_t W + h_{t-1} U + b) over batch-major inputs (B, T, F).

    `reverse` processes the steps last to first; hs and `mask` (T, B) are in
    processing order. Where `mask[t, b]` is False the step is skipped and h
    carries over.
    `activation` is "tanh", "relu" or "linear". `record` False (inference)
    runs a plain loop, differentiable by TensorFlow's generic gradient;
    `sequences` False skips the (T, B, H) outputs (hs is then None);
    `xla` compiles a training call's two loops with XLA where it may
    (`tf_kernel_parts.loop_compiler`), and the inference loop inside
    Keras's own steps (`inference_compiler`).
    Returns (hs, h_T) in the inputs' dtype.
    """
    dtype = tf.convert_to_tensor(inputs).dtype
    x, h0, kernel, recurrent = (
        tf.cast(tf.convert_to_tensor(t), tf.float32)
        for t in (inputs, h0, kernel, recurrent_kernel)
    )
    units = h0.shape[-1] or tf.shape(h0)[-1]
    bias = tf.zeros([units]) if bias is None else tf.cast(bias, tf.float32)
    masked = mask is not None
    if not masked:
        mask = tf.zeros([0, 0], tf.bool)
    options = (activation, masked, sequences, reverse)
    tensors = (x, kernel, bias, h0, recurrent, mask)
    if record:
        outputs = _recurrence(*options, *tensors, loops=loop_compiler(xla, inputs))
    else:
        outputs = inference_compiler(xla, inputs)(_forward)(options, *tensors)
    if record and not sequences:
        outputs = (None, *outputs)
    return tuple(None if t is None else tf.cast(t, dtype) for t in outputs)


def _step(act, masked, t, h, x_t, weights, bias, mask):
    kernel, recurrent = weights
    h_new = tf.matmul(x_t, kernel) + tf.matmul(h, recurrent) + bias
    if act is not None:
        h_new = act(h_new)
    if masked:
        h_new = tf.where(tf.expand_dims(mask[t], -1), h_new, h)
    return h_new


def _forward(options, x, kernel, bias, h0, recurrent, mask):
    activation, masked, sequences, reverse = options
    act = _FUNCTIONS[activation]
    steps = tf.shape(x)[1]
    weights = (kernel, recurrent)

    def step(t, h, outputs):
        x_t = x[:, time_index(t, steps, reverse)]
        h = _step(act, masked, t, h, x_t, weights, bias, mask)
        return t + 1, h, outputs.write(t, h) if sequences else outputs

    _, h_last, outputs = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        (0, h0, tf.TensorArray(tf.float32, size=steps if sequences else 0)),
        maximum_iterations=steps,
    )
    return (outputs.stack() if sequences else None), h_last


def _recurrence(activation, masked, sequences, reverse, *tensors, loops):
    """The recording forward loop, differentiated by `_backward`; `loops`
    (`tf_kernel_parts.loop_compiler`) may compile both loops with XLA."""

    @tf.custom_gradient
    def run(x, kernel, bias, h0, recurrent, mask):
        weights = (kernel, recurrent)
        states = loops(_record)(activation, masked, reverse, x, weights, bias, h0, mask)

        def grad(*upstream):
            d_hs, d_h_last = upstream if sequences else (None, *upstream)
            return loops(_backward)(
                activation, masked, reverse, states, x, weights, mask, d_hs,
                d_h_last,
            )  # fmt: skip

        # Outside the compiled loop: there these slices alias `states`.
        h_last = states[-1]
        return ((states[1:], h_last) if sequences else (h_last,)), grad

    return run(*tensors)


def _record(activation, masked, reverse, x, weights, bias, h0, mask):
    """The forward loop of training: h_0..h_T, (T + 1, B, H)."""
    act = _FUNCTIONS[activation]
    steps = tf.shape(x)[1]

    def step(t, h, states):
        x_t = x[:, time_index(t, steps, reverse)]
        h = _step(act, masked, t, h, x_t, weights, bias, mask)
        return t + 1, h, states.write(t + 1, h)

    # h_0 in front: h_{t-1} and h_t are then two views of one tensor.
    states = tf.TensorArray(tf.float32, size=steps + 1).write(0, h0)
    _, _, states = tf.while_loop(
        lambda t, *_: t < steps, step, (0, h0, states), maximum_iterations=steps
    )
    # Stacked, not the TensorArray: a gradient function that captures a
    # TensorList variant cannot be written into a SavedModel.
    return states.stack()


def _backward(activation, masked, reverse, states, x, weights, mask, d_hs, d_h_last):
    """dx, dW, db, dh_0, dU, with dW, dU and db accumulated step by step.

    Separate matmuls and accumulators: on a CPU one [W; U]-wide accumulator
    spills out of cache and costs more than the narrower ones together.
    """
    derivative = DERIVATIVES[activation]
    kernel, recurrent = weights
    steps = tf.shape(x)[1]
    kernel_t, recurrent_t = tf.transpose(kernel), tf.transpose(recurrent)

    def back(t, dh, d_kernel, d_recurrent, d_bias, dx_all):
        if d_hs is not None:
            dh = dh + d_hs[t]
        h_prev = states[t]
        da = dh if derivative is None else dh * derivative(states[t + 1])
        if masked:
            keep = tf.expand_dims(mask[t], -1)
            da = tf.where(keep, da, 0.0)
            dh_prev = tf.where(keep, tf.matmul(da, recurrent_t), dh)
        else:
            dh_prev = tf.matmul(da, recurrent_t)
        index = time_index(t, steps, reverse)
        x_t = x[:, index]
        d_kernel += tf.matmul(x_t, da, transpose_a=True)
        d_recurrent += tf.matmul(h_prev, da, transpose_a=True)
        d_bias += tf.reduce_sum(da, 0)
        dx_all = dx_all.write(index, tf.matmul(da, kernel_t))
        return t - 1, dh_prev, d_kernel, d_recurrent, d_bias, dx_all

    _, dh0, d_kernel, d_recurrent, d_bias, dx = tf.while_loop(
        lambda t, *_: t >= 0,
        back,
        (
            steps - 1, d_h_last, tf.zeros_like(kernel), tf.zeros_like(recurrent),
            tf.zeros_like(recurrent[0]), tf.TensorArray(tf.float32, size=steps),
        ),
        maximum_iterations=steps,
    )  # fmt: skip
    dx = tf.transpose(dx.stack(), (1, 0, 2))
    return dx, d_kernel, d_bias, dh0, d_recurrent, None
