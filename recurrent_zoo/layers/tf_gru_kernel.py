"""TensorFlow kernel for the (layer-normalized) GRU recurrence.

The design of `tf_lstm_kernel`, which explains it at length: a hand-written
back-propagation through time, so that a training step does little more
than the recurrence needs and keeps little more than Keras's own loop.

- In training each step multiplies x_t by W and h_{t-1} by U itself: no
  (T, B, 3H) input projection is held (the inference loop computes x W for
  all steps first when that fits in cache).
- Layer normalization of a matmul output scales the narrow side
  (`tf_kernel_parts`): gamma * LN(h U) = (h * inv) (U_c * gamma), with
  inv = 1/rms(h U_c) from the quadratic form h (U_c U_c^T / N) h^T. With
  reset_after the recurrent projection is normalized over all 3H at once;
  without it, over [z, r] (2H) and over the candidate's (r * h) U_h (H)
  separately, each with its own centred kernel. As (h * inv) K is
  inv * (h K), 1/rms is computed beside the matmul, not before it.
- The forward loop records h, z, r, the candidate hh and, with reset_after,
  the candidate's recurrent share s_h (the reset gate's gradient needs it);
  with layer normalization also 1/rms per example. Nothing 3H-wide.
- Both loops keep the path from one step's state to the next short (the
  loop runs other steps' independent work beside it): h_t = z h + (1 - z) hh
  is two operations after hh, and in the backward loop every gate's
  gradient is dh_t times a factor of the step's records, so the path from
  dh_t to dh_{t-1} is a multiply, a concat, the matmul and an add.
- A masked step is skipped by setting its z to 1: h_t = h_{t-1} exactly,
  and every derivative of the step carries a factor 1 - z or z (1 - z), so
  is exactly zero: the backward loop needs no mask, and dh_{t-1} = z dh_t.
- The backward loop accumulates dW, dU and the biases step by step, as
  Keras's own loop does, so no (T, B, 3H) gradient is materialized; each
  step writes only dx_t.
- A layer that returns only its last state asks for no output sequence and
  receives no (T, B, H) gradient for one.

The state and the accumulated gradients are always float32: under a
mixed-precision policy the inputs are cast up and the outputs back. Under
a bfloat16 policy the step matmuls take bfloat16 operands (float32
products; `tf_kernel_parts.matmul_dtype`): h_{t-1} enters h U rounded,
while h_t = z h_{t-1} + (1 - z) hh is formed in float32.

Gate order is Keras's: z (update), r (reset), h (candidate); so is the bias
layout, (2, 3H) = [input bias; recurrent bias] with reset_after, else (3H,).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from recurrent_zoo.layers.tf_kernel_parts import (
    Steps,
    centered,
    dim,
    inference_compiler,
    input_share,
    inverse_rms,
    loop_compiler,
    matmul,
    matmul_dtype,
    moments_grad,
    normalized_inputs,
    time_index,
)

# Floats of a (T, B, 3H) input share that still stay in a CPU's cache.
_CACHED_FLOATS = 2**18


class _Options(NamedTuple):
    layer_norm: bool
    reset_after: bool
    masked: bool
    sequences: bool
    reverse: bool
    epsilon: float
    precision: tf.DType  # of the matmul operands (`matmul_dtype`)


def gru_recurrence(
    inputs,
    h0,
    kernel,
    recurrent_kernel,
    bias=None,
    input_gamma=None,
    recurrent_gamma=None,
    mask=None,
    epsilon=1e-3,
    reset_after=True,
    record=True,
    sequences=True,
    reverse=False,
    xla=False,
):
    """Runs the GRU over batch-major inputs.

    Computes, for t = 0..T-1 (LN = normalization over the last axis; with
    both gains None the GRU is plain, Keras's, and every LN and gain is
    dropped), with reset_after:

        a = gamma_x * LN(x_t W) + b_x;  s = gamma_h * LN(h_{t-1} U) + b_h
        z, r = sigmoid(a_z + s_z, a_r + s_r);  hh = tanh(a_h + r * s_h)

    and without it (b the one bias, U = [U_zr | U_h], gamma_h likewise):

        a = gamma_x * LN(x_t W) + b;  s = gamma_zr * LN(h_{t-1} U_zr)
        z, r = sigmoid(a_z + s_z, a_r + s_r)
        hh = tanh(a_h + gamma_hh * LN((r * h_{t-1}) U_h))

    then h_t = z * h_{t-1} + (1 - z) * hh. Where `mask[t, b]` is False the
    step is skipped: h carries over.

    Args:
        inputs: (B, T, F) inputs x_t (after any dropout).
        h0: (B, H) initial state.
        kernel: (F, 3H) W; recurrent_kernel: (H, 3H) U.
        bias: (2, 3H) [b_x; b_h] with reset_after, else (3H,); or None.
        input_gamma, recurrent_gamma: (3H,) each, or both None.
        mask: optional (T, B) bool, in processing order.
        epsilon: normalization epsilon.
        reset_after: apply the reset gate after the recurrent matmul
            (Keras's default, cuDNN's) or to h before it.
        record: keep what the hand-written backward pass needs at every
            step. False (inference) runs a lean forward loop instead: still
            differentiable, by TensorFlow's generic while_loop gradient.
        sequences: False skips the (T, B, H) outputs (hs is then None).
        reverse: process the steps last to first (hs in processing order).
        xla: compile a training call's two loops with XLA where it may
            (`tf_kernel_parts.loop_compiler`), and the inference loop
            inside Keras's own steps (`inference_compiler`).

    Returns:
        (hs, h_T) with hs of shape (T, B, H), in the inputs' dtype.
    """
    dtype = tf.convert_to_tensor(inputs).dtype

    def f32(t):
        return None if t is None else tf.cast(tf.convert_to_tensor(t), tf.float32)

    x, h0, kernel, recurrent, bias = map(
        f32, (inputs, h0, kernel, recurrent_kernel, bias)
    )
    layer_norm = recurrent_gamma is not None
    if layer_norm != (input_gamma is not None):
        raise ValueError("input_gamma and recurrent_gamma: give both or neither.")
    units = dim(h0, -1)
    if bias is None:
        bias = tf.zeros([2, 3 * units] if reset_after else [3 * units])
    if layer_norm:
        x, kernel = normalized_inputs(x, kernel, f32(input_gamma), epsilon)
    if reset_after:
        bias, weights = _after_weights(recurrent, bias, f32(recurrent_gamma), units)
    else:
        weights = _before_weights(recurrent, units, f32(recurrent_gamma))
    masked = mask is not None
    mask = tf.convert_to_tensor(mask) if masked else tf.zeros([0, 0], tf.bool)
    options = _Options(
        layer_norm, reset_after, masked, sequences, reverse, epsilon,
        matmul_dtype(dtype),
    )  # fmt: skip
    tensors = (x, kernel, bias, h0, mask, *weights)
    if record:
        outputs = _recurrence(options, *tensors, loops=loop_compiler(xla, inputs))
    else:
        outputs = inference_compiler(xla, inputs)(_forward)(options, *tensors)
    if record and not sequences:
        outputs = (None, *outputs)
    return tuple(None if t is None else tf.cast(t, dtype) for t in outputs)


def _after_weights(recurrent, bias, gamma, units):
    """(input bias, weights): weights (U, b_hh) or, normalized,
    (U_c * gamma, b_hh, U_c U_c^T / 3H), with b_hh the candidate's
    recurrent bias. Only that one sits inside r * s_h: the recurrent
    biases of z and r join the input's."""
    bias, recurrent_bias = tf.unstack(bias)
    recurrent_zr, recurrent_bias = tf.split(recurrent_bias, [2 * units, units])
    bias = bias + tf.concat([recurrent_zr, tf.zeros_like(recurrent_bias)], 0)
    if gamma is None:
        return bias, (recurrent, recurrent_bias)
    kernel, moments = centered(recurrent)
    return bias, (kernel * gamma, recurrent_bias, moments)


def _before_weights(recurrent, units, gamma):
    """(U_zr, U_h) or, normalized, their centred kernels times their gains,
    then their moment matrices: each part is normalized on its own."""
    parts = tf.split(recurrent, [2 * units, units], axis=1)
    if gamma is None:
        return tuple(parts)
    (k_zr, m_zr), (k_h, m_h) = map(centered, parts)
    g_zr, g_h = tf.split(gamma, [2 * units, units])
    return k_zr * g_zr, k_h * g_h, m_zr, m_h


def _gates_after(layer_norm, epsilon, h, a, weights):
    """reset_after: (z, hh, record); r scales the recurrent share s_h.

    a holds b_x plus the recurrent bias of z and r (`gru_recurrence`).
    """
    units = dim(h, 1)
    kernel, bias, *moments = weights
    # (h * inv) U = inv * (h U): 1/rms is computed beside the matmul, not
    # before it, which keeps it off the path from h_{t-1} to h_t.
    s = matmul(h, kernel, kernel.dtype)
    record = {}
    if layer_norm:
        record["inv"] = inverse_rms(h, moments[0], epsilon)
        s = s * record["inv"]
    # One sigmoid over all 3H (the candidate's third unused): one operation
    # fewer between h_{t-1} and h_t than splitting first.
    z, r, _ = tf.split(tf.sigmoid(a + s), 3, -1)
    s_h = tf.split(s, [2 * units, units], -1)[1] + bias
    a_h = tf.split(a, [2 * units, units], -1)[1]
    record.update(r=r, s=s_h)
    return z, tf.tanh(a_h + r * s_h), record


def _gates_before(layer_norm, epsilon, h, a, weights):
    """reset_after False: (z, hh, record); r scales h before U_h."""
    units = dim(h, 1)
    k_zr, k_h, *moments = weights
    a_zr, a_h = tf.split(a, [2 * units, units], -1)
    s = matmul(h, k_zr, k_zr.dtype)
    record = {}
    if layer_norm:
        record["inv"] = inverse_rms(h, moments[0], epsilon)
        s = s * record["inv"]
    z, r = tf.split(tf.sigmoid(a_zr + s), 2, -1)
    g = r * h
    s_h = matmul(g, k_h, k_h.dtype)
    if layer_norm:
        record["inv_g"] = inverse_rms(g, moments[1], epsilon)
        s_h = s_h * record["inv_g"]
    record["r"] = r
    return z, tf.tanh(a_h + s_h), record


def _cell(options, t, h, a, weights, mask):
    """One step from the input's share a = x_t W + b: (h_t, record)."""
    gates = _gates_after if options.reset_after else _gates_before
    z, hh, record = gates(options.layer_norm, options.epsilon, h, a, weights)
    if options.masked:
        z = tf.where(tf.expand_dims(mask[t], -1), z, 1.0)
    record.update(z=z, hh=hh)
    # z h and 1 - z wait only for z: two operations from hh to h_t (and h_t
    # is exactly h_{t-1} where z is 1, which hh + z (h - hh) is not).
    return z * h + (1.0 - z) * hh, record


def _low(options, tensors):
    """The matrices among `tensors` cast to the matmul dtype (biases not)."""
    return tuple(
        tf.cast(t, options.precision) if t.shape.rank == 2 else t for t in tensors
    )


def _forward(options, x, w, b, h0, mask, *weights):
    steps = tf.shape(x)[1]
    x, w = tf.cast(x, options.precision), tf.cast(w, options.precision)
    weights = _low(options, weights)
    share = input_share(x, w, b, options.reverse, _CACHED_FLOATS)

    def step(t, h, outputs):
        h, _ = _cell(options, t, h, share(t), weights, mask)
        return t + 1, h, outputs.write(t, h) if options.sequences else outputs

    length = steps if options.sequences else 0
    _, h_last, outputs = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        (0, h0, tf.TensorArray(tf.float32, size=length)),
        maximum_iterations=steps,
    )
    return (outputs.stack() if options.sequences else None), h_last


def _record_names(options):
    names = ["z", "r", "hh"] + (["s"] if options.reset_after else [])
    if options.layer_norm:
        names += ["inv"] if options.reset_after else ["inv", "inv_g"]
    return names


def _recurrence(options, *tensors, loops):
    """The recording forward loop, differentiated by `_backward`; `loops`
    (`tf_kernel_parts.loop_compiler`) may compile both loops with XLA."""

    @tf.custom_gradient
    def run(x, w, b, h0, mask, *weights):
        x_low, w_low = tf.cast(x, options.precision), tf.cast(w, options.precision)
        low = _low(options, weights)
        h_last, saved = loops(_record)(options, x_low, w_low, b, h0, mask, low)

        def grad(*upstream):
            if not options.sequences:
                upstream = (None, *upstream)
            dx, d_w, d_b, dh0, d_weights = loops(_backward)(
                options, saved, (x, w, weights), upstream
            )
            return (dx, d_w, d_b, dh0, None, *d_weights)

        if options.sequences:
            # Outside the compiled loop: there this slice aliases `saved`.
            return (saved["h"][1:], h_last), grad
        return (h_last,), grad

    return run(*tensors)


def _record(options, x, w, b, h0, mask, low):
    """The forward loop of training: (h_T, what `_backward` reads)."""
    steps = tf.shape(x)[1]
    # h with h_0 in front: h_{t-1} and h_t are then two views of one.
    states = Steps(steps + 1, ["h"])
    records = Steps(steps, _record_names(options))

    def step(t, h, state_buffers, record_buffers):
        x_t = x[:, time_index(t, steps, options.reverse)]
        a = matmul(x_t, w, options.precision) + b  # no (T, B, 3H) held
        h, record = _cell(options, t, h, a, low, mask)
        state_buffers = states.write(state_buffers, t + 1, {"h": h})
        record_buffers = records.write(record_buffers, t, record)
        return t + 1, h, state_buffers, record_buffers

    first = states.write(states.buffers, 0, {"h": h0})
    _, h_last, state_buffers, record_buffers = tf.while_loop(
        lambda t, *_: t < steps,
        step,
        (0, h0, first, records.buffers),
        maximum_iterations=steps,
    )
    return h_last, {**states.finish(state_buffers), **records.finish(record_buffers)}


def _through_rms(x, q, inv, neg_inv_cubed, moments):
    """Gradient through x -> (x * inv) with inv = (x M x^T + eps)^-1/2,
    given q = dL/d(x * inv): (dL/dx, 2 dL/dm) with m = x M x^T.

    x M is rebuilt here, beside the path from dh_t to dh_{t-1} (recording it
    in the forward loop measured no faster, and costs a (T, B, H) record).
    """
    dm = neg_inv_cubed * tf.reduce_sum(x * q, -1, keepdims=True)
    return inv * q + dm * matmul(x, moments, moments.dtype), dm


def _back_after(options, dh, h, rec, weights, kernels_t):
    """One reset_after step back: (da, dh_{t-1}, weight increments, dms),
    da being the gradient of the input's share a.

    Each gate's gradient is dh times a factor of the step's records alone,
    which the loop can compute ahead, beside the path from dh_t to dh_{t-1}.
    """
    z, r, hh, s_h = rec["z"], rec["r"], rec["hh"], rec["s"]
    one_minus_z = 1.0 - z
    c_h = one_minus_z * (1.0 - hh * hh)  # d h_t / d(a_h + r s_h)
    d_z = dh * ((h - hh) * (z * one_minus_z))
    d_r = dh * (c_h * s_h * (r - r * r))
    d_hr = dh * (c_h * r)  # the recurrent share's, inside r * s_h
    ds = tf.concat([d_z, d_r, d_hr], -1)
    q = matmul(ds, kernels_t[0], options.precision)
    dms = {}
    if options.layer_norm:
        inv = rec["inv"]
        dq, dms["dm"] = _through_rms(h, q, inv, rec["neg_inv3"], weights[2])
        dh_prev, h = dh * z + dq, h * inv
    else:
        dh_prev = dh * z + q
    increments = (
        matmul(h, ds, options.precision, transpose_a=True),
        tf.reduce_sum(d_hr, 0),
    )
    return tf.concat([d_z, d_r, dh * c_h], -1), dh_prev, increments, dms


def _back_before(options, dh, h, rec, weights, kernels_t):
    """One reset_after=False step back: as `_back_after`."""
    z, r, hh = rec["z"], rec["r"], rec["hh"]
    one_minus_z = 1.0 - z
    d_h = dh * (one_minus_z * (1.0 - hh * hh))
    q_h = matmul(d_h, kernels_t[1], options.precision)
    g = r * h
    dms = {}
    if options.layer_norm:
        inv_g = rec["inv_g"]
        dg, dms["dm_g"] = _through_rms(g, q_h, inv_g, rec["neg_inv_g3"], weights[3])
        g = g * inv_g
    else:
        dg = q_h
    d_z = dh * ((h - hh) * (z * one_minus_z))
    d_r = dg * (h * (r - r * r))
    d_zr = tf.concat([d_z, d_r], -1)
    q = matmul(d_zr, kernels_t[0], options.precision)
    dh_prev = dh * z + dg * r
    if options.layer_norm:
        inv = rec["inv"]
        dq, dms["dm"] = _through_rms(h, q, inv, rec["neg_inv3"], weights[2])
        dh_prev, h = dh_prev + dq, h * inv
    else:
        dh_prev = dh_prev + q
    increments = (
        matmul(h, d_zr, options.precision, transpose_a=True),
        matmul(g, d_h, options.precision, transpose_a=True),
    )
    return tf.concat([d_zr, d_h], -1), dh_prev, increments, dms


def _backward(options, saved, inputs, upstream):
    """Gradients of `_recurrence`: (dx, dW, db, dh_0, d_weights).

    dW, db and the recurrent kernels' (and b_h's) gradients are accumulated
    step by step, as Keras's own loop does; the moment matrices' gradients
    sum_t (dm_t x_t)^T x_t / 2 are one matmul after the loop, from the
    per-example dm_t each step writes (see `_through_rms`).
    """
    x, w, weights = inputs
    d_hs, d_h_last = upstream
    steps = tf.shape(x)[1]
    records = {k: v for k, v in saved.items() if k != "h"}
    for name in ("inv", "inv_g"):
        if name in records:
            records["neg_" + name + "3"] = -(records[name] ** 3)
    # (U, b_hh) with reset_after, else (U_zr, U_h); the moments follow.
    trainable = weights[:2]
    kernels = trainable[:1] if options.reset_after else trainable
    kernels_t = [tf.cast(tf.transpose(k), options.precision) for k in kernels]
    w_t = tf.cast(tf.transpose(w), options.precision)
    x_low, low = tf.cast(x, options.precision), _low(options, weights)
    back_step = _back_after if options.reset_after else _back_before
    dm_names = []
    if options.layer_norm:
        dm_names = ["dm"] if options.reset_after else ["dm", "dm_g"]
    grads = Steps(steps, ["dx", *dm_names])

    def back(t, dh, d_w, d_b, d_trainable, buffers):
        if d_hs is not None:
            dh = dh + d_hs[t]
        rec = {k: v[t] for k, v in records.items()}
        da, dh_prev, increments, dms = back_step(
            options, dh, saved["h"][t], rec, low, kernels_t
        )
        index = time_index(t, steps, options.reverse)
        dx = matmul(da, w_t, options.precision)
        buffers = grads.write(buffers, index, {"dx": dx})
        buffers = grads.write(buffers, t, dms)
        d_w += matmul(x_low[:, index], da, options.precision, transpose_a=True)
        d_b += tf.reduce_sum(da, 0)
        d_trainable = tuple(a + i for a, i in zip(d_trainable, increments, strict=True))
        return t - 1, dh_prev, d_w, d_b, d_trainable, buffers

    initial = (steps - 1, d_h_last, tf.zeros_like(w), tf.zeros_like(w[0]),
               tuple(map(tf.zeros_like, trainable)), grads.buffers)  # fmt: skip
    _, dh0, d_w, d_b, d_trainable, buffers = tf.while_loop(
        lambda t, *_: t >= 0, back, initial, maximum_iterations=steps
    )
    out = grads.finish(buffers)
    dx = tf.transpose(out["dx"], (1, 0, 2))
    d_moments = []
    if options.layer_norm:
        d_moments.append(moments_grad(saved["h"], out["dm"], states=True))
        if not options.reset_after:
            r_h = saved["r"] * saved["h"][:-1]  # a product: the slice fuses
            d_moments.append(moments_grad(r_h, out["dm_g"]))
    return dx, d_w, d_b, dh0, (*d_trainable, *d_moments)
